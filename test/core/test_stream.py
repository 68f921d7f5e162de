"""VideoSegmenter: keyframe schedule, forcing rules, exactness of l=1, odd sizes, bad input."""
import dataclasses

import numpy as np
import pytest
import torch

from gsvnet_ros.backends.base import resolve_device
from gsvnet_ros.backends.torch_backend import TorchBackend
from gsvnet_ros.config import GSVNetConfig, StreamConfig
from gsvnet_ros.models.gsvnet import build_gsvnet
from gsvnet_ros.output_stage import reference_labels
from gsvnet_ros.stream import InputError, NonFiniteOutputError, VideoSegmenter

MS = 1_000_000  # ns per ms


@pytest.fixture(scope="module")
def backend():
    torch.manual_seed(0)
    model = build_gsvnet(GSVNetConfig().model)
    return TorchBackend(model, resolve_device("cpu"))


def _frames(n, height=64, width=96, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (height + n, width + n, 3), dtype=np.uint8)
    return [np.ascontiguousarray(base[i:i + height, i:i + width]) for i in range(n)]  # a moving scene


def _run(segmenter, frames, period_ms=50):
    return [segmenter.step(f, i * period_ms * MS) for i, f in enumerate(frames)]


@pytest.mark.parametrize("interval", [1, 2, 3, 5])
def test_keyframes_at_multiples_of_the_interval(backend, interval):
    results = _run(VideoSegmenter(backend, StreamConfig(keyframe_interval=interval)), _frames(11))
    assert [r.is_keyframe for r in results] == [i % interval == 0 for i in range(11)]
    assert [r.frames_since_keyframe for r in results] == [i % interval for i in range(11)]
    assert results[0].keyframe_reason == "first"
    assert all(r.keyframe_reason == "interval" for r in results[interval::interval])
    assert [r.frame_index for r in results] == list(range(11))


def test_each_forcing_rule_forces_one_keyframe(backend):
    seg = VideoSegmenter(backend, StreamConfig(keyframe_interval=100, max_gap_s=0.5))
    small, big = _frames(1)[0], _frames(1, 96, 128)[0]
    steps = [
        (small, 0, None, "first"),
        (small, 50, None, ""),
        (big, 100, None, "size_change"),
        (big, 150, None, ""),
        (big, 120, None, "stamp_backwards"),
        (big, 170, None, ""),
        (big, 171 + 501, None, "gap"),
        (big, 700, None, ""),
        (big, 750, "encoding_change", "encoding_change"),
        (big, 800, None, ""),
    ]
    for frame, stamp_ms, force, expected in steps:
        result = seg.step(frame, stamp_ms * MS, force_reason=force)
        assert result.keyframe_reason == expected, (stamp_ms, expected)
        assert result.is_keyframe == bool(expected)
    seg.reset()
    after = seg.step(big, 900 * MS)
    assert (after.is_keyframe, after.keyframe_reason, after.frame_index) == (True, "reset", 0)


def test_interval_one_equals_per_frame_segmentation(backend):
    frames = _frames(4, 64, 96)
    results = _run(VideoSegmenter(backend, StreamConfig(keyframe_interval=1)), frames)
    with torch.inference_mode():
        for frame, result in zip(frames, results):
            tensor = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255
            expected = reference_labels(backend.model.keyframe_forward(tensor)[0]).numpy()
            np.testing.assert_array_equal(result.labels, expected)


def test_same_frames_and_weights_give_same_labels(backend):
    frames = _frames(7)
    first = _run(VideoSegmenter(backend, StreamConfig(keyframe_interval=3)), frames)
    second = _run(VideoSegmenter(backend, StreamConfig(keyframe_interval=3)), frames)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a.labels, b.labels)


def test_propagated_frames_differ_from_keyframe_labels(backend):
    """A non-keyframe really runs propagation: its labels are not a copy of the keyframe's."""
    frames = _frames(3)
    results = _run(VideoSegmenter(backend, StreamConfig(keyframe_interval=3)), frames)
    per_frame = _run(VideoSegmenter(backend, StreamConfig(keyframe_interval=1)), frames)
    assert not np.array_equal(results[2].labels, per_frame[2].labels)


@pytest.mark.parametrize("size", [(37, 53), (1, 1), (33, 31), (64, 96)])
def test_any_size_works_and_state_stays_at_one_eighth(backend, size):
    seg = VideoSegmenter(backend, StreamConfig(keyframe_interval=2, confidence=True))
    for result in _run(seg, _frames(3, *size)):
        assert result.labels.shape == size and result.labels.dtype == np.uint8
        assert result.labels.max() < 19
        assert result.confidence.shape == size
        assert 0.0 <= result.confidence.min() and result.confidence.max() <= 1.0
    padded = [-(-s // 32) * 32 for s in size]
    assert tuple(seg._state.prev_logits_1_8.shape[-2:]) == (padded[0] // 8, padded[1] // 8)
    assert tuple(seg._state.prev_frame_1_8.shape[-2:]) == (padded[0] // 8, padded[1] // 8)


def test_one_eighth_output_resolution(backend):
    seg = VideoSegmenter(backend, StreamConfig(output_resolution="1/8", confidence=True))
    result = seg.step(_frames(1, 70, 100)[0], 0)
    assert result.labels.shape == (9, 13) and result.confidence.shape == (9, 13)


def test_timings_cover_every_stage(backend):
    result = VideoSegmenter(backend).step(_frames(1)[0], 0)
    assert set(result.timings_ms) == {"preprocess", "network", "output", "total"}
    parts = sum(result.timings_ms[k] for k in ("preprocess", "network", "output"))
    assert 0 < parts <= result.timings_ms["total"] + 1e-6


@pytest.mark.parametrize("frame, message", [
    (np.zeros((8, 8, 3), np.float32), "uint8"),
    (np.zeros((8, 8, 4), np.uint8), r"\(H, W, 3\)"),
    (np.zeros((8, 8), np.uint8), r"\(H, W, 3\)"),
    (np.zeros((0, 8, 3), np.uint8), "empty"),
    ([[0, 0, 0]], "numpy array"),
])
def test_bad_frames_raise_input_error(backend, frame, message):
    with pytest.raises(InputError, match=message):
        VideoSegmenter(backend).step(frame, 0)


def test_nan_weights_raise_and_reset_the_stream():
    torch.manual_seed(0)
    model = build_gsvnet(GSVNetConfig().model)
    with torch.no_grad():
        next(model.keyframe_net.parameters()).fill_(float("nan"))
    seg = VideoSegmenter(TorchBackend(model, resolve_device("cpu")))
    with pytest.raises(NonFiniteOutputError, match="NaN or infinite"):
        seg.step(_frames(1)[0], 0)
    assert seg._state is None


def test_keyframe_interval_setter_validates(backend):
    seg = VideoSegmenter(backend)
    seg.keyframe_interval = 4
    assert seg.keyframe_interval == 4
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="integer >= 1"):
            seg.keyframe_interval = bad


def test_from_config_builds_a_working_stream():
    cfg = GSVNetConfig()
    cfg = dataclasses.replace(cfg, runtime=dataclasses.replace(cfg.runtime, device="cpu",
                                                               backend="torch"))
    seg = VideoSegmenter.from_config(cfg)
    assert seg.step(_frames(1)[0], 0).labels.shape == (64, 96)
    assert seg.backend_name == "torch" and seg.model_name == "swiftnet_r18"


@pytest.mark.parametrize("size", [(512, 1024), (100, 70), (37, 45)])
def test_host_preprocessing_equals_torch_area_average(size):
    """The OpenCV host path gives the padded frame and its exact 8x8 block means (downsample_1_8)."""
    from gsvnet_ros.models.preprocess import downsample_1_8

    frame = np.random.default_rng(sum(size)).integers(0, 256, (*size, 3), dtype=np.uint8)
    full, small = VideoSegmenter.prepare(frame, torch.device("cpu"), full=True)
    none, small_only = VideoSegmenter.prepare(frame, torch.device("cpu"), full=False)
    tensor = torch.from_numpy(frame).permute(2, 0, 1)[None].float()
    pad_h, pad_w = -size[0] % 32, -size[1] % 32
    tensor = torch.nn.functional.pad(tensor, (0, pad_w, 0, pad_h), mode="replicate")
    assert none is None
    assert full.shape == tensor.shape and torch.equal(full, tensor / 255.0)
    expected = downsample_1_8(tensor) / 255.0
    assert small.shape == expected.shape == small_only.shape
    torch.testing.assert_close(small, expected, atol=1e-6, rtol=0)
    assert torch.equal(small, small_only)

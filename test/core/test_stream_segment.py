"""VideoSegmenter.segment(): the pipelined stream gives exactly step()'s results, in order, and stops at a
bad frame after every result before it."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from gsvnet_ros.backends.torch_backend import TorchBackend
from gsvnet_ros.config import ModelConfig, StreamConfig
from gsvnet_ros.models.gsvnet import build_gsvnet
from gsvnet_ros.stream import InputError, VideoSegmenter

MS = 1_000_000


def _moving(n: int, height: int = 64, width: int = 96, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (height + 2 * n, width + 2 * n, 3), dtype=np.uint8)
    return [np.ascontiguousarray(base[i:i + height, 2 * i:2 * i + width]) for i in range(n)]


def _backend(flow: str) -> TorchBackend:
    torch.manual_seed(0)
    return TorchBackend(build_gsvnet(ModelConfig(flow=flow)), torch.device("cpu"))


@pytest.fixture(scope="module", params=["dis", "learned"])
def backend(request):
    return _backend(request.param)


def _same(a, b) -> None:
    assert (a.frame_index, a.stamp_ns, a.is_keyframe, a.keyframe_reason, a.frames_since_keyframe) == \
        (b.frame_index, b.stamp_ns, b.is_keyframe, b.keyframe_reason, b.frames_since_keyframe)
    assert np.array_equal(a.labels, b.labels) and a.change == b.change
    assert (a.confidence is None) == (b.confidence is None)
    if a.confidence is not None:
        assert np.array_equal(a.confidence, b.confidence)
    assert set(a.timings_ms) == {"preprocess", "network", "output", "total"}


@pytest.mark.parametrize("stream", [
    StreamConfig(keyframe_interval=3),
    StreamConfig(keyframe_interval=4, output_resolution="1/8", confidence=True),
    StreamConfig(keyframe_policy="adaptive", keyframe_budget=3.0),
])
def test_segment_equals_step_frame_by_frame(backend, stream):
    frames = _moving(10) + _moving(3, 96, 128, seed=1) + _moving(2)  # two size changes
    items = [(frame, i * 50 * MS) for i, frame in enumerate(frames)]
    stamps = [stamp for _, stamp in items]
    items[12] = (items[12][0], stamps[11] + 600 * MS)  # a gap
    stepped = VideoSegmenter(backend, stream)
    expected = [stepped.step(frame, stamp) for frame, stamp in items]
    assert any(not r.is_keyframe for r in expected) and sum(r.is_keyframe for r in expected) >= 3
    got = list(VideoSegmenter(backend, stream).segment(items))
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        _same(a, b)


def test_segment_uses_what_the_backend_computes_ahead_on_the_host_thread(monkeypatch):
    backend = _backend("dis")
    threads = []
    ahead = backend.ahead

    def recording(frame_1_8, prev_frame_1_8, **kwargs):
        threads.append(threading.current_thread().name)
        return ahead(frame_1_8, prev_frame_1_8, **kwargs)

    monkeypatch.setattr(backend, "ahead", recording)
    results = list(VideoSegmenter(backend, StreamConfig(keyframe_interval=5)).segment(
        (frame, i * 50 * MS) for i, frame in enumerate(_moving(7))))
    assert [r.is_keyframe for r in results] == [True, False, False, False, False, True, False]
    # once per non-keyframe, all on the host thread; never again inside propagate, and never for frame 5,
    # which the count makes a keyframe (its full frame is made on the host thread instead)
    assert len(threads) == 5 and all(name.startswith("gsvnet-host") for name in threads)


@pytest.mark.parametrize("stream, keyframes", [
    (StreamConfig(keyframe_interval=1), [True] * 6),  # the per-frame net: no ahead work at all
    (StreamConfig(keyframe_interval=2), [True, False] * 3),
    (StreamConfig(keyframe_policy="adaptive", max_keyframe_interval=2, change_threshold=1000.0,
                  scene_change_correlation=-1.0), [True, False] * 3),
])
def test_segment_forecasts_keyframes_and_computes_no_ahead_work_for_them(monkeypatch, stream, keyframes):
    backend = _backend("dis")
    calls = []
    ahead = backend.ahead
    monkeypatch.setattr(backend, "ahead", lambda *args, **kwargs: calls.append(1) or ahead(*args, **kwargs))
    results = list(VideoSegmenter(backend, stream).segment((f, i * 50 * MS) for i, f in enumerate(_moving(6))))
    assert [r.is_keyframe for r in results] == keyframes
    assert len(calls) == keyframes.count(False)


def test_a_wrong_forecast_changes_no_result(monkeypatch):
    """The forecast only decides where work is done: forced wrong both ways, results equal step()'s."""
    backend = _backend("dis")
    items = [(frame, i * 50 * MS) for i, frame in enumerate(_moving(9))]
    stepped = VideoSegmenter(backend, StreamConfig(keyframe_interval=3))
    expected = [stepped.step(*item) for item in items]
    for forecast in (True, False):
        segmenter = VideoSegmenter(backend, StreamConfig(keyframe_interval=3))
        monkeypatch.setattr(segmenter, "_keyframe_due_after", lambda prepared, value=forecast: value)
        for a, b in zip(segmenter.segment(items), expected, strict=True):
            _same(a, b)


def test_segment_raises_at_a_bad_frame_after_the_results_before_it(backend):
    frames = _moving(5)
    items = [(frame, i * 50 * MS) for i, frame in enumerate(frames)]
    items[3] = (frames[3].astype(np.float32), items[3][1])
    segmenter = VideoSegmenter(backend, StreamConfig(keyframe_interval=2))
    got = []
    with pytest.raises(InputError, match="frame must be uint8 RGB, got dtype float32"):
        for result in segmenter.segment(items):
            got.append(result)
    assert [r.frame_index for r in got] == [0, 1, 2]
    # the stream stays usable: the next frame continues from frame 2's state
    assert segmenter.step(frames[4], 4 * 50 * MS).frame_index == 3


def test_segment_of_nothing_yields_nothing_and_a_generator_closed_early_stops_its_thread(backend):
    segmenter = VideoSegmenter(backend, StreamConfig(keyframe_interval=2))
    assert list(segmenter.segment([])) == []
    before = {t.name for t in threading.enumerate()}
    stream = segmenter.segment((frame, i * 50 * MS) for i, frame in enumerate(_moving(6)))
    assert next(stream).frame_index == 0
    stream.close()
    assert not ({t.name for t in threading.enumerate() if t.name.startswith("gsvnet-host")} - before)


@pytest.mark.parametrize("segment_threads", [0, 1])
def test_segment_on_the_onnxruntime_backend_equals_step(tmp_path, segment_threads):
    pytest.importorskip("onnxruntime")
    from gsvnet_ros.backends import onnxruntime_backend
    from gsvnet_ros.backends.onnxruntime_backend import OnnxRuntimeBackend

    torch.manual_seed(0)
    backend = OnnxRuntimeBackend(build_gsvnet(ModelConfig(flow="dis")), threads=2, cache_dir=str(tmp_path),
                                 segment_threads=segment_threads)
    made = []  # (part, intra-op threads) of every session the backend makes
    real_options = onnxruntime_backend.session_options
    items = [(frame, i * 50 * MS) for i, frame in enumerate(_moving(7))]
    stream = StreamConfig(keyframe_interval=4)
    stepped = VideoSegmenter(backend, stream)
    expected = [stepped.step(*item) for item in items]
    made_by_step = backend.session_count
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(onnxruntime_backend, "session_options",
                      lambda threads=0, **kw: made.append(threads) or real_options(threads, **kw))
        for a, b in zip(VideoSegmenter(backend, stream).segment(items), expected, strict=True):
            _same(a, b)
    assert backend.threads("propagation") == backend.threads("intra") == 2  # outside segment() again
    # step() ran phi beside DIS on one thread (and G on two); segment() runs phi alone (no overlap) and G
    # on segment_threads (0: the configured 2), so it makes the sessions step() did not
    assert made == ([1] if segment_threads else [2])  # G on one thread / phi on its configured two
    assert backend.session_count == made_by_step + 1


def test_phi_beside_dis_runs_on_one_thread_fewer_and_gives_the_same_logits(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    from gsvnet_ros.backends.onnxruntime_backend import OnnxRuntimeBackend

    torch.manual_seed(0)
    model = build_gsvnet(ModelConfig(flow="dis"))
    frames = [torch.rand(1, 3, 8, 12) for _ in range(2)]
    results = {}
    for threads in (3, 1):
        backend = OnnxRuntimeBackend(model, threads=threads, cache_dir=str(tmp_path))
        assert backend._beside_dis_threads() == max(1, threads - 1)
        overlapped, alone = backend.ahead(*frames), backend.ahead(*frames, overlap=False)
        assert torch.equal(overlapped.intra_1_8, alone.intra_1_8) and torch.equal(overlapped.flow_1_8, alone.flow_1_8)
        assert {key for key in backend._sessions[(64, 96)]} == {("intra", threads), ("intra", max(1, threads - 1))}
        results[threads] = overlapped.intra_1_8
    assert torch.equal(results[3], results[1])
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    assert OnnxRuntimeBackend(model, threads=0, cache_dir=str(tmp_path))._beside_dis_threads() == 3


def test_pipelined_runs_the_non_keyframe_graphs_on_segment_threads_until_the_last_block_ends():
    pytest.importorskip("onnxruntime")
    from gsvnet_ros.backends.onnxruntime_backend import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend(build_gsvnet(ModelConfig(flow="dis")), threads=2, segment_threads=1)
    parts = ("keyframe", "intra", "propagation", "flow")
    assert [backend.threads(p) for p in parts] == [2, 2, 2, 2]
    with backend.pipelined():
        with backend.pipelined():  # two segment() streams on one backend
            assert [backend.threads(p) for p in parts] == [2, 1, 1, 1]
        assert backend.threads("propagation") == 1
    assert [backend.threads(p) for p in parts] == [2, 2, 2, 2]
    with pytest.raises(RuntimeError), backend.pipelined():
        raise RuntimeError("a failing stream")
    assert backend.threads("intra") == 2


def test_segment_yields_the_results_before_a_frame_whose_network_fails(backend, monkeypatch):
    frames = _moving(4)
    segmenter = VideoSegmenter(backend, StreamConfig(keyframe_interval=10))
    propagate = backend.propagate
    calls = []

    def broken(*args, **kwargs):
        calls.append(1)
        out = propagate(*args, **kwargs)
        return out * float("nan") if len(calls) == 2 else out

    monkeypatch.setattr(backend, "propagate", broken)
    got = []
    with pytest.raises(ValueError, match="NaN or infinite logits"):
        for result in segmenter.segment((frame, i * 50 * MS) for i, frame in enumerate(frames)):
            got.append(result)
    assert [r.frame_index for r in got] == [0, 1]
    assert segmenter.step(frames[3], 3 * 50 * MS).keyframe_reason == "reset"


class _DuckBackend:
    """A backend with only the older duck-typed contract: keyframe and propagate, no ahead or glue_threads."""

    def __init__(self, inner):
        self.inner = inner
        self.name, self.model_name = inner.name, inner.model_name
        self.num_classes, self.device = inner.num_classes, inner.device

    def keyframe(self, frame):
        return self.inner.keyframe(frame)

    def propagate(self, *args):
        return self.inner.propagate(*args)


def test_step_and_segment_accept_a_duck_typed_backend(backend):
    items = [(frame, i * 50 * MS) for i, frame in enumerate(_moving(5))]
    stream = StreamConfig(keyframe_interval=3)
    stepped = VideoSegmenter(_DuckBackend(backend), stream)
    expected = [stepped.step(*item) for item in items]
    for a, b in zip(VideoSegmenter(_DuckBackend(backend), stream).segment(items), expected, strict=True):
        _same(a, b)


def test_segment_reads_each_frame_array_only_until_its_result_is_yielded(backend):
    """The documented contract: frames kept intact until their result comes back give step()'s results,
    and the generator asks for the next frame only one frame ahead."""
    frames = _moving(6)
    stream = StreamConfig(keyframe_interval=2)
    stepped = VideoSegmenter(backend, stream)
    expected = [stepped.step(frame, i * 50 * MS) for i, frame in enumerate(frames)]
    pulled = []

    def source():
        for i, frame in enumerate(frames):
            pulled.append(i)
            yield frame.copy(), i * 50 * MS

    got = []
    for result in VideoSegmenter(backend, stream).segment(source()):
        assert len(pulled) <= result.frame_index + 3  # bounded lookahead: memory stays bounded
        got.append(result)
    for a, b in zip(got, expected, strict=True):
        _same(a, b)

"""The adaptive keyframe policy: thresholds from budgets, cut detection, the stream's decisions, the
whole-sequence evaluation, and a bag of two drives back to back."""
import json

import cv2
import numpy as np
import pytest
import torch

from gsvnet_ros.backends.torch_backend import TorchBackend
from gsvnet_ros.config import ConfigError, ModelConfig, StreamConfig, load_config
from gsvnet_ros.data.synth.render import build_scene, render_frame
from gsvnet_ros.evaluation.sequences import LabelledSequence, score_sequences
from gsvnet_ros.keyframe_policy import (ADAPTIVE_CALIBRATION, calibrate_thresholds, correlation,
                                        scene_cuts, simulate_keyframes, threshold_for_budget)
from gsvnet_ros.models.gsvnet import build_gsvnet
from gsvnet_ros.stream import VideoSegmenter

PERIOD = 58_823_529


def _drive(seed, frames, size=(128, 64)):
    scene = build_scene(seed, size[0], size[1], frames)
    return [render_frame(scene, i, False).image for i in range(frames)]


@pytest.fixture(scope="module")
def backend():
    torch.manual_seed(0)
    return TorchBackend(build_gsvnet(ModelConfig()).eval(), torch.device("cpu"))


def _stream(backend, **stream):
    return VideoSegmenter(backend, StreamConfig(keyframe_policy="adaptive", **stream))


def test_threshold_for_budget_interpolates_and_holds_the_ends():
    table = ((1.0, 0.0), (3.0, 10.0), (5.0, 20.0))
    assert threshold_for_budget(2.0, table) == pytest.approx(5.0)
    assert threshold_for_budget(4.5, table) == pytest.approx(17.5)
    assert threshold_for_budget(0.5, table) == 0.0 and threshold_for_budget(9.0, table) == 20.0
    budgets = [b for b, _ in ADAPTIVE_CALIBRATION]
    thresholds = [t for _, t in ADAPTIVE_CALIBRATION]
    assert budgets == sorted(budgets) and thresholds == sorted(thresholds)  # more budget, more change


def test_correlation_ignores_brightness_and_handles_flat_frames():
    rng = np.random.default_rng(0)
    a = torch.from_numpy(rng.uniform(0, 255, (16, 32)).astype(np.float32))
    assert correlation(a, 0.5 * a + 40) == pytest.approx(1.0, abs=1e-5)
    assert abs(correlation(a, torch.from_numpy(rng.uniform(0, 255, (16, 32)).astype(np.float32)))) < 0.3
    flat = torch.full((16, 32), 7.0)
    assert correlation(flat, flat + 3) == 1.0 and correlation(flat, a) == 0.0


def test_simulation_and_calibration_meet_the_budget_on_moving_frames():
    rng = np.random.default_rng(1)
    noise = rng.uniform(0, 255, (40, 80)).astype(np.float32)
    base = cv2.GaussianBlur(noise, (0, 0), 3)  # smooth: shifted copies correlate
    base = (base - base.min()) * (255 / (base.max() - base.min()))
    # pans of different speeds: the change since the keyframe grows faster in the fast ones
    sequences = [np.stack([np.roll(base, speed * t, axis=1) for t in range(30)]) for speed in (1, 2, 3)]
    cuts = [scene_cuts(g, 0.4) for g in sequences]
    rows = calibrate_thresholds(sequences, [2.0, 4.0], 10, 0.4)
    for budget, threshold, reached in rows:
        # the smallest threshold reaching the budget (intervals are whole frames: a step function)
        below = 90 / sum(sum(simulate_keyframes(g, threshold - 0.02, 10, c)) for g, c in zip(sequences, cuts))
        assert below < budget <= reached < budget + 0.5 and threshold > 0
    assert not any(any(c) for c in cuts)
    still = np.repeat(base[None], 25, 0)
    keys = simulate_keyframes(still, 5.0, 10, scene_cuts(still, 0.4))
    assert [t for t, k in enumerate(keys) if k] == [0, 10, 20]  # nothing changes: max interval only
    fast = simulate_keyframes(sequences[2], rows[1][1], 10, cuts[2])
    slow = simulate_keyframes(sequences[0], rows[1][1], 10, cuts[0])
    assert sum(fast) > sum(slow)


def test_stream_takes_a_keyframe_at_a_cut_and_says_why(backend):
    first, second = _drive(3, 8), _drive(11, 4)
    segmenter = _stream(backend, keyframe_budget=8.0)
    results = [segmenter.step(frame, i * PERIOD) for i, frame in enumerate(first + second)]
    cut = results[len(first)]
    assert cut.is_keyframe and cut.keyframe_reason in ("scene_change", "change")
    assert cut.change is not None and cut.change.correlation_with_previous < 0.6
    assert results[0].keyframe_reason == "first" and results[0].change is None
    for result in results[1:]:
        if not result.is_keyframe:
            assert result.keyframe_reason == "" and result.change.since_keyframe < segmenter.change_threshold
    assert results[len(first) + 1].frames_since_keyframe == 1


def test_still_frames_get_keyframes_only_at_the_maximum_interval(backend):
    frame = _drive(5, 1)[0]
    segmenter = _stream(backend, max_keyframe_interval=4)
    reasons = [segmenter.step(frame, i * PERIOD).keyframe_reason for i in range(9)]
    assert reasons == ["first", "", "", "", "max_interval", "", "", "", "max_interval"]


def test_budget_and_policy_change_at_run_time(backend):
    frames = _drive(7, 6)
    segmenter = VideoSegmenter(backend, StreamConfig(keyframe_interval=100))
    assert segmenter.step(frames[0], 0).keyframe_reason == "first"
    assert not segmenter.step(frames[1], PERIOD).is_keyframe
    segmenter.keyframe_policy = "adaptive"  # no keyframe to compare with yet: take one
    assert segmenter.step(frames[2], 2 * PERIOD).keyframe_reason == "policy_change"
    low = segmenter.change_threshold
    segmenter.keyframe_budget = 8
    assert segmenter.change_threshold > low
    with pytest.raises(ValueError, match="keyframe_budget"):
        segmenter.keyframe_budget = 0.5
    with pytest.raises(ValueError, match="keyframe_policy"):
        segmenter.keyframe_policy = "sometimes"
    fixed = VideoSegmenter(backend, StreamConfig(keyframe_policy="adaptive", change_threshold=0.0))
    assert all(fixed.step(f, i * PERIOD).is_keyframe for i, f in enumerate(frames))  # threshold 0


def test_policy_residual_is_zero_for_a_pan_and_dis_runs_once_per_frame(monkeypatch):
    """Carried by the flow, a panned keyframe explains the pan (only the uncovered edge is new); a
    model.flow: dis stream and the policy share one DIS call per propagated frame."""
    from gsvnet_ros.keyframe_policy import carry, grey_flow
    from gsvnet_ros.models import dis_flow

    rng = np.random.default_rng(3)
    base = cv2.GaussianBlur(rng.uniform(0, 255, (64, 160)).astype(np.float32), (0, 0), 2)
    base = (base - base.min()) * (255 / (base.max() - base.min()))
    a, b = base[:, 16:144], base[:, 14:142]  # b(x) = a(x - 2): the camera panned left by 2 px
    carried = carry(a, grey_flow(b, a))
    inner = np.abs(carried - b)[8:-8, 8:-8].mean()
    assert inner < 0.25 * np.abs(a - b)[8:-8, 8:-8].mean()

    calls = []
    real = dis_flow._dis

    def counting(*args):
        dis = real(*args)
        return type("Counted", (), {"calc": lambda self, *x: calls.append(1) or dis.calc(*x)})()
    monkeypatch.setattr(dis_flow, "_dis", counting)
    torch.manual_seed(0)
    model = build_gsvnet(ModelConfig(flow="dis")).eval()
    segmenter = VideoSegmenter(TorchBackend(model, torch.device("cpu")),
                               StreamConfig(keyframe_policy="adaptive", change_threshold=255.0))
    frames = _drive(4, 4)
    results = [segmenter.step(f, i * PERIOD) for i, f in enumerate(frames)]
    assert [r.is_keyframe for r in results] == [True, False, False, False]
    assert len(calls) == 3  # not 6


@pytest.mark.parametrize("stream, message", [
    ({"keyframe_policy": "often"}, "stream.keyframe_policy"),
    ({"keyframe_budget": 0}, "stream.keyframe_budget"),
    ({"keyframe_budget": True}, "stream.keyframe_budget"),
    ({"max_keyframe_interval": 0}, "stream.max_keyframe_interval"),
    ({"scene_change_correlation": 2}, "stream.scene_change_correlation"),
    ({"change_threshold": -1}, "stream.change_threshold"),
])
def test_bad_policy_settings_name_the_key(stream, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, {"stream": stream})


def test_whole_sequence_scores_count_every_frame(backend):
    frames = _drive(2, 6)
    labels = [np.zeros(frames[0].shape[:2], np.uint8) for _ in frames]
    sequences = [LabelledSequence("a", frames, labels), LabelledSequence("b", frames[:4], labels[:4])]
    segmenter = VideoSegmenter(backend, StreamConfig(keyframe_interval=2))
    scores = score_sequences(segmenter, sequences)
    assert scores["frames"] == 10 and scores["keyframes"] == 3 + 2
    assert scores["mean_keyframe_interval"] == pytest.approx(2.0)
    assert 0 <= scores["worst5_miou"] <= scores["miou"] + 1e-9 <= 1 and scores["fps"] > 0
    assert scores["keyframe_reasons"] == {"reset": 2, "interval": 3}
    with pytest.raises(ValueError, match="frame_stride"):
        score_sequences(segmenter, sequences, frame_stride=2)
    segmenter.keyframe_interval = 1
    assert score_sequences(segmenter, sequences, frame_stride=3)["frames"] == 2 + 2


def test_a_bag_of_two_drives_back_to_back_gets_a_keyframe_at_the_cut(tmp_path):
    from gsvnet_ros.bag import BagReader, ConvertOptions, convert
    from gsvnet_ros.bag.segment import SegmentOptions, build_segmenter, segment_bag
    from gsvnet_ros.cli.synth import main as synth_main

    data = tmp_path / "data"
    assert synth_main(["generate", "--root", str(data), "--split", "val", "--sequences", "2", "--frames",
                       "6", "--size", "256x128", "--workers", "1", "--quiet"]) == 0
    convert(data, tmp_path / "drives", ConvertOptions(progress=False))
    # the converter leaves a stamp gap between sequences (a "gap" keyframe): a large max_gap_s
    # leaves the cut to the policy alone
    build = lambda: build_segmenter("config/swiftnet_r18.yaml", backend="torch",  # noqa: E731
                                    overrides={"stream": {"keyframe_policy": "adaptive",
                                                          "keyframe_budget": 8, "max_gap_s": 3600}})
    segment_bag(tmp_path / "drives", tmp_path / "out", build, SegmentOptions(progress=False))
    with BagReader(tmp_path / "out") as reader:
        infos = [m for m in reader.messages([t.name for t in reader.topics if t.name.endswith("/info")])]
    reasons = [m.msg.keyframe_reason for m in sorted(infos, key=lambda m: m.timestamp)]
    assert len(reasons) == 12 and reasons[0]
    assert reasons[6] in ("scene_change", "change"), json.dumps(reasons)

"""The adaptive keyframe policy: thresholds from budgets, cut detection, the stream's decisions, the
whole-sequence evaluation, and a bag of two drives back to back."""
import json

import numpy as np
import pytest
import torch

from gsvnet_ros.backends.torch_backend import TorchBackend
from gsvnet_ros.config import ConfigError, ModelConfig, StreamConfig, load_config
from gsvnet_ros.data.synth.render import build_scene, render_frame
from gsvnet_ros.evaluation.sequences import LabelledSequence, score_sequences
from gsvnet_ros.keyframe_policy import (ADAPTIVE_CALIBRATION, UNCALIBRATED, calibration_for, colour_histogram,
                                        effective_distance, histogram_correlation, scene_cuts,
                                        threshold_for_budget)
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
    for name, calibration in ADAPTIVE_CALIBRATION.items():
        budgets = [b for b, _ in calibration.thresholds]
        thresholds = [t for _, t in calibration.thresholds]
        assert len(budgets) > 3 and budgets == sorted(budgets), name
        assert thresholds == sorted(thresholds), name  # more budget, later keyframes
        assert calibration.k > 0, name  # confidence lost to propagation brings the keyframe closer
    assert calibration_for("a_net_of_ours") is UNCALIBRATED
    assert threshold_for_budget(6.5, UNCALIBRATED.thresholds) == pytest.approx(6.5)  # a fixed interval
    assert effective_distance(3, 0.9, 0.8, 10.0) == pytest.approx(4.0)


def test_histogram_correlation_tells_frames_of_one_drive_from_another():
    def small(frame):
        return VideoSegmenter.prepare(frame, torch.device("cpu"), full=False)[1]

    first, second = _drive(3, 3), _drive(11, 1)
    same = histogram_correlation(colour_histogram(small(first[1])), colour_histogram(small(first[2])))
    darker = (first[1].astype(np.float32) * 0.8).astype(np.uint8)
    dimmed = histogram_correlation(colour_histogram(small(first[1])), colour_histogram(small(darker)))
    cut = histogram_correlation(colour_histogram(small(first[2])), colour_histogram(small(second[0])))
    default = StreamConfig().scene_change_correlation
    assert same > default and dimmed > default > cut
    assert scene_cuts([colour_histogram(small(f)) for f in first + second], default) == [False] * 3 + [True]
    flat = np.zeros((16, 8), np.float32)
    assert histogram_correlation(flat, flat) == 1.0 and histogram_correlation(flat, flat + 1) == 0.0


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
            assert result.keyframe_reason == ""
            assert result.change.effective_distance < segmenter.change_threshold
    assert results[len(first) + 1].frames_since_keyframe == 1


def test_without_a_reached_threshold_keyframes_come_at_the_maximum_interval(backend):
    frame = _drive(5, 1)[0]
    segmenter = _stream(backend, max_keyframe_interval=4, change_threshold=100.0)
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


def test_effective_distance_is_frames_plus_k_times_the_confidence_lost(backend):
    frames = _drive(6, 6)
    segmenter = _stream(backend, change_threshold=100.0)
    k = calibration_for(backend.model_name).k
    results, tops = [], []
    for i, frame in enumerate(frames):
        results.append(segmenter.step(frame, i * PERIOD))
        logits = segmenter.last_logits_1_8[0]
        tops.append(float(logits.softmax(0).amax(0).mean()))
    assert results[0].is_keyframe and not any(r.is_keyframe for r in results[1:])
    for d, result in enumerate(results[1:], start=1):
        drop = tops[0] - tops[d - 1]
        assert result.change.confidence_drop == pytest.approx(drop, abs=1e-5)
        assert result.change.effective_distance == pytest.approx(d + k * drop, abs=1e-4)


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

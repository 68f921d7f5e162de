"""The keyframe table scores a schedule exactly as running the stream does, and its best schedule in
hindsight is the best one."""
import itertools

import numpy as np
import pytest
import torch

from gsvnet_ros.backends.torch_backend import TorchBackend
from gsvnet_ros.config import ModelConfig, StreamConfig
from gsvnet_ros.data.synth.render import build_scene, render_frame
from gsvnet_ros.evaluation.keyframe_table import (KeyframeTable, best_schedule, calibrate_policy, carry,
                                                  compare_policies, effective_distances, fixed_schedule,
                                                  grey_flow,
                                                  measure_table, schedule_scores, score_schedules,
                                                  threshold_for_interval, threshold_schedule)
from gsvnet_ros.evaluation.sequences import LabelledSequence, score_sequences
from gsvnet_ros.keyframe_policy import calibration_for
from gsvnet_ros.metrics import mean_iou
from gsvnet_ros.models.gsvnet import build_gsvnet
from gsvnet_ros.stream import VideoSegmenter

FRAMES, HORIZON = 6, 4


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    backend = TorchBackend(build_gsvnet(ModelConfig()).eval(), torch.device("cpu"))
    rng = np.random.default_rng(0)
    sequences = []
    for seed in (3, 4):
        scene = build_scene(seed, 128, 64, FRAMES)
        frames = [render_frame(scene, i, False).image for i in range(FRAMES)]
        labels = [rng.integers(0, 19, (64, 128)).astype(np.uint8) for _ in frames]
        sequences.append(LabelledSequence(f"s{seed}", frames, labels))
    table = measure_table(VideoSegmenter(backend), sequences, HORIZON, 0.4)
    return backend, sequences, table


@pytest.mark.parametrize("interval", [1, 2, 3])
def test_a_fixed_schedule_scores_as_running_the_stream_does(setup, interval):
    backend, sequences, table = setup
    streamed = score_sequences(VideoSegmenter(backend, StreamConfig(keyframe_interval=interval)), sequences)
    from_table = schedule_scores(table, [fixed_schedule(FRAMES, interval)] * len(sequences))
    assert from_table["miou"] == pytest.approx(streamed["miou"], abs=1e-12)
    assert from_table["worst5_miou"] == pytest.approx(streamed["worst5_miou"], abs=1e-12)
    assert from_table["mean_keyframe_interval"] == pytest.approx(streamed["mean_keyframe_interval"])


def test_signals_are_zero_on_the_keyframe_itself_and_nan_past_the_end(setup):
    _, _, table = setup
    assert np.all(table.signals["residual"][:, :, 0] == 0)
    assert np.all(table.signals["disagreement"][:, :, 0] == 0)
    assert np.all(np.isnan(table.signals["residual"][:, FRAMES - 1, 1:]))
    assert np.isfinite(table.signals["disagreement"][:, 0, 1:]).all()


def _total(table: KeyframeTable, n: int, keys: np.ndarray, cost: float) -> float:
    total, last = -cost * keys.sum(), 0
    for j in range(FRAMES):
        last = j if keys[j] else last
        value = mean_iou(table.confusion[n, last, j - last])
        total += 0.0 if np.isnan(value) else value
    return total


@pytest.mark.parametrize("cost", [0.0, 0.05, 0.5])
def test_the_best_schedule_beats_every_other_schedule_within_the_horizon(setup, cost):
    _, _, table = setup
    for n in range(len(table.names)):
        best = best_schedule(table, n, cost)
        assert best[0]
        for tail in itertools.product([False, True], repeat=FRAMES - 1):
            keys = np.asarray((True,) + tail)
            gaps = np.diff(np.flatnonzero(np.append(keys, True)))
            if gaps.max() <= HORIZON:
                assert _total(table, n, best, cost) >= _total(table, n, keys, cost) - 1e-12


def test_a_rule_schedule_keeps_frame_zero_cuts_and_the_horizon(setup):
    _, _, table = setup
    never = threshold_schedule(table, 0, lambda n, i, d: False)
    assert never.tolist() == [True, False, False, False, True, False]
    table.cuts[0, 2] = True
    try:
        assert threshold_schedule(table, 0, lambda n, i, d: False).tolist() == [True, False, True, False,
                                                                                False, False]
        assert threshold_schedule(table, 0, lambda n, i, d: d >= 2).tolist() == [True, False, True, False,
                                                                                 True, False]
    finally:
        table.cuts[0, 2] = False


def test_a_threshold_on_the_distance_alone_is_the_fixed_interval(setup):
    _, _, table = setup
    distance = np.broadcast_to(np.arange(HORIZON, dtype=np.float64), table.confusion.shape[:3])
    threshold = threshold_for_interval(table, distance, 2.0, 0.0, 10.0)
    assert 1.0 < threshold <= 2.0
    schedules = score_schedules(table, distance, threshold)
    assert all(keys.tolist() == fixed_schedule(FRAMES, 2).tolist() for keys in schedules)


def test_policy_comparison_names_every_policy_and_the_bound_is_at_the_fixed_rate(setup):
    _, _, table = setup
    result = compare_policies(table, table, [2], [2.0])
    policies = [r["policy"] for r in result["rows"]]
    assert policies == ["fixed", "DIS residual (release 12)", "effective distance", "hindsight best (bound)"]
    fixed, bound = result["rows"][0], result["rows"][-1]
    assert bound["mean_keyframe_interval"] >= fixed["mean_keyframe_interval"] - 1e-9
    assert np.isfinite(result["k"])


def test_the_stream_takes_the_keyframes_the_table_predicts_for_the_adaptive_policy(setup):
    backend, sequences, table = setup
    calibration, reached = calibrate_policy(table, [2.0])
    assert reached[0] >= 2.0 and calibration.thresholds[-1][0] == 2.0
    threshold = calibration.thresholds[-1][1]
    k = calibration_for(backend.model_name).k
    distance = effective_distances(table, k)
    segmenter = VideoSegmenter(backend, StreamConfig(keyframe_policy="adaptive", change_threshold=threshold,
                                                     max_keyframe_interval=HORIZON,
                                                     scene_change_correlation=0.4))
    for n, sequence in enumerate(sequences):
        segmenter.reset()
        streamed = [segmenter.step(f, i * 58_823_529).is_keyframe for i, f in enumerate(sequence.frames)]
        predicted = threshold_schedule(table, n, lambda n, i, d: bool(distance[n, i, d] >= threshold))
        assert streamed == predicted.tolist()


def test_the_residual_signal_carries_a_pan_away():
    """Carried by the flow, a panned keyframe explains the pan (only the uncovered edge is new)."""
    import cv2

    rng = np.random.default_rng(3)
    base = cv2.GaussianBlur(rng.uniform(0, 255, (64, 160)).astype(np.float32), (0, 0), 2)
    base = (base - base.min()) * (255 / (base.max() - base.min()))
    a, b = base[:, 16:144], base[:, 14:142]  # b(x) = a(x - 2): the camera panned left by 2 px
    carried = carry(a, grey_flow(b, a))
    assert np.abs(carried - b)[8:-8, 8:-8].mean() < 0.25 * np.abs(a - b)[8:-8, 8:-8].mean()

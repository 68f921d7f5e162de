"""Pure-Python pieces of the ROS layer: rolling statistics, rates and the latest-frame slot."""
import threading

import numpy as np
import pytest

from gsvnet_ros.ros.slot import Frame, LatestFrameSlot
from gsvnet_ros.ros.stats import NodeStats, RateMeter, RollingWindow, diagnostic_values


def test_rolling_window_percentiles_match_numpy_over_the_last_values():
    window = RollingWindow(5)
    for v in [100.0, 1.0, 2.0, 3.0, 4.0, 50.0]:  # 100 falls out of the window
        window.add(v)
    values = [1.0, 2.0, 3.0, 4.0, 50.0]
    s = window.summary()
    assert s["p50"] == pytest.approx(np.percentile(values, 50))
    assert s["p95"] == pytest.approx(np.percentile(values, 95)) and s["max"] == 50.0
    assert RollingWindow(3).summary() == {"p50": None, "p95": None, "max": None}


def test_rate_meter_counts_events_in_the_horizon():
    rate = RateMeter(100, horizon_s=5.0)
    for i in range(11):
        rate.tick(now=10.0 + 0.1 * i)
    assert rate.rate_hz(now=11.0) == pytest.approx(10.0)
    assert rate.rate_hz(now=100.0) == 0.0  # nothing recent


def test_slot_keeps_only_the_newest_frame_and_reports_drops():
    slot = LatestFrameSlot()
    frames = [Frame(np.zeros((1, 1, 3), np.uint8), None, "rgb8", float(i)) for i in range(3)]
    assert slot.put(frames[0]) is False
    assert slot.put(frames[1]) is True and slot.put(frames[2]) is True
    assert slot.take() is frames[2] and slot.take() is None
    assert slot.wait(0.01) is False


def test_slot_wakes_a_waiting_worker():
    slot = LatestFrameSlot()
    woke = []
    worker = threading.Thread(target=lambda: woke.append(slot.wait(5.0)))
    worker.start()
    slot.put(Frame(np.zeros((1, 1, 3), np.uint8), None, "rgb8", 0.0))
    worker.join(5.0)
    assert woke == [True]


def test_diagnostic_values_have_stable_keys():
    stats = NodeStats(10)
    stats.on_received()
    stats.on_processed(is_keyframe=True, latency_ms=5.0, model_ms=4.0, stamp_age_ms=7.0)
    stats.on_decode_error("step")
    values = diagnostic_values(stats.snapshot())
    for frame_type in ("keyframe", "non_keyframe"):
        for stat in ("p50", "p95", "max"):
            assert f"latency_{frame_type}_{stat}_ms" in values
    assert values["keyframe_ratio"] == 1.0 and values["decode_errors_step"] == 1
    assert values["latency_non_keyframe_p50_ms"] is None

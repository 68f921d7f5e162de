"""/diagnostics: rate, stamp age, latency p50/p95/max per frame type, keyframe ratio, drops."""
import pytest

from node_harness import NS, image_msg, scene

PERIOD = 50_000_000


def _values(array_msg):
    (status,) = array_msg.status
    return status, {kv.key: kv.value for kv in status.values}


def _latest(h):
    count = len(h.received["diagnostics"])
    h.node.publish_diagnostics()
    h.spin(until=lambda: len(h.received["diagnostics"]) > count)
    return _values(h.received["diagnostics"][-1])


def test_diagnostics_carry_rates_ages_latencies_ratio_and_counters(harness):
    h = harness(subscribe=(), overrides={"keyframe_interval": 5})
    now = h.node.get_clock().now().nanoseconds
    for i in range(10):
        h.step(image_msg(scene(shift=i), stamp_ns=now - 40_000_000 + i * 1000))
    status, values = _latest(h)
    assert status.name == "segmentation_node: segmentation" and status.hardware_id == "cpu"
    assert status.level == b"\x00", status.message
    for frame_type in ("keyframe", "non_keyframe"):
        stats = [float(values[f"latency_{frame_type}_{s}_ms"]) for s in ("p50", "p95", "max")]
        assert 0.0 < stats[0] <= stats[1] <= stats[2]
        assert float(values[f"model_{frame_type}_p50_ms"]) > 0.0
    assert float(values["keyframe_ratio"]) == pytest.approx(0.2)
    assert values["keyframes"] == "2" and values["frames_processed"] == "10"
    assert float(values["input_rate_hz"]) > 0.0 and float(values["output_rate_hz"]) > 0.0
    assert 30.0 < float(values["stamp_age_p50_ms"]) <= float(values["stamp_age_max_ms"])
    assert values["frames_dropped"] == "0" and values["decode_errors"] == "0"
    assert values["model"] == "swiftnet_r18" and values["backend"] == "torch"


def test_dropped_frames_and_decode_errors_are_counted(harness):
    h = harness(subscribe=())
    for i in range(4):  # four frames before the worker runs: three are replaced unprocessed
        h.send(image_msg(scene(shift=i), stamp_ns=NS + i * PERIOD))
    bad = image_msg(scene(), stamp_ns=NS)
    bad.encoding = "yuv422"
    h.send(bad)
    assert h.node.process_pending() and not h.node.process_pending()
    status, values = _latest(h)
    assert values["frames_received"] == "5" and values["frames_dropped"] == "3"
    assert values["frames_processed"] == "1"
    assert values["decode_errors"] == "1" and values["decode_errors_encoding"] == "1"
    assert status.level == b"\x01" and "undecodable" in status.message


def test_no_input_is_a_warning(harness):
    h = harness(subscribe=())
    status, values = _latest(h)
    assert status.level == b"\x01" and "no images on /image" in status.message
    assert values["latency_keyframe_p50_ms"] == "n/a"


def test_diagnostics_are_published_by_the_timer(harness):
    h = harness(subscribe=(), overrides={"diagnostics_period_s": 0.1})
    h.spin(0.45)
    assert len(h.received["diagnostics"]) >= 2

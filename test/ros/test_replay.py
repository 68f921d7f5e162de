"""Rosbag playback over DDS, as replay.launch.py runs it: a player with /clock, the node as a
process on sim time (use_sim_time), the evaluator scoring it against the bag's labels."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image

import bag_player
from node_harness import spin_until
from node_process import STARTUP_S, start_node, stop

REPO = Path(__file__).resolve().parents[2]
FRAMES, SIZE, INTERVAL = 12, "1024x512", 3
SLOW_RATE = 0.05  # 1.2 s a frame: far more than a CPU keyframe step at 1024x512
WARMUP = 2  # frames the node segments before the bag (camera "warmup"): first calls are slow
TOPICS = ("/camera/image_raw", "/camera/labels")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A 12-frame synthetic drive at 1024x512 as a rosbag2, and `gsvnet-bag segment`'s report."""
    from gsvnet_ros.bag import ConvertOptions, convert

    root = tmp_path_factory.mktemp("replay")
    bin_dir = Path(sys.executable).parent
    subprocess.run([str(bin_dir / "gsvnet-synth"), "generate", "--root", str(root / "data"),
                    "--split", "val", "--sequences", "1", "--frames", str(FRAMES), "--size",
                    SIZE, "--workers", "1", "--quiet"], check=True, timeout=300)
    bag = root / "bag"
    convert(root / "data", bag, ConvertOptions(progress=False))
    subprocess.run([str(bin_dir / "gsvnet-bag"), "segment", str(bag), str(root / "offline"),
                    "--config", str(REPO / "config/swiftnet_r18.yaml"), "--backend", "torch",
                    "--device", "cpu", "--keyframe-interval", str(INTERVAL), "--report",
                    str(root / "offline.json"), "--quiet"], check=True, timeout=600,
                   capture_output=True)
    return bag, json.loads((root / "offline.json").read_text())


def _warm_up(executor, bag, image_pub, clock, masks):
    """WARMUP frames of the bag's size on another camera, one at a time, before the bag's time:
    the model's first calls (allocations, kernel selection) take seconds on a CPU."""
    with bag_player.BagReader(bag) as reader:
        first = next(reader.messages([TOPICS[0]]))
    deadline = time.monotonic() + 120.0
    for i in range(WARMUP):
        msg = bag_player.to_rclpy_image(first.msg)
        msg.header.frame_id = "warmup"
        stamp = first.timestamp - (WARMUP - i) * 10**9
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 10**9)
        # Resent until segmented: the very first best-effort frame can be lost while the node
        # has not yet discovered this publisher.
        while not spin_until(executor, lambda: len(masks) > i, 3.0):
            assert time.monotonic() < deadline, "no warm-up mask within 120 s"
            clock.publish(bag_player.clock_msg(stamp))
            image_pub.publish(msg)
    spin_until(executor, lambda: False, 0.5)  # a resent frame's second mask, if any
    return len(masks)


def _replay(tmp_path, probe, bag, rate):
    """Play `bag` at `rate` into a freshly started node; (evaluator report, last diagnostics)."""
    from diagnostic_msgs.msg import DiagnosticArray

    from gsvnet_ros.ros.evaluator import SegmentationEvaluator

    node, executor = probe
    process = start_node(tmp_path, {"use_sim_time": "true", "device": "cpu",
                                    "keyframe_interval": str(INTERVAL)},
                         {"config_file": str(REPO / "config/swiftnet_r18.yaml"),
                          "backend": "torch", "diagnostics_period_s": 0.1})
    evaluator = None
    try:
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)  # as recorded
        publishers = {topic: node.create_publisher(Image, topic, reliable) for topic in TOPICS}
        clock = node.create_publisher(Clock, "/clock", 10)
        diagnostics, masks = [], []
        node.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 10)
        node.create_subscription(Image, "/segmentation_node/class_mask", masks.append, 10)
        assert spin_until(executor, lambda: process.poll() is None
                          and publishers[TOPICS[0]].get_subscription_count() > 0
                          and clock.get_subscription_count() > 0, STARTUP_S), \
            "the node did not come up"
        warm_frames = _warm_up(executor, bag, publishers[TOPICS[0]], clock, masks)
        # The evaluator comes after the warm-up: it scores the bag's frames only.
        evaluator = SegmentationEvaluator(context=node.context, parameter_overrides=[
            Parameter("report_path", value=str(tmp_path / "live.json")),
            Parameter("idle_timeout_s", value=3600.0)])
        executor.add_node(evaluator)
        assert spin_until(executor, lambda: publishers[TOPICS[1]].get_subscription_count() > 0)
        sent, last_ns = bag_player.play(bag, publishers, clock, rate=rate,
                                        between=lambda: executor.spin_once(timeout_sec=0))
        assert sent == 2 * FRAMES
        # Keep the bag's clock running after the last message (as `ros2 bag play` does until it
        # exits) so that the node's sim-time diagnostics timer fires, until the node has handled
        # every frame it received and the evaluator has every mask.
        start = time.monotonic()

        def settled():
            clock.publish(bag_player.clock_msg(last_ns + int((time.monotonic() - start) * 1e9)))
            if not diagnostics:
                return False
            stamp = diagnostics[-1].header.stamp
            if stamp.sec * 10**9 + stamp.nanosec < last_ns + 500_000_000:
                return False  # computed before the last frame had half a second to arrive
            values = {kv.key: kv.value for kv in diagnostics[-1].status[0].values}
            received, processed = int(values["frames_received"]), int(values["frames_processed"])
            return evaluator.masks_received == processed - warm_frames and processed + int(
                values["frames_dropped"]) + int(values["segmentation_errors"]) == received

        assert spin_until(executor, settled, 60.0), "the node did not finish the bag"
        values = {kv.key: kv.value for kv in diagnostics[-1].status[0].values}
        for key in ("frames_received", "frames_processed"):  # the bag's frames only
            values[key] = str(int(values[key]) - warm_frames)
        return evaluator.build_report(), values
    finally:
        if evaluator is not None:
            executor.remove_node(evaluator)
            evaluator.destroy_node()
        code, out = stop(process, signal.SIGINT)
        assert code == 0 and "Traceback" not in out, out


def test_slow_replay_scores_what_gsvnet_bag_segment_scores(tmp_path, probe, recorded):
    bag, offline = recorded
    live, diag = _replay(tmp_path, probe, bag, rate=SLOW_RATE)
    assert diag["frames_received"] == str(FRAMES) and diag["frames_dropped"] == "0", diag
    assert live["frames"] == FRAMES and live["keyframes"] == offline["keyframes"]
    got, want = live["accuracy"], offline["accuracy"]
    assert got["labelled_frames"] == want["labelled_frames"] == FRAMES
    assert got["unmatched_labels"] == 0
    assert want["average_miou"] > 0.05  # real weights on a real drive: the figure means something
    assert got["average_miou"] == pytest.approx(want["average_miou"], abs=1e-4)  # 0.01 points
    for distance, value in want["per_distance_miou"].items():
        assert got["per_distance_miou"][str(distance)] == pytest.approx(value, abs=1e-4)
    # Stamp age on the bag's clock: the bag is years away from the wall clock, so a node that
    # measured age on wall time would report ages of years, not of one model step.
    assert 0.0 <= float(diag["stamp_age_p50_ms"]) <= float(diag["stamp_age_max_ms"]) < 1000.0


def test_full_rate_replay_reports_the_frames_the_node_dropped(tmp_path, probe, recorded):
    bag, _ = recorded
    live, diag = _replay(tmp_path, probe, bag, rate=1.0)
    received, processed = int(diag["frames_received"]), int(diag["frames_processed"])
    dropped = int(diag["frames_dropped"])
    assert dropped > 0, diag  # a CPU model slower than 17 Hz keyframes
    assert processed + dropped == received
    assert live["frames"] == processed
    assert live["accuracy"]["labelled_frames"] == processed
    assert live["accuracy"]["unmatched_labels"] == FRAMES - processed  # labels without a mask

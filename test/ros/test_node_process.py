"""The installed `segmentation_node` as a process, started with the --ros-args segment.launch.py
builds, fed full-size frames over DDS, stopped with SIGINT and with SIGTERM."""
from __future__ import annotations

import signal

import numpy as np
import pytest
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from node_harness import NS, raw_image, spin_until
from node_process import STARTUP_S, start_node, stop

WIDTH, HEIGHT = 1024, 512


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_launched_process_segments_full_size_frames_and_stops_cleanly(tmp_path, probe, sig):
    from gsvnet_ros_msgs.msg import SegmentationInfo

    node, executor = probe
    process = start_node(tmp_path, {"image_topic": "/cam/front/image_raw", "device": "cpu",
                                    "keyframe_interval": "3", "warmup_size": f"{WIDTH}x{HEIGHT}"},
                         {"backend": "torch", "keyframe_net": "swiftnet_r18"})
    try:
        masks, infos = [], []
        node.create_subscription(Image, "/segmentation_node/class_mask", masks.append, 10)
        node.create_subscription(SegmentationInfo, "/segmentation_node/info", infos.append, 10)
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        pub = node.create_publisher(Image, "/cam/front/image_raw", reliable)
        assert spin_until(executor, lambda: pub.get_subscription_count() > 0
                          and process.poll() is None, STARTUP_S), "the node did not subscribe"
        rgb = np.random.default_rng(0).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
        # Our side matching the node's reader does not mean its reader has matched us yet: a
        # best-effort reader silently misses what comes before. Warm up on another camera (its own
        # stream, so the schedule of "front" is untouched) until one comes back.
        warmup = raw_image(rgb, "rgb8", stamp_ns=NS, frame_id="warmup")
        for _ in range(int(STARTUP_S)):
            pub.publish(warmup)
            if spin_until(executor, lambda: masks, 1.0):
                break
        assert masks, "no output for the warm-up frames"

        def front(messages):
            return [m for m in messages if m.header.frame_id == "front"]

        sent = []
        for i in range(4):  # one at a time: the node keeps the newest frame, never a queue
            stamp = NS * 100 + i * 66_000_000
            pub.publish(raw_image(rgb, "rgb8", stamp_ns=stamp, frame_id="front"))
            sent.append(stamp)
            assert spin_until(executor, lambda: len(front(masks)) > i and len(front(infos)) > i,
                              60.0), f"no output for frame {i}"
        masks, infos = front(masks), front(infos)
        assert [m.header.stamp.sec * NS + m.header.stamp.nanosec for m in masks] == sent
        assert {(m.height, m.width, m.encoding, m.header.frame_id) for m in masks} == {
            (HEIGHT, WIDTH, "mono8", "front")}
        assert [i.is_keyframe for i in infos] == [True, False, False, True]
        assert infos[0].backend == "torch" and infos[0].model_name == "swiftnet_r18"
    finally:
        code, out = stop(process, sig)
    assert code == 0, out
    assert "Traceback" not in out, out
    assert "stopped: worker thread joined" in out, out
    assert f"warm-up: a {WIDTH}x{HEIGHT} keyframe and non-keyframe in" in out, out  # the launch argument
    # the launch file's default config_file: the shipped model, not random weights
    assert "weights: keyframe_swiftnet_r18.pt + propagation_swiftnet_r18" in out, out
    assert "randomly initialised" not in out, out

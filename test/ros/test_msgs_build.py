"""The test-only interface packages of ros_msgs_build (gsvnet_ros_msgs, and vision_msgs' LabelInfo
and VisionClass), built with colcon from the registry's Jazzy wheels, carry the same RIHS01 type
hashes as the real types, and travel over real DDS (Fast DDS, on localhost).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

import ros_msgs_build
from gsvnet_ros.bag.typestore import SEGMENTATION_INFO, build_typestore

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache" / "ros_msgs"

LABEL_INFO = "vision_msgs/msg/LabelInfo"
VISION_CLASS = "vision_msgs/msg/VisionClass"

# From the C code that rosidl (Jazzy) generated for ros-perception/vision_msgs 4.1.1 itself
# (label_info__description.c: its own hash and VisionClass's), so the check does not rest on the
# copy of the definitions in ros_msgs_build alone.
UPSTREAM_RIHS01 = {
    LABEL_INFO: "RIHS01_3d37df4015cdf660cc851c51897f2acd957e1ca6205ba0a99aebffb9406b0783",
    VISION_CLASS: "RIHS01_1e4a11f0fed50b5623cb8ff26ca0e37952a48a9c074d16f804b44e9164c2037a",
}


@pytest.fixture(scope="module")
def prefix() -> Path:
    prefix = ros_msgs_build.ensure_built(CACHE)
    ros_msgs_build.activate(prefix)
    return prefix


def built_hash(prefix: Path, type_name: str) -> str:
    """The RIHS01 hash rosidl wrote into share/<pkg>/msg/<Name>.json when it built the type."""
    package, _, name = type_name.split("/")
    description = json.loads((prefix / "share" / package / "msg" / f"{name}.json").read_text())
    hashes = {h["type_name"]: h["hash_string"] for h in description["type_hashes"]}
    return hashes[type_name]


def rosbags_vision_store():
    """rosbags' Jazzy store with vision_msgs' two types registered from their .msg text."""
    store = get_typestore(Stores.ROS2_JAZZY)
    types = {}
    for file_name, text in ros_msgs_build.VISION_MSGS.items():
        types.update(get_types_from_msg(text, f"vision_msgs/msg/{Path(file_name).stem}"))
    store.register(types)
    return store


def test_second_call_is_cached_and_instant(prefix):
    started = time.monotonic()
    assert ros_msgs_build.ensure_built(CACHE) == prefix
    assert time.monotonic() - started < 1.0
    assert ros_msgs_build.python_dir(prefix) is not None


@pytest.mark.parametrize("type_name", [LABEL_INFO, VISION_CLASS])
def test_vision_msgs_hashes_match_upstream(prefix, type_name):
    expected = UPSTREAM_RIHS01[type_name]
    assert rosbags_vision_store().hash_rihs01(type_name) == expected
    assert built_hash(prefix, type_name) == expected


def test_segmentation_info_hash_matches_the_bag_typestore(prefix):
    # build_typestore() is what gsvnet_ros writes bags with (Humble's std_msgs/Header hashes the
    # same as Jazzy's); a Jazzy store with msg/SegmentationInfo.msg registered must agree too.
    jazzy = get_typestore(Stores.ROS2_JAZZY)
    msg_text = (REPO / "msg" / "SegmentationInfo.msg").read_text(encoding="utf-8")
    jazzy.register(get_types_from_msg(msg_text, SEGMENTATION_INFO))
    expected = jazzy.hash_rihs01(SEGMENTATION_INFO)
    assert build_typestore().hash_rihs01(SEGMENTATION_INFO) == expected
    assert built_hash(prefix, SEGMENTATION_INFO) == expected


def _spin_until(executor, done, timeout_s: float, publish) -> None:
    deadline = time.monotonic() + timeout_s
    while not done() and time.monotonic() < deadline:
        publish()
        executor.spin_once(timeout_sec=0.05)


def test_messages_travel_over_dds_between_two_nodes(prefix):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import DurabilityPolicy, QoSProfile

    from gsvnet_ros_msgs.msg import SegmentationInfo
    from vision_msgs.msg import LabelInfo, VisionClass

    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        talker = rclpy.create_node("msgs_build_talker", context=context)
        listener = rclpy.create_node("msgs_build_listener", context=context)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(talker)
        executor.add_node(listener)
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        got_info: list = []
        got_labels: list = []
        listener.create_subscription(SegmentationInfo, "msgs_build/info", got_info.append, 10)
        listener.create_subscription(LabelInfo, "msgs_build/label_info", got_labels.append, latched)
        info_pub = talker.create_publisher(SegmentationInfo, "msgs_build/info", 10)
        label_pub = talker.create_publisher(LabelInfo, "msgs_build/label_info", latched)

        info = SegmentationInfo(frame_index=41, is_keyframe=True, keyframe_reason="first",
                                model_name="swiftnet_r18", backend="torch", total_ms=12.5)
        info.header.frame_id = "camera"
        info.header.stamp.sec = 7
        labels = LabelInfo(threshold=0.5, class_map=[VisionClass(class_id=0, class_name="road"),
                                                     VisionClass(class_id=255,
                                                                 class_name="unlabeled")])
        label_pub.publish(labels)
        _spin_until(executor, lambda: got_info and got_labels, 10.0,
                    lambda: info_pub.publish(info))

        assert got_labels, "LabelInfo did not arrive over DDS within 10 s"
        assert got_info, "SegmentationInfo did not arrive over DDS within 10 s"
        received = got_info[0]
        assert (received.frame_index, received.is_keyframe, received.keyframe_reason) == (
            41, True, "first")
        assert (received.model_name, received.backend) == ("swiftnet_r18", "torch")
        assert received.total_ms == pytest.approx(12.5)
        assert (received.header.frame_id, received.header.stamp.sec) == ("camera", 7)
        assert [(c.class_id, c.class_name) for c in got_labels[0].class_map] == [
            (0, "road"), (255, "unlabeled")]
        assert got_labels[0].threshold == pytest.approx(0.5)

        # The hash DDS peers see (from the compiled typesupport) is upstream's too.
        seen = {str(e.topic_type_hash)
                for topic in ("msgs_build/info", "msgs_build/label_info")
                for e in listener.get_publishers_info_by_topic(topic)}
        assert seen == {UPSTREAM_RIHS01[LABEL_INFO], built_hash(prefix, SEGMENTATION_INFO)}
        executor.shutdown()
        talker.destroy_node()
        listener.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)


_CHILD = """
import rclpy
from gsvnet_ros_msgs.msg import SegmentationInfo
from vision_msgs.msg import LabelInfo
context = rclpy.Context()
rclpy.init(context=context)
node = rclpy.create_node("msgs_build_child", context=context)
node.create_publisher(SegmentationInfo, "msgs_build/child_info", 1)  # loads the typesupport
node.create_publisher(LabelInfo, "msgs_build/child_labels", 1)
print("ok")
node.destroy_node()
rclpy.try_shutdown(context=context)
"""


def test_a_child_process_gets_the_packages_from_environment_for(prefix):
    env = {**os.environ, **ros_msgs_build.environment_for(prefix)}
    result = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]

"""The node with its worker thread on a MultiThreadedExecutor of its own rclpy Context."""
import time

import numpy as np
import pytest
import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from std_srvs.srv import Trigger


@pytest.fixture
def context():
    ctx = rclpy.context.Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.try_shutdown(context=ctx)


def _image(stamp_sec):
    rgb = np.random.default_rng(stamp_sec).integers(0, 256, (64, 128, 3), dtype=np.uint8)
    msg = Image(header=Header(frame_id="cam"), height=64, width=128, encoding="rgb8",
                is_bigendian=0, step=3 * 128)
    msg.header.stamp.sec = stamp_sec
    msg.data.frombytes(rgb.tobytes())
    return msg


def test_node_segments_real_messages_and_answers_reset(context, backend):
    from gsvnet_ros.ros.node import SegmentationNode

    node = SegmentationNode(backend=backend, context=context)
    probe = rclpy.create_node("probe", context=context)
    masks = []
    probe.create_subscription(Image, "/segmentation_node/class_mask", masks.append, 10)
    pub = probe.create_publisher(Image, "/image", qos_profile_sensor_data)
    client = probe.create_client(Trigger, "/segmentation_node/reset")
    executor = MultiThreadedExecutor(num_threads=3, context=context)
    executor.add_node(node)
    executor.add_node(probe)
    try:
        deadline = time.monotonic() + 30.0
        stamp = 1
        while not masks and time.monotonic() < deadline:
            pub.publish(_image(stamp))
            stamp += 1
            executor.spin_once(timeout_sec=0.1)
        assert masks, "no class mask within 30 s"
        mask = masks[0]
        assert mask.encoding == "mono8" and (mask.height, mask.width) == (64, 128)
        assert mask.header.frame_id == "cam" and 1 <= mask.header.stamp.sec < stamp
        assert client.wait_for_service(timeout_sec=10.0)
        future = client.call_async(Trigger.Request())
        executor.spin_until_future_complete(future, timeout_sec=10.0)
        assert future.result().success
    finally:
        executor.shutdown()
        node.destroy_node()
        probe.destroy_node()

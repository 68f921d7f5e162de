"""launch_testing (colcon test with ROS 2 sourced): the installed node starts, segments, exits 0."""
import time
import unittest

import numpy as np
import pytest

pytestmark = pytest.mark.ros
pytest.importorskip("launch_testing")

import launch  # noqa: E402
import launch_ros.actions  # noqa: E402
import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
import rclpy  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402


@pytest.mark.launch_test
def generate_test_description():
    seg_node = launch_ros.actions.Node(
        package="gsvnet_ros", executable="segmentation_node", name="segmentation_node",
        parameters=[{"keyframe_interval": 2, "device": "cpu"}], output="screen")
    return launch.LaunchDescription([seg_node, launch_testing.actions.ReadyToTest()]), {
        "seg_node": seg_node}


class TestSegmentationNode(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rclpy.init()
        cls.node = rclpy.create_node("launch_tester")

    @classmethod
    def tearDownClass(cls):
        cls.node.destroy_node()
        rclpy.shutdown()

    def test_class_mask_copies_the_header(self, proc_output):
        masks = []
        self.node.create_subscription(Image, "/segmentation_node/class_mask", masks.append, 10)
        pub = self.node.create_publisher(Image, "/image", qos_profile_sensor_data)
        rgb = np.random.default_rng(0).integers(0, 256, (64, 128, 3), dtype=np.uint8)
        deadline = time.monotonic() + 60.0  # first start imports torch and builds the model
        while not masks and time.monotonic() < deadline:
            msg = Image(height=64, width=128, encoding="rgb8", step=384)
            msg.header.frame_id = "cam"
            msg.header.stamp.sec = 42
            msg.data.frombytes(rgb.tobytes())
            pub.publish(msg)
            rclpy.spin_once(self.node, timeout_sec=0.2)
        self.assertTrue(masks, "no ~/class_mask within 60 s")
        self.assertEqual((masks[0].header.frame_id, masks[0].header.stamp.sec), ("cam", 42))
        self.assertEqual(masks[0].encoding, "mono8")


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_exit_code_is_0_after_sigint(self, proc_info, seg_node):
        launch_testing.asserts.assertExitCodes(proc_info, process=seg_node)

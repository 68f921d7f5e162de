"""A colcon workspace with gsvnet_ros, gsvnet_ros_msgs and vision_msgs, as the README builds it:
the installed `segmentation_node` segments frames from a publisher, and without our pip
dependencies it says in one line what is missing (slow: a full colcon build)."""
from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

import ros_msgs_build
from node_harness import NS, raw_image, spin_until
from node_process import STARTUP_S, stop

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    ws = tmp_path_factory.mktemp("ros2_ws")
    install = ros_msgs_build.build_workspace(ws, (REPO,))
    return install


def _installed_node(install: Path) -> Path:
    script = install / "lib" / "gsvnet_ros" / "segmentation_node"
    assert script.is_file(), sorted(p.name for p in (install / "lib").iterdir())
    return script


def _environment(install: Path) -> dict:
    from conftest import msgs_environment

    env = msgs_environment()
    env.update(ros_msgs_build.environment_for(install))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def test_installed_node_segments_what_a_publisher_sends(workspace, probe, tmp_path):
    node, executor = probe
    share = workspace / "share" / "gsvnet_ros"
    for part in ("package.xml", "launch/segment.launch.py", "config/gsvnet.yaml",
                 "msg/SegmentationInfo.msg"):
        assert (share / part).is_file(), part
    process = subprocess.Popen(
        [str(_installed_node(workspace)), "--ros-args", "--params-file",
         str(share / "config" / "gsvnet.yaml"), "-p", "backend:=torch", "-p", "device:=cpu",
         "-p", "input_reliability:=reliable", "-r", "image:=/cam/image"],
        env=_environment(workspace), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        masks = []
        node.create_subscription(Image, "/segmentation_node/class_mask", masks.append, 10)
        pub = node.create_publisher(Image, "/cam/image",
                                    QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
        assert spin_until(executor, lambda: pub.get_subscription_count() > 0
                          and process.poll() is None, STARTUP_S)
        rgb = np.random.default_rng(1).integers(0, 256, (64, 128, 3), dtype=np.uint8)
        pub.publish(raw_image(rgb, "rgb8", stamp_ns=7 * NS, frame_id="cam"))
        assert spin_until(executor, lambda: masks, 60.0)
        assert (masks[0].height, masks[0].width, masks[0].header.stamp.sec) == (64, 128, 7)
    finally:
        code, out = stop(process, signal.SIGINT)
    assert code == 0 and "Traceback" not in out, out
    assert "~/info is off" not in out and "~/label_info is off" not in out, out


def test_installed_node_without_opencv_says_what_to_install(workspace, tmp_path):
    blocker = tmp_path / "no_cv2"
    blocker.mkdir()
    # A ROS machine without the pip dependencies: cv2 cannot be imported.
    (blocker / "sitecustomize.py").write_text("import sys\nsys.modules['cv2'] = None\n")
    env = _environment(workspace)
    env["PYTHONPATH"] = f"{blocker}:{env['PYTHONPATH']}"
    proc = subprocess.run([str(_installed_node(workspace))], env=env, capture_output=True,
                          text=True, timeout=120)
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, lines
    assert "'opencv-python-headless' is not installed" in lines[0]
    assert "python3 -m pip install 'opencv-python-headless'" in lines[0]

"""Drive SegmentationNode through the stand-in: build images, send them, collect every output."""
from __future__ import annotations

import collections
import time
from typing import Any, Optional

import cv2
import numpy as np

import fake_ros

NS = 1_000_000_000
OUTPUTS = ("class_mask", "color_mask", "overlay", "info", "label_info")


def scene(height: int = 64, width: int = 128, shift: int = 0, seed: int = 0) -> np.ndarray:
    """A smooth synthetic RGB frame (a moving gradient with a few blocks), deterministic."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    frame = np.stack([(xx + shift) % 256, yy * 255 // max(1, height - 1),
                      ((xx + yy + 2 * shift) // 2) % 256], -1).astype(np.uint8)
    for _ in range(3):
        y, x = rng.integers(0, height - 8), rng.integers(0, width - 8)
        frame[y:y + 8, (x + shift) % (width - 8):(x + shift) % (width - 8) + 8] = rng.integers(
            0, 255, 3, dtype=np.uint8)
    return frame


def image_msg(rgb: np.ndarray, *, encoding: str = "rgb8", frame_id: str = "cam",
              stamp_ns: int = 0, pad: int = 0) -> Any:
    """A stand-in sensor_msgs/Image holding `rgb` in `encoding`, rows padded by `pad` bytes."""
    Image = fake_ros.message_class("sensor_msgs/msg/Image")
    Header = fake_ros.message_class("std_msgs/msg/Header")
    Time = fake_ros.message_class("builtin_interfaces/msg/Time")
    convert = {"rgb8": None, "bgr8": cv2.COLOR_RGB2BGR, "rgba8": cv2.COLOR_RGB2RGBA,
               "bgra8": cv2.COLOR_RGB2BGRA, "mono8": cv2.COLOR_RGB2GRAY}[encoding]
    pixels = rgb if convert is None else cv2.cvtColor(rgb, convert)
    pixels = pixels.reshape(rgb.shape[0], -1)
    if pad:
        pixels = np.concatenate([pixels, np.full((pixels.shape[0], pad), 7, np.uint8)], 1)
    sec, nsec = divmod(stamp_ns, NS)
    return Image(header=Header(stamp=Time(sec=sec, nanosec=nsec), frame_id=frame_id),
                 height=rgb.shape[0], width=rgb.shape[1], encoding=encoding, is_bigendian=0,
                 step=pixels.shape[1], data=pixels.tobytes())


def stamp_of(msg: Any) -> int:
    return msg.header.stamp.sec * NS + msg.header.stamp.nanosec


def mono8(msg: Any) -> np.ndarray:
    return np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.step)[:, :msg.width]


class Harness:
    """The node under test, a probe node subscribed to its outputs, and one executor."""

    def __init__(self, env: Any, backend: Any, *, overrides: Optional[dict] = None,
                 subscribe: tuple[str, ...] = OUTPUTS, start_worker: bool = False,
                 multi_threaded: bool = False, image_reliable: bool = False, **node_kwargs: Any):
        from gsvnet_ros.ros.node import SegmentationNode

        rclpy = env.rclpy
        Parameter = env.mods["rclpy.parameter"].Parameter
        qos = env.mods["rclpy.qos"]
        params = [Parameter(k, value=v) for k, v in (overrides or {}).items()]
        self.node = SegmentationNode(backend=backend, start_worker=start_worker,
                                     parameter_overrides=params, **node_kwargs)
        self.probe = rclpy.create_node("probe")
        self.received: dict[str, list] = collections.defaultdict(list)
        fqn = self.node.get_fully_qualified_name()
        types = {"class_mask": "sensor_msgs/msg/Image", "color_mask": "sensor_msgs/msg/Image",
                 "overlay": "sensor_msgs/msg/Image", "info": "gsvnet_ros_msgs/msg/SegmentationInfo",
                 "label_info": "vision_msgs/msg/LabelInfo"}
        latched = qos.QoSProfile(depth=1, durability=qos.DurabilityPolicy.TRANSIENT_LOCAL)
        for name in subscribe:
            if name == "info" and "gsvnet_ros_msgs.msg" not in env.mods:
                continue
            self.probe.create_subscription(
                fake_ros.message_class(types[name]), f"{fqn}/{name}",
                self.received[name].append, latched if name == "label_info" else 10)
        DiagnosticArray = fake_ros.message_class("diagnostic_msgs/msg/DiagnosticArray")
        self.probe.create_subscription(DiagnosticArray, "/diagnostics",
                                       self.received["diagnostics"].append, 10)
        Image = fake_ros.message_class("sensor_msgs/msg/Image")
        image_qos = 10 if image_reliable else qos.qos_profile_sensor_data
        self.image_pub = self.probe.create_publisher(Image, "/image", image_qos)
        executors = env.mods["rclpy.executors"]
        self.executor = (executors.MultiThreadedExecutor(3) if multi_threaded
                         else executors.SingleThreadedExecutor())
        self.executor.add_node(self.node)
        self.executor.add_node(self.probe)

    def spin(self, seconds: float = 0.0, until: Any = None) -> None:
        """Run ready callbacks; for `seconds`, or until `until()` is true (max 10 s)."""
        deadline = time.monotonic() + (seconds if until is None else 10.0)
        while True:
            self.executor.spin_once(timeout_sec=0.01)
            if until is not None and until():
                return
            if time.monotonic() > deadline:
                return

    def drain(self) -> None:
        """Run callbacks until nothing is ready."""
        for _ in range(1000):
            if not self.executor._ready():
                return
            self.executor.spin_once(timeout_sec=0)

    def send(self, msg: Any) -> None:
        """Publish an image to the node and run its subscription callback."""
        self.image_pub.publish(msg)
        self.drain()

    def step(self, msg: Any) -> bool:
        """Send, segment synchronously, deliver the outputs to the probe."""
        self.send(msg)
        processed = self.node.process_pending()
        self.drain()
        return processed

    def call(self, service: str, request: Any) -> Any:
        return fake_ros.call_service(self.executor, f"{self.node.get_fully_qualified_name()}/"
                                                    f"{service}", request)

    def close(self) -> None:
        self.node.destroy_node()
        self.probe.destroy_node()
        if hasattr(self.executor, "_pool"):
            self.executor.shutdown()

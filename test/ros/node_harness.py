"""Drive SegmentationNode over real rclpy and DDS: build images, send them, collect every output."""
from __future__ import annotations

import collections
import time
from typing import Any, Callable, Optional

import cv2
import numpy as np
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import Header

NS = 1_000_000_000
OUTPUTS = ("class_mask", "color_mask", "overlay", "info", "label_info")
TIMEOUT_S = 20.0  # generous: a loaded 2-core CI machine; a healthy run waits milliseconds


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


def header(stamp_ns: int = 0, frame_id: str = "cam") -> Header:
    msg = Header(frame_id=frame_id)
    msg.stamp.sec, msg.stamp.nanosec = divmod(int(stamp_ns), NS)
    return msg


def raw_image(pixels: np.ndarray, encoding: str, *, stamp_ns: int = 0,
              frame_id: str = "cam") -> Image:
    """sensor_msgs/Image holding `pixels` (H, W[, C] uint8) as they are, without padding."""
    rows = np.ascontiguousarray(pixels).reshape(pixels.shape[0], -1)
    msg = Image(header=header(stamp_ns, frame_id), height=pixels.shape[0],
                width=pixels.shape[1], encoding=encoding, is_bigendian=0, step=rows.shape[1])
    msg.data.frombytes(rows.tobytes())
    return msg


def image_msg(rgb: np.ndarray, *, encoding: str = "rgb8", frame_id: str = "cam",
              stamp_ns: int = 0, pad: int = 0) -> Image:
    """A sensor_msgs/Image holding `rgb` in `encoding`, rows padded by `pad` bytes."""
    convert = {"rgb8": None, "bgr8": cv2.COLOR_RGB2BGR, "rgba8": cv2.COLOR_RGB2RGBA,
               "bgra8": cv2.COLOR_RGB2BGRA, "mono8": cv2.COLOR_RGB2GRAY}[encoding]
    pixels = rgb if convert is None else cv2.cvtColor(rgb, convert)
    pixels = pixels.reshape(rgb.shape[0], -1)
    if pad:
        pixels = np.concatenate([pixels, np.full((pixels.shape[0], pad), 7, np.uint8)], 1)
    msg = raw_image(pixels, encoding, stamp_ns=stamp_ns, frame_id=frame_id)
    msg.width = rgb.shape[1]
    return msg


def stamp_of(msg: Any) -> int:
    return msg.header.stamp.sec * NS + msg.header.stamp.nanosec


def mono8(msg: Any) -> np.ndarray:
    return np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)[:, :msg.width]


def spin_until(executor: Any, condition: Callable[[], bool], timeout: float = TIMEOUT_S) -> bool:
    """Run callbacks until `condition()` holds (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        executor.spin_once(timeout_sec=0.005)
    return True


class Harness:
    """The node under test, a probe node subscribed to its outputs, and one executor."""

    def __init__(self, env: Any, backend: Any, *, overrides: Optional[dict] = None,
                 subscribe: tuple[str, ...] = OUTPUTS, start_worker: bool = False,
                 multi_threaded: bool = False, image_reliable: bool = False, **node_kwargs: Any):
        from gsvnet_ros.ros.node import SegmentationNode

        params = [Parameter(k, value=v) for k, v in (overrides or {}).items()]
        self.env = env
        self.node = SegmentationNode(backend=backend, start_worker=start_worker,
                                     parameter_overrides=params, **node_kwargs)
        self.probe = env.rclpy.create_node(f"probe_{self.node.get_name()}")
        try:
            self._connect(env, subscribe, image_reliable, multi_threaded)
        except BaseException:  # leave no endpoint behind in the DDS graph for the next test
            self.node.destroy_node()
            self.probe.destroy_node()
            raise

    def _connect(self, env: Any, subscribe: tuple[str, ...], image_reliable: bool,
                 multi_threaded: bool) -> None:
        self.received: dict[str, list] = collections.defaultdict(list)
        fqn = self.node.get_fully_qualified_name()
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.subscribed = []
        for name in subscribe:
            if name == "info" and not env.with_info:
                continue
            kind = {"info": "gsvnet_ros_msgs/msg/SegmentationInfo",
                    "label_info": "vision_msgs/msg/LabelInfo"}.get(name, "sensor_msgs/msg/Image")
            self.probe.create_subscription(env.msg(kind), f"{fqn}/{name}",
                                           self.received[name].append,
                                           latched if name == "label_info" else 10)
            self.subscribed.append(name)
        DiagnosticArray = env.msg("diagnostic_msgs/msg/DiagnosticArray")
        self.probe.create_subscription(DiagnosticArray, "/diagnostics",
                                       self.received["diagnostics"].append, 10)
        self.image_pub = self.probe.create_publisher(
            Image, "/image", 10 if image_reliable else qos_profile_sensor_data)
        self.executor = MultiThreadedExecutor(3) if multi_threaded else SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.executor.add_node(self.probe)
        self._matched()

    def _matched(self) -> None:
        """Wait until DDS has matched every publisher with its subscriber (discovery is async)."""
        pubs = {"class_mask": self.node._pub_mask, "color_mask": self.node._pub_color,
                "overlay": self.node._pub_overlay, "info": self.node._pub_info,
                "label_info": self.node._pub_label_info}
        wanted = [pubs[n] for n in self.subscribed if pubs.get(n) is not None]
        assert spin_until(self.executor, lambda: self.image_pub.get_subscription_count() > 0
                          and all(p.get_subscription_count() > 0 for p in wanted)), \
            "DDS did not match the probe with the node"

    def spin(self, seconds: float = 0.0, until: Any = None) -> None:
        """Run ready callbacks; for `seconds`, or until `until()` is true (max TIMEOUT_S)."""
        if until is not None:
            spin_until(self.executor, until)
            return
        deadline = time.monotonic() + seconds
        while time.monotonic() <= deadline:
            self.executor.spin_once(timeout_sec=0.005)

    def drain(self, seconds: float = 0.05) -> None:
        """Run callbacks for a short while (deliveries in flight arrive meanwhile)."""
        self.spin(seconds)

    def _expected_outputs(self) -> list[str]:
        values = self.node._values
        expected = ["class_mask"]
        if values["publish_color_mask"]:
            expected.append("color_mask")
        if values["publish_overlay"]:
            expected.append("overlay")
        if self.node._pub_info is not None:
            expected.append("info")
        return [name for name in expected if name in self.subscribed]

    def send(self, msg: Any) -> None:
        """Publish an image to the node and run its subscription callback (received or rejected)."""
        before = self.node.stats.snapshot()["frames_received"]
        self.image_pub.publish(msg)
        assert spin_until(self.executor, lambda: self.node.stats.snapshot()["frames_received"]
                          > before), "the node did not receive the image"

    def step(self, msg: Any) -> bool:
        """Send, segment synchronously, wait for every output the node publishes for it."""
        self.send(msg)
        counts = {name: len(self.received[name]) for name in self._expected_outputs()}
        errors = self.node.stats.snapshot()["segmentation_errors"]
        processed = self.node.process_pending()
        if processed and self.node.stats.snapshot()["segmentation_errors"] == errors:
            assert spin_until(self.executor, lambda: all(
                len(self.received[name]) > n for name, n in counts.items())), \
                f"outputs missing: {counts} -> " \
                f"{ {n: len(self.received[n]) for n in counts} }"
        else:
            self.drain()
        return processed

    def call(self, service: str, request: Any) -> Any:
        """Call ~/reset or ~/enable of the node through a client on the probe; the response."""
        from std_srvs.srv import SetBool, Trigger

        srv_type = {"reset": Trigger, "enable": SetBool}[service]
        client = self.probe.create_client(srv_type, f"{self.node.get_fully_qualified_name()}/"
                                                    f"{service}")
        try:
            assert spin_until(self.executor, client.service_is_ready), f"no service {service}"
            future = client.call_async(request)
            assert spin_until(self.executor, future.done), f"{service} did not answer"
            return future.result()
        finally:
            self.probe.destroy_client(client)

    def close(self) -> None:
        """Shut the executor down and destroy both nodes (a test may have destroyed one)."""
        from rclpy._rclpy_pybind11 import InvalidHandle

        self.executor.shutdown()
        for node in (self.node, self.probe):
            try:
                node.destroy_node()
            except InvalidHandle:  # destroyed by the test itself
                pass

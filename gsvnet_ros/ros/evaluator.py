"""SegmentationEvaluator: scores a live or replayed run like `gsvnet-bag segment` scores a bag.

Pairs each class mask with the ground-truth label image of the same (frame_id, stamp), takes the
distance from the keyframe from ~/info (or from the keyframe schedule when gsvnet_ros_msgs is not
built), and reports mIoU by distance (metrics.DistanceConfusion) and the per-frame latency from
~/info. The report is written as JSON and logged as a table after `idle_timeout_s` without
messages and again on shutdown.
"""
from __future__ import annotations

import collections
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any, Optional

import cv2
import numpy as np

from gsvnet_ros import codec
from gsvnet_ros.labels import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES
from gsvnet_ros.metrics import DistanceConfusion
from gsvnet_ros.reporting import json_safe, latency_stats

try:
    import rclpy
    import rclpy.logging
    from rcl_interfaces.msg import ParameterDescriptor
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    ROS_IMPORT_ERROR: Optional[ImportError] = None
except ImportError as exc:
    ROS_IMPORT_ERROR = exc
    Node = object  # type: ignore[misc,assignment]

try:
    from gsvnet_ros_msgs.msg import SegmentationInfo
except ImportError:
    SegmentationInfo = None

__all__ = ["SegmentationEvaluator", "main"]

WARMUP_FRAMES = 1  # as gsvnet_ros.bag.report: the first step pays one-off costs
_PENDING_LIMIT = 256
_NS_PER_S = 1_000_000_000
_PARAMS = (  # name, default, description
    ("report_path", "gsvnet_ros_eval.json", "Where the JSON report is written."),
    ("idle_timeout_s", 5.0, "Seconds without messages after which the report is written."),
    ("distance_source", "auto", "'info' (~/info), 'schedule' (keyframe_interval) or 'auto' "
                                "(info when gsvnet_ros_msgs is importable)."),
    ("keyframe_interval", 5, "Keyframe interval assumed by distance_source 'schedule'."),
    ("num_classes", NUM_CLASSES, "Classes scored (trainIds 0..num_classes-1)."),
)


def _mono8(msg: Any) -> np.ndarray:
    """(H, W) uint8 from a mono8 (or 8UC1) image message, row padding removed."""
    encoding = "mono8" if msg.encoding == "8UC1" else msg.encoding
    if encoding != "mono8":
        raise codec.ImageDecodeError("encoding", f"label/mask encoding {msg.encoding!r}; "
                                                 "expected mono8 trainIds")
    shim = type("Mono8", (), {"height": msg.height, "width": msg.width, "encoding": "mono8",
                              "step": msg.step, "is_bigendian": 0, "data": msg.data})
    return np.ascontiguousarray(codec.decode_image(shim)[:, :, 0])


def _stamp_ns(header: Any) -> int:
    return int(header.stamp.sec) * _NS_PER_S + int(header.stamp.nanosec)


class SegmentationEvaluator(Node):
    """Subscribes segmentation_node/class_mask, segmentation_node/info and camera/labels."""

    def __init__(self, *, node_name: str = "segmentation_evaluator", **node_kwargs: Any) -> None:
        super().__init__(node_name, **node_kwargs)
        values = {name: self.declare_parameter(name, default, ParameterDescriptor(
            description=text, read_only=True)).value for name, default, text in _PARAMS}
        self.report_path = Path(values["report_path"]).expanduser()
        self.idle_timeout_s = float(values["idle_timeout_s"])
        self.interval = int(values["keyframe_interval"])
        source = values["distance_source"]
        if source not in ("auto", "info", "schedule"):
            raise ValueError(f"distance_source {source!r}: expected 'auto', 'info' or 'schedule'")
        if source == "info" and SegmentationInfo is None:
            raise ValueError("distance_source 'info' needs gsvnet_ros_msgs (see README)")
        self.use_info = source == "info" or (source == "auto" and SegmentationInfo is not None)
        self.confusion = DistanceConfusion(num_classes=int(values["num_classes"]),
                                           ignore_index=IGNORE_INDEX)
        self._lock = threading.Lock()
        self._masks: collections.OrderedDict = collections.OrderedDict()  # key -> (pred, dist)
        self._truth: collections.OrderedDict = collections.OrderedDict()  # key -> labels
        self._infos: collections.OrderedDict = collections.OrderedDict()  # key -> distance
        self._schedule: collections.Counter[str] = collections.Counter()
        self._total_ms: list[float] = []
        self._is_keyframe: list[bool] = []
        self.masks_received = self.labels_received = self.scored = 0
        self._last_message = time.monotonic()
        self._dirty = False
        self.report: Optional[dict[str, Any]] = None
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                         reliability=ReliabilityPolicy.RELIABLE)
        truth_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                               reliability=ReliabilityPolicy.BEST_EFFORT)
        self._mask_sub = self.create_subscription(Image, "segmentation_node/class_mask",
                                                  self._on_mask, qos)
        self._truth_sub = self.create_subscription(Image, "camera/labels", self._on_truth,
                                                   truth_qos)
        if SegmentationInfo is not None:
            self.create_subscription(SegmentationInfo, "segmentation_node/info", self._on_info, qos)
        self.create_timer(0.5, self._check_idle)

    # ---- pairing -------------------------------------------------------------------------------
    @staticmethod
    def _put(store: collections.OrderedDict, key: tuple, value: Any) -> None:
        store[key] = value
        while len(store) > _PENDING_LIMIT:
            store.popitem(last=False)

    def _on_mask(self, msg: Any) -> None:
        key = (msg.header.frame_id, _stamp_ns(msg.header))
        try:
            pred = _mono8(msg)
        except codec.ImageDecodeError as exc:
            self.get_logger().error(f"ignored a class mask: {exc}", throttle_duration_sec=5.0)
            return
        with self._lock:
            self._touch()
            self.masks_received += 1
            distance = None
            if not self.use_info:
                distance = self._schedule[key[0]] % self.interval
                self._schedule[key[0]] += 1
            self._put(self._masks, key, (pred, distance))
            self._score(key)

    def _on_truth(self, msg: Any) -> None:
        key = (msg.header.frame_id, _stamp_ns(msg.header))
        try:
            truth = _mono8(msg)
        except codec.ImageDecodeError as exc:
            self.get_logger().error(f"ignored a label image: {exc}", throttle_duration_sec=5.0)
            return
        with self._lock:
            self._touch()
            self.labels_received += 1
            self._put(self._truth, key, truth)
            self._score(key)

    def _on_info(self, msg: Any) -> None:
        key = (msg.header.frame_id, _stamp_ns(msg.header))
        with self._lock:
            self._touch()
            self._total_ms.append(float(msg.total_ms))
            self._is_keyframe.append(bool(msg.is_keyframe))
            if self.use_info:
                self._put(self._infos, key, int(msg.frames_since_keyframe))
                self._score(key)

    def _touch(self) -> None:
        self._last_message = time.monotonic()
        self._dirty = True

    def _score(self, key: tuple) -> None:
        """Score `key` once its mask, its ground truth and its distance are all known."""
        if key not in self._masks or key not in self._truth:
            return
        pred, distance = self._masks[key]
        if self.use_info:
            if key not in self._infos:
                return
            distance = self._infos.pop(key)
        del self._masks[key]
        truth = self._truth.pop(key)
        if pred.shape != truth.shape:  # mask_resolution 'network': nearest-upsample, as offline
            pred = cv2.resize(pred, truth.shape[::-1], interpolation=cv2.INTER_NEAREST)
        try:
            self.confusion.update(pred, truth, distance)
        except ValueError as exc:  # metrics.MetricInputError: labels that are not trainIds
            self.get_logger().error(f"cannot score frame {key}: {exc}", throttle_duration_sec=5.0)
            return
        self.scored += 1

    # ---- report --------------------------------------------------------------------------------
    def _check_idle(self) -> None:
        if self._dirty and time.monotonic() - self._last_message > self.idle_timeout_s:
            self.write_report()

    def build_report(self) -> dict[str, Any]:
        """The JSON-ready report: the same accuracy and timing sections as `gsvnet-bag segment`."""
        with self._lock:
            summary = self.confusion.summary()
            skip = WARMUP_FRAMES if len(self._total_ms) > WARMUP_FRAMES else 0
            total = np.asarray(self._total_ms[skip:], np.float64)
            key = np.asarray(self._is_keyframe[skip:], bool)
            per_class = summary["per_class_iou"]
            return {
                "class_mask_topic": self._mask_sub.topic_name,
                "labels_topic": self._truth_sub.topic_name,
                "distance_source": "info" if self.use_info else "schedule",
                "frames": self.masks_received,
                "keyframes": int(sum(self._is_keyframe)),
                "timing": {"warmup_frames_excluded": skip,
                           "keyframe_ms": latency_stats(total[key]),
                           "non_keyframe_ms": latency_stats(total[~key]),
                           "per_frame_ms": latency_stats(total)},
                "accuracy": {
                    "labels_topic": self._truth_sub.topic_name,
                    "labelled_frames": self.scored,
                    "unmatched_labels": self.labels_received - self.scored,
                    "average_miou": summary["average_miou"],
                    "minimum_miou": summary["minimum_miou"],
                    "per_distance_miou": {str(d): v for d, v in
                                          summary["per_distance_miou"].items()},
                    "per_class_iou": dict(zip(CLASS_NAMES, per_class))
                    if len(per_class) == len(CLASS_NAMES) else per_class,
                },
            }

    def write_report(self) -> dict[str, Any]:
        """Write the JSON report and log it as a table."""
        report = self.build_report()
        self._dirty = False
        self.report = report
        self.report_path.parent.mkdir(parents=True, exist_ok=True)
        self.report_path.write_text(json.dumps(json_safe(report), indent=2, allow_nan=False)
                                    + "\n", encoding="utf-8")
        self.get_logger().info(format_table(report) + f"\nreport written to {self.report_path}")
        return report

    def destroy_node(self) -> None:
        """Write the report if it changed; idempotent (rclpy 9 destroys nodes again at shutdown)."""
        if getattr(self, "_destroyed", False):
            return
        self._destroyed = True
        if getattr(self, "_dirty", False):
            self.write_report()
        super().destroy_node()


def _num(value: Optional[float], scale: float = 1.0) -> str:
    return "-" if value is None else f"{value * scale:.1f}"


def format_table(report: dict[str, Any]) -> str:
    """mIoU by distance from the keyframe, then latency by frame type."""
    acc, timing = report["accuracy"], report["timing"]
    lines = [f"mIoU on {acc['labelled_frames']} labelled frames ({acc['labels_topic']}): average "
             f"{_num(acc['average_miou'], 100)} %, minimum {_num(acc['minimum_miou'], 100)} %",
             f"{'distance from keyframe':<24}{'mIoU (%)':>10}"]
    lines += [f"{d:<24}{_num(v, 100):>10}" for d, v in acc["per_distance_miou"].items()]
    lines.append(f"{'latency (ms)':<16}{'count':>7}{'median':>9}{'p95':>9}{'max':>9}")
    for name, key in (("keyframe", "keyframe_ms"), ("non-keyframe", "non_keyframe_ms"),
                      ("every frame", "per_frame_ms")):
        s = timing[key]
        lines.append(f"{name:<16}{s['count']:>7}{_num(s['median']):>9}{_num(s['p95']):>9}"
                     f"{_num(s['max']):>9}")
    return "\n".join(lines)


def main(args: Optional[list[str]] = None) -> int:
    """Console script `segmentation_evaluator`."""
    if ROS_IMPORT_ERROR is not None:
        print("segmentation_evaluator needs a sourced ROS 2 environment (Humble or Jazzy); could "
              f"not import {ROS_IMPORT_ERROR.name or ROS_IMPORT_ERROR}", file=sys.stderr)
        return 1
    rclpy.init(args=args)
    try:
        node = SegmentationEvaluator()
    except Exception as exc:
        rclpy.logging.get_logger("segmentation_evaluator").fatal(f"cannot start: {exc}")
        rclpy.try_shutdown()
        return 1
    executor = SingleThreadedExecutor()
    try:
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()  # writes the final report
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

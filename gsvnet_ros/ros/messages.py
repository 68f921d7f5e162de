"""Builders of the ROS messages the node publishes (headers copied, Humble-strict field types)."""
from __future__ import annotations

import array
from typing import Any, Mapping

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from gsvnet_ros.codec import ImageFields
from gsvnet_ros.labels import CLASS_NAMES, IGNORE_INDEX

__all__ = ["copy_header", "stamp_ns", "image_msg", "label_info_msg", "info_msg",
           "diagnostic_array", "LEVELS"]

_NS_PER_S = 1_000_000_000
LEVELS = {"ok": DiagnosticStatus.OK, "warn": DiagnosticStatus.WARN,
          "error": DiagnosticStatus.ERROR, "stale": DiagnosticStatus.STALE}


def copy_header(header: Any) -> Header:
    """A new Header with the same stamp and frame_id (outputs never share the input's objects)."""
    return Header(stamp=Time(sec=int(header.stamp.sec), nanosec=int(header.stamp.nanosec)),
                  frame_id=str(header.frame_id))


def stamp_ns(stamp: Any) -> int:
    """builtin_interfaces/Time -> integer nanoseconds."""
    return int(stamp.sec) * _NS_PER_S + int(stamp.nanosec)


def image_msg(header: Any, fields: ImageFields) -> Image:
    """sensor_msgs/Image from codec.encode_image output, data as array.array('B') (fast to set)."""
    return Image(header=copy_header(header), height=fields.height, width=fields.width,
                 encoding=fields.encoding, is_bigendian=fields.is_bigendian, step=fields.step,
                 data=array.array("B", fields.data))


def label_info_msg(label_info_cls: Any, vision_class_cls: Any) -> Any:
    """vision_msgs/LabelInfo: trainIds 0..18 with Cityscapes names, and 255 = unlabeled.

    The classes are passed in because vision_msgs is optional (not every ROS machine has it).
    """
    classes = [vision_class_cls(class_id=i, class_name=name) for i, name in enumerate(CLASS_NAMES)]
    classes.append(vision_class_cls(class_id=IGNORE_INDEX, class_name="unlabeled"))
    return label_info_cls(header=Header(), class_map=classes, threshold=0.0)


def info_msg(info_cls: Any, header: Any, result: Any, *, model_name: str, backend: str) -> Any:
    """gsvnet_ros_msgs/SegmentationInfo from a stream.SegmentationResult."""
    timings = result.timings_ms
    return info_cls(
        header=copy_header(header), frame_index=int(result.frame_index),
        is_keyframe=bool(result.is_keyframe),
        frames_since_keyframe=int(result.frames_since_keyframe),
        keyframe_reason=str(result.keyframe_reason), model_name=str(model_name),
        backend=str(backend),
        preprocess_ms=float(timings.get("preprocess", 0.0)),
        network_ms=float(timings.get("network", 0.0)),
        output_ms=float(timings.get("output", 0.0)), total_ms=float(timings.get("total", 0.0)))


def _text(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def diagnostic_array(stamp: Any, *, name: str, hardware_id: str, level: str, message: str,
                     values: Mapping[str, Any]) -> DiagnosticArray:
    """One DiagnosticStatus in a DiagnosticArray; every value is written as a string."""
    status = DiagnosticStatus(level=LEVELS[level], name=name, message=message,
                              hardware_id=hardware_id,
                              values=[KeyValue(key=k, value=_text(v)) for k, v in values.items()])
    return DiagnosticArray(header=Header(stamp=stamp), status=[status])

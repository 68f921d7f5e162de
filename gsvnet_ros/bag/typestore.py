"""rosbags typestore (ROS 2 Humble + gsvnet_ros_msgs/msg/SegmentationInfo) and message builders."""
from __future__ import annotations

import os
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from gsvnet_ros.codec import ImageFields

from .errors import MsgDefinitionError

__all__ = [
    "IMAGE",
    "COMPRESSED_IMAGE",
    "CAMERA_INFO",
    "SEGMENTATION_INFO",
    "IMAGE_TYPES",
    "find_msg_dir",
    "build_typestore",
    "stamp_to_ns",
    "make_header",
    "make_image",
    "make_camera_info",
    "make_segmentation_info",
]

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
SEGMENTATION_INFO = "gsvnet_ros_msgs/msg/SegmentationInfo"
IMAGE_TYPES = (IMAGE, COMPRESSED_IMAGE)

_PACKAGE = "gsvnet_ros"
_MSG_FILE = "SegmentationInfo.msg"
_NS_PER_S = 1_000_000_000


def _candidate_msg_dirs(here: Path) -> list[Path]:
    """Where msg/ may live: the source checkout, then share/gsvnet_ros/msg under install prefixes."""
    candidates = [here.parents[2] / "msg"]  # <checkout>/gsvnet_ros/bag/typestore.py
    # pip (venv or --user) and colcon put data_files under the prefix that holds lib/pythonX/...
    candidates += [parent / "share" / _PACKAGE / "msg" for parent in here.parents[3:]]
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    prefixes += [sys.prefix, sys.base_prefix]
    candidates += [Path(p) / "share" / _PACKAGE / "msg" for p in prefixes]
    return list(dict.fromkeys(candidates))


def find_msg_dir(module_file: str | Path | None = None) -> Path:
    """The folder holding SegmentationInfo.msg, in a source checkout or an installed share/.

    Searched relative to `module_file` (default: this module's file, wherever it is installed).
    """
    candidates = _candidate_msg_dirs(Path(module_file or __file__).resolve())
    for folder in candidates:
        if (folder / _MSG_FILE).is_file():
            return folder
    raise MsgDefinitionError(
        f"{_MSG_FILE} not found; looked in {', '.join(str(c) for c in candidates)} "
        f"(expected the package's msg/ folder or share/{_PACKAGE}/msg)")


@lru_cache(maxsize=1)
def build_typestore() -> Typestore:
    """ROS 2 Humble types plus SegmentationInfo, registered from msg/ text (built once)."""
    typestore = get_typestore(Stores.ROS2_HUMBLE)
    text = (find_msg_dir() / _MSG_FILE).read_text(encoding="utf-8")
    typestore.register(get_types_from_msg(text, SEGMENTATION_INFO))
    return typestore


def stamp_to_ns(stamp: Any) -> int:
    """builtin_interfaces/Time -> integer nanoseconds."""
    return int(stamp.sec) * _NS_PER_S + int(stamp.nanosec)


def make_header(typestore: Typestore, stamp_ns: int, frame_id: str) -> Any:
    """std_msgs/Header with the stamp split into sec and nanosec."""
    time_cls = typestore.types["builtin_interfaces/msg/Time"]
    header_cls = typestore.types["std_msgs/msg/Header"]
    sec, nanosec = divmod(int(stamp_ns), _NS_PER_S)
    return header_cls(stamp=time_cls(sec=sec, nanosec=nanosec), frame_id=frame_id)


def make_image(typestore: Typestore, header: Any, fields: ImageFields) -> Any:
    """sensor_msgs/Image from codec.encode_image output."""
    return typestore.types[IMAGE](
        header=header, height=fields.height, width=fields.width, encoding=fields.encoding,
        is_bigendian=fields.is_bigendian, step=fields.step,
        data=np.frombuffer(fields.data, np.uint8))


def make_camera_info(typestore: Typestore, header: Any, width: int, height: int) -> Any:
    """A plausible undistorted pinhole CameraInfo for an image size.

    Focal length uses the Cityscapes camera's ratio (fx ~ 2262.5 px at 2048 px width, i.e. about a
    48 degree horizontal field of view) and the principal point at the image centre.
    """
    focal = 2262.52 / 2048.0 * width
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    roi_cls = typestore.types["sensor_msgs/msg/RegionOfInterest"]
    return typestore.types[CAMERA_INFO](
        header=header, height=height, width=width, distortion_model="plumb_bob",
        d=np.zeros(5, np.float64),
        k=np.array([focal, 0.0, cx, 0.0, focal, cy, 0.0, 0.0, 1.0]),
        r=np.eye(3).reshape(-1),
        p=np.array([focal, 0.0, cx, 0.0, 0.0, focal, cy, 0.0, 0.0, 0.0, 1.0, 0.0]),
        binning_x=0, binning_y=0,
        roi=roi_cls(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))


def make_segmentation_info(typestore: Typestore, header: Any, result: Any, *, model_name: str,
                           backend: str) -> Any:
    """gsvnet_ros_msgs/SegmentationInfo from a stream.SegmentationResult."""
    timings = result.timings_ms
    return typestore.types[SEGMENTATION_INFO](
        header=header, frame_index=int(result.frame_index), is_keyframe=bool(result.is_keyframe),
        frames_since_keyframe=int(result.frames_since_keyframe),
        keyframe_reason=str(result.keyframe_reason), model_name=model_name, backend=backend,
        preprocess_ms=float(timings.get("preprocess", 0.0)),
        network_ms=float(timings.get("network", 0.0)),
        output_ms=float(timings.get("output", 0.0)),
        total_ms=float(timings.get("total", 0.0)))

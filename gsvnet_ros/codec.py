"""Image message <-> numpy: decode sensor_msgs/Image-like objects, encode label maps, colour, overlay.

Duck-typed on the message attributes only (height, width, encoding, step, is_bigendian, data for
Image; format, data for CompressedImage), so rclpy messages, rosbags messages and test stand-ins all
work. Never imports ROS or torch.
"""
from __future__ import annotations

import array
from typing import Any, NamedTuple

import cv2
import numpy as np

from gsvnet_ros.labels import IGNORE_INDEX, colorize

__all__ = [
    "ImageDecodeError",
    "ImageFields",
    "SUPPORTED_ENCODINGS",
    "ENCODABLE_ENCODINGS",
    "MAX_IMAGE_SIDE",
    "decode_image",
    "decode_compressed",
    "encode_image",
    "labels_to_color",
    "resize_labels",
    "overlay",
]

SUPPORTED_ENCODINGS: tuple[str, ...] = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")
ENCODABLE_ENCODINGS: tuple[str, ...] = ("rgb8", "bgr8", "mono8")
# Largest accepted height or width; larger headers are treated as corrupt, not allocated.
MAX_IMAGE_SIDE = 16384

_CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}
# OpenCV conversion from each encoding's channel layout to RGB (rgb8 needs only a copy).
_TO_RGB = {
    "bgr8": cv2.COLOR_BGR2RGB,
    "rgba8": cv2.COLOR_RGBA2RGB,
    "bgra8": cv2.COLOR_BGRA2RGB,
    "mono8": cv2.COLOR_GRAY2RGB,
}
# sensor_msgs/image_encodings.hpp names with 16-bit channels: recognised, but not supported.
_SIXTEEN_BIT = frozenset(
    ["rgb16", "bgr16", "rgba16", "bgra16", "mono16"]
    + [f"16{sign}C{n}" for sign in "US" for n in ("", "1", "2", "3", "4")]
    + [f"bayer_{p}16" for p in ("rggb", "bggr", "gbrg", "grbg")]
)
_COMPRESSED_FORMATS = ("jpeg", "jpg", "png")
_EXPECTED = ", ".join(SUPPORTED_ENCODINGS)


class ImageDecodeError(ValueError):
    """An image message cannot be decoded; `kind` names the faulty part of the message.

    kind is one of "encoding", "size", "step", "data_length", "endianness", "compressed".
    """

    KINDS = ("encoding", "size", "step", "data_length", "endianness", "compressed")

    def __init__(self, kind: str, message: str) -> None:
        if kind not in self.KINDS:
            raise ValueError(f"unknown ImageDecodeError kind {kind!r}; expected one of {self.KINDS}")
        super().__init__(message)
        self.kind = kind


class ImageFields(NamedTuple):
    """The fields of a sensor_msgs/Image apart from the header."""

    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: bytes


def _as_int(value: Any, name: str, kind: str) -> int:
    """Integer message field (Python or numpy int); anything else is a decode error."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ImageDecodeError(kind, f"image {name} is {value!r}; expected a non-negative integer")
    return int(value)


def _check_encoding(encoding: Any, is_bigendian: Any) -> int:
    """Channel count of a supported encoding, or a decode error that names what is supported."""
    if encoding in _CHANNELS:
        return _CHANNELS[encoding]  # is_bigendian carries no meaning for 8-bit channels
    if encoding in _SIXTEEN_BIT:
        if is_bigendian:
            raise ImageDecodeError(
                "endianness",
                f"big-endian 16-bit image (encoding {encoding!r}, is_bigendian={int(is_bigendian)})"
                f" is not supported: 16-bit encodings are unsupported; expected one of {_EXPECTED}")
        raise ImageDecodeError(
            "encoding", f"16-bit encoding {encoding!r} is not supported; expected one of {_EXPECTED}")
    raise ImageDecodeError("encoding",
                           f"unknown image encoding {encoding!r}; expected one of {_EXPECTED}")


def _as_byte_array(data: Any) -> np.ndarray:
    """Flat uint8 view (no copy where possible) of the message data container."""
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8:
            raise ImageDecodeError("data_length",
                                   f"image data is a {data.dtype} array; expected uint8 bytes")
        return data.reshape(-1)
    if isinstance(data, array.array):
        if data.typecode not in ("B", "b"):
            raise ImageDecodeError("data_length", f"image data is array.array({data.typecode!r}); "
                                   "expected array.array('B')")
        return np.frombuffer(data, np.uint8)
    if isinstance(data, memoryview):
        if not data.c_contiguous:
            data = data.tobytes()
        elif data.itemsize != 1 or data.ndim != 1:
            data = data.cast("B")
        return np.frombuffer(data, np.uint8)
    if isinstance(data, (bytes, bytearray)):
        return np.frombuffer(data, np.uint8)
    if isinstance(data, (list, tuple)):
        values = np.asarray(data)
        if values.size and (values.dtype.kind not in "iu" or values.min() < 0 or values.max() > 255):
            raise ImageDecodeError("data_length", "image data list holds values outside 0..255; "
                                   "expected a sequence of bytes")
        return values.astype(np.uint8).reshape(-1)
    raise ImageDecodeError(
        "data_length", f"image data is a {type(data).__name__}; expected bytes, bytearray, "
        "array.array('B'), list, memoryview or a uint8 array")


def decode_image(msg: Any) -> np.ndarray:
    """Decode a sensor_msgs/Image-like object to an (H, W, 3) uint8 RGB array (a fresh copy).

    Honours row padding (step > width * channels); mono8 is replicated to three channels.
    """
    encoding = getattr(msg, "encoding", None)
    channels = _check_encoding(encoding, getattr(msg, "is_bigendian", 0))
    height = _as_int(msg.height, "height", "size")
    width = _as_int(msg.width, "width", "size")
    if not (0 < height <= MAX_IMAGE_SIDE and 0 < width <= MAX_IMAGE_SIDE):
        raise ImageDecodeError(
            "size", f"image size {width}x{height} (width x height) is out of range; expected each side "
            f"in 1..{MAX_IMAGE_SIDE}")
    step = _as_int(msg.step, "step", "step")
    row_bytes = width * channels
    if step < row_bytes:
        raise ImageDecodeError(
            "step", f"image step {step} is smaller than a row of {width} {encoding} pixels; expected "
            f"step >= width * {channels} = {row_bytes}")
    flat = _as_byte_array(msg.data)
    expected = step * height
    if flat.size != expected:
        state = "truncated" if flat.size < expected else "too long"
        raise ImageDecodeError(
            "data_length", f"image data has {flat.size} bytes ({state}); expected step * height = "
            f"{step} * {height} = {expected}")
    # Rows of `step` bytes; keep the first width*channels bytes of each (drops the padding).
    pixels = flat.reshape(height, step)[:, :row_bytes].reshape(height, width, channels)
    if encoding == "rgb8":
        return np.array(pixels, dtype=np.uint8, copy=True, order="C")
    if channels == 1:
        pixels = pixels[:, :, 0]
    return cv2.cvtColor(pixels, _TO_RGB[encoding])


def decode_compressed(msg: Any) -> np.ndarray:
    """Decode a sensor_msgs/CompressedImage-like object (jpeg or png) to (H, W, 3) uint8 RGB."""
    fmt = str(getattr(msg, "format", "") or "")
    lowered = fmt.lower()
    if lowered and not any(name in lowered for name in _COMPRESSED_FORMATS):
        raise ImageDecodeError(
            "compressed", f"compressed image format {fmt!r} is not supported; expected jpeg or png")
    try:
        buffer = _as_byte_array(msg.data)
    except ImageDecodeError as exc:
        raise ImageDecodeError("compressed", f"compressed {str(exc)}") from None
    if buffer.size == 0:
        raise ImageDecodeError("compressed",
                               "compressed image data is empty; expected jpeg or png bytes")
    bgr = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageDecodeError(
            "compressed", f"could not decode {buffer.size} bytes of compressed image (format {fmt!r});"
            " expected valid jpeg or png data")
    height, width = bgr.shape[:2]
    if height > MAX_IMAGE_SIDE or width > MAX_IMAGE_SIDE:
        raise ImageDecodeError(
            "size", f"compressed image size {width}x{height} is out of range; expected each side "
            f"in 1..{MAX_IMAGE_SIDE}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def encode_image(image: np.ndarray, encoding: str) -> ImageFields:
    """Pack an array into Image fields: (H, W, 3) RGB uint8 for rgb8/bgr8, (H, W) uint8 for mono8."""
    if encoding not in ENCODABLE_ENCODINGS:
        raise ValueError(f"cannot encode to {encoding!r}; expected one of "
                         f"{', '.join(ENCODABLE_ENCODINGS)}")
    pixels = np.asarray(image)
    if pixels.dtype != np.uint8:
        raise ValueError(f"image to encode must be uint8, got {pixels.dtype}")
    if encoding == "mono8":
        if pixels.ndim == 3 and pixels.shape[2] == 1:
            pixels = pixels[:, :, 0]
        if pixels.ndim != 2:
            raise ValueError(f"mono8 image must have shape (H, W), got {pixels.shape}")
    elif pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"{encoding} image must have shape (H, W, 3) RGB, got {pixels.shape}")
    height, width = pixels.shape[:2]
    if height == 0 or width == 0:
        raise ValueError(f"image to encode is empty: shape {pixels.shape}")
    if encoding == "bgr8":
        pixels = pixels[:, :, ::-1]
    channels = _CHANNELS[encoding]
    data = np.ascontiguousarray(pixels).tobytes()
    return ImageFields(height, width, encoding, 0, width * channels, data)


def labels_to_color(labels: np.ndarray) -> np.ndarray:
    """Colour-code an (H, W) uint8 trainIds map as (H, W, 3) RGB (Cityscapes palette, 255 black)."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"label map must have shape (H, W), got {labels.shape}")
    return colorize(labels)


def resize_labels(labels: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a label map to (H, W); a 1/8 map (ceil(H/8), ceil(W/8)) is
    expanded block-aligned, so pixel (y, x) takes the label of cell (y // 8, x // 8)."""
    height, width = size_hw
    if labels.shape == (height, width):
        return labels
    if labels.shape == (-(-height // 8), -(-width // 8)):
        return np.repeat(np.repeat(labels, 8, axis=0), 8, axis=1)[:height, :width]
    return cv2.resize(labels, (width, height), interpolation=cv2.INTER_NEAREST)


def overlay(rgb: np.ndarray, labels: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend the colour mask over the image: alpha * colour + (1 - alpha) * image.

    Pixels labelled 255 (ignore) keep the image untouched. A label map of another size (e.g. the
    1/8 output resolution) is resized to the image with nearest-neighbour sampling.
    """
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"overlay image must be (H, W, 3) uint8 RGB, got {rgb.shape} {rgb.dtype}")
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"overlay alpha must be in [0, 1], got {alpha}")
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.dtype != np.uint8:
        raise ValueError(f"label map must be (H, W) uint8 trainIds, got {labels.shape} {labels.dtype}")
    labels = resize_labels(labels, rgb.shape[:2])
    blended = cv2.addWeighted(colorize(labels), float(alpha), rgb, 1.0 - float(alpha), 0.0)
    ignored = (labels == IGNORE_INDEX).view(np.uint8)
    return cv2.copyTo(rgb, ignored, blended)  # ignore pixels: the image itself

"""Image message <-> numpy: decode sensor_msgs/Image-like objects, encode label maps, colour, overlay.

Duck-typed on the message attributes only (height, width, encoding, step, is_bigendian, data for
Image; format, data for CompressedImage), so rclpy messages, rosbags messages and test stand-ins all
work. Never imports ROS or torch.

Hostile input: an image's size is checked against `max_pixels` before anything is allocated or
decoded: from the declared height and width of a raw Image, from the PNG IHDR chunk or the JPEG
frame header (SOFn) of a CompressedImage. Only the format the message declares is decoded.
"""
from __future__ import annotations

import array
import re
import struct
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
    "DEFAULT_MAX_IMAGE_PIXELS",
    "compressed_image_size",
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
# Largest accepted width * height by default: 4096 x 4096 = 16.8 MP. A 4K UHD camera (3840 x 2160,
# 8.3 MP) fits twice over, DCI 4K (4096 x 2160) too; a decoded RGB image of this size is 48 MiB.
DEFAULT_MAX_IMAGE_PIXELS = 4096 * 4096

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
# image_transport format tokens ("jpeg", "png", "rgb8; jpeg compressed bgr8", ...) -> container.
_FORMAT_TOKENS = {"jpeg": "jpeg", "jpg": "jpeg", "png": "png"}
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8"  # SOI
_EXPECTED = ", ".join(SUPPORTED_ENCODINGS)


class ImageDecodeError(ValueError):
    """An image message cannot be decoded; `kind` names the faulty part of the message.

    kind is one of "encoding", "size" (a side outside 1..MAX_IMAGE_SIDE), "step", "data_length",
    "endianness", "compressed" (format or compressed data), "too_large" (width * height beyond
    the caller's max_pixels).
    """

    KINDS = ("encoding", "size", "step", "data_length", "endianness", "compressed", "too_large")

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
        raise ImageDecodeError(kind, f"image {name} is {value!r:.60}; expected a non-negative integer")
    return int(value)


def _check_encoding(encoding: Any, is_bigendian: Any) -> int:
    """Channel count of a supported encoding, or a decode error that names what is supported."""
    if not isinstance(encoding, str):
        raise ImageDecodeError("encoding", f"image encoding is {encoding!r:.60}; expected one of "
                               f"{_EXPECTED}")
    if encoding in _CHANNELS:
        return _CHANNELS[encoding]  # is_bigendian carries no meaning for 8-bit channels
    if encoding in _SIXTEEN_BIT:
        if isinstance(is_bigendian, (int, np.integer)) and is_bigendian:
            raise ImageDecodeError(
                "endianness",
                f"big-endian 16-bit image (encoding {encoding!r}, is_bigendian={int(is_bigendian)})"
                f" is not supported: 16-bit encodings are unsupported; expected one of {_EXPECTED}")
        raise ImageDecodeError(
            "encoding", f"16-bit encoding {encoding!r} is not supported; expected one of {_EXPECTED}")
    raise ImageDecodeError("encoding",
                           f"unknown image encoding {encoding!r:.60}; expected one of {_EXPECTED}")


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
        try:
            values = np.asarray(data)
        except (ValueError, TypeError, OverflowError):  # ragged or mixed nesting
            values = np.asarray([], dtype=object).reshape(0, 0)
        if values.ndim != 1:
            raise ImageDecodeError("data_length", "image data list is nested; expected a flat "
                                   "sequence of bytes")
        if values.size and (values.dtype.kind not in "iu" or values.min() < 0 or values.max() > 255):
            raise ImageDecodeError("data_length", "image data list holds values outside 0..255; "
                                   "expected a sequence of bytes")
        return values.astype(np.uint8).reshape(-1)
    raise ImageDecodeError(
        "data_length", f"image data is a {type(data).__name__}; expected bytes, bytearray, "
        "array.array('B'), list, memoryview or a uint8 array")


def _check_max_pixels(max_pixels: Any) -> int:
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, np.integer)) or max_pixels < 1:
        raise ValueError(f"max_pixels must be an integer >= 1, got {max_pixels!r}")
    return int(max_pixels)


def _check_size(width: int, height: int, max_pixels: int, what: str) -> None:
    """A side outside 1..MAX_IMAGE_SIDE is a "size" error, more than max_pixels "too_large"."""
    if not (0 < height <= MAX_IMAGE_SIDE and 0 < width <= MAX_IMAGE_SIDE):
        raise ImageDecodeError(
            "size", f"{what} size {width}x{height} (width x height) is out of range; expected each "
            f"side in 1..{MAX_IMAGE_SIDE}")
    if width * height > max_pixels:
        raise ImageDecodeError(
            "too_large", f"{what} size {width}x{height} is {width * height} pixels; expected at most "
            f"max_pixels = {max_pixels}")


def decode_image(msg: Any, *, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> np.ndarray:
    """Decode a sensor_msgs/Image-like object to an (H, W, 3) uint8 RGB array (a fresh copy).

    Honours row padding (step > width * channels); mono8 is replicated to three channels. The
    declared size is checked (at most `max_pixels` pixels) before the data is looked at.
    """
    max_pixels = _check_max_pixels(max_pixels)
    encoding = getattr(msg, "encoding", None)
    channels = _check_encoding(encoding, getattr(msg, "is_bigendian", 0))
    height = _as_int(msg.height, "height", "size")
    width = _as_int(msg.width, "width", "size")
    _check_size(width, height, max_pixels, "image")
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


def _declared_container(fmt: str) -> str | None:
    """'jpeg', 'png' or None (nothing declared) from an image_transport format string."""
    lowered = fmt.lower()
    if "compresseddepth" in lowered:
        raise ImageDecodeError("compressed", f"compressed image format {fmt!r:.60} (compressedDepth) "
                               "is not supported; expected jpeg or png")
    tokens = lowered.replace(";", " ").split()
    found = {_FORMAT_TOKENS[t] for t in tokens if t in _FORMAT_TOKENS}
    if len(found) == 1:
        return found.pop()
    if not tokens:
        return None  # empty format: told by the magic bytes
    raise ImageDecodeError(
        "compressed", f"compressed image format {fmt!r:.60} is not supported; expected jpeg or png")


def _sniff(buffer: memoryview) -> str | None:
    if buffer[:8] == _PNG_MAGIC:
        return "png"
    if buffer[:2] == _JPEG_MAGIC:
        return "jpeg"
    return None


def _png_size(buffer: memoryview) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, which must follow the 8-byte signature.

    Layout: signature (8) | chunk length = 13 (4, big-endian) | b"IHDR" (4) | width (4) | height (4).
    """
    if len(buffer) < 24:
        raise ImageDecodeError("compressed", f"png data is truncated: {len(buffer)} bytes; expected "
                               "at least 24 (signature and IHDR)")
    length, chunk, width, height = struct.unpack_from(">I4sII", buffer, 8)
    if chunk != b"IHDR" or length != 13:
        raise ImageDecodeError("compressed", f"png data has chunk {bytes(chunk)!r} of length {length} "
                               "after the signature; expected the 13-byte IHDR chunk")
    return width, height


# JPEG markers: SOF0..SOF15 carry the frame size, except DHT (C4), JPG (C8) and DAC (CC).
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# The next marker with a length field, as libjpeg finds it: bytes before an FF are skipped
# (extraneous), repeated FF are fill, FF 00 is no marker, and TEM (01) and RST0..7 (D0..D7) stand
# alone (no length). The group is the marker byte.
_NEXT_MARKER = re.compile(rb"\xff+([^\x00\xff\x01\xd0-\xd7])")
# Segments walked before the frame header at most: real files have a few dozen (APPn, DQT, DHT,
# COM; an ICC profile is at most 255 APP2 chunks); this bounds the walk over hostile data.
_MAX_JPEG_SEGMENTS = 4096


def _jpeg_size(buffer: memoryview) -> tuple[int, int]:
    """(width, height) from the first frame header (SOFn) of a JPEG, found by walking the markers.

    After SOI (FF D8), a JPEG is a list of segments: FF, a marker byte, then (except for standalone
    markers) a 2-byte big-endian length that counts itself and the payload. A SOFn payload starts
    precision (1), height (2), width (2). The walk reads segment headers only and stops with an
    error at the end of the data, at SOS (FF DA: image data before any frame header), at EOI
    (FF D9) or after _MAX_JPEG_SEGMENTS segments, so it costs microseconds whatever the data.
    """
    size, pos = len(buffer), 2
    for _ in range(_MAX_JPEG_SEGMENTS):
        found = _NEXT_MARKER.search(buffer, pos)
        if found is None:
            break
        marker, pos = buffer[found.start(1)], found.end(1)
        if marker in (0xD9, 0xDA):
            raise ImageDecodeError(
                "compressed", f"jpeg data reaches {'EOI' if marker == 0xD9 else 'SOS'} at byte "
                f"{pos - 2} without a frame header (SOFn); expected one before the image data")
        if pos + 2 > size:
            break
        (length,) = struct.unpack_from(">H", buffer, pos)
        if length < 2:
            raise ImageDecodeError("compressed", f"jpeg segment ff {marker:02x} at byte {pos - 2} "
                                   f"has length {length}; expected at least 2")
        if marker in _SOF_MARKERS:
            if pos + 7 > size:
                break
            height, width = struct.unpack_from(">HH", buffer, pos + 3)
            if height == 0:  # the size would come later in a DNL segment; libjpeg rejects it too
                raise ImageDecodeError("compressed", "jpeg frame header declares height 0 (DNL); "
                                       "expected the height in the frame header")
            return width, height
        pos += length
    else:
        raise ImageDecodeError("compressed", f"jpeg data has more than {_MAX_JPEG_SEGMENTS} segments "
                               "before its frame header (SOFn); expected a few dozen at most")
    raise ImageDecodeError("compressed", f"jpeg data is truncated: no frame header (SOFn) in "
                           f"{size} bytes")


def _compressed_bytes(data: Any) -> np.ndarray:
    try:
        flat = _as_byte_array(data)
    except ImageDecodeError as exc:
        raise ImageDecodeError("compressed", f"compressed {str(exc)}") from None
    if flat.size == 0:
        raise ImageDecodeError("compressed",
                               "compressed image data is empty; expected jpeg or png bytes")
    return np.ascontiguousarray(flat)


def _header_size(flat: np.ndarray, fmt: str) -> tuple[str, int, int]:
    declared = _declared_container(fmt)
    buffer = memoryview(flat).cast("B")
    actual = _sniff(buffer)
    if actual is None:
        raise ImageDecodeError(
            "compressed", f"compressed image data starts with {bytes(buffer[:8]).hex(' ')}; expected "
            f"{declared or 'jpeg or png'} data (jpeg: ff d8, png: 89 50 4e 47 0d 0a 1a 0a)")
    if declared is not None and actual != declared:
        raise ImageDecodeError(
            "compressed", f"compressed image format {fmt!r:.60} declares {declared}, but the data is "
            f"{actual} (starts with {bytes(buffer[:4]).hex(' ')}); expected {declared} data")
    width, height = _png_size(buffer) if actual == "png" else _jpeg_size(buffer)
    return actual, width, height


def compressed_image_size(data: Any, fmt: str = "") -> tuple[str, int, int]:
    """(container, width, height) of compressed image bytes from their header, without decoding.

    `fmt` is the message's image_transport format ("jpeg", "bgr8; png compressed bgr8", ... or ""
    to go by the magic bytes); data in another container than the one declared is an error.
    """
    return _header_size(_compressed_bytes(data), fmt)


def decode_compressed(msg: Any, *, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> np.ndarray:
    """Decode a sensor_msgs/CompressedImage-like object (jpeg or png) to (H, W, 3) uint8 RGB.

    The size in the PNG/JPEG header is checked (at most `max_pixels` pixels) before decoding, and
    only the container the format declares is decoded (an empty format: jpeg or png by content).
    """
    max_pixels = _check_max_pixels(max_pixels)
    fmt = str(getattr(msg, "format", "") or "")
    flat = _compressed_bytes(msg.data)
    container, width, height = _header_size(flat, fmt)
    _check_size(width, height, max_pixels, f"compressed {container} image")
    try:
        bgr = cv2.imdecode(flat, cv2.IMREAD_COLOR)
    except cv2.error as exc:  # e.g. a size beyond OpenCV's CV_IO_MAX_IMAGE_PIXELS
        reason = " ".join(str(exc).split())
        raise ImageDecodeError("compressed", f"could not decode {flat.size} bytes of {container} "
                               f"(format {fmt!r:.60}): {reason}; expected valid {container} data"
                               ) from None
    if bgr is None or bgr.ndim != 3 or bgr.shape[2] != 3:
        raise ImageDecodeError(
            "compressed", f"could not decode {flat.size} bytes of {container} (format {fmt!r:.60});"
            f" expected valid {container} data")
    # The header was checked; a decoder that disagrees with it is not trusted either.
    _check_size(bgr.shape[1], bgr.shape[0], max_pixels, f"decoded {container} image")
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

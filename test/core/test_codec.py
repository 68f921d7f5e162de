"""Image codec: every encoding with and without row padding, every data container, every error kind."""
import array
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from gsvnet_ros.codec import (MAX_IMAGE_SIDE, SUPPORTED_ENCODINGS, ImageDecodeError, ImageFields,
                              decode_compressed, decode_image, encode_image, labels_to_color, overlay,
                              resize_labels)
from gsvnet_ros.labels import PALETTE

RNG = np.random.default_rng(7)
RGB = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)


def _pixels_for(encoding, rgb):
    """The channel layout each encoding stores, and the RGB decode_image must return."""
    alpha = np.full(rgb.shape[:2] + (1,), 200, np.uint8)
    if encoding == "rgb8":
        return rgb, rgb
    if encoding == "bgr8":
        return rgb[:, :, ::-1], rgb
    if encoding == "rgba8":
        return np.concatenate([rgb, alpha], axis=2), rgb
    if encoding == "bgra8":
        return np.concatenate([rgb[:, :, ::-1], alpha], axis=2), rgb
    gray = rgb[:, :, 0]
    return gray[:, :, None], np.repeat(gray[:, :, None], 3, axis=2)


def _message(encoding, stored, padding=0, container=bytes, **overrides):
    height, width, channels = stored.shape
    rows = np.zeros((height, width * channels + padding), np.uint8)
    rows[:, : width * channels] = stored.reshape(height, -1)
    rows[:, width * channels:] = 0xAB  # padding bytes must be ignored
    raw = rows.tobytes()
    data = {"bytes": raw, "bytearray": bytearray(raw), "array": array.array("B", raw),
            "list": list(raw), "memoryview": memoryview(raw), "ndarray": np.frombuffer(raw, np.uint8),
            }[container] if isinstance(container, str) else container(raw)
    fields = dict(height=height, width=width, encoding=encoding, is_bigendian=0,
                  step=width * channels + padding, data=data)
    fields.update(overrides)
    return SimpleNamespace(**fields)


@pytest.mark.parametrize("padding", [0, 3, 16])
@pytest.mark.parametrize("encoding", SUPPORTED_ENCODINGS)
def test_every_encoding_decodes_to_rgb_with_and_without_row_padding(encoding, padding):
    stored, expected = _pixels_for(encoding, RGB)
    decoded = decode_image(_message(encoding, stored, padding))
    assert decoded.dtype == np.uint8 and decoded.shape == (5, 7, 3)
    np.testing.assert_array_equal(decoded, expected)


@pytest.mark.parametrize("container", ["bytes", "bytearray", "array", "list", "memoryview", "ndarray"])
def test_every_data_container_decodes_the_same(container):
    stored, expected = _pixels_for("bgr8", RGB)
    np.testing.assert_array_equal(decode_image(_message("bgr8", stored, 2, container)), expected)


def test_decoded_array_is_a_writable_copy_not_a_view_of_the_message():
    raw = bytearray(RGB.tobytes())
    msg = SimpleNamespace(height=5, width=7, encoding="rgb8", is_bigendian=0, step=21, data=raw)
    decoded = decode_image(msg)
    decoded[0, 0] = 0
    raw[0] = 1
    assert decoded.flags.writeable and decoded[0, 0, 0] == 0


def test_is_bigendian_is_irrelevant_for_8_bit_encodings():
    stored, expected = _pixels_for("rgba8", RGB)
    np.testing.assert_array_equal(decode_image(_message("rgba8", stored, is_bigendian=1)), expected)


def _error(msg):
    with pytest.raises(ImageDecodeError) as info:
        decode_image(msg)
    assert "\n" not in str(info.value)
    return info.value


def test_unknown_encoding_names_the_supported_ones():
    err = _error(_message("yuv422", RGB))
    assert err.kind == "encoding" and "'yuv422'" in str(err) and "rgb8, bgr8" in str(err)


def test_16_bit_encoding_is_unsupported_and_says_so():
    err = _error(_message("mono16", RGB))
    assert err.kind == "encoding" and "16-bit" in str(err) and "not supported" in str(err)


def test_big_endian_16_bit_image_is_an_endianness_error():
    err = _error(_message("rgb16", RGB, is_bigendian=1))
    assert err.kind == "endianness" and "big-endian" in str(err) and "16-bit" in str(err)


@pytest.mark.parametrize("height,width", [(0, 7), (5, 0), (MAX_IMAGE_SIDE + 1, 7), (5, -1)])
def test_zero_negative_or_huge_size_is_a_size_error(height, width):
    err = _error(_message("rgb8", RGB, height=height, width=width))
    assert err.kind == "size" and str(MAX_IMAGE_SIDE) in str(err)


def test_non_integer_size_is_a_size_error():
    assert _error(_message("rgb8", RGB, height=5.0)).kind == "size"


def test_step_smaller_than_a_row_is_a_step_error():
    err = _error(_message("rgb8", RGB, step=20))
    assert err.kind == "step" and "step 20" in str(err) and "21" in str(err)


@pytest.mark.parametrize("delta,word", [(-1, "truncated"), (5, "too long")])
def test_data_length_other_than_step_times_height_is_an_error(delta, word):
    msg = _message("rgb8", RGB)
    msg.data = msg.data[:delta] if delta < 0 else msg.data + bytes(delta)
    err = _error(msg)
    assert err.kind == "data_length" and word in str(err) and "105" in str(err)


def test_data_that_is_not_bytes_is_a_data_length_error():
    assert _error(_message("mono8", RGB[:, :, :1], container=lambda raw: [300] * len(raw))).kind \
        == "data_length"
    assert _error(_message("mono8", RGB[:, :, :1], container=lambda raw: "text")).kind == "data_length"


def test_error_kinds_are_checked():
    with pytest.raises(ValueError):
        ImageDecodeError("nonsense", "x")
    assert issubclass(ImageDecodeError, ValueError)


@pytest.mark.parametrize("ext,fmt", [(".png", "png"), (".png", "bgr8; png compressed bgr8"),
                                     (".jpg", "jpeg"), (".jpg", "")])
def test_compressed_jpeg_and_png_decode_to_rgb(ext, fmt):
    ok, buffer = cv2.imencode(ext, cv2.cvtColor(RGB, cv2.COLOR_RGB2BGR))
    assert ok
    decoded = decode_compressed(SimpleNamespace(format=fmt, data=buffer.tobytes()))
    assert decoded.shape == RGB.shape
    if ext == ".png":
        np.testing.assert_array_equal(decoded, RGB)
    else:  # lossy, but the channel order must be right: compare with OpenCV's own decode
        expected = cv2.cvtColor(cv2.imdecode(buffer, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        np.testing.assert_array_equal(decoded, expected)


@pytest.mark.parametrize("fmt,data", [("h264", b"\x00\x01"), ("png", b""), ("png", b"not a png")])
def test_bad_compressed_images_are_compressed_errors(fmt, data):
    with pytest.raises(ImageDecodeError) as info:
        decode_compressed(SimpleNamespace(format=fmt, data=data))
    assert info.value.kind == "compressed"


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8"])
def test_encode_then_decode_is_identity_for_color(encoding):
    fields = encode_image(RGB, encoding)
    assert isinstance(fields, ImageFields)
    assert (fields.height, fields.width, fields.encoding, fields.is_bigendian, fields.step) == \
        (5, 7, encoding, 0, 21)
    assert isinstance(fields.data, bytes) and len(fields.data) == 105
    np.testing.assert_array_equal(decode_image(fields), RGB)
    if encoding == "bgr8":
        assert fields.data[:3] == bytes(RGB[0, 0, ::-1])


def test_encode_mono8_keeps_values_and_step_is_width():
    labels = RNG.integers(0, 19, (4, 9), dtype=np.uint8)
    fields = encode_image(labels, "mono8")
    assert fields.step == 9 and fields.data == labels.tobytes()
    np.testing.assert_array_equal(decode_image(fields)[:, :, 0], labels)


@pytest.mark.parametrize("image,encoding", [(RGB, "rgba8"), (RGB.astype(np.float32), "rgb8"),
                                            (RGB[:, :, 0], "rgb8"), (RGB, "mono8")])
def test_encode_rejects_wrong_encoding_dtype_or_shape(image, encoding):
    with pytest.raises(ValueError):
        encode_image(image, encoding)


def test_labels_to_color_uses_the_palette_and_black_for_ignore():
    labels = np.array([[0, 13], [255, 18]], np.uint8)
    color = labels_to_color(labels)
    np.testing.assert_array_equal(color, PALETTE[labels])
    assert tuple(color[0, 0]) == (128, 64, 128) and tuple(color[1, 0]) == (0, 0, 0)


def test_overlay_blends_with_alpha_and_leaves_ignored_pixels_untouched():
    rgb = np.full((2, 2, 3), 100, np.uint8)
    labels = np.array([[0, 255], [13, 255]], np.uint8)
    out = overlay(rgb, labels, 0.5)
    np.testing.assert_array_equal(out[:, 1], rgb[:, 1])
    np.testing.assert_allclose(out[0, 0], (np.array([128, 64, 128]) + 100) / 2, atol=1)
    np.testing.assert_array_equal(overlay(rgb, labels, 0.0), rgb)
    np.testing.assert_array_equal(overlay(rgb, labels, 1.0)[1, 0], PALETTE[13])


def test_resize_labels_expands_a_one_eighth_map_block_aligned():
    small = np.arange(6, dtype=np.uint8).reshape(2, 3)
    big = resize_labels(small, (13, 20))  # ceil(13/8) = 2, ceil(20/8) = 3
    assert big.shape == (13, 20)
    assert big[7, 7] == 0 and big[8, 8] == 4 and big[12, 19] == 5 and big[0, 16] == 2
    assert resize_labels(small, (2, 3)) is small
    assert resize_labels(small, (4, 6)).shape == (4, 6)


def test_overlay_upsamples_a_smaller_label_map_and_checks_alpha():
    rgb = np.zeros((16, 16, 3), np.uint8)
    out = overlay(rgb, np.full((2, 2), 10, np.uint8), 1.0)
    assert out.shape == (16, 16, 3) and (out == PALETTE[10]).all()
    with pytest.raises(ValueError):
        overlay(rgb, np.zeros((16, 16), np.uint8), 1.5)

"""Image codec: every encoding with and without row padding, every data container, every error kind."""
import array
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from gsvnet_ros import codec
from gsvnet_ros.codec import (DEFAULT_MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE, SUPPORTED_ENCODINGS,
                              ImageDecodeError, ImageFields, decode_compressed, decode_image,
                              encode_image, labels_to_color, overlay, resize_labels)
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


# ---- hostile input: sizes checked from the header before decoding, declared format enforced ----

def _jpeg(rgb=RGB, quality=90):
    ok, buffer = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                              [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buffer.tobytes()


def _png(rgb=RGB):
    ok, buffer = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return buffer.tobytes()


def _with_jpeg_size(data, width, height):
    """The JPEG with its frame header (SOF0, FF C0) claiming width x height."""
    at = data.index(b"\xff\xc0")
    return data[:at + 5] + height.to_bytes(2, "big") + width.to_bytes(2, "big") + data[at + 9:]


def _with_png_size(data, width, height):
    """The PNG with its IHDR claiming width x height (the chunk CRC left stale: never decoded)."""
    return data[:16] + width.to_bytes(4, "big") + height.to_bytes(4, "big") + data[24:]


@pytest.fixture
def no_decoder(monkeypatch):
    """cv2.imdecode fails the test if called: the size must be rejected from the header alone."""
    def imdecode(*args, **kwargs):
        raise AssertionError("cv2.imdecode was called")
    monkeypatch.setattr(codec.cv2, "imdecode", imdecode)


def _compressed_error(fmt, data, **kwargs):
    with pytest.raises(ImageDecodeError) as info:
        decode_compressed(SimpleNamespace(format=fmt, data=data), **kwargs)
    assert "\n" not in str(info.value)
    return info.value


def test_default_max_pixels_fits_a_4k_camera():
    assert DEFAULT_MAX_IMAGE_PIXELS == 4096 * 4096 >= 2 * 3840 * 2160
    assert DEFAULT_MAX_IMAGE_PIXELS <= MAX_IMAGE_SIDE ** 2


def test_jpeg_header_claiming_60000x60000_is_rejected_without_decoding(no_decoder):
    data = _with_jpeg_size(_jpeg(RNG.integers(0, 256, (16, 16, 3), dtype=np.uint8)), 60000, 60000)
    assert len(data) < 1000
    assert codec.compressed_image_size(data, "jpeg") == ("jpeg", 60000, 60000)
    err = _compressed_error("jpeg", data)
    assert err.kind == "size" and "60000x60000" in str(err) and str(MAX_IMAGE_SIDE) in str(err)


def test_png_header_claiming_20000x20000_is_rejected_without_decoding(no_decoder):
    err = _compressed_error("bgr8; png compressed bgr8", _with_png_size(_png(), 20000, 20000))
    assert err.kind == "size" and "20000x20000" in str(err)


@pytest.mark.parametrize("fmt,data", [("jpeg", _with_jpeg_size(_jpeg(), 5000, 5000)),
                                      ("png", _with_png_size(_png(), 8192, 4096))])
def test_plausible_sides_beyond_max_pixels_are_too_large_without_decoding(no_decoder, fmt, data):
    err = _compressed_error(fmt, data)
    assert err.kind == "too_large" and f"max_pixels = {DEFAULT_MAX_IMAGE_PIXELS}" in str(err)


def test_max_pixels_is_the_callers_limit():
    data = _png()  # 7 x 5 = 35 pixels
    assert decode_compressed(SimpleNamespace(format="png", data=data), max_pixels=35).shape == (5, 7, 3)
    assert _compressed_error("png", data, max_pixels=34).kind == "too_large"
    msg = _message("rgb8", RGB)
    assert decode_image(msg, max_pixels=35).shape == (5, 7, 3)
    err = _error_with(msg, max_pixels=34)
    assert err.kind == "too_large" and "35 pixels" in str(err) and "34" in str(err)
    for bad in (0, -1, True, 2.5, None):
        with pytest.raises(ValueError, match="max_pixels"):
            decode_image(msg, max_pixels=bad)


def _error_with(msg, **kwargs):
    with pytest.raises(ImageDecodeError) as info:
        decode_image(msg, **kwargs)
    return info.value


def test_raw_image_declaring_16384x16384_is_too_large_before_the_data_is_read():
    class NoData(SimpleNamespace):
        @property
        def data(self):
            raise AssertionError("the data of an oversized image was read")
    msg = NoData(height=16384, width=16384, encoding="rgb8", is_bigendian=0, step=3 * 16384)
    err = _error_with(msg)
    assert err.kind == "too_large" and "16384x16384" in str(err)


@pytest.mark.parametrize("fmt,data,declared,actual", [
    ("jpeg", _png(), "jpeg", "png"), ("rgb8; jpeg compressed bgr8", _png(), "jpeg", "png"),
    ("png", _jpeg(), "png", "jpeg"), ("bgr8; png compressed bgr8", _jpeg(), "png", "jpeg")])
def test_data_in_another_format_than_declared_is_an_error_naming_both(no_decoder, fmt, data,
                                                                       declared, actual):
    err = _compressed_error(fmt, data)
    assert err.kind == "compressed" and f"declares {declared}" in str(err) \
        and f"the data is {actual}" in str(err) and repr(fmt) in str(err)


@pytest.mark.parametrize("fmt", ["jpeg", "rgb8; jpeg compressed bgr8", "mono8; jpeg compressed mono8"])
def test_image_transport_jpeg_formats_decode(fmt):
    data = _jpeg()
    expected = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR),
                            cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(decode_compressed(SimpleNamespace(format=fmt, data=data)), expected)


@pytest.mark.parametrize("fmt,data,needle", [
    ("16UC1; compressedDepth png", _png(), "compressedDepth"),
    ("jpeg png", _png(), "not supported"),
    ("", b"BM" + bytes(60), "42 4d"),  # a BMP: OpenCV would decode it, the message may not
    ("png", _png()[:20], "truncated"),
    ("png", _png()[:8] + b"\x00\x00\x00\x0dIHDX" + bytes(8), "IHDR"),
    ("jpeg", b"\xff\xd8\xff\xe0\x00", "truncated"),
    ("jpeg", b"\xff\xd8" + bytes(1 << 20), "truncated"),  # no marker at all after SOI
    ("jpeg", b"\xff\xd8\xff\xda\x00\x08" + bytes(8), "SOS"),
    ("jpeg", b"\xff\xd8\xff\xd9", "EOI"),
    ("jpeg", b"\xff\xd8\xff\xe0\x00\x01", "length 1"),
    ("jpeg", b"\xff\xd8" + b"\xff\xfe\x00\x02" * 5000, "segments"),
    ("jpeg", b"\xff\xd8\xff\xc0\x00\x11\x08\x00\x00\x00\x10", "DNL"),
])
def test_malformed_headers_are_compressed_errors_without_decoding(no_decoder, fmt, data, needle):
    err = _compressed_error(fmt, data)
    assert err.kind == "compressed" and needle in str(err)


def test_jpeg_walk_skips_fill_bytes_stuffed_ff00_restart_markers_and_app_segments(no_decoder):
    sof = b"\xff\xc2\x00\x11\x08\x00\x05\x00\x07"  # progressive frame header: 7 x 5
    data = (b"\xff\xd8" + b"\xff\xe1\x00\x06exif" + b"junk" + b"\xff\x00\xff\xd3\xff\xff"
            + b"\xff\xfe\x00\x04hi" + sof)
    assert codec.compressed_image_size(data, "") == ("jpeg", 7, 5)


def test_an_opencv_error_while_decoding_is_an_image_decode_error(monkeypatch):
    def imdecode(*args, **kwargs):
        raise cv2.error("OpenCV(4.x) error: (-215:Assertion failed) pixels <= CV_IO_MAX_IMAGE_PIXELS")
    monkeypatch.setattr(codec.cv2, "imdecode", imdecode)
    err = _compressed_error("jpeg", _jpeg())
    assert err.kind == "compressed" and "CV_IO_MAX_IMAGE_PIXELS" in str(err)


def test_header_intact_but_data_corrupt_is_a_compressed_error():
    data = _png()
    err = _compressed_error("png", data[:40])
    assert err.kind == "compressed"

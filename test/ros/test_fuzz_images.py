"""Fuzz: >= 1,000 malformed images never stop the node, never publish, log once per kind."""
import collections
import copy

import numpy as np
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from gsvnet_ros import codec
from node_harness import NS, image_msg, scene, stamp_of


def _error_lines(capfd):
    """The node's ERROR log lines written to stderr so far (rcutils' console output)."""
    return [line for line in capfd.readouterr().err.splitlines()
            if "[ERROR]" in line and "[segmentation_node]" in line]


def _malformed(rng, good):
    """One broken copy of `good` (an rgb8 image message) and the decode-error kind it must give."""
    msg = copy.deepcopy(good)
    case = int(rng.integers(0, 9))
    if case == 0:  # step smaller than a row
        msg.step = int(rng.integers(0, msg.width * 3))
        return msg, "step"
    if case == 1:  # truncated data
        msg.data = msg.data[: int(rng.integers(0, len(msg.data)))]
        return msg, "data_length"
    if case == 2:  # padding claimed in step but missing in data
        msg.step = msg.width * 3 + int(rng.integers(1, 64))
        return msg, "data_length"
    if case == 3:  # zero size
        msg.height, msg.width = (0, msg.width) if rng.random() < 0.5 else (msg.height, 0)
        return msg, "size"
    if case == 4:  # huge size (never allocated)
        msg.height = int(rng.integers(codec.MAX_IMAGE_SIDE + 1, 2**32))
        return msg, "size"
    if case == 5:  # unknown encoding
        msg.encoding = str(rng.choice(["yuv422", "bayer_rggb8", "", "RGB8", "jpeg", "32FC1"]))
        return msg, "encoding"
    if case == 6:  # big-endian 16-bit
        msg.encoding, msg.is_bigendian = str(rng.choice(["mono16", "rgb16", "16UC1"])), 1
        msg.step, msg.data = msg.width * 2, bytes(msg.width * 2 * msg.height)
        return msg, "endianness"
    if case == 7:  # little-endian 16-bit: a supported encoding name that we do not support
        msg.encoding, msg.step = "mono16", msg.width * 2
        msg.data = bytes(msg.width * 2 * msg.height)
        return msg, "encoding"
    msg.data = bytes(msg.data) + bytes(int(rng.integers(1, 100)))  # too long
    return msg, "data_length"


def _garbage_compressed(rng):
    fmt = str(rng.choice(["jpeg", "png", "bmp", "rgb8; jpeg compressed bgr8"]))
    data = rng.integers(0, 256, int(rng.integers(0, 200)), dtype=np.uint8).tobytes()
    return CompressedImage(header=Header(frame_id="cam"), format=fmt, data=data)


def test_a_thousand_malformed_images(harness, ros, capfd):
    h = harness(subscribe=("class_mask", "color_mask", "overlay"),
                overrides={"subscribe_compressed": True, "error_log_throttle_s": 3600.0})
    capfd.readouterr()
    compressed_pub = h.probe.create_publisher(CompressedImage, "/image/compressed",
                                              ros.mods["rclpy.qos"].qos_profile_sensor_data)
    rng = np.random.default_rng(7)
    expected = collections.Counter()
    good_stamps = []
    for i in range(1100):
        good = image_msg(scene(height=16, width=24, shift=i), stamp_ns=NS + i * 10_000_000)
        if i % 100 == 99:  # good frames between the bad ones are still processed
            assert h.step(good)
            good_stamps.append(stamp_of(good))
            continue
        if i % 10 == 5:
            before = h.node.stats.snapshot()["frames_received"]
            compressed_pub.publish(_garbage_compressed(rng))
            h.spin(until=lambda: h.node.stats.snapshot()["frames_received"] > before)
            expected["compressed"] += 1
            continue
        bad, kind = _malformed(rng, good)
        with np.testing.assert_raises(codec.ImageDecodeError):
            codec.decode_image(bad)  # the oracle agrees the message is broken
        h.send(bad)
        expected[kind] += 1
        assert not h.node.process_pending()  # nothing was stored for it
    assert sum(expected.values()) >= 1000
    snap = h.node.stats.snapshot()
    assert snap["decode_errors_by_kind"] == dict(expected)
    assert snap["frames_processed"] == len(good_stamps) == 11
    for topic in ("class_mask", "color_mask", "overlay"):
        assert [stamp_of(m) for m in h.received[topic]] == good_stamps
    errors = _error_lines(capfd)
    assert len(errors) == len(expected)  # one line per kind, the rest throttled
    assert all("dropped an image" in text for text in errors)


def test_random_field_values_never_raise_out_of_the_callback(harness):
    h = harness(subscribe=("class_mask",), overrides={"error_log_throttle_s": 3600.0})
    rng = np.random.default_rng(11)
    decodable = 0
    for i in range(300):
        height, width = (int(v) for v in rng.integers(0, 40, 2))
        encoding = str(rng.choice(["rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16", "x"]))
        step = int(rng.integers(0, 200))
        data = rng.integers(0, 256, int(rng.integers(0, 3000)), dtype=np.uint8).tobytes()
        msg = Image(header=Header(frame_id="cam"), height=height, width=width,
                    encoding=encoding, is_bigendian=int(rng.integers(0, 2)), step=step, data=data)
        try:
            codec.decode_image(msg)
            decodable += 1
        except codec.ImageDecodeError:
            pass
        h.send(msg)
        h.node.process_pending()
    snap = h.node.stats.snapshot()
    assert snap["decode_errors"] == 300 - decodable
    assert snap["frames_processed"] + snap["segmentation_errors"] == decodable

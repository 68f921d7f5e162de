"""SegmentationNode outputs over real rclpy and DDS: schedule, headers, encodings, lazy outputs."""
import numpy as np
import pytest

from gsvnet_ros.labels import CLASS_NAMES
from node_harness import NS, image_msg, mono8, scene, stamp_of

PERIOD = 50_000_000  # 20 Hz stamps


def _send_clip(h, n, *, frame_id="cam", encoding="rgb8", start=NS, pad=0):
    for i in range(n):
        assert h.step(image_msg(scene(shift=i), encoding=encoding, frame_id=frame_id,
                                stamp_ns=start + i * PERIOD, pad=pad))


def test_keyframe_schedule_over_published_frames(harness_info):
    h = harness_info(overrides={"keyframe_interval": 3})
    _send_clip(h, 8)
    infos = h.received["info"]
    assert [m.is_keyframe for m in infos] == [i % 3 == 0 for i in range(8)]
    assert [m.frames_since_keyframe for m in infos] == [i % 3 for i in range(8)]
    assert [m.frame_index for m in infos] == list(range(8))
    assert infos[0].keyframe_reason == "first" and infos[3].keyframe_reason == "interval"
    assert all(m.keyframe_reason == "" for m in infos if not m.is_keyframe)
    assert infos[0].model_name == "swiftnet_r18" and infos[0].backend == "torch"
    assert all(m.total_ms > 0.0 for m in infos)


def test_every_output_copies_the_input_header(harness_info):
    h = harness_info()
    stamps = [NS + 123, 2 * NS + 456_789, 3 * NS]
    for i, stamp in enumerate(stamps):
        h.step(image_msg(scene(shift=i), frame_id="front_cam", stamp_ns=stamp))
    for topic in ("class_mask", "color_mask", "overlay", "info"):
        got = h.received[topic]
        assert [stamp_of(m) for m in got] == stamps, topic
        assert {m.header.frame_id for m in got} == {"front_cam"}, topic


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8", "mono8"])
@pytest.mark.parametrize("pad", [0, 5])
def test_supported_encodings_with_and_without_row_padding(harness, encoding, pad):
    h = harness(subscribe=("class_mask", "overlay"))
    rgb = scene()
    if encoding == "mono8":  # the node sees grey replicated to RGB
        rgb = np.repeat(rgb.mean(-1, keepdims=True).astype(np.uint8), 3, -1)
    h.step(image_msg(rgb, encoding=encoding, pad=pad, stamp_ns=NS))
    mask, over = h.received["class_mask"][0], h.received["overlay"][0]
    assert (mask.encoding, mask.height, mask.width, mask.step) == ("mono8", 64, 128, 128)
    assert over.encoding == "rgb8" and over.step == 3 * 128
    assert mono8(mask).max() < len(CLASS_NAMES)
    # The same picture in rgb8 gives the same labels whatever the encoding and padding.
    ref = harness(subscribe=("class_mask",), node_name="reference")
    ref.step(image_msg(rgb if encoding != "mono8" else rgb, encoding="rgb8", stamp_ns=NS))
    tolerance = 0 if encoding != "mono8" else 0  # mono8 was built from the same grey image
    assert np.count_nonzero(mono8(mask) != mono8(ref.received["class_mask"][0])) <= tolerance


def test_color_mask_and_overlay_only_computed_while_subscribed(harness, monkeypatch):
    import gsvnet_ros.codec as codec

    calls = {"color": 0, "overlay": 0}
    real_color, real_overlay = codec.labels_to_color, codec.overlay
    monkeypatch.setattr(codec, "labels_to_color",
                        lambda *a: calls.__setitem__("color", calls["color"] + 1) or real_color(*a))
    monkeypatch.setattr(codec, "overlay",
                        lambda *a: calls.__setitem__("overlay", calls["overlay"] + 1)
                        or real_overlay(*a))
    h = harness(subscribe=("class_mask",))
    _send_clip(h, 2)
    assert len(h.received["class_mask"]) == 2
    assert calls == {"color": 0, "overlay": 0}


def test_outputs_can_be_switched_off_at_run_time(harness, ros):
    Parameter = ros.mods["rclpy.parameter"].Parameter
    h = harness()
    results = h.node.set_parameters([Parameter("publish_overlay", value=False),
                                     Parameter("publish_color_mask", value=False)])
    assert all(r.successful for r in results)
    _send_clip(h, 2)
    assert len(h.received["class_mask"]) == 2
    assert h.received["overlay"] == [] and h.received["color_mask"] == []


def test_label_info_is_latched_for_late_subscribers(harness, ros):
    h = harness(subscribe=())
    late = ros.rclpy.create_node("late")
    got = []
    qos = ros.mods["rclpy.qos"]
    late.create_subscription(ros.msg("vision_msgs/msg/LabelInfo"), "/segmentation_node/label_info",
                             got.append, qos.QoSProfile(
                                 depth=1, durability=qos.DurabilityPolicy.TRANSIENT_LOCAL))
    h.executor.add_node(late)
    h.spin(until=lambda: got)
    h.drain(0.2)
    assert len(got) == 1
    names = {c.class_id: c.class_name for c in got[0].class_map}
    assert [names[i] for i in range(19)] == list(CLASS_NAMES) and names[255] == "unlabeled"
    late.destroy_node()


def test_info_is_not_published_without_gsvnet_ros_msgs(harness, ros):
    h = harness()
    topics = {p.topic_name for p in h.node.publishers}
    assert "/segmentation_node/info" not in topics
    assert {"/segmentation_node/class_mask", "/segmentation_node/color_mask",
            "/segmentation_node/overlay", "/segmentation_node/label_info",
            "/diagnostics"} <= topics


def test_without_vision_msgs_and_gsvnet_ros_msgs_the_node_says_so_once_and_segments(
        harness, monkeypatch, capfd):
    import sys

    from conftest import _purge_ros_layer

    for name in ("vision_msgs", "vision_msgs.msg"):  # gsvnet_ros_msgs: hidden by `ros` already
        monkeypatch.setitem(sys.modules, name, None)
    _purge_ros_layer()
    h = harness(subscribe=("class_mask",))
    topics = {p.topic_name for p in h.node.publishers}
    assert not topics & {"/segmentation_node/label_info", "/segmentation_node/info"}
    _send_clip(h, 3)
    assert len(h.received["class_mask"]) == 3
    log = capfd.readouterr().err
    assert log.count("~/label_info is off: could not import vision_msgs") == 1
    assert log.count("~/info is off: could not import gsvnet_ros_msgs") == 1


def test_network_mask_resolution_publishes_one_eighth_masks(harness):
    h = harness(overrides={"mask_resolution": "network"}, subscribe=("class_mask", "overlay"))
    h.step(image_msg(scene(height=60, width=100), stamp_ns=NS))
    mask = h.received["class_mask"][0]
    assert (mask.height, mask.width) == (8, 13)  # ceil(60/8), ceil(100/8)
    over = h.received["overlay"][0]
    assert (over.height, over.width) == (60, 100)  # the overlay stays at image size


def test_class_mask_matches_the_offline_segmenter(harness, backend):
    from gsvnet_ros.config import StreamConfig
    from gsvnet_ros.stream import VideoSegmenter

    h = harness(subscribe=("class_mask",))
    offline = VideoSegmenter(backend, StreamConfig(keyframe_interval=5))
    for i in range(6):
        rgb = scene(shift=2 * i)
        h.step(image_msg(rgb, stamp_ns=NS + i * PERIOD))
        expected = offline.step(rgb, NS + i * PERIOD).labels
        np.testing.assert_array_equal(mono8(h.received["class_mask"][-1]), expected)

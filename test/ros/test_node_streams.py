"""Per-camera state keyed by header.frame_id, and the keyframes forced by input changes."""
import numpy as np

from node_harness import NS, image_msg, mono8, scene

PERIOD = 50_000_000


def test_two_frame_ids_keep_separate_state(harness_info, backend):
    from gsvnet_ros.config import StreamConfig
    from gsvnet_ros.stream import VideoSegmenter

    h = harness_info(subscribe=("info", "class_mask"), overrides={"keyframe_interval": 3})
    offline = {cam: VideoSegmenter(backend, StreamConfig(keyframe_interval=3))
               for cam in ("left", "right")}
    expected = []
    for i in range(5):  # interleaved cameras with different content
        for cam, shift in (("left", i), ("right", 40 + 3 * i)):
            rgb = scene(shift=shift, seed=1 if cam == "left" else 2)
            h.step(image_msg(rgb, frame_id=cam, stamp_ns=NS + i * PERIOD))
            expected.append(offline[cam].step(rgb, NS + i * PERIOD).labels)
    infos = h.received["info"]
    for cam in ("left", "right"):
        mine = [m for m in infos if m.header.frame_id == cam]
        assert [m.frame_index for m in mine] == list(range(5))
        assert [m.is_keyframe for m in mine] == [True, False, False, True, False]
    for got, want in zip(h.received["class_mask"], expected):
        np.testing.assert_array_equal(mono8(got), want)  # no history mixed between cameras


def test_encoding_change_forces_a_keyframe(harness_info):
    h = harness_info(subscribe=("info",), overrides={"keyframe_interval": 10})
    h.step(image_msg(scene(), encoding="rgb8", stamp_ns=NS))
    h.step(image_msg(scene(shift=1), encoding="rgb8", stamp_ns=NS + PERIOD))
    h.step(image_msg(scene(shift=2), encoding="bgr8", stamp_ns=NS + 2 * PERIOD))
    h.step(image_msg(scene(shift=3), encoding="bgr8", stamp_ns=NS + 3 * PERIOD))
    assert [(m.is_keyframe, m.keyframe_reason) for m in h.received["info"]] == [
        (True, "first"), (False, ""), (True, "encoding_change"), (False, "")]


def test_size_change_gap_and_stamp_going_back_force_keyframes(harness_info):
    h = harness_info(subscribe=("info",), overrides={"keyframe_interval": 10, "max_gap_s": 0.2})
    h.step(image_msg(scene(), stamp_ns=NS))
    h.step(image_msg(scene(height=32, width=64), stamp_ns=NS + PERIOD))
    h.step(image_msg(scene(height=32, width=64), stamp_ns=NS + PERIOD + NS))  # 1 s gap
    h.step(image_msg(scene(height=32, width=64), stamp_ns=NS))  # bag loop
    assert [m.keyframe_reason for m in h.received["info"]] == [
        "first", "size_change", "gap", "stamp_backwards"]


def test_least_recently_seen_stream_is_forgotten_beyond_max_streams(harness_info):
    h = harness_info(subscribe=("info",), overrides={"max_streams": 2})
    for cam in ("a", "b", "c", "a"):
        h.step(image_msg(scene(), frame_id=cam, stamp_ns=NS))
    assert [m.keyframe_reason for m in h.received["info"]] == ["first"] * 4  # 'a' was evicted
    assert h.node.stats.snapshot()["frames_processed"] == 4

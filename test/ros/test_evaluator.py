"""SegmentationEvaluator: the same mIoU by keyframe distance as the offline computation."""
import json

import cv2
import numpy as np
import pytest

from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

from gsvnet_ros.config import StreamConfig
from gsvnet_ros.metrics import DistanceConfusion
from node_harness import NS, Harness, raw_image, scene, spin_until

PERIOD = 50_000_000
FRAMES = 8


def _truth(i, height=64, width=128):
    """Deterministic ground truth: blocks of trainIds with an unlabeled (255) border."""
    rng = np.random.default_rng(100 + i)
    labels = np.repeat(np.repeat(rng.integers(0, 19, (4, 8)), 16, 0), 16, 1).astype(np.uint8)
    labels[:, :4] = 255
    return labels[:height, :width]


def _image(rgb_or_labels, encoding, stamp, frame_id="cam"):
    return raw_image(rgb_or_labels, encoding, stamp_ns=stamp, frame_id=frame_id)


def _attach(h, evaluator, labels_pub):
    """Add the evaluator to the harness's executor and wait until DDS matched its inputs."""
    h.executor.add_node(evaluator)
    assert spin_until(h.executor, lambda: h.node._pub_mask.get_subscription_count() >= 1
                      and labels_pub.get_subscription_count() >= 1)


def _settle(h, evaluator, masks, labels):
    """Spin until the evaluator has received `masks` class masks and `labels` label images."""
    assert spin_until(h.executor, lambda: evaluator.masks_received >= masks
                      and evaluator.labels_received >= labels
                      and (not evaluator.use_info or len(evaluator._total_ms) >= masks)), \
        (evaluator.masks_received, evaluator.labels_received, masks, labels)


def _offline(backend, interval, resolution):
    from gsvnet_ros.stream import VideoSegmenter

    segmenter = VideoSegmenter(backend, StreamConfig(keyframe_interval=interval,
                                                     output_resolution=resolution))
    confusion = DistanceConfusion()
    for i in range(FRAMES):
        result = segmenter.step(scene(shift=3 * i), NS + i * PERIOD)
        truth = _truth(i)
        pred = result.labels
        if pred.shape != truth.shape:
            pred = cv2.resize(pred, truth.shape[::-1], interpolation=cv2.INTER_NEAREST)
        confusion.update(pred, truth, result.frames_since_keyframe)
    return confusion.summary()


def _run_live(env, backend, tmp_path, *, interval, mask_resolution, distance_source="auto"):
    from gsvnet_ros.ros.evaluator import SegmentationEvaluator

    h = Harness(env, backend, subscribe=(), overrides={"keyframe_interval": interval,
                                                       "mask_resolution": mask_resolution})
    evaluator = SegmentationEvaluator(parameter_overrides=[
        Parameter("report_path", value=str(tmp_path / "report.json")),
        Parameter("idle_timeout_s", value=0.2), Parameter("keyframe_interval", value=interval),
        Parameter("distance_source", value=distance_source)])
    labels_pub = h.probe.create_publisher(Image, "/camera/labels", 10)
    _attach(h, evaluator, labels_pub)
    for i in range(FRAMES):
        stamp = NS + i * PERIOD
        if i % 2:  # ground truth before or after the mask: pairing does not depend on order
            labels_pub.publish(_image(_truth(i), "mono8", stamp))
            _settle(h, evaluator, i, i + 1)
        assert h.step(_image(scene(shift=3 * i), "rgb8", stamp))
        if not i % 2:
            labels_pub.publish(_image(_truth(i), "mono8", stamp))
        _settle(h, evaluator, i + 1, i + 1)
    return h, evaluator


@pytest.mark.parametrize("mask_resolution", ["input", "network"])
def test_live_miou_equals_the_offline_computation(ros_info, backend, tmp_path, mask_resolution):
    from gsvnet_ros.bag.report import accuracy_section

    h, evaluator = _run_live(ros_info, backend, tmp_path, interval=3,
                             mask_resolution=mask_resolution)
    report = evaluator.build_report()
    offline = _offline(backend, 3, "full" if mask_resolution == "input" else "1/8")
    expected = accuracy_section(offline, labels_topic="/camera/labels", labelled_frames=FRAMES,
                                unmatched_labels=0)
    assert report["distance_source"] == "info"
    assert report["accuracy"] == expected
    assert set(report["accuracy"]["per_distance_miou"]) == {"0", "1", "2"}
    assert report["frames"] == FRAMES and report["keyframes"] == 3
    timing = report["timing"]
    assert timing["per_frame_ms"]["count"] == FRAMES - 1  # first frame left out as warm-up
    assert timing["keyframe_ms"]["count"] + timing["non_keyframe_ms"]["count"] == FRAMES - 1
    evaluator.destroy_node()
    h.close()


def test_schedule_distance_without_gsvnet_ros_msgs(ros, backend, tmp_path):
    h, evaluator = _run_live(ros, backend, tmp_path, interval=4, mask_resolution="input")
    report = evaluator.build_report()
    assert report["distance_source"] == "schedule"
    offline = _offline(backend, 4, "full")
    assert report["accuracy"]["per_distance_miou"] == {
        str(d): v for d, v in offline["per_distance_miou"].items()}
    assert report["accuracy"]["average_miou"] == offline["average_miou"]
    evaluator.destroy_node()
    h.close()


def test_report_is_written_after_idle_timeout_and_logged(ros_info, backend, tmp_path, capfd):
    h, evaluator = _run_live(ros_info, backend, tmp_path, interval=3, mask_resolution="input")
    h.spin(until=lambda: (tmp_path / "report.json").exists())
    written = json.loads((tmp_path / "report.json").read_text())
    assert written["accuracy"]["labelled_frames"] == FRAMES
    assert written["accuracy"]["average_miou"] == evaluator.build_report()["accuracy"][
        "average_miou"]
    logged = capfd.readouterr().err
    assert "[segmentation_evaluator]" in logged
    assert "distance from keyframe" in logged and "latency (ms)" in logged
    evaluator.destroy_node()
    h.close()


def test_latency_stats_are_exact():
    from gsvnet_ros.reporting import latency_stats

    stats = latency_stats([3.0, 1.5, 40.0, 2.25, 2.0])
    assert stats["count"] == 5 and stats["median"] == 2.25 and stats["max"] == 40.0
    assert stats["mean"] == pytest.approx(48.75 / 5)
    assert stats["p95"] == pytest.approx(40.0 - 0.2 * (40.0 - 3.0))
    assert latency_stats([])["median"] is None


def test_unmatched_and_bad_label_images_are_not_scored(ros_info, backend, tmp_path):
    h, evaluator = _run_live(ros_info, backend, tmp_path, interval=3, mask_resolution="input")
    pub = h.probe.create_publisher(Image, "/camera/labels", 10)
    assert spin_until(h.executor, lambda: pub.get_subscription_count() >= 1)
    pub.publish(_image(_truth(0), "mono8", 99 * NS))  # no mask with this stamp
    _settle(h, evaluator, FRAMES, FRAMES + 1)
    bad = _image(_truth(1), "mono8", 98 * NS)
    bad.encoding = "rgb8"
    pub.publish(bad)
    h.drain(0.3)  # rejected before it is counted: nothing to wait for
    report = evaluator.build_report()
    assert report["accuracy"]["labelled_frames"] == FRAMES
    assert report["accuracy"]["unmatched_labels"] == 1
    evaluator.destroy_node()
    h.close()


def _write_sequence(root, frames=9, size=(64, 32)):
    """A Cityscapes-layout snippet with dense labelIds (what gsvnet-bag convert reads)."""
    from gsvnet_ros.labels import LABEL_ID_TO_TRAIN_ID

    label_ids = np.array([i for i in range(256) if LABEL_ID_TO_TRAIN_ID[i] != 255] + [0], np.uint8)
    images = root / "leftImg8bit_sequence/val/synth"
    labels = root / "gtFine_sequence/val/synth"
    images.mkdir(parents=True)
    labels.mkdir(parents=True)
    for i in range(frames):
        stem = f"synth_000000_{i:06d}"
        rgb = scene(height=size[1], width=size[0], shift=2 * i)
        cv2.imwrite(str(images / f"{stem}_leftImg8bit.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        ids = label_ids[np.random.default_rng(i).integers(0, len(label_ids), (size[1] // 8,
                                                                               size[0] // 8))]
        cv2.imwrite(str(labels / f"{stem}_gtFine_labelIds.png"),
                    np.repeat(np.repeat(ids, 8, 0), 8, 1))


def to_rclpy(msg):
    """A rosbags sensor_msgs/Image as rclpy's class (what `ros2 bag play` would publish)."""
    stamp = msg.header.stamp
    out = Image(height=int(msg.height), width=int(msg.width), encoding=msg.encoding,
                is_bigendian=int(msg.is_bigendian), step=int(msg.step))
    out.header.frame_id = msg.header.frame_id
    out.header.stamp.sec, out.header.stamp.nanosec = int(stamp.sec), int(stamp.nanosec)
    out.data.frombytes(np.asarray(msg.data, np.uint8).tobytes())
    return out


def test_replaying_a_bag_gives_the_numbers_of_gsvnet_bag_segment(ros_info, backend, tmp_path):
    from gsvnet_ros.bag import BagReader, ConvertOptions, SegmentOptions, convert, segment_bag
    from gsvnet_ros.ros.evaluator import SegmentationEvaluator
    from gsvnet_ros.stream import VideoSegmenter

    _write_sequence(tmp_path / "data")
    bag = tmp_path / "bag"
    convert(tmp_path / "data", bag, ConvertOptions(progress=False))
    offline = segment_bag(bag, tmp_path / "out", lambda: VideoSegmenter(
        backend, StreamConfig(keyframe_interval=3)), SegmentOptions(progress=False)).report

    h = Harness(ros_info, backend, subscribe=(), overrides={"keyframe_interval": 3})
    evaluator = SegmentationEvaluator(parameter_overrides=[
        Parameter("report_path", value=str(tmp_path / "live.json"))])
    labels_pub = h.probe.create_publisher(Image, "/camera/labels", 10)
    _attach(h, evaluator, labels_pub)
    masks = labels = 0
    with BagReader(bag) as reader:  # bag order, as `ros2 bag play` publishes
        for item in reader.messages(["/camera/image_raw", "/camera/labels"]):
            if item.topic == "/camera/labels":
                labels_pub.publish(to_rclpy(item.msg))
                labels += 1
            else:
                assert h.step(to_rclpy(item.msg))
                masks += 1
            _settle(h, evaluator, masks, labels)
    live = evaluator.build_report()
    assert offline["accuracy"]["labelled_frames"] == 9
    assert live["accuracy"] == offline["accuracy"]
    assert live["keyframes"] == offline["keyframes"] and live["frames"] == offline["frames"]
    evaluator.destroy_node()
    h.close()

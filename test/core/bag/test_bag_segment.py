"""segment: output topics and headers, SegmentationInfo, report numbers, stamp pairing, previews."""
import json

import cv2
import numpy as np
import pytest

from gsvnet_ros.bag import BagReader, BagWriter, ConvertOptions, OutputExistsError, convert
from gsvnet_ros.bag.report import format_report
from gsvnet_ros.bag.segment import SegmentOptions, segment_bag
from gsvnet_ros.bag.typestore import IMAGE, SEGMENTATION_INFO, make_header, make_image, stamp_to_ns
from gsvnet_ros.codec import decode_image, encode_image
from gsvnet_ros.labels import PALETTE, label_ids_to_train_ids
from gsvnet_ros.metrics import DistanceConfusion

from bag_helpers import FakeSegmenter


@pytest.fixture
def image_bag(dataset, tmp_path):
    root, made = dataset
    convert(root, tmp_path / "in", ConvertOptions(progress=False))
    return tmp_path / "in", made


def _messages(bag, topics=None):
    with BagReader(bag) as reader:
        topics = topics or [t.name for t in reader.topics]
        return list(reader.messages(topics))


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_outputs_copy_the_input_header_and_hold_masks_and_info(image_bag, tmp_path, storage):
    bag, _ = image_bag
    segmenter = FakeSegmenter(keyframe_interval=2)
    result = segment_bag(bag, tmp_path / "out", lambda: segmenter,
                         SegmentOptions(storage=storage, progress=False))
    inputs = [m for m in _messages(bag, ["/camera/image_raw"])]
    out = _messages(tmp_path / "out")
    by_topic = {}
    for item in out:
        by_topic.setdefault(item.topic, []).append(item)
    assert {t: len(v) for t, v in by_topic.items()} == \
        {f"/segmentation_node/{name}": 6 for name in ("class_mask", "color_mask", "info")}
    assert by_topic["/segmentation_node/info"][0].msgtype == SEGMENTATION_INFO
    for i, src in enumerate(inputs):
        rgb = decode_image(src.msg)
        expected = rgb[:, :, 0] % 19
        mask, color, info = (by_topic[f"/segmentation_node/{name}"][i]
                             for name in ("class_mask", "color_mask", "info"))
        for item in (mask, color, info):
            assert item.timestamp == src.timestamp
            assert stamp_to_ns(item.msg.header.stamp) == stamp_to_ns(src.msg.header.stamp)
            assert item.msg.header.frame_id == "camera"
        assert mask.msg.encoding == "mono8" and color.msg.encoding == "rgb8"
        np.testing.assert_array_equal(decode_image(mask.msg)[:, :, 0], expected)
        np.testing.assert_array_equal(decode_image(color.msg), PALETTE[expected])
        assert (info.msg.frame_index, info.msg.is_keyframe, info.msg.frames_since_keyframe) == \
            (i, i % 2 == 0, i % 2)
        assert info.msg.keyframe_reason == ("first" if i == 0 else "interval" if i % 2 == 0 else "")
        assert (info.msg.model_name, info.msg.backend) == ("fake_net", "numpy")
        assert info.msg.total_ms == pytest.approx(11.0 if i % 2 == 0 else 3.0)
        assert info.msg.network_ms == pytest.approx(10.0 if i % 2 == 0 else 2.0)
    assert [stamp for _, stamp in segmenter.calls] == [stamp_to_ns(m.msg.header.stamp) for m in inputs]
    assert result.report["frames"] == 6 and result.report["keyframes"] == 3


def test_report_timing_and_accuracy_match_a_direct_computation(image_bag, tmp_path):
    bag, made = image_bag
    report_path = tmp_path / "report.json"
    result = segment_bag(bag, tmp_path / "out", lambda: FakeSegmenter(keyframe_interval=3),
                         SegmentOptions(report=report_path, progress=False))
    report = json.loads(report_path.read_text())
    assert report == json.loads(json.dumps(result.report))
    timing = report["timing"]
    # frames 0..5, keyframes at 0 and 3; the first keyframe and first non-keyframe are warm-up
    assert timing["warmup_frames_excluded"] == 2
    keyframe, other = timing["keyframe_ms"], timing["non_keyframe_ms"]
    assert keyframe["count"] == 1 and keyframe["median"] == pytest.approx(11.0)
    assert other["count"] == 3 and other["p95"] == pytest.approx(3.0)
    assert timing["per_frame_ms"]["mean"] == pytest.approx((11 + 3 * 3) / 4)
    assert timing["speed_up_over_per_frame"] == pytest.approx(11 / ((11 + 3 * 3) / 4))
    assert timing["throughput_fps"] > 0 and report["end_to_end_fps"] > 0
    direct = DistanceConfusion()
    for i, key in enumerate(sorted(made)):
        rgb, label_ids = made[key]
        direct.update(rgb[:, :, 0] % 19, label_ids_to_train_ids(label_ids), i % 3)
    expected = direct.summary()
    acc = report["accuracy"]
    assert acc["labels_topic"] == "/camera/labels" and acc["labelled_frames"] == 6
    assert acc["unmatched_labels"] == 0
    assert acc["per_distance_miou"] == {str(d): v for d, v in expected["per_distance_miou"].items()}
    assert acc["average_miou"] == expected["average_miou"]
    assert acc["minimum_miou"] == expected["minimum_miou"]
    table = format_report(result.report)
    assert "keyframe" in table and "speed-up" in table and "distance from keyframe" in table


def test_latency_statistics_keep_a_lone_frame_of_its_kind():
    from gsvnet_ros.bag.report import TimingLog, _timing_section

    log = TimingLog()
    for total, key in ((50.0, True), (5.0, False), (7.0, False)):
        log.add(total, total / 1e3, key)
    timing = _timing_section(log)
    assert timing["keyframe_ms"]["count"] == 1 and timing["non_keyframe_ms"]["count"] == 1
    assert timing["non_keyframe_ms"]["median"] == 7.0 and timing["warmup_frames_excluded"] == 1
    assert timing["throughput_fps"] == pytest.approx(2 / 0.057)


def test_labels_pair_by_exact_stamp_in_any_order_and_strays_are_counted(tmp_path):
    frames = np.random.default_rng(3).integers(0, 256, (3, 16, 24, 3), dtype=np.uint8)
    truth = (frames[..., 0] % 19).astype(np.uint8)
    truth[1] = (truth[1] + 1) % 19  # frame 1 entirely wrong
    stamps = [1_000_000_000 * 1_700_000_000 + i * 50_000_000 for i in range(3)]
    with BagWriter(tmp_path / "in", storage="mcap") as bag:
        bag.add_topic("/cam/image", IMAGE)
        bag.add_topic("/camera/labels", IMAGE)
        ts = bag.typestore
        for stamp, rgb, gt in zip(stamps, frames, truth):
            header = make_header(ts, stamp, "cam")
            # labels recorded before their image, and an extra label with a stamp of no image
            bag.write("/camera/labels", stamp - 1, make_image(ts, header, encode_image(gt, "mono8")))
            bag.write("/cam/image", stamp, make_image(ts, header, encode_image(rgb, "bgr8")))
        stray = make_header(ts, stamps[-1] + 1, "cam")
        bag.write("/camera/labels", stamps[-1] + 2,
                  make_image(ts, stray, encode_image(truth[0], "mono8")))
    result = segment_bag(tmp_path / "in", tmp_path / "out", lambda: FakeSegmenter(keyframe_interval=10),
                         SegmentOptions(progress=False))
    acc = result.report["accuracy"]
    assert acc["labelled_frames"] == 3 and acc["unmatched_labels"] == 1
    assert acc["per_distance_miou"]["0"] == 1.0 and acc["per_distance_miou"]["1"] == 0.0
    assert acc["per_distance_miou"]["2"] == 1.0


def test_no_labels_topic_means_no_accuracy_section(image_bag, tmp_path, dataset):
    root, _ = dataset
    convert(root, tmp_path / "nolabels", ConvertOptions(labels="none", progress=False))
    result = segment_bag(tmp_path / "nolabels", tmp_path / "out", FakeSegmenter,
                         SegmentOptions(progress=False))
    assert result.report["accuracy"] is None


def test_png_strip_and_mp4_overlay_previews(image_bag, tmp_path):
    bag, _ = image_bag
    segment_bag(bag, tmp_path / "out", FakeSegmenter,
                SegmentOptions(overlay=tmp_path / "strip.png", overlay_frames=4, progress=False))
    strip = cv2.imread(str(tmp_path / "strip.png"))
    assert strip.shape == (24, 4 * 40, 3)
    segment_bag(bag, tmp_path / "out2", FakeSegmenter,
                SegmentOptions(overlay=tmp_path / "overlay.mp4", progress=False))
    video = cv2.VideoCapture(str(tmp_path / "overlay.mp4"))
    count = 0
    while video.read()[0]:
        count += 1
    assert count == 6 and video.get(cv2.CAP_PROP_FPS) == pytest.approx(17.0, abs=0.5)
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]


def test_existing_outputs_are_refused_before_any_work_unless_overwrite(image_bag, tmp_path):
    bag, _ = image_bag
    (tmp_path / "r.json").write_text("{}")
    with pytest.raises(OutputExistsError, match="r.json exists already"):
        segment_bag(bag, tmp_path / "out", lambda: pytest.fail("built too early"),
                    SegmentOptions(report=tmp_path / "r.json", progress=False))
    assert not (tmp_path / "out").exists()
    segment_bag(bag, tmp_path / "out", FakeSegmenter,
                SegmentOptions(report=tmp_path / "r.json", overwrite=True, progress=False))
    assert json.loads((tmp_path / "r.json").read_text())["frames"] == 6


def test_a_failing_segmenter_leaves_no_output(image_bag, tmp_path):
    bag, _ = image_bag

    class Broken(FakeSegmenter):
        def step(self, frame_rgb, stamp_ns, *, force_reason=None):
            if self.index == 3:
                raise ValueError("non-finite logits")
            return super().step(frame_rgb, stamp_ns)

    from gsvnet_ros.bag import SegmenterError
    with pytest.raises(SegmenterError, match="non-finite logits"):
        segment_bag(bag, tmp_path / "out", Broken,
                    SegmentOptions(report=tmp_path / "r.json", overlay=tmp_path / "o.mp4",
                                   progress=False))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cityscapes", "in"]


def test_compressed_image_topics_are_decoded_and_segmented(tmp_path):
    rgb = np.random.default_rng(5).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    with BagWriter(tmp_path / "in") as bag:
        bag.add_topic("/cam/image/compressed", "sensor_msgs/msg/CompressedImage")
        ts = bag.typestore
        msg = ts.types["sensor_msgs/msg/CompressedImage"](
            header=make_header(ts, 42, "cam"), format="rgb8; png compressed bgr8", data=png.ravel())
        bag.write("/cam/image/compressed", 42, msg)
    segmenter = FakeSegmenter()
    result = segment_bag(tmp_path / "in", tmp_path / "out", lambda: segmenter,
                         SegmentOptions(progress=False, output_ns="/seg"))
    np.testing.assert_array_equal(segmenter.calls[0][0], rgb)
    (mask,) = _messages(tmp_path / "out", ["/seg/class_mask"])
    assert mask.timestamp == 42 and mask.msg.header.frame_id == "cam"
    assert result.report["image_topic"] == "/cam/image/compressed" and result.report["frames"] == 1


def test_pipelined_and_sequential_runs_write_the_same_outputs(image_bag, tmp_path):
    """A real VideoSegmenter goes through segment() by default and step() with pipelined=False: the same
    masks, infos and accuracy; a segmenter with step() only always runs sequentially."""
    import torch

    from gsvnet_ros.backends.torch_backend import TorchBackend
    from gsvnet_ros.config import ModelConfig, StreamConfig
    from gsvnet_ros.models.gsvnet import build_gsvnet
    from gsvnet_ros.stream import VideoSegmenter

    bag, _ = image_bag
    torch.manual_seed(0)
    backend = TorchBackend(build_gsvnet(ModelConfig(flow="dis")), torch.device("cpu"))
    calls = {"segment": 0}

    class Counting(VideoSegmenter):
        def segment(self, frames):
            calls["segment"] += 1
            return super().segment(frames)

    outputs, reports = {}, {}
    for pipelined in (True, False):
        out = tmp_path / f"out_{pipelined}"
        result = segment_bag(bag, out, lambda: Counting(backend, StreamConfig(keyframe_interval=3)),
                             SegmentOptions(progress=False, pipelined=pipelined))
        outputs[pipelined] = [(m.topic, m.timestamp, bytes(m.msg.data) if m.topic.endswith("mask") else
                               (m.msg.frame_index, m.msg.is_keyframe, m.msg.keyframe_reason))
                              for m in _messages(out)]
        reports[pipelined] = result.report
    assert calls["segment"] == 1  # only the pipelined run
    assert outputs[True] == outputs[False] and len(outputs[True]) == 18
    assert reports[True]["accuracy"] == reports[False]["accuracy"] and reports[True]["frames"] == 6
    assert reports[True]["timing"]["throughput_fps"] > 0


def test_a_pipelined_run_names_the_frame_the_segmenter_failed_on_and_keeps_nothing(image_bag, tmp_path,
                                                                                  monkeypatch):
    import torch

    from gsvnet_ros.backends.torch_backend import TorchBackend
    from gsvnet_ros.bag.errors import SegmenterError
    from gsvnet_ros.config import ModelConfig, StreamConfig
    from gsvnet_ros.models.gsvnet import build_gsvnet
    from gsvnet_ros.stream import VideoSegmenter

    bag, _ = image_bag
    torch.manual_seed(0)
    backend = TorchBackend(build_gsvnet(ModelConfig(flow="dis")), torch.device("cpu"))
    propagate, calls = backend.propagate, []

    def failing_second(*args, **kwargs):  # frame 2: the second propagated frame
        calls.append(1)
        out = propagate(*args, **kwargs)
        return out * float("nan") if len(calls) == 2 else out

    monkeypatch.setattr(backend, "propagate", failing_second)
    stamps = [stamp_to_ns(m.msg.header.stamp) for m in _messages(bag, ["/camera/image_raw"])]
    with pytest.raises(SegmenterError, match=f"segmentation failed on the frame at {stamps[2]} ns: .*NaN"):
        segment_bag(bag, tmp_path / "out", lambda: VideoSegmenter(backend, StreamConfig(keyframe_interval=10)),
                    SegmentOptions(progress=False))
    assert not (tmp_path / "out").exists()

"""convert -> read back, sqlite3 and mcap: frames, stamps, encodings, labels survive exactly."""
import cv2
import numpy as np
import pytest

from gsvnet_ros.bag import (BagReader, ConvertOptions, OutputExistsError, SourceError, bag_info,
                            convert)
from gsvnet_ros.bag.convert import CITYSCAPES_FPS, SNIPPET_GAP_NS, START_STAMP_NS
from gsvnet_ros.bag.typestore import stamp_to_ns
from gsvnet_ros.codec import decode_image
from gsvnet_ros.labels import label_ids_to_train_ids

from bag_helpers import write_sequence

PERIOD_NS = round(1e9 / CITYSCAPES_FPS)


def _read_all(bag):
    with BagReader(bag) as reader:
        topics = {t.name: t for t in reader.topics}
        messages = list(reader.messages(list(topics)))
    return topics, messages


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8"])
@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_frames_stamps_encoding_and_dense_labels_survive_a_round_trip(dataset, tmp_path, storage,
                                                                      encoding):
    root, made = dataset
    out = tmp_path / "out_bag"
    summary = convert(root, out, ConvertOptions(storage=storage, encoding=encoding, progress=False))
    assert summary.frames == 6 and summary.labelled_frames == 6 and summary.snippets == 2
    topics, messages = _read_all(out)
    assert {n: (t.msgtype, t.count) for n, t in topics.items()} == {
        "/camera/image_raw": ("sensor_msgs/msg/Image", 6),
        "/camera/camera_info": ("sensor_msgs/msg/CameraInfo", 6),
        "/camera/labels": ("sensor_msgs/msg/Image", 6)}
    images = [m for m in messages if m.topic == "/camera/image_raw"]
    labels = {stamp_to_ns(m.msg.header.stamp): m.msg for m in messages if m.topic == "/camera/labels"}
    expected = [made[key] for key in sorted(made)]
    stamps = []
    for item, (rgb, label_ids) in zip(images, expected):
        stamp = stamp_to_ns(item.msg.header.stamp)
        assert item.timestamp == stamp and item.msg.header.frame_id == "camera"
        assert item.msg.encoding == encoding
        np.testing.assert_array_equal(decode_image(item.msg), rgb)
        assert labels[stamp].encoding == "mono8" and labels[stamp].header.frame_id == "camera"
        np.testing.assert_array_equal(decode_image(labels[stamp])[:, :, 0],
                                      label_ids_to_train_ids(label_ids))
        stamps.append(stamp)
    assert stamps[:3] == [START_STAMP_NS + i * PERIOD_NS for i in range(3)]
    assert stamps[4] - stamps[3] == stamps[1] - stamps[0] == PERIOD_NS
    assert stamps[3] - stamps[2] == SNIPPET_GAP_NS >= 1_000_000_000  # a consumer's gap rule resets
    info = bag_info(out)
    assert info.storage == storage and info.metadata_version == 8 and info.message_count == 18


def test_camera_info_is_a_plausible_pinhole_for_the_image_size(dataset, tmp_path):
    root, _ = dataset
    convert(root, tmp_path / "b", ConvertOptions(labels="none", limit=1, progress=False))
    _, messages = _read_all(tmp_path / "b")
    (info,) = [m.msg for m in messages if m.topic == "/camera/camera_info"]
    k = info.k.reshape(3, 3)
    assert (info.width, info.height) == (40, 24) and info.distortion_model == "plumb_bob"
    assert k[0, 0] == k[1, 1] > 40 * 0.5 and k[2, 2] == 1.0
    assert 0 < k[0, 2] < 40 and 0 < k[1, 2] < 24 and not info.d.any()


def test_sparse_labels_are_only_the_gtfine_frame_of_each_snippet(dataset, tmp_path):
    root, made = dataset
    summary = convert(root, tmp_path / "b", ConvertOptions(labels="sparse", progress=False))
    assert summary.labelled_frames == 2
    _, messages = _read_all(tmp_path / "b")
    images = [m for m in messages if m.topic == "/camera/image_raw"]
    labelled = [m for m in messages if m.topic == "/camera/labels"]
    assert [stamp_to_ns(m.msg.header.stamp) for m in labelled] == \
        [stamp_to_ns(images[i].msg.header.stamp) for i in (2, 5)]  # frame 19 of each snippet
    np.testing.assert_array_equal(decode_image(labelled[1].msg)[:, :, 0],
                                  label_ids_to_train_ids(made[(1, 19)][1]))


def test_labels_none_writes_no_label_topic_and_limit_caps_frames(dataset, tmp_path):
    root, _ = dataset
    summary = convert(root, tmp_path / "b", ConvertOptions(labels="none", limit=4, progress=False))
    topics, _ = _read_all(tmp_path / "b")
    assert summary.frames == 4 and "/camera/labels" not in topics
    assert topics["/camera/image_raw"].count == 4


def test_dense_falls_back_to_gtfine_when_there_is_no_gtfine_sequence(tmp_path):
    write_sequence(tmp_path / "ds", dense=False, snippets=1)
    summary = convert(tmp_path / "ds", tmp_path / "b", ConvertOptions(progress=False))
    assert summary.labelled_frames == 1


def test_a_sequence_folder_and_options_for_topic_frame_id_and_fps(dataset, tmp_path):
    root, _ = dataset
    folder = root / "leftImg8bit_sequence" / "val" / "synthcity"
    convert(folder, tmp_path / "b", ConvertOptions(topic="/cam0/image", frame_id="cam0", fps=10.0,
                                                   storage="mcap", progress=False))
    topics, messages = _read_all(tmp_path / "b")
    assert set(topics) == {"/cam0/image", "/cam0/camera_info", "/cam0/labels"}
    stamps = [stamp_to_ns(m.msg.header.stamp) for m in messages if m.topic == "/cam0/image"]
    assert stamps[1] - stamps[0] == 100_000_000
    assert {m.msg.header.frame_id for m in messages} == {"cam0"}


def test_a_video_file_converts_at_its_own_frame_rate(tmp_path):
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 25, (32, 16))
    assert writer.isOpened()
    for i in range(5):
        writer.write(np.full((16, 32, 3), 40 * i, np.uint8))
    writer.release()
    summary = convert(video, tmp_path / "b", ConvertOptions(limit=4, progress=False))
    topics, messages = _read_all(tmp_path / "b")
    images = [m.msg for m in messages if m.topic == "/camera/image_raw"]
    assert summary.frames == 4 and len(images) == 4 and "/camera/labels" not in topics
    assert stamp_to_ns(images[1].header.stamp) - stamp_to_ns(images[0].header.stamp) == 40_000_000
    assert abs(int(decode_image(images[3]).mean()) - 120) < 8


def test_existing_output_is_an_error_unless_overwrite(dataset, tmp_path):
    root, _ = dataset
    out = tmp_path / "b"
    convert(root, out, ConvertOptions(labels="none", limit=2, progress=False))
    with pytest.raises(OutputExistsError):
        convert(root, out, ConvertOptions(labels="none", limit=3, progress=False))
    assert bag_info(out).message_count == 4  # untouched
    convert(root, out, ConvertOptions(labels="none", limit=3, overwrite=True, progress=False))
    assert bag_info(out).message_count == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "cityscapes"]  # no .partial left


def test_output_files_are_named_after_the_bag_not_the_partial_folder(dataset, tmp_path):
    root, _ = dataset
    convert(root, tmp_path / "b", ConvertOptions(limit=1, storage="mcap", progress=False))
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["b.mcap", "metadata.yaml"]


def test_a_missing_split_names_the_splits_there_are(dataset, tmp_path):
    root, _ = dataset
    with pytest.raises(SourceError, match="no split 'train'.*splits are: val"):
        convert(root, tmp_path / "b", ConvertOptions(split="train", progress=False))
    assert convert(root, tmp_path / "b", ConvertOptions(split="val", progress=False)).frames == 6


def test_a_source_without_frames_fails_and_leaves_nothing(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no \\*_leftImg8bit.png frames"):
        convert(tmp_path / "empty", tmp_path / "b", ConvertOptions(progress=False))
    with pytest.raises(SourceError, match="does not exist"):
        convert(tmp_path / "missing", tmp_path / "b", ConvertOptions(progress=False))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


def test_a_broken_frame_mid_sequence_leaves_no_partial_output(dataset, tmp_path):
    root, _ = dataset
    broken = sorted((root / "leftImg8bit_sequence" / "val" / "synthcity").glob("*.png"))[3]
    broken.write_bytes(b"not a png")
    with pytest.raises(SourceError, match="cannot read image"):
        convert(root, tmp_path / "b", ConvertOptions(progress=False))
    assert not (tmp_path / "b").exists() and not (tmp_path / "b.partial").exists()

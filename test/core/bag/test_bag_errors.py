"""Broken inputs: one-line errors, exit status 2, no traceback, nothing left behind."""
import shutil

import numpy as np
import pytest

from gsvnet_ros.bag import (BagCorruptError, BagImageError, BagMetadataError, BagNotFoundError,
                            BagWriter, ConvertOptions, TopicError, bag_info, convert)
from gsvnet_ros.bag.segment import SegmentOptions, segment_bag
from gsvnet_ros.bag.typestore import IMAGE, make_header, make_image
from gsvnet_ros.cli.bag import main
from gsvnet_ros.codec import encode_image

from bag_helpers import FakeSegmenter, real_bags, write_sequence


def _storage_file(bag):
    return next(p for p in bag.iterdir() if p.suffix in (".db3", ".mcap"))


def _cut(bag, dst, fraction):
    shutil.copytree(bag, dst)
    storage = _storage_file(dst)
    data = storage.read_bytes()
    storage.write_bytes(data[: int(len(data) * fraction)])
    return dst


@pytest.fixture(params=["sqlite3", "mcap"])
def image_bag(request, tmp_path):
    write_sequence(tmp_path / "ds", snippets=2, frames=tuple(range(12, 20)), size=(48, 32))
    bag = tmp_path / f"bag_{request.param}"
    convert(tmp_path / "ds", bag, ConvertOptions(storage=request.param, progress=False))
    return bag


def _assert_one_line_error(capsys, *needles):
    captured = capsys.readouterr()
    assert captured.err.startswith("gsvnet-bag: error: ") and captured.err.count("\n") == 1
    assert "Traceback" not in captured.err + captured.out
    for needle in needles:
        assert needle in captured.err
    return captured.err


@pytest.mark.parametrize("fraction", [0.5, 0.99])
def test_truncated_bag_is_a_corrupt_bag_error_for_info_and_segment(image_bag, tmp_path, capsys,
                                                                    fraction):
    cut = _cut(image_bag, tmp_path / "cut", fraction)
    with pytest.raises(BagCorruptError):
        bag_info(cut)
    segmenter = FakeSegmenter()
    with pytest.raises(BagCorruptError):
        segment_bag(cut, tmp_path / "out", lambda: segmenter,
                    SegmentOptions(progress=False, report=tmp_path / "r.json",
                                   overlay=tmp_path / "o.png"))
    assert main(["info", str(cut)]) == 2
    _assert_one_line_error(capsys, str(cut))
    leftovers = {p.name for p in tmp_path.iterdir()}
    assert leftovers == {"ds", image_bag.name, "cut"}  # no out, out.partial, r.json, o.png


def test_truncated_real_recordings_fail_cleanly(tmp_path, capsys):
    bags = real_bags()
    if not bags:
        pytest.skip("real recordings not found")
    for i, bag in enumerate(bags):
        cut = _cut(bag, tmp_path / f"cut{i}", 0.5)
        assert main(["info", str(cut)]) == 2, bag
        _assert_one_line_error(capsys, "truncated or corrupt")
        assert main(["segment", str(cut), str(tmp_path / "out")]) == 2
        _assert_one_line_error(capsys)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


def test_storage_file_replaced_by_garbage_is_corrupt(image_bag, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(image_bag, bad)
    _storage_file(bad).write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(BagCorruptError):
        bag_info(bad)


def test_missing_metadata_yaml_is_a_metadata_error(image_bag, tmp_path, capsys):
    bad = tmp_path / "nometa"
    shutil.copytree(image_bag, bad)
    (bad / "metadata.yaml").unlink()
    with pytest.raises(BagMetadataError, match="has no metadata.yaml"):
        bag_info(bad)
    assert main(["segment", str(bad), str(tmp_path / "out")]) == 2
    _assert_one_line_error(capsys, "metadata.yaml")
    assert main(["info", str(tmp_path / "nowhere")]) == 2
    _assert_one_line_error(capsys, "does not exist")
    assert not (tmp_path / "out").exists()


def test_invalid_metadata_yaml_is_a_metadata_error(image_bag, tmp_path):
    bad = tmp_path / "badmeta"
    shutil.copytree(image_bag, bad)
    (bad / "metadata.yaml").write_text("rosbag2_bagfile_information: [unclosed\n")
    with pytest.raises(BagMetadataError):
        bag_info(bad)
    (bad / "metadata.yaml").write_text("rosbag2_bagfile_information:\n  version: 8\n")
    with pytest.raises(BagMetadataError):
        bag_info(bad)


def test_a_storage_file_path_resolves_to_its_bag_and_a_missing_bag_is_named(image_bag, tmp_path):
    assert bag_info(_storage_file(image_bag)).path == image_bag
    with pytest.raises(BagNotFoundError):
        bag_info(tmp_path / "missing")


def _write_bag(path, encoding, data_len):
    with BagWriter(path) as bag:
        bag.add_topic("/cam/image", IMAGE)
        typestore = bag.typestore
        header = make_header(typestore, 1_700_000_000_000_000_000, "cam")
        msg = typestore.types[IMAGE](header=header, height=4, width=6, encoding=encoding,
                                     is_bigendian=0, step=12, data=np.zeros(data_len, np.uint8))
        bag.write("/cam/image", 1_700_000_000_000_000_000, msg)


def test_unknown_image_encoding_is_a_one_line_error_and_no_output(tmp_path, capsys):
    _write_bag(tmp_path / "yuv", "yuv422", 48)
    with pytest.raises(BagImageError, match="unknown image encoding 'yuv422'; expected one of rgb8"):
        segment_bag(tmp_path / "yuv", tmp_path / "out", FakeSegmenter, SegmentOptions(progress=False))
    assert main(["segment", str(tmp_path / "yuv"), str(tmp_path / "out"), "--report",
                 str(tmp_path / "r.json")]) == 2
    _assert_one_line_error(capsys, "/cam/image", "yuv422")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["yuv"]


def test_image_with_wrong_data_length_names_the_topic_and_stamp(tmp_path):
    _write_bag(tmp_path / "short", "mono8", 47)
    with pytest.raises(BagImageError, match="at 1700000000000000000 ns.*47 bytes \\(truncated\\)"):
        segment_bag(tmp_path / "short", tmp_path / "out", FakeSegmenter, SegmentOptions(progress=False))


def test_several_image_topics_need_topic_and_are_listed(tmp_path):
    with BagWriter(tmp_path / "two") as bag:
        bag.add_topic("/left/image", IMAGE)
        bag.add_topic("/right/image/compressed", "sensor_msgs/msg/CompressedImage")
    with pytest.raises(TopicError, match="several image topics.*/left/image "
                                         "\\(sensor_msgs/msg/Image\\), /right/image/compressed "
                                         ".*choose one with --topic"):
        segment_bag(tmp_path / "two", tmp_path / "out", FakeSegmenter, SegmentOptions(progress=False))
    with pytest.raises(TopicError, match="has no messages"):
        segment_bag(tmp_path / "two", tmp_path / "out", FakeSegmenter,
                    SegmentOptions(progress=False, topic="/left/image"))
    with pytest.raises(TopicError, match="topic /nope is not in .* topics are: /left/image"):
        segment_bag(tmp_path / "two", tmp_path / "out", FakeSegmenter,
                    SegmentOptions(progress=False, topic="/nope"))


def test_cli_usage_errors_exit_2(tmp_path, capsys, image_bag):
    assert main(["convert", str(tmp_path / "ds"), str(image_bag)]) == 2
    _assert_one_line_error(capsys, "exists already", "--overwrite")
    assert main(["convert", str(tmp_path / "ds"), str(tmp_path / "b"), "--limit", "0"]) == 2
    _assert_one_line_error(capsys, "limit")
    assert main(["segment", str(image_bag), str(tmp_path / "o"), "--overlay", "x.gif"]) == 2
    _assert_one_line_error(capsys, ".png")
    assert main(["bogus"]) == 2
    assert not (tmp_path / "b").exists() and not (tmp_path / "o").exists()


def test_ground_truth_that_is_not_train_ids_is_a_named_error(tmp_path):
    with BagWriter(tmp_path / "in") as bag:
        bag.add_topic("/cam/image", IMAGE)
        bag.add_topic("/camera/labels", IMAGE)
        ts = bag.typestore
        header = make_header(ts, 7, "cam")
        frame = encode_image(np.zeros((4, 6, 3), np.uint8), "rgb8")
        bag.write("/cam/image", 7, make_image(ts, header, frame))
        label_ids = np.full((4, 6), 26, np.uint8)  # labelId of 'car', not a trainId
        bag.write("/camera/labels", 7, make_image(ts, header, encode_image(label_ids, "mono8")))
    with pytest.raises(BagImageError, match="ground truth on /camera/labels: .*expected mono8 trainIds"):
        segment_bag(tmp_path / "in", tmp_path / "out", FakeSegmenter, SegmentOptions(progress=False))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]

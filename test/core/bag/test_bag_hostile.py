"""Hostile bags: oversized or mislabelled images, malformed metadata.yaml, unusable output paths.

Each is one line on stderr, exit status 2, no traceback and nothing written.
"""
import shutil

import cv2
import numpy as np
import pytest

from gsvnet_ros import codec
from gsvnet_ros.bag import BagImageError, BagMetadataError, BagWriter, OutputPathError, bag_info
from gsvnet_ros.bag import segment as segment_module
from gsvnet_ros.bag.segment import SegmentOptions, segment_bag
from gsvnet_ros.bag.typestore import COMPRESSED_IMAGE, IMAGE, make_header, make_image
from gsvnet_ros.cli.bag import main
from gsvnet_ros.codec import encode_image

from bag_helpers import FakeSegmenter

STAMP = 1_700_000_000_000_000_000


def _jpeg(width=16, height=16):
    rgb = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    data = cv2.imencode(".jpg", rgb)[1].tobytes()
    at = data.index(b"\xff\xc0")  # SOF0: FF C0, length (2), precision (1), height (2), width (2)
    return data[:at + 5] + height.to_bytes(2, "big") + width.to_bytes(2, "big") + data[at + 9:]


def _compressed_bag(path, fmt, data, frames=2):
    with BagWriter(path) as bag:
        bag.add_topic("/cam/image/compressed", COMPRESSED_IMAGE)
        ts = bag.typestore
        for i in range(frames):
            msg = ts.types[COMPRESSED_IMAGE](header=make_header(ts, STAMP + i, "cam"), format=fmt,
                                             data=np.frombuffer(data, np.uint8))
            bag.write("/cam/image/compressed", STAMP + i, msg)
    return path


def _raw_bag(path, frames=3, side=64):
    frame = encode_image(np.zeros((side, side, 3), np.uint8), "rgb8")
    with BagWriter(path) as bag:
        bag.add_topic("/cam/image", IMAGE)
        for i in range(frames):
            bag.write("/cam/image", STAMP + i,
                      make_image(bag.typestore, make_header(bag.typestore, STAMP + i, "cam"), frame))
    return path


@pytest.fixture
def fake_segmenter(monkeypatch):
    """`gsvnet-bag segment` with the FakeSegmenter instead of torch."""
    monkeypatch.setattr(segment_module, "build_segmenter", lambda *a, **k: FakeSegmenter())


def _one_line_error(capsys, *needles):
    captured = capsys.readouterr()
    assert captured.err.startswith("gsvnet-bag: error: ") and captured.err.count("\n") == 1, \
        captured.err
    assert "Traceback" not in captured.err + captured.out
    for needle in needles:
        assert needle in captured.err, captured.err
    return captured.err


def test_a_jpeg_claiming_60000x60000_is_rejected_from_its_header(tmp_path, capsys, monkeypatch,
                                                                 fake_segmenter):
    bag = _compressed_bag(tmp_path / "in", "jpeg", _jpeg(60000, 60000))
    monkeypatch.setattr(codec.cv2, "imdecode", lambda *a: pytest.fail("cv2.imdecode was called"))
    assert main(["segment", str(bag), str(tmp_path / "out"), "--report", str(tmp_path / "r.json")]) == 2
    _one_line_error(capsys, "/cam/image/compressed", f"at {STAMP} ns", "60000x60000")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_max_image_pixels_is_passed_on_and_too_large_images_are_errors(tmp_path, capsys,
                                                                        fake_segmenter):
    bag = _raw_bag(tmp_path / "in")  # 64 x 64 = 4096 pixels
    assert main(["segment", str(bag), str(tmp_path / "out"), "--max-image-pixels", "4095"]) == 2
    _one_line_error(capsys, "/cam/image", "4096 pixels", "max_pixels = 4095")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()
    assert main(["segment", str(bag), str(tmp_path / "out"), "--quiet",
                 "--max-image-pixels", "4096"]) == 0
    assert (tmp_path / "out" / "metadata.yaml").is_file()
    for bad in ("0", "-5"):
        assert main(["segment", str(bag), str(tmp_path / "o2"), "--max-image-pixels", bad]) == 2
        _one_line_error(capsys, "--max-image-pixels")
    with pytest.raises(BagImageError, match="too_large|max_pixels"):
        segment_bag(bag, tmp_path / "o3", FakeSegmenter,
                    SegmentOptions(progress=False, max_image_pixels=100))


@pytest.mark.parametrize("fmt,data,needle", [
    ("jpeg", cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))[1].tobytes(), "declares jpeg"),
    ("png", _jpeg(), "declares png"),
    ("h264", b"\x00\x00\x00\x01", "not supported"),
    ("jpeg", b"\xff\xd8\xff\xe0\x00", "truncated"),
])
def test_mislabelled_or_broken_compressed_images_are_one_line_errors(tmp_path, capsys, fmt, data,
                                                                     needle, fake_segmenter):
    bag = _compressed_bag(tmp_path / "in", fmt, data)
    assert main(["segment", str(bag), str(tmp_path / "out")]) == 2
    _one_line_error(capsys, "/cam/image/compressed", needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


# ---- metadata.yaml -------------------------------------------------------------------------------

def _edit(bag, dst, old, new):
    shutil.copytree(bag, dst)
    meta = dst / "metadata.yaml"
    text = meta.read_text()
    assert old in text, old
    meta.write_text(text.replace(old, new, 1))
    return dst


@pytest.mark.parametrize("old,new,needles", [
    ("  message_count: 3\n  relative", "  message_count: many\n  relative",
     ["field 'message_count' is 'many'", "expected an integer"]),
    ("  - message_count: 3\n", "  - message_count: many\n",
     ["field 'topics_with_message_count[0].message_count' is 'many'"]),
    ("    message_count: 3\n    path", "    message_count: 2.5\n    path",
     ["field 'files[0].message_count' is 2.5"]),
    ("  - in.db3\n", "  - in.db3\n  - ./in.db3\n", ["lists storage file 'in.db3' twice"]),
    ("  - in.db3\n", "  - other.db3\n", ["lists storage file 'other.db3', which is not in"]),
    ("name: /cam/image", "name: /cam/renamed",
     ["does not match the storage", "/cam/renamed (sensor_msgs/msg/Image, 3 messages)",
      "the storage files hold: /cam/image (sensor_msgs/msg/Image)"]),
    ("type: sensor_msgs/msg/Image", "type: sensor_msgs/msg/CompressedImage",
     ["does not match the storage", "lists /cam/image as sensor_msgs/msg/CompressedImage",
      "hold /cam/image as sensor_msgs/msg/Image"]),
    ("  - message_count: 3\n", "  - message_count: 2\n",
     ["lists 2 messages on /cam/image, the storage files hold 3"]),
    ("version: 8", "version: eight", ["field 'version' is 'eight'", "1..9"]),
    ("version: 8", "version: true", ["field 'version' is True"]),
    ("storage_identifier: sqlite3", "storage_identifier: rosbag1",
     ["field 'storage_identifier' is 'rosbag1'", "'sqlite3' or 'mcap'"]),
    ("    nanoseconds_since_epoch: 1700000000000000000\n  storage",
     "    nanoseconds_since_epoch: 100000000000000000000000000\n  storage",
     ["field 'starting_time.nanoseconds_since_epoch'"]),
    ("serialization_format: cdr", "serialization_format: json",
     ["serialization_format' is 'json'", "'cdr'"]),
    ("  topics_with_message_count:\n", "  topics_with_message_count: {}\n  unused:\n",
     ["field 'topics_with_message_count' is {}", "a list"]),
])
def test_malformed_metadata_is_one_line_naming_the_field(tmp_path, capsys, old, new, needles,
                                                          fake_segmenter):
    bag = _edit(_raw_bag(tmp_path / "in"), tmp_path / "bad", old, new)
    with pytest.raises(BagMetadataError):
        bag_info(bag)
    for command in (["info", str(bag)], ["segment", str(bag), str(tmp_path / "out")]):
        assert main(command) == 2
        _one_line_error(capsys, *needles)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


def test_storage_with_fewer_messages_than_listed_says_truncated_or_mismatched(tmp_path, capsys):
    bag = _edit(_raw_bag(tmp_path / "in"), tmp_path / "bad", "  - message_count: 3\n",
                "  - message_count: 30\n")
    assert main(["info", str(bag)]) == 2
    _one_line_error(capsys, "read 3 of the 30 messages it lists on /cam/image",
                    "metadata.yaml does not match")


def test_metadata_that_is_not_utf8_or_too_large_is_a_metadata_error(tmp_path, capsys):
    bag = _raw_bag(tmp_path / "in")
    (bag / "metadata.yaml").write_bytes(b"rosbag2_bagfile_information:\n  version: \xff\xfe\n")
    assert main(["info", str(bag)]) == 2
    _one_line_error(capsys, "metadata.yaml", "utf-8")
    with open(bag / "metadata.yaml", "wb") as handle:
        handle.truncate(17 * 2**20)  # sparse
    assert main(["info", str(bag)]) == 2
    _one_line_error(capsys, "bytes; expected a rosbag2 metadata.yaml of at most")


# ---- output paths --------------------------------------------------------------------------------

@pytest.mark.parametrize("setting", ["OUT", "--report", "--overlay"])
def test_an_unusable_output_path_names_the_setting(tmp_path, capsys, setting, fake_segmenter):
    bag = _raw_bag(tmp_path / "in")
    (tmp_path / "file").write_text("not a folder")
    out, report, overlay = tmp_path / "out", tmp_path / "r.json", tmp_path / "o.png"
    bad = tmp_path / "file" / "x"
    if setting == "OUT":
        out = bad
    elif setting == "--report":
        report = bad.with_suffix(".json")
    else:
        overlay = bad.with_suffix(".png")
    assert main(["segment", str(bag), str(out), "--report", str(report), "--overlay", str(overlay),
                 "--quiet"]) == 2
    _one_line_error(capsys, f"error: {setting} {tmp_path / 'file' / 'x'}", "cannot create it",
                    f"{tmp_path / 'file'} is not a directory")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "in"]
    with pytest.raises(OutputPathError):
        segment_bag(bag, tmp_path / "file" / "y", FakeSegmenter, SegmentOptions(progress=False))


def test_convert_names_out_when_it_cannot_be_created(tmp_path, capsys, dataset):
    root, _ = dataset
    (tmp_path / "file").write_text("")
    assert main(["convert", str(root), str(tmp_path / "file" / "bag"), "--quiet"]) == 2
    _one_line_error(capsys, f"OUT {tmp_path / 'file' / 'bag'}: cannot create it")

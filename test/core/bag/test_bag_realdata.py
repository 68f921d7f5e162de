"""Real recordings (rosbag2's own test bags, Humble mcap bags) and a real Cityscapes frame."""
import cv2
import numpy as np
import pytest
import yaml

from gsvnet_ros.bag import BagReader, ConvertOptions, NoImageTopicError, bag_info, convert
from gsvnet_ros.bag.segment import SegmentOptions, segment_bag
from gsvnet_ros.cli.bag import main
from gsvnet_ros.codec import decode_image
from gsvnet_ros.labels import label_ids_to_train_ids

from bag_helpers import REALDATA, bag_id, real_bags

BAGS = real_bags()
needs_realdata = pytest.mark.skipif(not BAGS, reason=f"real recordings not found under {REALDATA}")


@needs_realdata
def test_the_recordings_cover_both_storages_and_metadata_versions_4_to_8():
    kinds = set()
    for bag in BAGS:
        meta = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
        kinds.add((meta["storage_identifier"], meta["version"]))
    assert {s for s, _ in kinds} == {"sqlite3", "mcap"}
    assert {v for _, v in kinds} >= {4, 5, 7, 8}


@needs_realdata
@pytest.mark.parametrize("bag", BAGS, ids=bag_id)
def test_info_reads_every_real_recording_and_every_message(bag):
    meta = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    info = bag_info(bag)
    assert info.verified and info.message_count == meta["message_count"] > 0
    assert info.storage == meta["storage_identifier"] and info.metadata_version == meta["version"]
    assert {t.name: t.count for t in info.topics} == {
        t["topic_metadata"]["name"]: t["message_count"] for t in meta["topics_with_message_count"]}
    assert info.start_ns == meta["starting_time"]["nanoseconds_since_epoch"]
    assert info.end_ns - info.start_ns == meta["duration"]["nanoseconds"]


@needs_realdata
@pytest.mark.parametrize("bag", BAGS, ids=bag_id)
def test_segment_on_a_real_recording_says_it_has_no_image_topic_and_lists_topics(bag, tmp_path):
    with BagReader(bag) as reader:
        topics = reader.topics
    with pytest.raises(NoImageTopicError) as info:
        segment_bag(bag, tmp_path / "out", lambda: pytest.fail("no segmenter may be built"),
                    SegmentOptions(progress=False))
    message = str(info.value)
    assert message.startswith(f"no image topic in {bag}; topics are: ")
    for topic in topics:
        assert f"{topic.name} ({topic.msgtype})" in message
    assert list(tmp_path.iterdir()) == []


@needs_realdata
def test_cli_info_and_segment_on_a_real_recording(capsys, tmp_path):
    bag = next(b for b in BAGS if b.name == "talker" and b.parent.name == "mcap")
    assert main(["info", str(bag)]) == 0
    out = capsys.readouterr().out
    assert "Metadata version: 4" in out and "/rosout" in out and "rcl_interfaces/msg/Log" in out
    assert main(["segment", str(bag), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no image topic" in err and "/topic (std_msgs/msg/String)" in err
    assert main(["segment", str(bag), str(tmp_path / "out"), "--topic", "/rosout"]) == 2
    assert "is rcl_interfaces/msg/Log; expected sensor_msgs/msg/Image" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


CITYSCAPES = REALDATA / "cityscapes-sample"


@pytest.mark.skipif(not CITYSCAPES.is_dir(), reason=f"{CITYSCAPES} not found")
def test_a_real_cityscapes_frame_converts_with_its_gtfine_train_ids(tmp_path):
    summary = convert(CITYSCAPES, tmp_path / "b", ConvertOptions(progress=False))
    assert (summary.frames, summary.labelled_frames) == (1, 1)
    with BagReader(tmp_path / "b") as reader:
        messages = {m.topic: m.msg for m in reader.messages(["/camera/image_raw", "/camera/labels"])}
    folder = CITYSCAPES / "gtFine" / "val" / "frankfurt"
    label_ids = cv2.imread(str(folder / "frankfurt_000000_000294_gtFine_labelIds.png"),
                           cv2.IMREAD_UNCHANGED)
    train_ids = cv2.imread(str(folder / "frankfurt_000000_000294_gtFine_labelTrainIds.png"),
                           cv2.IMREAD_UNCHANGED)
    image = cv2.imread(str(CITYSCAPES / "leftImg8bit" / "val" / "frankfurt" /
                           "frankfurt_000000_000294_leftImg8bit.png"))
    np.testing.assert_array_equal(decode_image(messages["/camera/image_raw"]), image[:, :, ::-1])
    written = decode_image(messages["/camera/labels"])[:, :, 0]
    np.testing.assert_array_equal(written, label_ids_to_train_ids(label_ids))
    # The sample's labelTrainIds file was downscaled on its own: it agrees on all but a few edges.
    assert (written == train_ids).mean() > 0.99

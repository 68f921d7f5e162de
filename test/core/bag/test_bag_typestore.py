"""SegmentationInfo registered from msg/ text, found in a checkout or an installed share/ folder."""
import shutil

import numpy as np
import pytest

from gsvnet_ros.bag import BagReader, BagWriter, MsgDefinitionError, StagedPath
from gsvnet_ros.bag.typestore import (SEGMENTATION_INFO, build_typestore, find_msg_dir, make_header,
                                      make_segmentation_info)
from gsvnet_ros.bag.writer import METADATA_VERSION

from bag_helpers import REPO, FakeResult


def test_msg_dir_is_found_in_the_source_checkout():
    assert find_msg_dir() == REPO / "msg"


def test_msg_dir_is_found_in_an_installed_share_folder(tmp_path):
    prefix = tmp_path / "venv"
    module = prefix / "lib" / "python3.11" / "site-packages" / "gsvnet_ros" / "bag" / "typestore.py"
    module.parent.mkdir(parents=True)
    module.touch()
    share = prefix / "share" / "gsvnet_ros" / "msg"
    share.mkdir(parents=True)
    shutil.copy(REPO / "msg" / "SegmentationInfo.msg", share)
    assert find_msg_dir(module) == share


def test_a_missing_msg_file_is_a_named_error(tmp_path, monkeypatch):
    monkeypatch.setenv("AMENT_PREFIX_PATH", "")
    monkeypatch.setattr("sys.prefix", str(tmp_path))
    monkeypatch.setattr("sys.base_prefix", str(tmp_path))
    module = tmp_path / "a" / "b" / "c" / "typestore.py"
    with pytest.raises(MsgDefinitionError, match="SegmentationInfo.msg not found"):
        find_msg_dir(module)


def test_registered_fields_are_the_msg_file_fields_in_order():
    fields = [name for name, _ in build_typestore().fielddefs[SEGMENTATION_INFO][1]]
    text = (REPO / "msg" / "SegmentationInfo.msg").read_text()
    declared = [line.split()[1] for line in text.splitlines()
                if line.strip() and not line.startswith("#")]
    assert fields == declared


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_segmentation_info_round_trips_through_a_bag_with_its_definition(tmp_path, storage):
    ts = build_typestore()
    timings = {"preprocess": 1.5, "network": 2.5, "output": 0.25, "total": 4.25}
    result = FakeResult(np.zeros((1, 1), np.uint8), False, "", 2, 7, 5, timings)
    msg = make_segmentation_info(ts, make_header(ts, 5, "cam"), result, model_name="m", backend="b")
    with BagWriter(tmp_path / "b", storage=storage) as bag:
        bag.add_topic("/info", SEGMENTATION_INFO)
        bag.write("/info", 5, msg)
    with BagReader(tmp_path / "b") as reader:
        (item,) = list(reader.messages(["/info"]))
        conn = reader.reader.connections[0]
    assert item.msg.frame_index == 7 and item.msg.frames_since_keyframe == 2
    assert item.msg.total_ms == pytest.approx(4.25) and item.msg.header.frame_id == "cam"
    assert "uint32 frames_since_keyframe" in conn.msgdef.data and conn.digest.startswith("RIHS01_")
    assert reader.version == METADATA_VERSION == 8


def test_staged_path_refuses_to_replace_a_directory_that_is_not_a_bag(tmp_path):
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "precious.txt").write_text("x")
    from gsvnet_ros.bag import OutputExistsError
    with pytest.raises(OutputExistsError, match="not a rosbag2 directory"):
        StagedPath(tmp_path / "home", is_dir=True, overwrite=True)
    with pytest.raises(OutputExistsError, match="is a directory"):
        StagedPath(tmp_path / "home", is_dir=False, overwrite=True)

"""gsvnet_ros.cli.msgs_package writes a buildable ament_cmake interface package from msg/."""
import xml.etree.ElementTree as ET
from pathlib import Path

from rosbags.typesys import get_types_from_msg

from gsvnet_ros.cli import msgs_package

REPO = Path(__file__).resolve().parents[2]


def test_writes_package_xml_cmakelists_and_the_messages(tmp_path, capsys):
    assert msgs_package.main([str(tmp_path)]) == 0
    pkg = tmp_path / "gsvnet_ros_msgs"
    root = ET.parse(pkg / "package.xml").getroot()
    assert root.get("format") == "3" and root.findtext("name") == "gsvnet_ros_msgs"
    assert root.findtext("export/build_type") == "ament_cmake"
    assert root.findtext("member_of_group") == "rosidl_interface_packages"
    assert {e.text for e in root.iter("buildtool_depend")} == {"ament_cmake",
                                                               "rosidl_default_generators"}
    assert {e.text for e in root.iter("depend")} == {"std_msgs"}
    cmake = (pkg / "CMakeLists.txt").read_text()
    assert "project(gsvnet_ros_msgs)" in cmake
    assert 'rosidl_generate_interfaces(${PROJECT_NAME}\n  "msg/SegmentationInfo.msg"' in cmake
    assert "DEPENDENCIES std_msgs" in cmake and "ament_package()" in cmake
    text = (pkg / "msg" / "SegmentationInfo.msg").read_text()
    assert text == (REPO / "msg" / "SegmentationInfo.msg").read_text()
    fields = get_types_from_msg(text, "gsvnet_ros_msgs/msg/SegmentationInfo")
    assert "gsvnet_ros_msgs/msg/SegmentationInfo" in fields
    assert "colcon build --packages-select gsvnet_ros_msgs" in capsys.readouterr().out


def test_refuses_to_overwrite_without_force(tmp_path):
    assert msgs_package.main([str(tmp_path)]) == 0
    assert msgs_package.main([str(tmp_path)]) == 1
    assert msgs_package.main([str(tmp_path), "--force"]) == 0


def test_missing_workspace_folder_is_an_error(tmp_path, capsys):
    assert msgs_package.main([str(tmp_path / "nope")]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_msg_dir_without_messages_is_an_error(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert msgs_package.main([str(tmp_path), "--msg-dir", str(empty)]) == 1
    assert "no .msg files" in capsys.readouterr().err

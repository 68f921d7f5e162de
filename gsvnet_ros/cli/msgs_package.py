"""Write the ament_cmake interface package `gsvnet_ros_msgs` (from msg/) into a colcon workspace.

An ament_python package cannot generate messages, and generating them inside a CMake package of
the same name as the Python package breaks on Humble/Jazzy (ros2/rosidl_python#141); so the message
lives in msg/ here and this command writes a tiny sibling package for colcon to build:

    python -m gsvnet_ros.cli.msgs_package ~/ros2_ws/src
    cd ~/ros2_ws && colcon build --packages-select gsvnet_ros_msgs gsvnet_ros

Pure Python: no ROS import.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Optional

__all__ = ["PACKAGE", "write_package", "write_interface_package", "main"]

PACKAGE = "gsvnet_ros_msgs"

_PACKAGE_XML = """<?xml version="1.0"?>
<?xml-model href="http://download.ros.org/schema/package_format3.xsd" schematypens="http://www.w3.org/2001/XMLSchema"?>
<package format="3">
  <name>{name}</name>
  <version>{version}</version>
  <description>{description}</description>
  <maintainer email="maintainers@gsvnet-ros.invalid">gsvnet_ros maintainers</maintainer>
  <license>Apache-2.0</license>

  <buildtool_depend>ament_cmake</buildtool_depend>
  <buildtool_depend>rosidl_default_generators</buildtool_depend>
  <depend>std_msgs</depend>
  <exec_depend>rosidl_default_runtime</exec_depend>
  <member_of_group>rosidl_interface_packages</member_of_group>

  <export>
    <build_type>ament_cmake</build_type>
  </export>
</package>
"""

_CMAKELISTS = """cmake_minimum_required(VERSION 3.8)
project({name})

find_package(ament_cmake REQUIRED)
find_package(rosidl_default_generators REQUIRED)
find_package(std_msgs REQUIRED)

rosidl_generate_interfaces(${{PROJECT_NAME}}
{files}
  DEPENDENCIES std_msgs
)

ament_export_dependencies(rosidl_default_runtime)
ament_package()
"""


def _default_msg_dir() -> Path:
    """msg/ of a source checkout, else share/gsvnet_ros/msg under an install prefix."""
    import gsvnet_ros

    candidates = [Path(gsvnet_ros.__file__).resolve().parents[1] / "msg"]
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    prefixes += [sys.prefix, sys.base_prefix]
    candidates += [Path(p) / "share" / "gsvnet_ros" / "msg" for p in prefixes]
    for folder in candidates:
        if any(folder.glob("*.msg")):
            return folder
    raise FileNotFoundError("gsvnet_ros's msg/ folder not found; looked in "
                            + ", ".join(str(c) for c in candidates))


def write_interface_package(target: Path, name: str, version: str, description: str,
                            messages: dict[str, str]) -> Path:
    """Write an ament_cmake interface package `name` (package.xml, CMakeLists.txt, msg/) with
    `messages` ({'Foo.msg': text}) that depend on std_msgs at most; returns `target`."""
    (target / "msg").mkdir(parents=True, exist_ok=True)
    for filename, text in messages.items():
        (target / "msg" / filename).write_text(text, encoding="utf-8")
    (target / "package.xml").write_text(
        _PACKAGE_XML.format(name=name, version=version, description=description),
        encoding="utf-8")
    files = "\n".join(f'  "msg/{filename}"' for filename in sorted(messages))
    (target / "CMakeLists.txt").write_text(_CMAKELISTS.format(name=name, files=files),
                                           encoding="utf-8")
    return target


def write_package(src_dir: Path, msg_dir: Path, *, force: bool = False) -> Path:
    """Create <src_dir>/gsvnet_ros_msgs with package.xml, CMakeLists.txt and msg/*.msg."""
    from gsvnet_ros import __version__

    msgs = sorted(msg_dir.glob("*.msg"))
    if not msgs:
        raise FileNotFoundError(f"no .msg files in {msg_dir}; expected gsvnet_ros's msg/ folder")
    target = src_dir / PACKAGE
    if target.exists() and not force:
        raise FileExistsError(f"{target} already exists; pass --force to overwrite it")
    return write_interface_package(
        target, PACKAGE, __version__,
        "Messages of gsvnet_ros (written by gsvnet_ros.cli.msgs_package)",
        {m.name: m.read_text(encoding="utf-8") for m in msgs})


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="gsvnet-msgs-package",
        description=f"Write the {PACKAGE} interface package into a colcon workspace's src folder.")
    parser.add_argument("src_dir", type=Path, help="workspace source folder, e.g. ~/ros2_ws/src")
    parser.add_argument("--msg-dir", type=Path, default=None,
                        help="folder with the .msg files (default: gsvnet_ros's msg/)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing package")
    args = parser.parse_args(argv)
    src_dir = args.src_dir.expanduser()
    if not src_dir.is_dir():
        print(f"error: {src_dir} is not a folder; expected a workspace src folder", file=sys.stderr)
        return 2
    try:
        msg_dir = args.msg_dir or _default_msg_dir()
        target = write_package(src_dir, msg_dir, force=args.force)
    except (FileNotFoundError, FileExistsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {target}; build it with: colcon build --packages-select {PACKAGE} gsvnet_ros")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Static checks of launch files, config files, the RViz layout and package.xml (no ROS needed)."""
import ast
import py_compile
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from gsvnet_ros.ros import params as P

REPO = Path(__file__).resolve().parents[2]
LAUNCH_FILES = sorted((REPO / "launch").glob("*.launch.py"))
# Imported inside try/except ImportError and built from msg/ by gsvnet_ros.cli.msgs_package.
OPTIONAL_ROS_PACKAGES = {"gsvnet_ros_msgs"}
NODE_OUTPUTS = {"/segmentation_node/class_mask", "/segmentation_node/color_mask",
                "/segmentation_node/overlay", "/segmentation_node/label_info",
                "/segmentation_node/info", "/diagnostics"}


def _calls(tree, name):
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)
            and getattr(n.func, "id", getattr(n.func, "attr", None)) == name]


def _kwarg(call, name):
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    return None


def _const(node):
    return node.value if isinstance(node, ast.Constant) else None


def _console_scripts():
    tree = ast.parse((REPO / "setup.py").read_text())
    scripts = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and " = " in node.value:
            name, target = (s.strip() for s in node.value.split("=", 1))
            scripts[name] = target
    return scripts


def _package_xml_deps(*tags):
    root = ET.parse(REPO / "package.xml").getroot()
    return {e.text.strip() for tag in tags for e in root.iter(tag)}


def _declared_arguments(tree):
    return {_const(c.args[0]): c for c in _calls(tree, "DeclareLaunchArgument")}


@pytest.fixture(scope="module", params=LAUNCH_FILES, ids=lambda p: p.name)
def launch_file(request):
    return request.param


def test_both_launch_files_exist():
    assert {p.name for p in LAUNCH_FILES} == {"segment.launch.py", "replay.launch.py"}


def test_launch_file_compiles_and_defines_generate_launch_description(launch_file, tmp_path):
    py_compile.compile(str(launch_file), cfile=str(tmp_path / "x.pyc"), doraise=True)
    tree = ast.parse(launch_file.read_text())
    assert "generate_launch_description" in {f.name for f in tree.body
                                             if isinstance(f, ast.FunctionDef)}


def test_every_executable_is_a_console_script_or_an_exec_dependency(launch_file):
    tree = ast.parse(launch_file.read_text())
    scripts = _console_scripts()
    exec_deps = _package_xml_deps("exec_depend", "depend")
    for call in _calls(tree, "Node"):
        package, executable = _const(_kwarg(call, "package")), _const(_kwarg(call, "executable"))
        assert executable is not None, "executable must be a literal"
        if package == "gsvnet_ros":
            assert executable in scripts, f"{executable} missing from setup.py console_scripts"
            from gsvnet_ros import entry_points

            assert scripts[executable] == f"gsvnet_ros.entry_points:{executable}"
            module, func = entry_points.SCRIPTS[executable].split(":")
            source = REPO / (module.replace(".", "/") + ".py")
            assert f"def {func}(" in source.read_text()
        else:
            assert package in exec_deps, f"{package} is not an exec_depend in package.xml"
    for call in _calls(tree, "ExecuteProcess"):
        cmd = [_const(e) for e in _kwarg(call, "cmd").elts]
        assert cmd[:3] == ["ros2", "bag", "play"] and "ros2bag" in exec_deps
        clock = cmd.index("--clock")
        assert cmd[clock + 1] is not None and float(cmd[clock + 1]) > 0  # never swallows the bag


def test_every_referenced_share_file_exists_and_parses(launch_file):
    tree = ast.parse(launch_file.read_text())
    referenced = []
    for node in ast.walk(tree):
        if isinstance(node, ast.List) and len(node.elts) == 3:
            folder, name = _const(node.elts[1]), _const(node.elts[2])
            if folder in ("config", "launch") and isinstance(name, str):
                referenced.append(REPO / folder / name)
    assert referenced
    for path in referenced:
        assert path.is_file(), path
        if path.suffix in (".yaml", ".rviz"):
            assert yaml.safe_load(path.read_text()) is not None
        elif path.suffix == ".xml":
            ET.parse(path)
        else:
            ast.parse(path.read_text())


def test_launch_configurations_are_declared(launch_file):
    tree = ast.parse(launch_file.read_text())
    declared = _declared_arguments(tree)
    # LaunchConfiguration("x") and, inside OpaqueFunctions, the helper arg("x").
    used = {_const(c.args[0]) for c in _calls(tree, "LaunchConfiguration") + _calls(tree, "arg")}
    used.discard(None)  # the helper's own LaunchConfiguration(name)
    assert used and used <= set(declared), used - set(declared)
    for name, call in declared.items():
        choices = _kwarg(call, "choices")
        default = _const(_kwarg(call, "default_value")) if _kwarg(call, "default_value") else None
        if choices is not None and default is not None:
            assert default in [_const(e) for e in choices.elts], name


def test_segment_launch_arguments_and_include_from_replay():
    segment = _declared_arguments(ast.parse((REPO / "launch/segment.launch.py").read_text()))
    assert {"image_topic", "params_file", "config_file", "namespace", "device", "keyframe_interval",
            "warmup_size", "use_sim_time", "rviz"} <= set(segment)
    replay = ast.parse((REPO / "launch/replay.launch.py").read_text())
    assert {"bag", "evaluate", "rviz", "report_path"} <= set(_declared_arguments(replay))
    (include,) = _calls(replay, "IncludeLaunchDescription")
    passed = {_const(k) for k in _kwarg(include, "launch_arguments").func.value.keys}
    assert passed <= set(segment)
    (handler,) = _calls(replay, "OnProcessExit")
    assert _kwarg(handler, "target_action").id == "bag_play"
    assert _calls(replay, "Shutdown") and _calls(replay, "SetParameter")


def test_params_file_documents_every_parameter_with_valid_values():
    text = (REPO / "config/gsvnet.yaml").read_text()
    values = yaml.safe_load(text)["/**"]["ros__parameters"]
    assert set(values) <= set(P.SPECS)
    for name, value in values.items():
        spec = P.SPECS[name]
        assert type(value) is type(spec.default), name
        assert P.validate(name, value) is None, name
    for spec in P.PARAMETERS:
        assert spec.name in values or re.search(rf"^\s*#\s*{spec.name}:", text, re.M), spec.name


def test_params_file_loads_into_the_node(ros, backend):
    from gsvnet_ros.ros.node import SegmentationNode

    values = yaml.safe_load((REPO / "config/gsvnet.yaml").read_text())["/**"]["ros__parameters"]
    Parameter = ros.mods["rclpy.parameter"].Parameter
    node = SegmentationNode(backend=backend, start_worker=False, parameter_overrides=[
        Parameter(k, value=v) for k, v in values.items()])
    assert node.get_parameter("keyframe_interval").value == values["keyframe_interval"]
    node.destroy_node()


def test_rviz_config_names_only_node_topics(ros, backend):
    from gsvnet_ros.ros.node import SegmentationNode

    node = SegmentationNode(backend=backend, start_worker=False)
    published = {p.topic_name for p in node.publishers}
    node.destroy_node()
    assert NODE_OUTPUTS - {"/segmentation_node/info"} <= published
    segment = _declared_arguments(ast.parse((REPO / "launch/segment.launch.py").read_text()))
    node_input = _const(_kwarg(segment["image_topic"], "default_value"))
    layout = yaml.safe_load((REPO / "config/gsvnet.rviz").read_text())
    displays = layout["Visualization Manager"]["Displays"]
    topics = {d["Topic"]["Value"] for d in displays}
    assert topics <= published | {node_input}
    assert {"/segmentation_node/class_mask", "/segmentation_node/color_mask",
            "/segmentation_node/overlay", node_input} == topics
    assert {d["Class"] for d in displays} == {"rviz_default_plugins/Image"}


def _ros_imports(paths):
    stdlib = set(sys.stdlib_module_names)
    python = {"gsvnet_ros", "numpy", "cv2", "torch", "yaml", "pytest", "rosbags"}
    python |= {p.stem for p in (REPO / "test/ros").iterdir()}  # the test helpers themselves
    found = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            found |= {n.split(".")[0] for n in names} - stdlib - python
    return found


def test_package_xml_lists_every_ros_package_the_code_imports():
    runtime = _ros_imports(list((REPO / "gsvnet_ros/ros").glob("*.py")) + LAUNCH_FILES)
    assert {"rclpy", "sensor_msgs", "launch", "launch_ros"} <= runtime
    deps = _package_xml_deps("depend", "exec_depend")
    assert runtime - OPTIONAL_ROS_PACKAGES <= deps, runtime - OPTIONAL_ROS_PACKAGES - deps
    tests = _ros_imports([p for p in (REPO / "test/ros").glob("test_*.py")])
    test_deps = deps | _package_xml_deps("test_depend")
    assert tests - OPTIONAL_ROS_PACKAGES <= test_deps, tests - test_deps


def test_setup_installs_launch_config_and_msg_files():
    text = (REPO / "setup.py").read_text()
    for folder in ("launch", "config", "msg"):
        assert f'share/{{PACKAGE}}/{folder}"' in text
    assert (REPO / "resource" / "gsvnet_ros").is_file()

"""Only gsvnet_ros/ros imports ROS; codec, metrics and labels import without torch."""
import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "gsvnet_ros"
ROS_MODULES = ("rclpy", "rcl_interfaces", "sensor_msgs", "std_msgs", "std_srvs", "diagnostic_msgs",
               "vision_msgs", "builtin_interfaces", "diagnostic_updater", "cv_bridge", "launch",
               "launch_ros", "launch_testing", "gsvnet_ros_msgs", "message_filters",
               "image_transport", "rosidl_runtime_py")


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules_outside_ros() -> list[str]:
    return sorted(_module_name(p) for p in PACKAGE.rglob("*.py")
                  if "ros" not in p.relative_to(PACKAGE).parts[:1])


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=300)


def test_no_module_outside_ros_mentions_a_ros_import():
    offenders = {}
    for path in PACKAGE.rglob("*.py"):
        if path.relative_to(PACKAGE).parts[0] == "ros":
            continue
        bad = _imported_roots(path) & set(ROS_MODULES)
        if bad:
            offenders[str(path.relative_to(REPO))] = sorted(bad)
    assert offenders == {}


def test_every_module_outside_ros_imports_with_rclpy_blocked():
    modules = _modules_outside_ros()
    assert "gsvnet_ros.codec" in modules and "gsvnet_ros.stream" in modules
    code = "\n".join([
        "import importlib, sys",
        f"for name in {ROS_MODULES!r}: sys.modules[name] = None",
        "failed = {}",
        f"for module in {modules!r}:",
        "    try:",
        "        importlib.import_module(module)",
        "    except Exception as exc:",
        "        failed[module] = repr(exc)",
        "print(failed)",
        "sys.exit(1 if failed else 0)",
    ])
    proc = _run(code)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_codec_metrics_labels_import_without_torch():
    proc = _run("import sys; sys.modules['torch'] = None\n"
                "import gsvnet_ros.codec, gsvnet_ros.metrics, gsvnet_ros.labels\n"
                "import gsvnet_ros.ros.stats, gsvnet_ros.ros.params, gsvnet_ros.ros.slot\n"
                "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\n")
    assert proc.returncode == 0, proc.stderr


def test_ros_stats_and_params_tables_are_pure_python():
    stats = PACKAGE / "ros" / "stats.py"
    assert not _imported_roots(stats) & (set(ROS_MODULES) | {"numpy", "torch", "cv2"})
    assert not _imported_roots(PACKAGE / "ros" / "slot.py") & (set(ROS_MODULES) | {"torch"})
    params = ast.parse((PACKAGE / "ros" / "params.py").read_text())
    top_level = {alias.name.split(".")[0] for node in params.body if isinstance(node, ast.Import)
                 for alias in node.names}
    top_level |= {node.module.split(".")[0] for node in params.body
                  if isinstance(node, ast.ImportFrom) and node.module}
    assert not top_level & set(ROS_MODULES)  # rcl_interfaces only inside descriptor()


def test_the_ros_package_itself_imports_nothing_from_ros():
    proc = _run("import sys\n"
                f"for name in {ROS_MODULES!r}: sys.modules[name] = None\n"
                "import gsvnet_ros.ros, gsvnet_ros.ros.stats, gsvnet_ros.ros.params\n"
                "import gsvnet_ros.ros.node, gsvnet_ros.ros.evaluator\n"
                "import gsvnet_ros.cli.msgs_package\n")
    assert proc.returncode == 0, proc.stderr

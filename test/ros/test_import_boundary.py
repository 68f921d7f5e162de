"""The import layers of gsvnet_ros (docs/CONTRACTS.md, "Layers"): every import points down, no module
imports another in a cycle, only gsvnet_ros/ros imports ROS, codec/metrics/labels import without torch."""
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


# Bottom to top. A module belongs to the layer of the longest prefix naming it; it may import its own
# layer and the layers below.
LAYERS = (
    ("foundation", ("gsvnet_ros", "gsvnet_ros.config", "gsvnet_ros.labels", "gsvnet_ros.reporting",
                    "gsvnet_ros.entry_points")),
    ("arrays and data", ("gsvnet_ros.codec", "gsvnet_ros.metrics", "gsvnet_ros.output_stage", "gsvnet_ros.output_kernel",
                         "gsvnet_ros.preprocess_kernel", "gsvnet_ros.labels_kernel", "gsvnet_ros.fusion_kernel",
                         "gsvnet_ros.data")),
    ("networks", ("gsvnet_ros.models",)),
    ("inference", ("gsvnet_ros.backends",)),
    ("streaming", ("gsvnet_ros.stream", "gsvnet_ros.keyframe_policy")),
    ("offline products", ("gsvnet_ros.bag", "gsvnet_ros.training")),
    ("measurement", ("gsvnet_ros.evaluation",)),
    ("commands", ("gsvnet_ros.cli",)),
    ("ROS", ("gsvnet_ros.ros",)),
)


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


def _all_modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _layer(module: str) -> int:
    matches = [(len(prefix), index) for index, (_, prefixes) in enumerate(LAYERS) for prefix in prefixes
               if module == prefix or (prefix != "gsvnet_ros" and module.startswith(prefix + "."))]
    assert matches, f"{module} is in no layer: add it to LAYERS and to docs/CONTRACTS.md"
    return max(matches)[1]


def _package_imports(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The gsvnet_ros modules `module` imports anywhere in its file (function-level imports included);
    `from package import name` counts as the submodule when `name` is one."""
    base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            parts = base[:len(base) - node.level + 1] if node.level else []
            target = ".".join(parts + ([node.module] if node.module else []))
            if target.split(".")[0] != "gsvnet_ros":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in modules else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "gsvnet_ros")
    return {name for name in found if name != module}


def test_every_import_points_to_the_same_layer_or_below():
    modules = _all_modules()
    upward = []
    for module, path in sorted(modules.items()):
        for target in sorted(_package_imports(module, path, modules)):
            assert target in modules, f"{module} imports {target}, which does not exist"
            if _layer(target) > _layer(module):
                upward.append(f"{module} ({LAYERS[_layer(module)][0]}) imports {target} "
                              f"({LAYERS[_layer(target)][0]})")
    assert upward == []


def test_no_modules_import_each_other_in_a_cycle():
    modules = _all_modules()
    graph = {module: _package_imports(module, path, modules) for module, path in modules.items()}
    state: dict[str, str] = {}  # "open" while on the depth-first path, "done" after

    def visit(module: str, trail: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph[module]):
            assert state.get(target) != "open", " -> ".join(trail[trail.index(target):] + [target])
            if target not in state:
                visit(target, trail + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_the_layer_check_sees_an_upward_import_and_a_cycle(tmp_path):
    """The checks above can fail: a models module importing the stream is upward, a pair is a cycle."""
    assert _layer("gsvnet_ros.stream") > _layer("gsvnet_ros.models.gsvnet")
    assert _layer("gsvnet_ros.data.synth.render") < _layer("gsvnet_ros.backends.onnx_quantize")
    fake = tmp_path / "gsvnet_ros" / "models" / "gsvnet.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("from ..stream import VideoSegmenter\nfrom . import keyframe_nets\n")
    modules = {"gsvnet_ros.models.gsvnet": fake, "gsvnet_ros.stream": fake,
               "gsvnet_ros.models.keyframe_nets": fake}
    assert _package_imports("gsvnet_ros.models.gsvnet", fake, modules) == {
        "gsvnet_ros.stream", "gsvnet_ros.models.keyframe_nets"}


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

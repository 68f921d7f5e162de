"""Console scripts explain a missing pip dependency in one line (a ROS machine after colcon build)."""
import subprocess
import sys

import pytest

from gsvnet_ros import entry_points


def _run_without(module: str, script: str) -> subprocess.CompletedProcess:
    code = (f"import sys; sys.modules[{module!r}] = None\n"
            f"from gsvnet_ros.entry_points import {script}\n"
            f"sys.exit({script}())\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("module,script,pip", [
    ("cv2", "segmentation_node", "opencv-python-headless"),
    ("yaml", "gsvnet_bag", "pyyaml"),
    ("torch", "gsvnet_train", "torch"),
])
def test_a_missing_dependency_is_one_line_naming_the_package_and_the_command(module, script, pip):
    proc = _run_without(module, script)
    assert proc.returncode == 1
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    assert f"'{pip}' is not installed" in lines[0]
    assert f"python3 -m pip install '{pip}'" in lines[0]


def test_every_console_script_of_setup_py_starts_in_entry_points():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "setup.py").read_text()
    for program, target in entry_points.SCRIPTS.items():
        function = program.replace("-", "_")
        assert f'"{program} = gsvnet_ros.entry_points:{function}"' in text
        assert getattr(entry_points, function).__doc__.endswith(f"({target}).")
        module, name = target.split(":")
        assert callable(getattr(__import__(module, fromlist=[name]), name))


def test_other_import_errors_are_not_hidden():
    exc = ModuleNotFoundError("No module named 'gsvnet_ros_private'", name="gsvnet_ros_private")
    assert entry_points.missing_dependency_line("x", exc) is None

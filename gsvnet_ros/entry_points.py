"""Console-script entry points that explain a missing pip dependency in one line.

On a ROS machine, `colcon build` installs gsvnet_ros without its pip dependencies (OpenCV, torch,
ONNX Runtime, ...). Each console script therefore starts here, imports its real module only when
run, and turns a missing third-party module into one line naming the pip package and the command
that installs it (exit code 1), instead of a traceback. Standard library only.
"""
from __future__ import annotations

import importlib
import sys
from typing import Callable, Optional

# Module name -> pip requirement (setup.py's install_requires) for the packages that are not
# importable under their distribution's name.
PIP_NAMES = {"cv2": "opencv-python-headless", "yaml": "pyyaml", "numpy": "numpy",
             "rosbags": "rosbags", "tqdm": "tqdm", "matplotlib": "matplotlib", "onnx": "onnx",
             "onnxruntime": "onnxruntime", "torch": "torch", "numba": "numba"}
# ROS 2 itself is never pip-installed by us: the node's own message explains how to source it.
INSTALL_HINT = "python3 -m pip install '{pip}'"


def missing_dependency_line(program: str, exc: ModuleNotFoundError) -> Optional[str]:
    """The one line for a missing pip dependency; None when `exc` is about something else."""
    top = (exc.name or "").split(".")[0]
    if top not in PIP_NAMES:
        return None
    pip = PIP_NAMES[top]
    return (f"{program}: the Python package '{pip}' is not installed (no module '{top}'); "
            f"install it with: {INSTALL_HINT.format(pip=pip)}")


def _run(program: str, target: str) -> Callable[[], int]:
    def main() -> int:
        module_name, function = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            line = missing_dependency_line(program, exc)
            if line is None:
                raise
            print(line, file=sys.stderr)
            return 1
        return getattr(module, function)()
    main.__name__ = program.replace("-", "_")
    main.__doc__ = f"Console script `{program}` ({target})."
    return main


SCRIPTS = {
    "gsvnet-synth": "gsvnet_ros.cli.synth:main",
    "gsvnet-train": "gsvnet_ros.cli.train:main",
    "gsvnet-eval": "gsvnet_ros.cli.evaluate:main",
    "gsvnet-bench": "gsvnet_ros.cli.bench:main",
    "gsvnet-bag": "gsvnet_ros.cli.bag:main",
    "gsvnet-export": "gsvnet_ros.cli.export:main",
    "gsvnet-demo": "gsvnet_ros.cli.demo:main",
    "gsvnet-msgs-package": "gsvnet_ros.cli.msgs_package:main",
    "segmentation_node": "gsvnet_ros.ros.node:main",
    "segmentation_evaluator": "gsvnet_ros.ros.evaluator:main",
}

gsvnet_synth = _run("gsvnet-synth", SCRIPTS["gsvnet-synth"])
gsvnet_train = _run("gsvnet-train", SCRIPTS["gsvnet-train"])
gsvnet_eval = _run("gsvnet-eval", SCRIPTS["gsvnet-eval"])
gsvnet_bench = _run("gsvnet-bench", SCRIPTS["gsvnet-bench"])
gsvnet_bag = _run("gsvnet-bag", SCRIPTS["gsvnet-bag"])
gsvnet_export = _run("gsvnet-export", SCRIPTS["gsvnet-export"])
gsvnet_demo = _run("gsvnet-demo", SCRIPTS["gsvnet-demo"])
gsvnet_msgs_package = _run("gsvnet-msgs-package", SCRIPTS["gsvnet-msgs-package"])
segmentation_node = _run("segmentation_node", SCRIPTS["segmentation_node"])
segmentation_evaluator = _run("segmentation_evaluator", SCRIPTS["segmentation_evaluator"])

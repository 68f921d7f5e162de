"""Installs gsvnet_ros both as a ROS 2 ament_python package and as a plain pip package."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "gsvnet_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        (f"share/{PACKAGE}/config", glob("config/*")),
        (f"share/{PACKAGE}/msg", glob("msg/*.msg")),
        (f"share/{PACKAGE}/models", glob("models/*")),
    ],
    package_data={PACKAGE: ["py.typed"]},
    python_requires=">=3.10",
    # torch is a range on purpose: a ROS machine keeps its own (CUDA) build; `make` installs
    # the CPU build 2.13.0 first so this range adds nothing (DEVELOPERS.md).
    install_requires=[
        "numpy>=1.23",
        "opencv-python-headless>=4.7",
        "pyyaml>=6",
        "rosbags>=0.10",
        "tqdm>=4.60",
        "matplotlib>=3.6",
        "numba>=0.59",
        "onnx>=1.15",
        "onnxruntime>=1.17",
        "torch>=2.1",
    ],
    # batch: `gsvnet-bag batch` runs on Ray (a local instance or a cluster); optional, imported
    # only by gsvnet_ros.bag.batch when a batch runs.
    extras_require={"test": ["pytest>=7"], "batch": ["ray>=2.9"]},
    zip_safe=True,
    maintainer="gsvnet_ros maintainers",
    maintainer_email="maintainers@gsvnet-ros.invalid",
    description="GSVNet fast video semantic segmentation for ROS 2 and offline use",
    license="Apache-2.0",
    # Every script starts in entry_points, which explains a missing pip dependency in one line.
    entry_points={
        "console_scripts": [
            "gsvnet-synth = gsvnet_ros.entry_points:gsvnet_synth",
            "gsvnet-train = gsvnet_ros.entry_points:gsvnet_train",
            "gsvnet-eval = gsvnet_ros.entry_points:gsvnet_eval",
            "gsvnet-bench = gsvnet_ros.entry_points:gsvnet_bench",
            "gsvnet-bag = gsvnet_ros.entry_points:gsvnet_bag",
            "gsvnet-export = gsvnet_ros.entry_points:gsvnet_export",
            "gsvnet-demo = gsvnet_ros.entry_points:gsvnet_demo",
            "gsvnet-msgs-package = gsvnet_ros.entry_points:gsvnet_msgs_package",
            "segmentation_node = gsvnet_ros.entry_points:segmentation_node",
            "segmentation_evaluator = gsvnet_ros.entry_points:segmentation_evaluator",
        ],
    },
)

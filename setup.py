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
        "onnx>=1.15",
        "onnxruntime>=1.17",
        "torch>=2.1",
    ],
    extras_require={"test": ["pytest>=7"]},
    zip_safe=True,
    maintainer="gsvnet_ros maintainers",
    maintainer_email="maintainers@gsvnet-ros.invalid",
    description="GSVNet fast video semantic segmentation for ROS 2 and offline use",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            "gsvnet-synth = gsvnet_ros.cli.synth:main",
            "gsvnet-train = gsvnet_ros.cli.train:main",
            "gsvnet-eval = gsvnet_ros.cli.evaluate:main",
            "gsvnet-bench = gsvnet_ros.cli.bench:main",
            "gsvnet-bag = gsvnet_ros.cli.bag:main",
            "gsvnet-export = gsvnet_ros.cli.export:main",
            "gsvnet-demo = gsvnet_ros.cli.demo:main",
            "gsvnet-msgs-package = gsvnet_ros.cli.msgs_package:main",
            "segmentation_node = gsvnet_ros.ros.node:main",
            "segmentation_evaluator = gsvnet_ros.ros.evaluator:main",
        ],
    },
)

"""Fixtures for the ROS-layer tests: the rclpy stand-in installed into sys.modules per test."""
from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parents[2]
MSG_TEXT = (REPO / "msg" / "SegmentationInfo.msg").read_text()

try:  # the stand-in builds its message classes from the rosbags typestore
    import rosbags  # noqa: F401
except ImportError:  # e.g. `colcon test` on a ROS machine without the pip extras: real tests only
    collect_ignore_glob = [p.name for p in Path(__file__).parent.glob("test_*.py")
                           if p.name not in ("test_ros_real.py", "test_ros_launch.py",
                                             "test_import_boundary.py")]


def _purge_ros_layer() -> None:
    """Forget gsvnet_ros.ros.* so the next import binds to whatever rclpy is installed now."""
    for name in list(sys.modules):
        if name == "gsvnet_ros.ros" or name.startswith("gsvnet_ros.ros."):
            del sys.modules[name]


def _install(monkeypatch: pytest.MonkeyPatch, with_info: bool) -> SimpleNamespace:
    import fake_ros

    fake_ros.reset()
    _purge_ros_layer()
    mods = fake_ros.modules(with_gsvnet_msgs=with_info, msg_text=MSG_TEXT)
    for name, module in mods.items():
        monkeypatch.setitem(sys.modules, name, module)
    if not with_info:
        for name in fake_ros.HIDDEN_WITHOUT_GSVNET_MSGS:
            monkeypatch.setitem(sys.modules, name, None)
    for name in fake_ros.OPTIONAL_REAL:  # never pick up a real one half-way
        monkeypatch.setitem(sys.modules, name, None)
    mods["rclpy"].init()
    return SimpleNamespace(rclpy=mods["rclpy"], mods=mods, fake=fake_ros,
                           msg=lambda name: fake_ros.message_class(name))


@pytest.fixture
def ros(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimpleNamespace]:
    """The stand-in, initialised, without gsvnet_ros_msgs (so ~/info is not published)."""
    env = _install(monkeypatch, with_info=False)
    yield env
    env.rclpy.try_shutdown()
    _purge_ros_layer()


@pytest.fixture
def ros_info(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimpleNamespace]:
    """The stand-in with gsvnet_ros_msgs importable (built from this package's msg/)."""
    env = _install(monkeypatch, with_info=True)
    yield env
    env.rclpy.try_shutdown()
    _purge_ros_layer()



@pytest.fixture(scope="session")
def backend():
    """One random-weight GSVNet on the CPU, shared by every node (as a node shares it by stream)."""
    import torch

    from gsvnet_ros.backends.base import resolve_device
    from gsvnet_ros.backends.torch_backend import TorchBackend
    from gsvnet_ros.config import GSVNetConfig
    from gsvnet_ros.models.build import build_gsvnet

    # One intra-op thread: on a shared 2-core machine two threads make a 128x64 step ~10x slower.
    torch.set_num_threads(1)
    torch.manual_seed(0)
    return TorchBackend(build_gsvnet(GSVNetConfig().model), resolve_device("cpu"))


@pytest.fixture
def harness(ros, backend):
    """Factory: harness(**kwargs) -> node_harness.Harness on the stand-in; all closed afterwards."""
    from node_harness import Harness

    made = []

    def make(**kwargs):
        made.append(Harness(ros, backend, **kwargs))
        return made[-1]

    yield make
    for h in made:
        h.close()


@pytest.fixture
def harness_info(ros_info, backend):
    """Like `harness`, with gsvnet_ros_msgs importable (~/info published)."""
    from node_harness import Harness

    made = []

    def make(**kwargs):
        made.append(Harness(ros_info, backend, **kwargs))
        return made[-1]

    yield make
    for h in made:
        h.close()

"""Fixtures for the ROS-layer tests: real rclpy over Fast DDS, kept on this host.

Every test run takes a DDS domain of its own (a lock file per domain id held for the whole run),
and discovery stays on localhost, so two runs on one machine never see each other and nothing
leaves the host. Both are set here, before anything imports rclpy.

The interface packages that are not on the package registry (gsvnet_ros_msgs from msg/, and
vision_msgs' LabelInfo/VisionClass) are built once with colcon by `ros_msgs_build` and cached
under .cache/ros_msgs; the `ros` fixture hides gsvnet_ros_msgs, `ros_info` shows it.
"""
from __future__ import annotations

import fcntl
import importlib
import os
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parents[2]
MSG_CACHE = REPO / ".cache" / "ros_msgs"
_DOMAIN_LOCKS = Path(tempfile.gettempdir()) / "gsvnet_ros_test_domains"


def _claim_domain_id() -> int:
    """The highest free DDS domain id in 1..101 (ids above 101 clash with Linux's ephemeral ports).

    The lock stays held by this process until it exits, so concurrent test runs get distinct ids.
    """
    _DOMAIN_LOCKS.mkdir(exist_ok=True)
    for domain in range(101, 0, -1):
        handle = open(_DOMAIN_LOCKS / f"{domain}.lock", "w")  # noqa: SIM115 (held for the run)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        _claim_domain_id.handle = handle  # type: ignore[attr-defined]
        return domain
    raise RuntimeError(f"no free ROS_DOMAIN_ID: every lock in {_DOMAIN_LOCKS} is held")


os.environ["ROS_DOMAIN_ID"] = str(_claim_domain_id())
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.pop("ROS_STATIC_PEERS", None)
# The shipped Fast DDS profile, as the launch files set it, for every participant of the tests
# (publishers above all: the shared-memory segment that carries a large frame is the writer's).
# Fast DDS 2.x (Jazzy) reads the first name, 3.x (Kilted) the second.
FASTDDS_PROFILE = REPO / "config" / "fastdds_large_images.xml"
FASTDDS_PROFILE_VARIABLES = ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")
for _name in FASTDDS_PROFILE_VARIABLES:
    os.environ[_name] = str(FASTDDS_PROFILE)
os.environ.setdefault("RCUTILS_COLORIZED_OUTPUT", "0")

import rclpy  # noqa: E402  (after the environment above)

import ros_msgs_build  # noqa: E402

_PREFIX = ros_msgs_build.ensure_built(MSG_CACHE)
ros_msgs_build.activate(_PREFIX)


def msgs_environment() -> dict[str, str]:
    """os.environ plus what a child process needs to import the built interface packages."""
    env = dict(os.environ)
    env.update(ros_msgs_build.environment_for(_PREFIX))
    return env


class _Modules(dict):
    """mods['rclpy.qos'] -> the real module, imported on first use."""

    def __missing__(self, name: str):
        module = importlib.import_module(name)
        self[name] = module
        return module


def message_class(name: str):
    """'sensor_msgs/msg/Image' -> the real message class."""
    package, kind, cls = name.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), cls)


def _purge_ros_layer() -> None:
    """Forget gsvnet_ros.ros.* so the next import binds to the message packages visible now."""
    for name in list(sys.modules):
        if name == "gsvnet_ros.ros" or name.startswith("gsvnet_ros.ros."):
            del sys.modules[name]


def Environment(with_info: bool) -> SimpleNamespace:  # noqa: N802 (reads as a type)
    """What the harness needs: rclpy, its modules by name, message classes, whether ~/info is on."""
    return SimpleNamespace(rclpy=rclpy, mods=_Modules(rclpy=rclpy), msg=message_class,
                           with_info=with_info)


def _install(monkeypatch: pytest.MonkeyPatch, with_info: bool) -> SimpleNamespace:
    _purge_ros_layer()
    if not with_info:
        monkeypatch.setitem(sys.modules, "gsvnet_ros_msgs", None)
        monkeypatch.setitem(sys.modules, "gsvnet_ros_msgs.msg", None)
    rclpy.init()
    return Environment(with_info)


@pytest.fixture
def ros(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimpleNamespace]:
    """Real rclpy, initialised, with gsvnet_ros_msgs hidden (so ~/info is not published)."""
    env = _install(monkeypatch, with_info=False)
    yield env
    rclpy.try_shutdown()
    _purge_ros_layer()


@pytest.fixture
def ros_info(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimpleNamespace]:
    """Real rclpy with gsvnet_ros_msgs importable (built from this package's msg/)."""
    env = _install(monkeypatch, with_info=True)
    yield env
    rclpy.try_shutdown()
    _purge_ros_layer()


@pytest.fixture
def probe():
    """(node, executor) on a context of their own: a peer of a node that runs as a process."""
    from rclpy.executors import SingleThreadedExecutor

    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("process_probe", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    yield node, executor
    executor.shutdown()
    node.destroy_node()
    rclpy.try_shutdown(context=context)


@pytest.fixture(scope="session")
def backend():
    """One random-weight GSVNet on the CPU, shared by every node (as a node shares it by stream)."""
    return random_backend()


def random_backend():
    """A GSVNet with seeded random weights on the CPU, torch backend, one thread."""
    import torch

    from gsvnet_ros.backends.base import resolve_device
    from gsvnet_ros.backends.torch_backend import TorchBackend
    from gsvnet_ros.config import GSVNetConfig
    from gsvnet_ros.models.gsvnet import build_gsvnet

    # One intra-op thread: on a shared 2-core machine two threads make a 128x64 step ~10x slower.
    torch.set_num_threads(1)
    torch.manual_seed(0)
    return TorchBackend(build_gsvnet(GSVNetConfig().model), resolve_device("cpu"))


def _harness_factory(env, backend):
    from node_harness import Harness

    made = []

    def make(**kwargs):
        made.append(Harness(env, backend, **kwargs))
        return made[-1]

    return made, make


@pytest.fixture
def harness(ros, backend):
    """Factory: harness(**kwargs) -> node_harness.Harness on real rclpy; all closed afterwards."""
    made, make = _harness_factory(ros, backend)
    yield make
    for h in made:
        h.close()


@pytest.fixture
def harness_info(ros_info, backend):
    """Like `harness`, with gsvnet_ros_msgs importable (~/info published)."""
    made, make = _harness_factory(ros_info, backend)
    yield make
    for h in made:
        h.close()

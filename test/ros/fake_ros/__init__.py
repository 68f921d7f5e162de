"""A small stand-in for rclpy and the message packages, written from RCLPY_SURFACE.md.

`modules()` returns the fake module tree ({'rclpy': ..., 'rclpy.node': ..., 'sensor_msgs.msg': });
the conftest fixture puts it into sys.modules for the ROS tests only. Messages come from the
rosbags typestore (real ROS 2 definitions) with Humble's strict field checks. Test helpers
(`call_service`, `records`, `graph`) are extras that real rclpy does not have.
"""
from __future__ import annotations

import types
from typing import Any

from . import (_callback_groups, _context, _entities, _exceptions, _executors, _graph, _logging,
               _msgs, _node, _parameter, _qos, _time)

_MESSAGE_PACKAGES = ("builtin_interfaces", "std_msgs", "sensor_msgs", "diagnostic_msgs",
                     "rcl_interfaces", "vision_msgs")
_SERVICE_PACKAGES = ("std_srvs",)


def _module(name: str, source: Any = None, names: tuple[str, ...] = ()) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__file__ = f"<fake_ros {name}>"
    for attr in names:
        setattr(module, attr, getattr(source, attr))
    return module


def modules(*, with_gsvnet_msgs: bool = False, msg_text: str | None = None
            ) -> dict[str, types.ModuleType]:
    """The fake modules by import name; with_gsvnet_msgs adds gsvnet_ros_msgs.msg from msg_text."""
    m: dict[str, types.ModuleType] = {}
    rclpy = m["rclpy"] = _module("rclpy", _context, (
        "init", "shutdown", "try_shutdown", "ok", "spin", "spin_once",
        "spin_until_future_complete", "create_node", "get_global_executor",
        "get_default_context"))
    rclpy.__path__ = []  # a package, so `import rclpy.node` works
    m["rclpy.node"] = _module("rclpy.node", _node, ("Node",))
    m["rclpy.qos"] = _module("rclpy.qos", _qos, (
        "QoSProfile", "HistoryPolicy", "ReliabilityPolicy", "DurabilityPolicy", "LivelinessPolicy",
        "QoSHistoryPolicy", "QoSReliabilityPolicy", "QoSDurabilityPolicy", "QoSLivelinessPolicy",
        "qos_profile_sensor_data", "qos_profile_system_default", "qos_profile_services_default",
        "qos_profile_parameters", "qos_profile_parameter_events", "QoSPresetProfiles"))
    m["rclpy.qos"].InvalidQoSProfileException = _exceptions.InvalidQoSProfileException
    m["rclpy.parameter"] = _module("rclpy.parameter", _parameter, ("Parameter",))
    m["rclpy.exceptions"] = _module("rclpy.exceptions", _exceptions, tuple(
        n for n in dir(_exceptions) if n[0].isupper()))
    m["rclpy.executors"] = _module("rclpy.executors", _executors, (
        "Executor", "SingleThreadedExecutor", "MultiThreadedExecutor",
        "ExternalShutdownException", "ShutdownException"))
    m["rclpy.callback_groups"] = _module("rclpy.callback_groups", _callback_groups, (
        "CallbackGroup", "MutuallyExclusiveCallbackGroup", "ReentrantCallbackGroup"))
    m["rclpy.time"] = _module("rclpy.time", _time, ("Time",))
    m["rclpy.duration"] = _module("rclpy.duration", _time, ("Duration",))
    m["rclpy.clock"] = _module("rclpy.clock", _time, ("Clock", "ClockType", "ROSClock"))
    m["rclpy.logging"] = _module("rclpy.logging", _logging, ("LoggingSeverity", "get_logger"))
    m["rclpy.task"] = _module("rclpy.task", _entities, ("Future",))
    m["rclpy.context"] = _module("rclpy.context", _context, ("Context",))
    for sub in ("node", "qos", "parameter", "exceptions", "executors", "callback_groups", "time",
                "duration", "clock", "logging", "task", "context"):
        setattr(rclpy, sub, m[f"rclpy.{sub}"])
    for pkg in _MESSAGE_PACKAGES:
        m[pkg] = _module(pkg)
        m[pkg].__path__ = []
        m[pkg].msg = m[f"{pkg}.msg"] = _msgs.build_module(f"{pkg}.msg", f"{pkg}/msg/")
    for pkg in _SERVICE_PACKAGES:
        m[pkg] = _module(pkg)
        m[pkg].__path__ = []
        m[pkg].srv = m[f"{pkg}.srv"] = _msgs.build_module(f"{pkg}.srv", f"{pkg}/srv/")
    if with_gsvnet_msgs:
        assert msg_text is not None
        _msgs.register_msg_text("gsvnet_ros_msgs/msg/SegmentationInfo", msg_text)
        m["gsvnet_ros_msgs"] = _module("gsvnet_ros_msgs")
        m["gsvnet_ros_msgs"].__path__ = []
        m["gsvnet_ros_msgs"].msg = m["gsvnet_ros_msgs.msg"] = _msgs.build_module(
            "gsvnet_ros_msgs.msg", "gsvnet_ros_msgs/msg/")
    return m


# Names that must be hidden (None) when the stand-in is installed without a package, so the code
# under test sees the same ImportError it would see on a machine without it.
HIDDEN_WITHOUT_GSVNET_MSGS = ("gsvnet_ros_msgs", "gsvnet_ros_msgs.msg")
OPTIONAL_REAL = ("diagnostic_updater", "cv_bridge", "launch", "launch_ros")


def reset() -> None:
    """Fresh graph, default context and logger state."""
    _graph.reset()
    _context.reset()
    _logging.clear()


def graph() -> _graph.Graph:
    return _graph.current()


def records() -> list[tuple[Any, str, str]]:
    """Every message logged through fake loggers: (LoggingSeverity, logger name, text)."""
    return list(_logging.RECORDS)


def call_service(executor: Any, service_name: str, request: Any, timeout_sec: float = 5.0) -> Any:
    """Send `request` to the service named `service_name` and spin `executor` until it answers."""
    service = _graph.current().services[service_name]
    future = _entities.Future()
    service.enqueue(_msgs.round_trip(request), future)
    executor.spin_until_future_complete(future, timeout_sec=timeout_sec)
    assert future.done(), f"service {service_name} did not answer within {timeout_sec} s"
    return future.result()


LoggingSeverity = _logging.LoggingSeverity
message_class = _msgs.message_class
round_trip = _msgs.round_trip

"""rclpy.qos: QoSProfile, policy enums and the preset profiles (RCLPY_SURFACE §2, Humble set)."""
from __future__ import annotations

from enum import Enum, IntEnum
from typing import Any

from ._exceptions import InvalidQoSProfileException


class HistoryPolicy(IntEnum):
    SYSTEM_DEFAULT = 0
    KEEP_LAST = 1
    KEEP_ALL = 2
    UNKNOWN = 3


class ReliabilityPolicy(IntEnum):
    SYSTEM_DEFAULT = 0
    RELIABLE = 1
    BEST_EFFORT = 2
    UNKNOWN = 3


class DurabilityPolicy(IntEnum):
    SYSTEM_DEFAULT = 0
    TRANSIENT_LOCAL = 1
    VOLATILE = 2
    UNKNOWN = 3


class LivelinessPolicy(IntEnum):
    SYSTEM_DEFAULT = 0
    AUTOMATIC = 1
    MANUAL_BY_TOPIC = 3
    UNKNOWN = 4


QoSHistoryPolicy = HistoryPolicy
QoSReliabilityPolicy = ReliabilityPolicy
QoSDurabilityPolicy = DurabilityPolicy
QoSLivelinessPolicy = LivelinessPolicy

_SLOTS = ("history", "depth", "reliability", "durability", "lifespan", "deadline", "liveliness",
          "liveliness_lease_duration", "avoid_ros_namespace_conventions")
_ENUMS = {"history": HistoryPolicy, "reliability": ReliabilityPolicy,
          "durability": DurabilityPolicy, "liveliness": LivelinessPolicy}
# rmw_qos_profile_default: KEEP_LAST 10, RELIABLE, VOLATILE.
_DEFAULTS = {"history": HistoryPolicy.KEEP_LAST, "depth": 10,
             "reliability": ReliabilityPolicy.RELIABLE, "durability": DurabilityPolicy.VOLATILE,
             "lifespan": None, "deadline": None, "liveliness": LivelinessPolicy.SYSTEM_DEFAULT,
             "liveliness_lease_duration": None, "avoid_ros_namespace_conventions": False}


class QoSProfile:
    """Keyword-only; history and/or depth are required."""

    __slots__ = tuple("_" + s for s in _SLOTS)

    def __init__(self, **kwargs: Any) -> None:
        assert all(k in _SLOTS for k in kwargs), "Invalid arguments passed to constructor"
        if "history" not in kwargs:
            if "depth" not in kwargs:
                raise InvalidQoSProfileException("History and/or depth settings are required.")
            kwargs["history"] = HistoryPolicy.KEEP_LAST
        if kwargs["history"] == HistoryPolicy.KEEP_LAST and "depth" not in kwargs:
            raise InvalidQoSProfileException("History set to KEEP_LAST without a depth setting.")
        for slot in _SLOTS:
            setattr(self, slot, kwargs.get(slot, _DEFAULTS[slot]))

    def __getattr__(self, name: str) -> Any:
        if name in _SLOTS:
            return object.__getattribute__(self, "_" + name)
        raise AttributeError(name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _ENUMS:
            value = _ENUMS[name](value)
        elif name == "depth":
            assert isinstance(value, int) and value >= 0
        elif name not in _SLOTS:
            raise AttributeError(name)
        object.__setattr__(self, "_" + name, value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, QoSProfile) and all(
            getattr(self, s) == getattr(other, s) for s in _SLOTS)

    def __repr__(self) -> str:
        return "QoSProfile(" + ", ".join(f"{s}={getattr(self, s)!r}" for s in _SLOTS[:4]) + ")"


qos_profile_sensor_data = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                                     reliability=ReliabilityPolicy.BEST_EFFORT,
                                     durability=DurabilityPolicy.VOLATILE)
qos_profile_system_default = QoSProfile(history=HistoryPolicy.SYSTEM_DEFAULT, depth=0,
                                        reliability=ReliabilityPolicy.SYSTEM_DEFAULT,
                                        durability=DurabilityPolicy.SYSTEM_DEFAULT)
qos_profile_services_default = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                                          reliability=ReliabilityPolicy.RELIABLE,
                                          durability=DurabilityPolicy.VOLATILE)
qos_profile_parameters = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1000,
                                    reliability=ReliabilityPolicy.RELIABLE,
                                    durability=DurabilityPolicy.VOLATILE)
qos_profile_parameter_events = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1000,
                                          reliability=ReliabilityPolicy.RELIABLE,
                                          durability=DurabilityPolicy.VOLATILE)


class QoSPresetProfiles(Enum):
    SYSTEM_DEFAULT = qos_profile_system_default
    SENSOR_DATA = qos_profile_sensor_data
    SERVICES_DEFAULT = qos_profile_services_default
    PARAMETERS = qos_profile_parameters
    PARAMETER_EVENTS = qos_profile_parameter_events


def profile_from(qos_profile: Any) -> QoSProfile:
    """What create_publisher/create_subscription accept: a QoSProfile or a depth int."""
    if isinstance(qos_profile, QoSProfile):
        return qos_profile
    if isinstance(qos_profile, int) and not isinstance(qos_profile, bool):
        if qos_profile < 0:
            raise ValueError("history depth must be greater than or equal to zero")
        return QoSProfile(depth=qos_profile)
    raise TypeError("Expected QoSProfile or int, but received {!r}".format(type(qos_profile)))


def compatible(pub: QoSProfile, sub: QoSProfile) -> bool:
    """DDS matching: a RELIABLE reader misses a BEST_EFFORT writer; TRANSIENT_LOCAL likewise."""
    if sub.reliability == ReliabilityPolicy.RELIABLE and \
            pub.reliability == ReliabilityPolicy.BEST_EFFORT:
        return False
    if sub.durability == DurabilityPolicy.TRANSIENT_LOCAL and \
            pub.durability == DurabilityPolicy.VOLATILE:
        return False
    return True

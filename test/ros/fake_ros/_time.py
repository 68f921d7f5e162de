"""rclpy.time / rclpy.duration / rclpy.clock (RCLPY_SURFACE §1.7)."""
from __future__ import annotations

import time as _systime
from enum import IntEnum
from typing import Any

from . import _msgs


class ClockType(IntEnum):
    UNINITIALIZED = 0
    ROS_TIME = 1
    SYSTEM_TIME = 2
    STEADY_TIME = 3


class Duration:
    def __init__(self, *, seconds: float = 0, nanoseconds: int = 0) -> None:
        total = int(seconds * 1e9) + int(nanoseconds)
        if not -2**63 <= total < 2**63:
            raise OverflowError("Total nanoseconds value is too large to store in C duration.")
        self._ns = total

    @property
    def nanoseconds(self) -> int:
        return self._ns

    def to_msg(self) -> Any:
        sec, ns = divmod(self._ns, 10**9)
        return _msgs.message_class("builtin_interfaces/msg/Duration")(sec=sec, nanosec=ns)

    @classmethod
    def from_msg(cls, msg: Any) -> "Duration":
        return cls(seconds=msg.sec, nanoseconds=msg.nanosec)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Duration):  # Humble raises (Jazzy returns NotImplemented)
            raise TypeError("Can't compare duration with object of type: ", type(other))
        return self._ns == other._ns

    def __lt__(self, other: "Duration") -> bool:
        return self._ns < other._ns

    def __hash__(self) -> int:
        return hash(self._ns)


class Time:
    def __init__(self, *, seconds: float = 0, nanoseconds: int = 0,
                 clock_type: ClockType = ClockType.SYSTEM_TIME) -> None:
        if seconds < 0 or nanoseconds < 0:
            raise ValueError("Seconds and nanoseconds must not be negative")
        total = int(seconds * 1e9) + int(nanoseconds)
        if total >= 2**63:
            raise OverflowError("Total nanoseconds value is too large to store in C time point.")
        self._ns = total
        self._clock_type = ClockType(clock_type)

    @property
    def nanoseconds(self) -> int:
        return self._ns

    @property
    def clock_type(self) -> ClockType:
        return self._clock_type

    def seconds_nanoseconds(self) -> tuple[int, int]:
        return divmod(self._ns, 10**9)

    def to_msg(self) -> Any:
        sec, ns = self.seconds_nanoseconds()
        return _msgs.message_class("builtin_interfaces/msg/Time")(sec=sec, nanosec=ns)

    @classmethod
    def from_msg(cls, msg: Any, clock_type: ClockType = ClockType.ROS_TIME) -> "Time":
        if not isinstance(msg, _msgs.message_class("builtin_interfaces/msg/Time")):
            raise TypeError("Must pass a builtin_interfaces.msg.Time object")
        return cls(seconds=msg.sec, nanoseconds=msg.nanosec, clock_type=clock_type)

    def _same(self, other: "Time") -> None:
        if self._clock_type != other._clock_type:
            raise TypeError("Can't compare times with different clock types")

    def __sub__(self, other: Any) -> Any:
        if isinstance(other, Time):
            self._same(other)
            return Duration(nanoseconds=self._ns - other._ns)
        if isinstance(other, Duration):
            return Time(nanoseconds=self._ns - other.nanoseconds, clock_type=self._clock_type)
        return NotImplemented

    def __add__(self, other: Duration) -> "Time":
        if not isinstance(other, Duration):
            return NotImplemented
        return Time(nanoseconds=self._ns + other.nanoseconds, clock_type=self._clock_type)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Time):
            raise TypeError("Can't compare time with object of type: ", type(other))
        self._same(other)
        return self._ns == other._ns

    def __lt__(self, other: "Time") -> bool:
        self._same(other)
        return self._ns < other._ns

    def __le__(self, other: "Time") -> bool:
        self._same(other)
        return self._ns <= other._ns

    def __hash__(self) -> int:
        return hash((self._ns, self._clock_type))


class Clock:
    def __init__(self, *, clock_type: ClockType = ClockType.SYSTEM_TIME) -> None:
        self._clock_type = ClockType(clock_type)
        self._sim_ns: int | None = None  # set by the test harness to emulate use_sim_time

    @property
    def clock_type(self) -> ClockType:
        return self._clock_type

    def now(self) -> Time:
        if self._clock_type == ClockType.STEADY_TIME:
            ns = _systime.monotonic_ns()
        elif self._sim_ns is not None:
            ns = self._sim_ns
        else:
            ns = _systime.time_ns()
        return Time(nanoseconds=ns, clock_type=self._clock_type)


class ROSClock(Clock):
    def __init__(self) -> None:
        super().__init__(clock_type=ClockType.ROS_TIME)

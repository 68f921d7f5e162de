"""rclpy.logging and the node logger with rcutils' per-call-site rules (RCLPY_SURFACE §1.6)."""
from __future__ import annotations

import sys
import threading
import time
from enum import IntEnum
from typing import Any

from ._time import Clock


class LoggingSeverity(IntEnum):
    UNSET = 0
    DEBUG = 10
    INFO = 20
    WARN = 30
    ERROR = 40
    FATAL = 50


_FILTERS = ("throttle_duration_sec", "throttle_time_source_type", "skip_first", "once")
# Every record emitted by any fake logger: (severity, logger name, message). Tests read it.
RECORDS: list[tuple[LoggingSeverity, str, str]] = []
_LOCK = threading.Lock()


def clear() -> None:
    """Forget the records (between tests)."""
    with _LOCK:
        RECORDS.clear()


class RcutilsLogger:
    def __init__(self, name: str = "") -> None:
        self.name = name
        self._level = LoggingSeverity.INFO
        # Per-call-site state lives in each logger object (rclpy: RcutilsLogger.contexts).
        self._sites: dict[tuple, dict[str, Any]] = {}

    def get_child(self, name: str) -> "RcutilsLogger":
        return RcutilsLogger(f"{self.name}.{name}" if self.name else name)

    def set_level(self, level: Any) -> None:
        self._level = LoggingSeverity(level)

    def get_effective_level(self) -> LoggingSeverity:
        return self._level

    def is_enabled_for(self, severity: Any) -> bool:
        return LoggingSeverity(severity) >= self._level

    def log(self, message: Any, severity: Any, **kwargs: Any) -> bool:
        return self._log(message, LoggingSeverity(severity), kwargs, depth=2)

    def _log(self, message: Any, severity: LoggingSeverity, kwargs: dict, depth: int) -> bool:
        name = kwargs.pop("name", self.name)
        for key in kwargs:
            if key not in _FILTERS:
                raise TypeError(f'parameter "{key}" is not one of the recognized logging options '
                                f'"{_FILTERS}"')
        source = kwargs.get("throttle_time_source_type")
        if source is not None and not isinstance(source, Clock):
            raise ValueError("Received throttle_time_source_type of \"{}\" is not a clock type"
                             .format(source))
        frame = sys._getframe(depth)
        site = (frame.f_code.co_name, frame.f_code.co_filename, frame.f_lineno, frame.f_lasti)
        filters = {k: v for k, v in kwargs.items() if v}
        with _LOCK:
            state = self._sites.get(site)
            if state is None:
                state = self._sites[site] = {"severity": severity, "name": name,
                                        "filters": dict(filters), "calls": 0, "last": None}
            else:
                if state["severity"] != severity:
                    raise ValueError("Logger severity cannot be changed between calls.")
                if state["name"] != name:
                    raise ValueError("Logger name cannot be changed between calls.")
                if state["filters"] != filters:
                    raise ValueError("Logging filters cannot be changed between calls.")
            if not self.is_enabled_for(severity):
                return False
            state["calls"] += 1
            throttle = filters.get("throttle_duration_sec")
            if throttle:
                now = time.monotonic()
                if state["last"] is not None and now - state["last"] < throttle:
                    return False
                state["last"] = now
            if filters.get("skip_first") and state["calls"] == 1:
                return False
            if filters.get("once") and state.get("logged"):
                return False
            state["logged"] = True
            RECORDS.append((severity, name, str(message)))
        return True

    def debug(self, message: Any, **kwargs: Any) -> bool:
        return self._log(message, LoggingSeverity.DEBUG, kwargs, depth=2)

    def info(self, message: Any, **kwargs: Any) -> bool:
        return self._log(message, LoggingSeverity.INFO, kwargs, depth=2)

    def warning(self, message: Any, **kwargs: Any) -> bool:
        return self._log(message, LoggingSeverity.WARN, kwargs, depth=2)

    warn = warning

    def error(self, message: Any, **kwargs: Any) -> bool:
        return self._log(message, LoggingSeverity.ERROR, kwargs, depth=2)

    def fatal(self, message: Any, **kwargs: Any) -> bool:
        return self._log(message, LoggingSeverity.FATAL, kwargs, depth=2)


def get_logger(name: str) -> RcutilsLogger:
    return RcutilsLogger(name)

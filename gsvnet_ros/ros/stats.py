"""Latency, rate and counter bookkeeping of the node (pure Python: no ROS, numpy or torch import).

Thread-safe: the subscription callback, the worker thread and the diagnostics timer all use it.
"""
from __future__ import annotations

import collections
import math
import threading
import time
from typing import Any, Optional

__all__ = ["RollingWindow", "RateMeter", "NodeStats", "FRAME_TYPES", "diagnostic_values"]

FRAME_TYPES = ("keyframe", "non_keyframe")


def _percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default method) of a sorted, non-empty list."""
    position = (len(sorted_values) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


class RollingWindow:
    """The last `size` values; p50 / p95 / max over them."""

    def __init__(self, size: int) -> None:
        self._values: collections.deque[float] = collections.deque(maxlen=size)

    def add(self, value: float) -> None:
        self._values.append(float(value))

    def __len__(self) -> int:
        return len(self._values)

    def summary(self) -> dict[str, Optional[float]]:
        """{'p50', 'p95', 'max'}: None when empty."""
        if not self._values:
            return {"p50": None, "p95": None, "max": None}
        ordered = sorted(self._values)
        return {"p50": _percentile(ordered, 50), "p95": _percentile(ordered, 95),
                "max": ordered[-1]}


class RateMeter:
    """Events per second over the last `horizon_s` seconds (monotonic clock)."""

    def __init__(self, size: int, horizon_s: float = 5.0) -> None:
        self._times: collections.deque[float] = collections.deque(maxlen=size)
        self._horizon_s = horizon_s

    def tick(self, now: Optional[float] = None) -> None:
        self._times.append(time.monotonic() if now is None else now)

    def rate_hz(self, now: Optional[float] = None) -> float:
        now = time.monotonic() if now is None else now
        recent = [t for t in self._times if now - t <= self._horizon_s]
        if len(recent) < 2 or recent[-1] <= recent[0]:
            return 0.0
        return (len(recent) - 1) / (recent[-1] - recent[0])


class NodeStats:
    """Counters since start and rolling windows of the last `window` frames."""

    def __init__(self, window: int = 100) -> None:
        self._lock = threading.Lock()
        self.received = 0
        self.processed = 0
        self.dropped = 0
        self.skipped_disabled = 0
        self.segmentation_errors = 0
        self.callback_errors = 0
        self.decode_errors: collections.Counter[str] = collections.Counter()
        self.frames_by_type: collections.Counter[str] = collections.Counter()
        self.keyframe_reasons: collections.Counter[str] = collections.Counter()
        self._recent_types: collections.deque[bool] = collections.deque(maxlen=window)
        self.latency_ms = {t: RollingWindow(window) for t in FRAME_TYPES}
        self.model_ms = {t: RollingWindow(window) for t in FRAME_TYPES}
        self.stamp_age_ms = RollingWindow(window)
        self.input_rate = RateMeter(window)
        self.output_rate = RateMeter(window)

    def on_received(self) -> None:
        with self._lock:
            self.received += 1
            self.input_rate.tick()

    def on_dropped(self) -> None:
        """An unprocessed frame in the slot was replaced by a newer one."""
        with self._lock:
            self.dropped += 1

    def on_skipped(self) -> None:
        with self._lock:
            self.skipped_disabled += 1

    def on_decode_error(self, kind: str) -> None:
        with self._lock:
            self.decode_errors[kind] += 1

    def on_segmentation_error(self) -> None:
        with self._lock:
            self.segmentation_errors += 1

    def on_callback_error(self) -> None:
        """A timer or service callback raised (logged and survived)."""
        with self._lock:
            self.callback_errors += 1

    def on_processed(self, *, is_keyframe: bool, latency_ms: float, model_ms: float,
                     stamp_age_ms: float, keyframe_reason: str = "") -> None:
        frame_type = FRAME_TYPES[0] if is_keyframe else FRAME_TYPES[1]
        with self._lock:
            self.processed += 1
            if is_keyframe:
                self.keyframe_reasons[keyframe_reason or "unknown"] += 1
            self.frames_by_type[frame_type] += 1
            self._recent_types.append(bool(is_keyframe))
            self.latency_ms[frame_type].add(latency_ms)
            self.model_ms[frame_type].add(model_ms)
            self.stamp_age_ms.add(stamp_age_ms)
            self.output_rate.tick()

    def snapshot(self) -> dict[str, Any]:
        """Every number of the diagnostics, as plain Python values."""
        with self._lock:
            recent = list(self._recent_types)
            snap: dict[str, Any] = {
                "input_rate_hz": self.input_rate.rate_hz(),
                "output_rate_hz": self.output_rate.rate_hz(),
                "frames_received": self.received,
                "frames_processed": self.processed,
                "frames_dropped": self.dropped,
                "frames_skipped_disabled": self.skipped_disabled,
                "segmentation_errors": self.segmentation_errors,
                "callback_errors": self.callback_errors,
                "decode_errors": sum(self.decode_errors.values()),
                "decode_errors_by_kind": dict(self.decode_errors),
                "keyframes": self.frames_by_type[FRAME_TYPES[0]],
                "keyframe_reasons": dict(self.keyframe_reasons),
                "keyframe_ratio": (sum(recent) / len(recent)) if recent else None,
                "stamp_age_ms": self.stamp_age_ms.summary(),
            }
            for t in FRAME_TYPES:
                snap[f"latency_{t}_ms"] = self.latency_ms[t].summary()
                snap[f"model_{t}_ms"] = self.model_ms[t].summary()
        return snap


def diagnostic_values(snap: dict[str, Any]) -> dict[str, Any]:
    """A NodeStats.snapshot() flattened into the /diagnostics key-value pairs (stable key names)."""
    values: dict[str, Any] = {
        "input_rate_hz": snap["input_rate_hz"], "output_rate_hz": snap["output_rate_hz"],
        "stamp_age_p50_ms": snap["stamp_age_ms"]["p50"],
        "stamp_age_max_ms": snap["stamp_age_ms"]["max"]}
    for kind in ("latency", "model"):
        for frame_type in FRAME_TYPES:
            for stat, number in snap[f"{kind}_{frame_type}_ms"].items():
                values[f"{kind}_{frame_type}_{stat}_ms"] = number
    values.update({key: snap[key] for key in (
        "keyframe_ratio", "keyframes", "frames_received", "frames_processed", "frames_dropped",
        "frames_skipped_disabled", "decode_errors", "segmentation_errors", "callback_errors")})
    for kind, count in sorted(snap["decode_errors_by_kind"].items()):
        values[f"decode_errors_{kind}"] = count
    for reason, count in sorted(snap.get("keyframe_reasons", {}).items()):
        values[f"keyframes_{reason}"] = count
    return values

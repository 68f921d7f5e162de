"""Small report helpers shared by the offline bag tool and the ROS evaluator (numpy only)."""
from __future__ import annotations

import hashlib
import math
import os
from typing import Any

import numpy as np

__all__ = ["latency_stats", "json_safe", "file_sha256"]


def latency_stats(values_ms: Any) -> dict[str, float | int | None]:
    """count, mean, median, p95, max of a list of milliseconds (None where empty)."""
    values = np.asarray(values_ms, np.float64)
    if values.size == 0:
        return {"count": 0, "mean": None, "median": None, "p95": None, "max": None}
    return {"count": int(values.size), "mean": float(values.mean()),
            "median": float(np.median(values)), "p95": float(np.percentile(values, 95)),
            "max": float(values.max())}


def json_safe(value: Any) -> Any:
    """Non-finite floats -> None, mapping keys -> str, numpy scalars -> Python, recursively."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

"""The latest-frame slot between the image callback and the worker (pure Python, no ROS import)."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

__all__ = ["Frame", "LatestFrameSlot"]


@dataclass
class Frame:
    """A decoded image waiting for the model."""

    rgb: np.ndarray
    header: Any  # the input message's header, copied onto every output
    encoding: str  # e.g. 'bgr8' or 'compressed/jpeg': a change forces a keyframe
    received: float  # time.monotonic() when the message arrived


class LatestFrameSlot:
    """Depth-1 mailbox: put() replaces an unprocessed frame (and says so); take() empties it.

    A slow model therefore drops stale frames instead of queueing them: the latency of a frame
    is at most one model step of waiting plus its own step.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._frame: Optional[Frame] = None
        self._ready = threading.Event()

    def put(self, frame: Frame) -> bool:
        """Store `frame`; True when an older, unprocessed frame was dropped for it."""
        with self._lock:
            dropped = self._frame is not None
            self._frame = frame
            self._ready.set()
        return dropped

    def take(self) -> Optional[Frame]:
        """The waiting frame (None if empty); the slot is empty afterwards."""
        with self._lock:
            frame, self._frame = self._frame, None
            self._ready.clear()
        return frame

    def wait(self, timeout: float) -> bool:
        """Block until a frame is put (or wake() is called); False after `timeout` seconds."""
        return self._ready.wait(timeout)

    def wake(self) -> None:
        """Release a waiting worker (used at shutdown)."""
        self._ready.set()

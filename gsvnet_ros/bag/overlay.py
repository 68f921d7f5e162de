"""Overlay previews of a segmentation run: an mp4 video or a PNG strip of a few frames."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from gsvnet_ros.codec import overlay

from .errors import BagError

__all__ = ["VIDEO_SUFFIXES", "STRIP_SUFFIXES", "OverlaySink", "VideoOverlay", "StripOverlay",
           "make_overlay_sink"]

VIDEO_SUFFIXES = (".mp4", ".avi")
STRIP_SUFFIXES = (".png",)
_FOURCC = {".mp4": "mp4v", ".avi": "MJPG"}
_STRIP_TILE_HEIGHT = 256
_DEFAULT_FPS = 10.0


class OverlaySink:
    """Receives every segmented frame; writes its preview to `path` on finish()."""

    def __init__(self, path: Path, alpha: float) -> None:
        self.path = path
        self.alpha = alpha

    def add(self, index: int, rgb: np.ndarray, labels: np.ndarray, stamp_ns: int,
            is_keyframe: bool) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        raise NotImplementedError


class VideoOverlay(OverlaySink):
    """Every frame blended with its colour mask, at the rate of the first two stamps."""

    def __init__(self, path: Path, alpha: float) -> None:
        super().__init__(path, alpha)
        self._writer: cv2.VideoWriter | None = None
        self._first: tuple[np.ndarray, int] | None = None
        self._size: tuple[int, int] = (0, 0)

    def _open(self, size_hw: tuple[int, int], fps: float) -> None:
        # Codecs want even sizes: round down, and resize every frame to this one size.
        height, width = max(2, size_hw[0] // 2 * 2), max(2, size_hw[1] // 2 * 2)
        self._size = (width, height)
        fourcc = cv2.VideoWriter_fourcc(*_FOURCC[self.path.suffix.lower()])
        self._writer = cv2.VideoWriter(str(self.path), fourcc, fps, self._size)
        if not self._writer.isOpened():
            raise BagError(f"cannot write video {self.path}: OpenCV has no encoder for "
                           f"{self.path.suffix}; expected .mp4 or .avi support (or use a .png strip)")

    def _write(self, blended_rgb: np.ndarray) -> None:
        assert self._writer is not None
        if (blended_rgb.shape[1], blended_rgb.shape[0]) != self._size:
            blended_rgb = cv2.resize(blended_rgb, self._size, interpolation=cv2.INTER_AREA)
        self._writer.write(cv2.cvtColor(blended_rgb, cv2.COLOR_RGB2BGR))

    def add(self, index: int, rgb: np.ndarray, labels: np.ndarray, stamp_ns: int,
            is_keyframe: bool) -> None:
        blended = overlay(rgb, labels, self.alpha)
        if self._writer is None:
            if self._first is None:
                self._first = (blended, stamp_ns)
                return
            first, first_stamp = self._first
            period_s = (stamp_ns - first_stamp) / 1e9
            self._open(first.shape[:2], min(120.0, max(1.0, 1.0 / period_s)) if period_s > 0
                       else _DEFAULT_FPS)
            self._write(first)
            self._first = None
        self._write(blended)

    def finish(self) -> None:
        if self._writer is None and self._first is not None:
            self._open(self._first[0].shape[:2], _DEFAULT_FPS)
            self._write(self._first[0])
        if self._writer is not None:
            self._writer.release()


class StripOverlay(OverlaySink):
    """`count` frames spread evenly over the topic, side by side, each marked K(eyframe) or P."""

    def __init__(self, path: Path, alpha: float, *, total_frames: int, count: int = 8) -> None:
        super().__init__(path, alpha)
        picks = np.linspace(0, max(total_frames - 1, 0), num=max(1, min(count, total_frames or 1)))
        self._wanted = set(np.round(picks).astype(int).tolist())
        self._tiles: list[np.ndarray] = []

    def add(self, index: int, rgb: np.ndarray, labels: np.ndarray, stamp_ns: int,
            is_keyframe: bool) -> None:
        if index not in self._wanted:
            return
        tile = overlay(rgb, labels, self.alpha)
        height, width = tile.shape[:2]
        tile_h = min(_STRIP_TILE_HEIGHT, height)
        tile = cv2.resize(tile, (max(1, round(width * tile_h / height)), tile_h),
                          interpolation=cv2.INTER_AREA)
        text = f"#{index} {'K' if is_keyframe else 'P'}"
        cv2.putText(tile, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1,
                    cv2.LINE_AA)
        self._tiles.append(tile)

    def finish(self) -> None:
        if not self._tiles:
            raise BagError(f"no frames for the overlay strip {self.path}")
        strip = np.concatenate(self._tiles, axis=1)
        if not cv2.imwrite(str(self.path), cv2.cvtColor(strip, cv2.COLOR_RGB2BGR)):
            raise BagError(f"cannot write overlay strip {self.path}")


def make_overlay_sink(path: Path, write_to: Path, *, alpha: float, total_frames: int,
                      strip_frames: int) -> OverlaySink:
    """The sink for an output name (.mp4/.avi video, .png strip) writing to `write_to`."""
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return VideoOverlay(write_to, alpha)
    if suffix in STRIP_SUFFIXES:
        return StripOverlay(write_to, alpha, total_frames=total_frames, count=strip_frames)
    raise BagError(f"overlay {path}: unknown kind {path.suffix!r}; expected .mp4, .avi or .png")

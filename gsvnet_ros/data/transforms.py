"""Paired clip transforms (same scale, crop and flip for every frame and the label) and a torch adapter."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import cv2
import numpy as np

from gsvnet_ros.labels import IGNORE_INDEX

__all__ = ["ClipTransform", "scale_clip", "crop_clip", "flip_clip", "clip_to_tensors", "TorchClips"]


def _as_clip(frames: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    clip = np.asarray(frames) if not isinstance(frames, np.ndarray) else frames
    if clip.ndim == 3:
        clip = clip[None]
    if clip.ndim != 4 or clip.shape[3] != 3 or clip.dtype != np.uint8:
        raise ValueError(f"frames must be (T, H, W, 3) or (H, W, 3) uint8, got {clip.shape} "
                         f"{clip.dtype}")
    return clip


def scale_clip(frames: np.ndarray, label: np.ndarray | None, scale: float
               ) -> tuple[np.ndarray, np.ndarray | None]:
    """Resize every frame (bilinear, area when shrinking) and the label (nearest) by `scale`."""
    t, h, w = frames.shape[:3]
    size = (max(1, int(round(w * scale))), max(1, int(round(h * scale))))
    if size == (w, h):
        return frames, label
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    out = np.stack([cv2.resize(f, size, interpolation=interp) for f in frames])
    lab = None if label is None else cv2.resize(label, size, interpolation=cv2.INTER_NEAREST)
    return out, lab


def crop_clip(frames: np.ndarray, label: np.ndarray | None, top: int, left: int, height: int,
              width: int, ignore_index: int = IGNORE_INDEX) -> tuple[np.ndarray, np.ndarray | None]:
    """Crop a window (pixels outside the image: frames 0, label `ignore_index`)."""
    t, h, w = frames.shape[:3]
    out = np.zeros((t, height, width, 3), np.uint8)
    lab = None if label is None else np.full((height, width), ignore_index, np.uint8)
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + height, h), min(left + width, w)
    if y0 < y1 and x0 < x1:
        out[:, y0 - top:y1 - top, x0 - left:x1 - left] = frames[:, y0:y1, x0:x1]
        if label is not None:
            lab[y0 - top:y1 - top, x0 - left:x1 - left] = label[y0:y1, x0:x1]
    return out, lab


def flip_clip(frames: np.ndarray, label: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Mirror every frame and the label left-right."""
    return (np.ascontiguousarray(frames[:, :, ::-1]),
            None if label is None else np.ascontiguousarray(label[:, ::-1]))


@dataclass(frozen=True)
class ClipTransform:
    """Random scale, crop and horizontal flip, drawn once per clip from a numpy Generator.

    `crop` is (height, width); smaller images are padded (frames 0, label ignore_index). The
    draws are always made in the same order (scale, crop offsets, flip), so a Generator in a given
    state always produces the same result.
    """

    scale_range: tuple[float, float] = (0.5, 2.0)
    crop: tuple[int, int] | None = (512, 1024)
    hflip: bool = True
    ignore_index: int = IGNORE_INDEX

    def __post_init__(self) -> None:
        lo, hi = self.scale_range
        if not 0 < lo <= hi:
            raise ValueError(f"scale_range must satisfy 0 < low <= high, got {self.scale_range}")
        if self.crop is not None and min(self.crop) < 1:
            raise ValueError(f"crop must be positive (height, width), got {self.crop}")

    def __call__(self, frames: np.ndarray | Sequence[np.ndarray], label: np.ndarray | None,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
        clip = _as_clip(frames)
        if label is not None and label.shape != clip.shape[1:3]:
            raise ValueError(f"label shape {label.shape} differs from frame shape {clip.shape[1:3]}")
        scale = float(rng.uniform(*self.scale_range))
        clip, label = scale_clip(clip, label, scale)
        if self.crop is not None:
            ch, cw = self.crop
            h, w = clip.shape[1:3]
            top = int(rng.integers(0, max(h - ch, 0) + 1)) if h >= ch else -int(rng.integers(0, ch - h + 1))
            left = int(rng.integers(0, max(w - cw, 0) + 1)) if w >= cw else -int(rng.integers(0, cw - w + 1))
            clip, label = crop_clip(clip, label, top, left, ch, cw, self.ignore_index)
        if self.hflip and rng.random() < 0.5:
            clip, label = flip_clip(clip, label)
        return clip, label


def clip_to_tensors(frames: np.ndarray, label: np.ndarray | None) -> tuple[Any, Any]:
    """(T, H, W, 3) uint8 -> float tensor (T, 3, H, W) in [0, 1]; label -> int64 (H, W) (torch lazily)."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255.0)
    y = None if label is None else torch.from_numpy(np.ascontiguousarray(label)).long()
    return x, y


class TorchClips:
    """Map-style dataset for torch's DataLoader over any loader returning (frames, label, ...).

    Item i uses np.random.default_rng([seed, epoch, i]) for its transform, so a run is
    reproducible whatever the number of loader workers; call `set_epoch` between epochs.
    """

    def __init__(self, dataset: Any, transform: Callable | None = None, seed: int = 0) -> None:
        self.dataset, self.transform, self.seed, self.epoch = dataset, transform, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        item = self.dataset[index]
        frames, label = item[0], item[1]
        if self.transform is not None:
            frames, label = self.transform(frames, label, np.random.default_rng([self.seed, self.epoch,
                                                                                 index]))
        return clip_to_tensors(_as_clip(frames), label)

"""Training data: snippet index over data.cityscapes, in-memory uint8 frame cache, random scale/crop/flip.

The layout is docs/CONTRACTS.md's (leftImg8bit_sequence/, gtFine/ for the annotated frame, optional
gtFine_sequence/ with dense labelIds for every frame); paths and decoding come from data.cityscapes.
Frames are decoded once in the main process and kept as uint8 RGB (1200 frames of 1024x512 = 1.9 GB),
so the CPU cores do nothing but the networks during an iteration. A training sample is cut with ONE
cv2.warpAffine per image (scale, crop and flip in one inverse map, interpolating only the crop):
0.4 ms per 256x256 sample against 4.1 ms for data.transforms.ClipTransform, which resizes the whole
frame first (measured on this machine, 1024x512 uint8 frames).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
from tqdm import tqdm

from ..data import cityscapes
from ..data.cityscapes import read_train_ids
from ..data.errors import DatasetLayoutError
from ..labels import IGNORE_INDEX

__all__ = ["TrainSnippet", "index_split", "resolve_label_source", "read_train_ids", "label_file",
           "FrameStore", "load_keyframe_samples", "random_scale_crop", "color_jitter", "keyframe_batch"]

_MAX_FRAMES_BACK = 29  # annotated-only data: frames before the labelled one that a snippet may hold


@dataclass(frozen=True)
class TrainSnippet:
    """One sequence snippet: its frames in order, the annotated frame, dense labels when present."""

    city: str
    seq: int
    frame_paths: tuple[Path, ...]
    annotated_index: int  # position in frame_paths of the gtFine-labelled frame (19 in Cityscapes)
    annotated_label: Path
    dense_labels: tuple[Path | None, ...]  # gtFine_sequence labelIds per frame (None where absent)

    @property
    def name(self) -> str:
        return f"{self.city}_{self.seq:06d}"

    @property
    def has_dense_labels(self) -> bool:
        return all(path is not None for path in self.dense_labels)


def index_split(root: str | Path, split: str) -> list[TrainSnippet]:
    """Every snippet of `split` with a gtFine label, sorted by (city, seq), via data.cityscapes.

    Frames are the densely labelled ones (gtFine_sequence) when the snippet has them, else the
    contiguous run of existing frames that ends at the annotated one.
    """
    dense: dict[tuple[str, int], list[int]] = {}
    if (Path(root) / "gtFine_sequence" / split).is_dir():
        for item in cityscapes.list_snippets(root, split, "gtFine_sequence"):
            dense.setdefault((item.city, item.seq), []).append(item.frame)
    snippets = []
    for item in cityscapes.list_snippets(root, split, "gtFine"):
        numbers = sorted(dense.get((item.city, item.seq), []))
        if item.frame not in numbers:
            numbers = [item.frame]
            while (len(numbers) <= _MAX_FRAMES_BACK and numbers[0] > 0 and
                   cityscapes.frame_path(root, split, item, numbers[0] - 1).is_file()):
                numbers.insert(0, numbers[0] - 1)
        labels = {n: cityscapes.label_path(root, split, item, n, "gtFine_sequence") for n in numbers}
        snippets.append(TrainSnippet(
            item.city, item.seq, tuple(cityscapes.frame_path(root, split, item, n) for n in numbers),
            numbers.index(item.frame), cityscapes.label_path(root, split, item),
            tuple(labels[n] if n in dense.get((item.city, item.seq), ()) else None for n in numbers)))
    return snippets


def resolve_label_source(snippets: Sequence[TrainSnippet], wanted: str) -> str:
    """'dense' or 'annotated' from the config value ('auto' = dense when every snippet has dense labels)."""
    dense_ok = bool(snippets) and all(s.has_dense_labels for s in snippets)
    if wanted == "dense" and not dense_ok:
        missing = next((s.name for s in snippets if not s.has_dense_labels), "?")
        raise DatasetLayoutError(f"data.labels is 'dense' but snippet {missing} has no gtFine_sequence "
                                 "labels for every frame; use 'annotated' or 'auto'")
    if wanted == "auto":
        return "dense" if dense_ok else "annotated"
    return wanted


class FrameStore:
    """Decoded frames and labels kept in memory as uint8, keyed by (snippet number, frame position)."""

    def __init__(self) -> None:
        self.frames: dict[tuple[int, int], np.ndarray] = {}
        self.labels: dict[tuple[int, int], np.ndarray] = {}

    def add(self, snippets: Sequence[TrainSnippet], wanted: dict[int, Sequence[int]], *, with_labels: bool,
            desc: str = "decode", progress: bool = True) -> None:
        """Decode frames wanted[s] of snippets[s] (and their labels when asked) into the store."""
        total = sum(len(v) for v in wanted.values())
        with tqdm(total=total, desc=desc, unit="frame", leave=False, disable=not progress) as bar:
            for s, positions in wanted.items():
                snippet = snippets[s]
                for i in positions:
                    if (s, i) not in self.frames:
                        self.frames[(s, i)] = cityscapes.read_rgb(snippet.frame_paths[i])
                    if with_labels and (s, i) not in self.labels:
                        self.labels[(s, i)] = read_train_ids(label_file(snippet, i))
                    bar.update(1)


def label_file(snippet: TrainSnippet, position: int) -> Path:
    """The labelIds file of one frame: the gtFine file for the annotated frame, else gtFine_sequence."""
    dense = snippet.dense_labels[position]
    if dense is not None:
        return dense
    if position == snippet.annotated_index:
        return snippet.annotated_label
    raise DatasetLayoutError(f"frame {position} of snippet {snippet.name} has no label")


def load_keyframe_samples(snippets: Sequence[TrainSnippet], source: str, progress: bool = True) -> FrameStore:
    """Every labelled training frame: all frames ('dense') or the annotated frame of each snippet."""
    wanted = {s: (range(len(sn.frame_paths)) if source == "dense" else [sn.annotated_index])
              for s, sn in enumerate(snippets)}
    store = FrameStore()
    store.add(snippets, wanted, with_labels=True, desc="decode train frames", progress=progress)
    return store


def random_scale_crop(image: np.ndarray, label: np.ndarray, scale: float, crop_hw: tuple[int, int],
                      flip: bool, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Resize by `scale`, cut a random crop (padding with 0 / 255 where the image is smaller), flip.

    One inverse affine map per image (dst -> src, pixel centres as cv2.resize), so only the crop is
    ever interpolated: bilinear for the image, nearest for the labels.
    """
    height, width = label.shape
    crop_h, crop_w = crop_hw
    scaled_h, scaled_w = round(height * scale), round(width * scale)
    y0 = _offset(scaled_h, crop_h, rng)
    x0 = _offset(scaled_w, crop_w, rng)
    inv = 1.0 / scale
    if flip:  # output column u reads scaled column x0 + crop_w - 1 - u
        row_x = (-inv, 0.0, (x0 + crop_w - 0.5) * inv - 0.5)
    else:
        row_x = (inv, 0.0, (x0 + 0.5) * inv - 0.5)
    matrix = np.array([row_x, (0.0, inv, (y0 + 0.5) * inv - 0.5)], np.float64)
    flags = cv2.WARP_INVERSE_MAP
    out_image = cv2.warpAffine(image, matrix, (crop_w, crop_h), flags=cv2.INTER_LINEAR | flags,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    out_label = cv2.warpAffine(label, matrix, (crop_w, crop_h), flags=cv2.INTER_NEAREST | flags,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=IGNORE_INDEX)
    return out_image, out_label


def _offset(size: int, crop: int, rng: np.random.Generator) -> int:
    """Random crop start; negative (the crop sticks out and is padded) when the image is smaller."""
    low, high = (0, size - crop) if size >= crop else (size - crop, 0)
    return int(rng.integers(low, high + 1))


def color_jitter(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Random brightness, contrast and saturation of a uint8 RGB image, factors in [1 - s, 1 + s]."""
    if strength <= 0:
        return image
    low, high = 1.0 - strength, 1.0 + strength
    out = image.astype(np.float32) * float(rng.uniform(low, high))           # brightness
    mean = out.mean()
    out = (out - mean) * float(rng.uniform(low, high)) + mean                  # contrast
    grey = out @ np.array([0.299, 0.587, 0.114], np.float32)
    out = (out - grey[..., None]) * float(rng.uniform(low, high)) + grey[..., None]  # saturation
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def keyframe_batch(store: FrameStore, keys: Sequence[tuple[int, int]], batch_size: int,
                   scale_range: tuple[float, float], crop_hw: tuple[int, int], flip: bool,
                   rng: np.random.Generator, jitter: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(B, H, W, 3) uint8 images and (B, H, W) uint8 trainIds of randomly drawn, augmented frames."""
    images = np.empty((batch_size, *crop_hw, 3), np.uint8)
    labels = np.empty((batch_size, *crop_hw), np.uint8)
    picks = rng.integers(0, len(keys), size=batch_size)
    for b, pick in enumerate(picks):
        key = keys[int(pick)]
        scale = float(rng.uniform(scale_range[0], scale_range[1]))
        do_flip = bool(flip and rng.random() < 0.5)
        image, labels[b] = random_scale_crop(store.frames[key], store.labels[key], scale, crop_hw,
                                             do_flip, rng)
        images[b] = color_jitter(image, jitter, rng)
    return images, labels

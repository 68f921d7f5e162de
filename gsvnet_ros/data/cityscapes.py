"""Cityscapes-layout loaders (real or synthetic): snippet lists, clips before the annotated frame, dense frames."""
from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from gsvnet_ros.data.errors import DatasetLayoutError
from gsvnet_ros.labels import IGNORE_INDEX, NUM_CLASSES, label_ids_to_train_ids

__all__ = [
    "DatasetLayoutError",
    "Snippet",
    "Clip",
    "list_snippets",
    "list_sequences",
    "frame_path",
    "label_path",
    "flow_path",
    "read_rgb",
    "read_label_ids",
    "read_train_ids",
    "read_flow",
    "CityscapesClips",
    "DenseFrames",
    "DenseClips",
    "class_shares",
]

_LABEL_RE = re.compile(r"^(?P<city>[^_]+)_(?P<seq>\d{6})_(?P<frame>\d{6})_gtFine_labelIds\.png$")
_FRAME_RE = re.compile(r"^(?P<city>[^_]+)_(?P<seq>\d{6})_(?P<frame>\d{6})_leftImg8bit\.png$")


class Snippet(NamedTuple):
    """A sequence and one of its frames: the annotated frame (gtFine) or any frame (dense labels)."""

    city: str
    seq: int
    frame: int

    def stem(self, frame: int | None = None) -> str:
        return f"{self.city}_{self.seq:06d}_{self.frame if frame is None else frame:06d}"


class Clip(NamedTuple):
    """Frames (T, H, W, 3) uint8 RGB ending at the labelled frame, its trainIds (H, W) uint8."""

    frames: np.ndarray
    label: np.ndarray
    snippet: Snippet


def _folder(root: str | Path, kind: str, split: str) -> Path:
    path = Path(root) / kind / split
    if not path.is_dir():
        raise DatasetLayoutError(f"expected the folder {path} (Cityscapes layout: "
                                 f"<root>/{kind}/<split>/<city>/...)", path)
    return path


def list_snippets(root: str | Path, split: str, labels: str = "gtFine") -> list[Snippet]:
    """Every labelled frame of a split, sorted: (city, seq, frame) from <labels>/<split>/*/..."""
    folder = _folder(root, labels, split)
    found = []
    for path in folder.glob("*/*_gtFine_labelIds.png"):
        m = _LABEL_RE.match(path.name)
        if m and m["city"] == path.parent.name:
            found.append(Snippet(m["city"], int(m["seq"]), int(m["frame"])))
    if not found:
        raise DatasetLayoutError(f"no <city>/<city>_<seq>_<frame>_gtFine_labelIds.png files under "
                                 f"{folder}", folder)
    return sorted(found)


def list_sequences(root: str | Path, split: str, folder: str = "leftImg8bit_sequence"
                   ) -> dict[tuple[str, int], list[int]]:
    """Every (city, seq) of a split's frame folder, with its sorted frame numbers."""
    base = _folder(root, folder, split)
    seqs: dict[tuple[str, int], list[int]] = {}
    for path in base.glob("*/*_leftImg8bit.png"):
        m = _FRAME_RE.match(path.name)
        if m and m["city"] == path.parent.name:
            seqs.setdefault((m["city"], int(m["seq"])), []).append(int(m["frame"]))
    if not seqs:
        raise DatasetLayoutError(f"no <city>/<city>_<seq>_<frame>_leftImg8bit.png files under {base}",
                                 base)
    return {key: sorted(frames) for key, frames in sorted(seqs.items())}


def frame_path(root: str | Path, split: str, snippet: Snippet, frame: int | None = None,
               folder: str = "leftImg8bit_sequence") -> Path:
    return Path(root) / folder / split / snippet.city / f"{snippet.stem(frame)}_leftImg8bit.png"


def label_path(root: str | Path, split: str, snippet: Snippet, frame: int | None = None,
               folder: str = "gtFine") -> Path:
    return Path(root) / folder / split / snippet.city / f"{snippet.stem(frame)}_gtFine_labelIds.png"


def flow_path(root: str | Path, split: str, snippet: Snippet, frame: int | None = None) -> Path:
    return Path(root) / "flow_sequence" / split / snippet.city / f"{snippet.stem(frame)}_flow.npy"


def read_rgb(path: str | Path) -> np.ndarray:
    """An 8-bit colour image as (H, W, 3) uint8 RGB."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DatasetLayoutError(f"expected an image at {path}; it is missing or unreadable", path)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_label_ids(path: str | Path) -> np.ndarray:
    """A single-channel uint8 label image (labelIds or class indices), as stored."""
    lab = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if lab is None:
        raise DatasetLayoutError(f"expected a label image at {path}; it is missing or unreadable",
                                 path)
    if lab.ndim != 2 or lab.dtype != np.uint8:
        raise DatasetLayoutError(f"label image {path} has shape {lab.shape} and dtype {lab.dtype}; "
                                 "expected a single-channel 8-bit image of ids", path)
    return lab


def read_train_ids(path: str | Path) -> np.ndarray:
    """(H, W) uint8 trainIds (255 = ignored) of a labelIds PNG."""
    return label_ids_to_train_ids(read_label_ids(path))


def read_flow(path: str | Path) -> np.ndarray:
    """A stored backward flow (H, W, 2) as float32: frame t at (x, y) <-> frame t-1 at (x+dx, y+dy)."""
    try:
        flow = np.load(path)
    except (OSError, ValueError) as exc:
        raise DatasetLayoutError(f"expected a flow .npy file at {path}: {exc}", path) from exc
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise DatasetLayoutError(f"flow {path} has shape {flow.shape}; expected (H, W, 2)", path)
    return flow.astype(np.float32)


def _read_clip(root: Path, split: str, snippet: Snippet, k: int, frames_folder: str,
               label_file: Path) -> Clip:
    if k < 0:
        raise ValueError(f"k (frames before the labelled one) must be >= 0, got {k}")
    if snippet.frame - k < 0:
        raise DatasetLayoutError(f"snippet {snippet.stem()} has no frame {snippet.frame - k}; "
                                 f"expected frame numbers >= 0 (k = {k})")
    frames = [read_rgb(frame_path(root, split, snippet, f, frames_folder))
              for f in range(snippet.frame - k, snippet.frame + 1)]
    label = read_train_ids(label_file)
    if any(f.shape[:2] != label.shape for f in frames):
        raise DatasetLayoutError(f"frame and label sizes differ for {snippet.stem()}: "
                                 f"{[f.shape[:2] for f in frames]} vs {label.shape}", label_file)
    return Clip(np.stack(frames), label, snippet)


class CityscapesClips:
    """Clips frames f-k..f before each annotated frame f, with the gtFine label of f as trainIds.

    Works on real Cityscapes (`leftImg8bit_sequence` + `gtFine`, f = the 20th frame of a snippet)
    and on the synthetic data (f = 19). With k = 0, `frames_folder="leftImg8bit"` reads the
    single-image release instead of the sequences.
    """

    def __init__(self, root: str | Path, split: str, k: int = 0,
                 frames_folder: str = "leftImg8bit_sequence", labels_folder: str = "gtFine") -> None:
        self.root, self.split, self.k = Path(root), split, k
        self.frames_folder, self.labels_folder = frames_folder, labels_folder
        self.snippets = list_snippets(root, split, labels_folder)

    def __len__(self) -> int:
        return len(self.snippets)

    def clip(self, index: int, k: int | None = None) -> Clip:
        """Clip `index` with k frames before the labelled one (default: the dataset's k)."""
        s = self.snippets[index]
        return _read_clip(self.root, self.split, s, self.k if k is None else k, self.frames_folder,
                          label_path(self.root, self.split, s, None, self.labels_folder))

    def __getitem__(self, index: int) -> Clip:
        return self.clip(index)


class DenseFrames:
    """Every frame with a dense label (synthetic `gtFine_sequence`): (RGB (H,W,3), trainIds (H,W))."""

    def __init__(self, root: str | Path, split: str, frames_folder: str = "leftImg8bit_sequence",
                 labels_folder: str = "gtFine_sequence") -> None:
        self.root, self.split = Path(root), split
        self.frames_folder, self.labels_folder = frames_folder, labels_folder
        self.items = list_snippets(root, split, labels_folder)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        s = self.items[index]
        rgb = read_rgb(frame_path(self.root, self.split, s, None, self.frames_folder))
        label = read_train_ids(label_path(self.root, self.split, s, None, self.labels_folder))
        return rgb, label


class DenseClips:
    """Clips t-k..t ending at every densely labelled frame t >= k, with the label of t."""

    def __init__(self, root: str | Path, split: str, k: int = 1,
                 frames_folder: str = "leftImg8bit_sequence",
                 labels_folder: str = "gtFine_sequence") -> None:
        self.root, self.split, self.k = Path(root), split, k
        self.frames_folder, self.labels_folder = frames_folder, labels_folder
        firsts: dict[tuple[str, int], int] = {}
        every = list_snippets(root, split, labels_folder)
        for s in every:
            key = (s.city, s.seq)
            firsts[key] = min(firsts.get(key, s.frame), s.frame)
        self.items = [s for s in every if s.frame - k >= firsts[(s.city, s.seq)]]

    def __len__(self) -> int:
        return len(self.items)

    def clip(self, index: int, k: int | None = None) -> Clip:
        s = self.items[index]
        return _read_clip(self.root, self.split, s, self.k if k is None else k, self.frames_folder,
                          label_path(self.root, self.split, s, None, self.labels_folder))

    def __getitem__(self, index: int) -> Clip:
        return self.clip(index)


def class_shares(root: str | Path, split: str, labels: str = "gtFine_sequence",
                 stride: int = 1) -> dict[str, float]:
    """Share of pixels per trainId (keys 0..18 and 'ignore') over the label images of a split."""
    counts = np.zeros(256, np.int64)
    for s in list_snippets(root, split, labels)[::stride]:
        lab = read_train_ids(label_path(root, split, s, None, labels))
        counts += np.bincount(lab.ravel(), minlength=256)
    total = max(int(counts.sum()), 1)
    shares = {str(c): counts[c] / total for c in range(NUM_CLASSES)}
    shares["ignore"] = counts[IGNORE_INDEX] / total
    return shares

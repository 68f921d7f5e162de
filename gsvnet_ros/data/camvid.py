"""CamVid loaders: SegNet's prepped 11-class folders, the 32-class colour labels mapped to 11, video frames.

Layout (SegNet "prepped", 480x360): <root>/images_prepped_{split}/<seq>_<frame>.png and
<root>/annotations_prepped_{split}/<seq>_<frame>.png holding class indices 0..10 and 11 = void.
Video frames, when present: <root>/sequences/<seq>/<seq>_<frame>.png (the 30 Hz frames, same digit
count as the labelled name; resized to the label's size when larger).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from gsvnet_ros.data.cityscapes import read_label_ids, read_rgb
from gsvnet_ros.data.errors import DatasetLayoutError
from gsvnet_ros.labels import IGNORE_INDEX

__all__ = [
    "CAMVID_CLASSES",
    "CAMVID_VOID",
    "CAMVID_PALETTE",
    "CAMVID32",
    "CAMVID11_TO_CITYSCAPES_TRAIN_ID",
    "colour_labels_to_camvid11",
    "CamVidItem",
    "list_camvid",
    "CamVidFrames",
]

CAMVID_CLASSES = ("sky", "building", "pole", "road", "sidewalk", "tree", "sign_symbol", "fence",
                  "car", "pedestrian", "bicyclist")
CAMVID_VOID = 11
CAMVID_PALETTE = np.array([(128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128),
                           (0, 0, 192), (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128),
                           (64, 64, 0), (0, 128, 192)], np.uint8)

# The 32 original CamVid classes (name, RGB colour of the colour-coded labels, 11-class index).
# Grouping as in SegNet's 11-class benchmark: structures -> building, lane markings and shoulder
# -> road, parking block -> sidewalk, traffic light and text -> sign_symbol, every motor vehicle
# -> car, child / pram / animal -> pedestrian, motorcycle -> bicyclist; Void -> 11.
CAMVID32 = (
    ("Animal", (64, 128, 64), 9), ("Archway", (192, 0, 128), 1), ("Bicyclist", (0, 128, 192), 10),
    ("Bridge", (0, 128, 64), 1), ("Building", (128, 0, 0), 1), ("Car", (64, 0, 128), 8),
    ("CartLuggagePram", (64, 0, 192), 9), ("Child", (192, 128, 64), 9),
    ("Column_Pole", (192, 192, 128), 2), ("Fence", (64, 64, 128), 7),
    ("LaneMkgsDriv", (128, 0, 192), 3), ("LaneMkgsNonDriv", (192, 0, 64), 3),
    ("Misc_Text", (128, 128, 64), 6), ("MotorcycleScooter", (192, 0, 192), 10),
    ("OtherMoving", (128, 64, 64), 8), ("ParkingBlock", (64, 192, 128), 4),
    ("Pedestrian", (64, 64, 0), 9), ("Road", (128, 64, 128), 3), ("RoadShoulder", (128, 128, 192), 3),
    ("Sidewalk", (0, 0, 192), 4), ("SignSymbol", (192, 128, 128), 6), ("Sky", (128, 128, 128), 0),
    ("SUVPickupTruck", (64, 128, 192), 8), ("TrafficCone", (0, 0, 64), 2),
    ("TrafficLight", (0, 64, 64), 6), ("Train", (192, 64, 128), 8), ("Tree", (128, 128, 0), 5),
    ("Truck_Bus", (192, 128, 192), 8), ("Tunnel", (64, 0, 64), 1), ("VegetationMisc", (192, 192, 0), 5),
    ("Void", (0, 0, 0), CAMVID_VOID), ("Wall", (64, 192, 0), 1),
)

# For scoring a Cityscapes-trained model on CamVid: CamVid class -> Cityscapes trainId. Bicyclist
# (rider and bicycle in one class) has no single counterpart and is ignored; void -> 255.
CAMVID11_TO_CITYSCAPES_TRAIN_ID = np.full(256, IGNORE_INDEX, np.uint8)
CAMVID11_TO_CITYSCAPES_TRAIN_ID[:10] = [10, 2, 5, 0, 1, 8, 7, 4, 13, 11]

_CODES = np.array([(r << 16) | (g << 8) | b for _, (r, g, b), _ in CAMVID32], np.int64)
_ORDER = np.argsort(_CODES)
_SORTED_CODES = _CODES[_ORDER]
_SORTED_CLASS = np.array([c for _, _, c in CAMVID32], np.uint8)[_ORDER]
_NAME_RE = re.compile(r"^(?P<seq>.+)_(?P<frame>\d+)$")


def colour_labels_to_camvid11(rgb: np.ndarray, strict: bool = False) -> np.ndarray:
    """Map a colour-coded 32-class label image (H, W, 3) RGB to 11-class indices (11 = void).

    Colours outside the table become void, or raise ValueError when `strict`.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB label image, got {rgb.shape} {rgb.dtype}")
    code = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    pos = np.clip(np.searchsorted(_SORTED_CODES, code), 0, len(_SORTED_CODES) - 1)
    known = _SORTED_CODES[pos] == code
    if strict and not known.all():
        bad = np.unique(code[~known])[:5]
        raise ValueError("colours not in the CamVid 32-class table: "
                         + ", ".join(f"({c >> 16}, {(c >> 8) & 255}, {c & 255})" for c in bad))
    return np.where(known, _SORTED_CLASS[pos], CAMVID_VOID).astype(np.uint8)


class CamVidItem(NamedTuple):
    """Frames (T, H, W, 3) uint8 RGB ending at the labelled frame, labels (H, W) uint8, its name."""

    frames: np.ndarray
    label: np.ndarray
    name: str


def list_camvid(root: str | Path, split: str) -> list[str]:
    """Names (<seq>_<frame>) of the labelled frames of a split (images_prepped_<split>)."""
    folder = Path(root) / f"images_prepped_{split}"
    if not folder.is_dir():
        raise DatasetLayoutError(f"expected the folder {folder} (SegNet CamVid layout: "
                                 f"<root>/images_prepped_<split>/<seq>_<frame>.png)", folder)
    names = sorted(p.stem for p in folder.glob("*.png"))
    if not names:
        raise DatasetLayoutError(f"no .png images in {folder}", folder)
    return names


class CamVidFrames:
    """Labelled CamVid frames, optionally with k preceding video frames (T = k + 1).

    Labels are the 11 class indices; void (11) becomes `void_to` (default 255, the ignore index).
    """

    def __init__(self, root: str | Path, split: str, k: int = 0, void_to: int = IGNORE_INDEX,
                 sequences_folder: str = "sequences") -> None:
        if k < 0:
            raise ValueError(f"k (frames before the labelled one) must be >= 0, got {k}")
        self.root, self.split, self.k, self.void_to = Path(root), split, k, void_to
        self.sequences_folder = sequences_folder
        self.names = list_camvid(root, split)

    def __len__(self) -> int:
        return len(self.names)

    def _video_frames(self, name: str, label_shape: tuple[int, int]) -> list[np.ndarray]:
        m = _NAME_RE.match(name)
        if m is None:
            raise DatasetLayoutError(f"CamVid name {name!r} is not <seq>_<frame>")
        seq, digits = m["seq"], m["frame"]
        frames = []
        for f in range(int(digits) - self.k, int(digits)):
            path = self.root / self.sequences_folder / seq / f"{seq}_{f:0{len(digits)}d}.png"
            img = read_rgb(path)
            if img.shape[:2] != label_shape:
                img = cv2.resize(img, label_shape[::-1], interpolation=cv2.INTER_AREA)
            frames.append(img)
        return frames

    def __getitem__(self, index: int) -> CamVidItem:
        name = self.names[index]
        image = read_rgb(self.root / f"images_prepped_{self.split}" / f"{name}.png")
        label = read_label_ids(self.root / f"annotations_prepped_{self.split}" / f"{name}.png")
        if label.shape != image.shape[:2]:
            raise DatasetLayoutError(f"label {name} is {label.shape}, image {image.shape[:2]}; "
                                     "expected the same size")
        if label.max() > CAMVID_VOID:
            raise DatasetLayoutError(f"label {name} has values up to {label.max()}; expected "
                                     f"class indices 0..10 and void {CAMVID_VOID}")
        label = np.where(label == CAMVID_VOID, self.void_to, label).astype(np.uint8)
        frames = self._video_frames(name, label.shape) if self.k else []
        return CamVidItem(np.stack(frames + [image]), label, name)

"""Cityscapes label table: the 19 evaluation classes (trainIds), labelId->trainId lookup, palette."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = [
    "IGNORE_INDEX",
    "NUM_CLASSES",
    "CityscapesLabel",
    "LABELS",
    "CLASS_NAMES",
    "PALETTE",
    "LABEL_ID_TO_TRAIN_ID",
    "label_ids_to_train_ids",
    "train_ids_to_label_ids",
    "colorize",
]

IGNORE_INDEX = 255
NUM_CLASSES = 19


class CityscapesLabel(NamedTuple):
    """One row of the Cityscapes label definition (cityscapesScripts helpers/labels.py)."""

    name: str
    label_id: int
    train_id: int
    category: str
    ignore_in_eval: bool
    color: tuple[int, int, int]


_V = IGNORE_INDEX
LABELS: tuple[CityscapesLabel, ...] = (
    CityscapesLabel("unlabeled", 0, _V, "void", True, (0, 0, 0)),
    CityscapesLabel("ego vehicle", 1, _V, "void", True, (0, 0, 0)),
    CityscapesLabel("rectification border", 2, _V, "void", True, (0, 0, 0)),
    CityscapesLabel("out of roi", 3, _V, "void", True, (0, 0, 0)),
    CityscapesLabel("static", 4, _V, "void", True, (0, 0, 0)),
    CityscapesLabel("dynamic", 5, _V, "void", True, (111, 74, 0)),
    CityscapesLabel("ground", 6, _V, "void", True, (81, 0, 81)),
    CityscapesLabel("road", 7, 0, "flat", False, (128, 64, 128)),
    CityscapesLabel("sidewalk", 8, 1, "flat", False, (244, 35, 232)),
    CityscapesLabel("parking", 9, _V, "flat", True, (250, 170, 160)),
    CityscapesLabel("rail track", 10, _V, "flat", True, (230, 150, 140)),
    CityscapesLabel("building", 11, 2, "construction", False, (70, 70, 70)),
    CityscapesLabel("wall", 12, 3, "construction", False, (102, 102, 156)),
    CityscapesLabel("fence", 13, 4, "construction", False, (190, 153, 153)),
    CityscapesLabel("guard rail", 14, _V, "construction", True, (180, 165, 180)),
    CityscapesLabel("bridge", 15, _V, "construction", True, (150, 100, 100)),
    CityscapesLabel("tunnel", 16, _V, "construction", True, (150, 120, 90)),
    CityscapesLabel("pole", 17, 5, "object", False, (153, 153, 153)),
    CityscapesLabel("polegroup", 18, _V, "object", True, (153, 153, 153)),
    CityscapesLabel("traffic light", 19, 6, "object", False, (250, 170, 30)),
    CityscapesLabel("traffic sign", 20, 7, "object", False, (220, 220, 0)),
    CityscapesLabel("vegetation", 21, 8, "nature", False, (107, 142, 35)),
    CityscapesLabel("terrain", 22, 9, "nature", False, (152, 251, 152)),
    CityscapesLabel("sky", 23, 10, "sky", False, (70, 130, 180)),
    CityscapesLabel("person", 24, 11, "human", False, (220, 20, 60)),
    CityscapesLabel("rider", 25, 12, "human", False, (255, 0, 0)),
    CityscapesLabel("car", 26, 13, "vehicle", False, (0, 0, 142)),
    CityscapesLabel("truck", 27, 14, "vehicle", False, (0, 0, 70)),
    CityscapesLabel("bus", 28, 15, "vehicle", False, (0, 60, 100)),
    CityscapesLabel("caravan", 29, _V, "vehicle", True, (0, 0, 90)),
    CityscapesLabel("trailer", 30, _V, "vehicle", True, (0, 0, 110)),
    CityscapesLabel("train", 31, 16, "vehicle", False, (0, 80, 100)),
    CityscapesLabel("motorcycle", 32, 17, "vehicle", False, (0, 0, 230)),
    CityscapesLabel("bicycle", 33, 18, "vehicle", False, (119, 11, 32)),
    CityscapesLabel("license plate", -1, -1, "vehicle", True, (0, 0, 142)),
)

_EVAL = sorted((lab for lab in LABELS if 0 <= lab.train_id < NUM_CLASSES), key=lambda l: l.train_id)
CLASS_NAMES: tuple[str, ...] = tuple(lab.name for lab in _EVAL)
# Palette row i is the colour of trainId i; rows 19..255 are black (ignore / unlabeled).
PALETTE: np.ndarray = np.zeros((256, 3), np.uint8)
PALETTE[: NUM_CLASSES] = [lab.color for lab in _EVAL]
PALETTE.setflags(write=False)

# 256-entry lookup: labelId (uint8 pixel value) -> trainId; anything not an evaluation class -> 255.
LABEL_ID_TO_TRAIN_ID: np.ndarray = np.full(256, IGNORE_INDEX, np.uint8)
for _lab in LABELS:
    if _lab.label_id >= 0 and 0 <= _lab.train_id < NUM_CLASSES:
        LABEL_ID_TO_TRAIN_ID[_lab.label_id] = _lab.train_id
LABEL_ID_TO_TRAIN_ID.setflags(write=False)

_TRAIN_ID_TO_LABEL_ID: np.ndarray = np.zeros(256, np.uint8)  # 255 -> 0 'unlabeled'
for _lab in _EVAL:
    _TRAIN_ID_TO_LABEL_ID[_lab.train_id] = _lab.label_id
_TRAIN_ID_TO_LABEL_ID.setflags(write=False)


def label_ids_to_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """Map a uint8 labelIds image to trainIds (0..18, 255 = ignored)."""
    if label_ids.dtype != np.uint8:
        raise TypeError(f"labelIds image must be uint8, got {label_ids.dtype}")
    return LABEL_ID_TO_TRAIN_ID[label_ids]


def train_ids_to_label_ids(train_ids: np.ndarray) -> np.ndarray:
    """Map trainIds (0..18, 255) back to Cityscapes labelIds (255 -> 0 'unlabeled')."""
    if train_ids.dtype != np.uint8:
        raise TypeError(f"trainIds image must be uint8, got {train_ids.dtype}")
    return _TRAIN_ID_TO_LABEL_ID[train_ids]


def colorize(train_ids: np.ndarray) -> np.ndarray:
    """Colour-code a trainIds image (H, W) uint8 -> (H, W, 3) RGB uint8 with the Cityscapes palette."""
    if train_ids.dtype != np.uint8:
        raise TypeError(f"trainIds image must be uint8, got {train_ids.dtype}")
    return np.take(PALETTE, train_ids, axis=0)  # np.take is several times faster than fancy indexing

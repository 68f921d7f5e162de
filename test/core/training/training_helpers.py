"""A tiny Cityscapes-layout dataset (frames, gtFine, gtFine_sequence) written with cv2, for training tests."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

# labelIds: road 7, building 11, sky 23, car 26, and 0 (unlabeled -> ignored)
_ROAD, _BUILDING, _SKY, _CAR = 7, 11, 23, 26
_COLOURS = {_ROAD: (128, 64, 128), _BUILDING: (70, 70, 70), _SKY: (70, 130, 180), _CAR: (0, 0, 142),
            0: (0, 0, 0)}


def _frame(height: int, width: int, shift: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    labels = np.full((height, width), _BUILDING, np.uint8)
    labels[: height // 4] = _SKY
    labels[height // 2:] = _ROAD
    x0 = (width // 4 + shift) % (width - width // 4)
    labels[height // 2 - 8: height // 2 + 8, x0: x0 + width // 4] = _CAR
    labels[-2:] = 0
    rgb = np.zeros((height, width, 3), np.uint8)
    for label_id, colour in _COLOURS.items():
        rgb[labels == label_id] = colour
    noise = np.random.default_rng(seed).integers(-12, 13, rgb.shape)
    return np.clip(rgb.astype(np.int16) + noise, 0, 255).astype(np.uint8), labels


def write_fake_cityscapes(root: Path, snippets: dict[str, int], *, frames: int = 6, height: int = 64,
                          width: int = 128, annotated: int | None = None, dense: bool = True) -> Path:
    """Snippets per split with `frames` frames each; the annotated (gtFine) frame is the last by default."""
    annotated = frames - 1 if annotated is None else annotated
    for split, count in snippets.items():
        for seq in range(count):
            city = "fakecity"
            for f in range(frames):
                rgb, labels = _frame(height, width, shift=4 * f + 9 * seq, seed=1000 * seq + f)
                stem = f"{city}_{seq:06d}_{f:06d}"
                paths = [(root / "leftImg8bit_sequence" / split / city / f"{stem}_leftImg8bit.png",
                          cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))]
                if dense:
                    dense_dir = root / "gtFine_sequence" / split / city
                    paths.append((dense_dir / f"{stem}_gtFine_labelIds.png", labels))
                if f == annotated:
                    paths.append((root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png", labels))
                for path, image in paths:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    assert cv2.imwrite(str(path), image)
    return root

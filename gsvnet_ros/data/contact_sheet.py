"""Contact sheet: frames beside their colour-coded labels, from a dataset root or rendered from seeds."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from gsvnet_ros.data.cityscapes import (frame_path, label_path, list_snippets, read_label_ids,
                                        read_rgb)
from gsvnet_ros.labels import colorize, label_ids_to_train_ids

__all__ = ["tile_pairs", "sheet_from_root", "sheet_from_seeds", "write_sheet"]


def _pair(rgb: np.ndarray, label_ids: np.ndarray, width: int) -> np.ndarray:
    colour = colorize(label_ids_to_train_ids(label_ids))
    h = int(round(rgb.shape[0] * width / rgb.shape[1]))
    a = cv2.resize(rgb, (width, h), interpolation=cv2.INTER_AREA)
    b = cv2.resize(colour, (width, h), interpolation=cv2.INTER_NEAREST)
    return np.concatenate([a, np.full((h, 4, 3), 255, np.uint8), b], axis=1)


def tile_pairs(pairs: Sequence[tuple[np.ndarray, np.ndarray]], columns: int = 2, width: int = 384
               ) -> np.ndarray:
    """Grid of (image | colour labels) tiles, `columns` pairs per row, each image `width` wide."""
    tiles = [_pair(rgb, lab, width) for rgb, lab in pairs]
    if not tiles:
        raise ValueError("no frames to put on the contact sheet")
    th, tw = max(t.shape[0] for t in tiles), tiles[0].shape[1]
    rows = []
    for r in range(0, len(tiles), columns):
        row = [np.pad(t, ((0, th - t.shape[0]), (0, 0), (0, 0))) for t in tiles[r:r + columns]]
        row += [np.zeros((th, tw, 3), np.uint8)] * (columns - len(row))
        rows.append(np.concatenate([np.concatenate([t, np.full((th, 12, 3), 255, np.uint8)], 1)
                                    for t in row], axis=1))
    return np.concatenate([np.concatenate([r, np.full((8, r.shape[1], 3), 255, np.uint8)])
                           for r in rows])


def sheet_from_root(root: str | Path, split: str, snippets: int = 4,
                    frames: Sequence[int] = (0, 19), columns: int = 2, width: int = 384
                    ) -> np.ndarray:
    """Frames of the first snippets of a split with their dense labels (gtFine_sequence)."""
    pairs = []
    for s in list_snippets(root, split)[:snippets]:
        for f in frames:
            dense = label_path(root, split, s, f, "gtFine_sequence")
            lab = dense if dense.exists() else label_path(root, split, s, f)
            pairs.append((read_rgb(frame_path(root, split, s, f)), read_label_ids(lab)))
    return tile_pairs(pairs, columns, width)


def sheet_from_seeds(seeds: Sequence[int], frames: Sequence[int] = (0, 19), size: tuple[int, int]
                     = (1024, 512), sequence_frames: int = 30, columns: int = 2, width: int = 384
                     ) -> np.ndarray:
    """Render sequences in memory (no files) and tile the chosen frames."""
    from gsvnet_ros.data.synth.render import build_scene, render_frame

    pairs = []
    for seed in seeds:
        scene = build_scene(seed, size[0], size[1], sequence_frames)
        for f in frames:
            out = render_frame(scene, f)
            pairs.append((out.image, out.label))
    return tile_pairs(pairs, columns, width)


def write_sheet(sheet: np.ndarray, out: str | Path) -> Path:
    """Write the sheet as a well-compressed PNG (it is meant for docs/)."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise OSError(f"PNG encoding failed for {path}")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(buf.tobytes())
    tmp.replace(path)
    return path

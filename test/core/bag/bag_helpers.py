"""Helpers for the rosbag2 tool tests: tiny Cityscapes sequences, real recordings, a fake segmenter."""
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from gsvnet_ros.labels import LABEL_ID_TO_TRAIN_ID

REPO = Path(__file__).resolve().parents[3]
REALDATA = REPO.parent / "shared" / "realdata"
RECORDINGS = REALDATA / "rosbag2-recordings"
# labelIds that are evaluation classes, plus 0 (unlabeled -> trainId 255)
_LABEL_IDS = np.array([0] + [i for i in range(256) if LABEL_ID_TO_TRAIN_ID[i] != 255], np.uint8)


def real_bags():
    """Every real recording (one per storage x metadata version), or [] when absent."""
    return sorted(p.parent for p in RECORDINGS.rglob("metadata.yaml")) if RECORDINGS.is_dir() else []


def bag_id(path):
    return "/".join(path.parts[-2:])


def write_sequence(root, *, snippets=2, frames=(17, 18, 19), size=(40, 24), dense=True,
                   city="synthcity", split="val", seed=0):
    """A Cityscapes-layout dataset under root; returns {(seq, frame): (rgb, label_ids or None)}."""
    rng = np.random.default_rng(seed)
    width, height = size
    made = {}
    for seq in range(snippets):
        for frame in frames:
            stem = f"{city}_{seq:06d}_{frame:06d}"
            rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            folder = root / "leftImg8bit_sequence" / split / city
            folder.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(folder / f"{stem}_leftImg8bit.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            label_ids = rng.choice(_LABEL_IDS, size=(height, width)).astype(np.uint8)
            if frame == 19:
                gt = root / "gtFine" / split / city
                gt.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(gt / f"{stem}_gtFine_labelIds.png"), label_ids)
            if dense:
                gt = root / "gtFine_sequence" / split / city
                gt.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(gt / f"{stem}_gtFine_labelIds.png"), label_ids)
            made[(seq, frame)] = (rgb, label_ids if (dense or frame == 19) else None)
    return made


@dataclass
class FakeResult:
    labels: np.ndarray
    is_keyframe: bool
    keyframe_reason: str
    frames_since_keyframe: int
    frame_index: int
    stamp_ns: int
    timings_ms: dict = field(default_factory=dict)
    confidence: object = None


class FakeSegmenter:
    """The VideoSegmenter.step() contract without torch: labels = red channel mod 19."""

    model_name = "fake_net"
    backend_name = "numpy"
    num_classes = 19

    def __init__(self, keyframe_interval=3):
        self.keyframe_interval = keyframe_interval
        self.since = None
        self.index = 0
        self.calls = []

    def step(self, frame_rgb, stamp_ns, *, force_reason=None):
        assert frame_rgb.dtype == np.uint8 and frame_rgb.ndim == 3
        self.calls.append((frame_rgb.copy(), stamp_ns))
        if self.since is None or self.since + 1 >= self.keyframe_interval:
            reason, self.since = ("first" if self.since is None else "interval"), 0
        else:
            reason, self.since = "", self.since + 1
        result = FakeResult((frame_rgb[:, :, 0] % 19).astype(np.uint8), bool(reason), reason,
                            self.since, self.index, stamp_ns,
                            {"preprocess": 0.5, "network": 10.0 if reason else 2.0, "output": 0.5,
                             "total": 11.0 if reason else 3.0})
        self.index += 1
        return result

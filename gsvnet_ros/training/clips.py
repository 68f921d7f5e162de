"""Clips for propagation training: frames at 1/8 and the FROZEN keyframe net's logits at 1/8, cached.

The keyframe net N is frozen while O, phi and G learn, so its logits S_{t-k} = keyframe_forward(I_{t-k})
(scale 0.75, resized to 1/8 of the full frame) are computed once per frame, stored as fp16 (in memory
and in a cache file keyed by the weight file's sha256), and a training iteration only runs the small
1/8-resolution nets. Crops are cut on the 1/8 grid: full-resolution offsets and sizes are multiples
of 8 and 32, so a 1/8 crop is exactly avg_pool8 of the full-resolution crop.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm import tqdm

from ..models.gsvnet import GSVNet, check_frame_size
from ..models.preprocess import downsample_1_8
from .common import TrainingError
from ..data.cityscapes import read_rgb
from .data import TrainSnippet, label_file, read_train_ids
from .trainer import save_checkpoint

__all__ = ["SnippetClips", "ClipBatch", "plan_positions", "build_clips", "sample_clip_batch"]

_CACHE_FORMAT = "gsvnet_ros.keyframe_logits_cache.v2"


@dataclass
class SnippetClips:
    """One snippet's positions origin .. origin + n - 1: frames at 1/8 (n, 3, h, w) float32 and the keyframe
    net's logits at 1/8 (n, C, h, w) fp16 (zeros where not computed: see key_positions)."""

    name: str
    origin: int
    frames_1_8: torch.Tensor
    logits_1_8: torch.Tensor
    key_positions: frozenset[int]
    targets: list[int]  # positions with a label that training/validation scores
    labels: dict[int, np.ndarray] = field(default_factory=dict)  # full-res trainIds of the targets

    @property
    def full_size(self) -> tuple[int, int]:
        return 8 * int(self.frames_1_8.shape[-2]), 8 * int(self.frames_1_8.shape[-1])

    def frames(self, start: int, stop: int) -> torch.Tensor:
        """Frames at 1/8 of positions start .. stop - 1."""
        return self.frames_1_8[start - self.origin:stop - self.origin]

    def logits(self, position: int) -> torch.Tensor:
        if position not in self.key_positions:
            raise KeyError(f"no keyframe logits for position {position} of snippet {self.name}")
        return self.logits_1_8[position - self.origin]


def plan_positions(snippet: TrainSnippet, source: str, min_offset: int, max_offset: int, teacher: bool
                   ) -> tuple[list[int], list[int], list[int]]:
    """(targets, keyframe-logit positions, frame positions) of one snippet for offsets min..max.

    dense: every frame t >= min_offset is a target (keyframes t - k >= 0); annotated: the gtFine frame.
    `teacher` adds the targets' own logits (distillation from N on the target frame).
    """
    length = len(snippet.frame_paths)
    if source == "dense":
        targets = list(range(min_offset, length))
    else:
        targets = [snippet.annotated_index] if snippet.annotated_index >= min_offset else []
    keys = sorted({t - k for t in targets for k in range(min_offset, max_offset + 1) if t - k >= 0}
                  | (set(targets) if teacher else set()))
    frames = list(range(min(keys), max(targets) + 1)) if targets else []
    return targets, keys, frames


def _cache_key(weights_sha: str, snippets: Sequence[TrainSnippet], plans: Sequence[tuple]) -> str:
    spec = json.dumps([weights_sha, [s.name for s in snippets],
                       [[str(p) for p in s.frame_paths] for s in snippets], [list(p[1:]) for p in plans]])
    return hashlib.sha256(spec.encode()).hexdigest()[:20]


@torch.inference_mode()
def _keyframe_logits(model: GSVNet, frames: list[np.ndarray], device: torch.device) -> torch.Tensor:
    x = torch.from_numpy(np.stack(frames)).to(device).permute(0, 3, 1, 2).float().div_(255.0)
    return model.keyframe_forward(x).to("cpu", torch.float16)


def build_clips(model: GSVNet, snippets: Sequence[TrainSnippet], source: str, *, min_offset: int,
                max_offset: int, teacher: bool, weights_sha: str, cache_dir: Path | None,
                device: torch.device, desc: str, progress: bool = True) -> list[SnippetClips]:
    """Decode, downsample and run the frozen keyframe net (fp32, eval) once; reuse a matching cache file."""
    plans = [plan_positions(s, source, min_offset, max_offset, teacher) for s in snippets]
    cache_file = None
    cached: dict | None = None
    if cache_dir is not None:
        cache_file = cache_dir / f"clips_{_cache_key(weights_sha, snippets, plans)}.pt"
        if cache_file.is_file():
            try:
                cached = torch.load(cache_file, map_location="cpu", weights_only=True)
            except Exception:  # unreadable (e.g. truncated by a crash): recompute and rewrite it
                cached = None
            if not isinstance(cached, dict) or cached.get("format") != _CACHE_FORMAT:
                cached = None
    model.keyframe_net.eval()
    out: list[SnippetClips] = []
    for i, (snippet, (targets, keys, positions)) in enumerate(tqdm(list(zip(snippets, plans)), desc=desc,
                                                                   unit="snippet", leave=False,
                                                                   disable=not progress)):
        if not targets:
            continue
        if cached is not None:
            frames_1_8, logits = cached["frames_1_8"][i], cached["logits_1_8"][i]
        else:
            frames_1_8, logits = _compute_snippet(model, snippet, keys, positions, device)
        clips = SnippetClips(snippet.name, positions[0], frames_1_8, logits, frozenset(keys), targets)
        clips.labels = {t: read_train_ids(label_file(snippet, t)) for t in targets}
        out.append(clips)
    if cache_file is not None and cached is None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        by_name = {c.name: c for c in out}
        kept = [by_name.get(s.name) for s in snippets]
        empty = torch.zeros(0)
        save_checkpoint({"format": _CACHE_FORMAT, "weights_sha256": weights_sha,
                         "frames_1_8": [c.frames_1_8 if c is not None else empty for c in kept],
                         "logits_1_8": [c.logits_1_8 if c is not None else empty for c in kept]}, cache_file)
    if not out:
        raise TrainingError(f"no usable clip: every snippet is shorter than the smallest offset {min_offset} "
                            f"before its labelled frame")
    return out


def _compute_snippet(model: GSVNet, snippet: TrainSnippet, keys: list[int], positions: list[int],
                     device: torch.device, batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """(frames_1_8, logits_1_8) over `positions` (contiguous); logits filled at `keys` only."""
    origin, length = positions[0], len(positions)
    frames = {p: read_rgb(snippet.frame_paths[p]) for p in positions}
    height, width = frames[origin].shape[:2]
    check_frame_size(height, width, f"snippet {snippet.name} frame")
    frames_1_8 = torch.zeros(length, 3, height // 8, width // 8)
    for p, rgb in frames.items():
        full = torch.from_numpy(rgb).permute(2, 0, 1)[None].float().div_(255.0)
        frames_1_8[p - origin] = downsample_1_8(full)[0]
    logits = torch.zeros(length, model.num_classes, height // 8, width // 8, dtype=torch.float16)
    for start in range(0, len(keys), batch):
        chunk = keys[start:start + batch]
        logits[[k - origin for k in chunk]] = _keyframe_logits(model, [frames[k] for k in chunk], device)
    return frames_1_8, logits


@dataclass
class ClipBatch:
    """frames_1_8 (k+1, B, 3, h, w) oldest first; key_logits (B, C, h, w); labels (B, H, W) int64 (the crop
    at label scale); teacher (B, C, h, w) or None."""

    frames_1_8: torch.Tensor
    key_logits: torch.Tensor
    labels: torch.Tensor
    teacher: torch.Tensor | None
    offset: int


def sample_clip_batch(clips: Sequence[SnippetClips], batch_size: int, offsets: tuple[int, int],
                      crop_hw: tuple[int, int], flip: bool, teacher: bool, rng: np.random.Generator,
                      label_scale: float = 1.0) -> ClipBatch:
    """One offset k for the whole batch; per sample a snippet, a target t (keyframe t - k), a crop, a flip.

    Labels are the full-resolution crop, or every (1 / label_scale)-th pixel of it, centre of each block.
    """
    step = round(1 / label_scale)
    k = int(rng.integers(offsets[0], offsets[1] + 1))
    usable = [(c, [t for t in c.targets if t - k in c.key_positions]) for c in clips]
    usable = [(c, ts) for c, ts in usable if ts]
    if not usable:
        raise TrainingError(f"no clip with keyframe offset {k}: snippets are too short")
    frames, keys, labels, teachers = [], [], [], []
    for _ in range(batch_size):
        clip, ts = usable[int(rng.integers(len(usable)))]
        t = ts[int(rng.integers(len(ts)))]
        height, width = clip.full_size
        crop_h, crop_w = min(crop_hw[0], height), min(crop_hw[1], width)
        y0 = 8 * int(rng.integers(0, (height - crop_h) // 8 + 1))
        x0 = 8 * int(rng.integers(0, (width - crop_w) // 8 + 1))
        do_flip = bool(flip and rng.random() < 0.5)
        win = (slice(y0 // 8, (y0 + crop_h) // 8), slice(x0 // 8, (x0 + crop_w) // 8))

        def cut(x: torch.Tensor) -> torch.Tensor:
            x = x[..., win[0], win[1]]
            return x.flip(-1) if do_flip else x

        frames.append(cut(clip.frames(t - k, t + 1)))
        keys.append(cut(clip.logits(t - k)).float())
        label = clip.labels[t][y0 + step // 2:y0 + crop_h:step, x0 + step // 2:x0 + crop_w:step]
        labels.append(torch.from_numpy(np.ascontiguousarray(label[:, ::-1] if do_flip else label)))
        if teacher:
            teachers.append(cut(clip.logits(t)).float())
    shapes = {tuple(f.shape) for f in frames}
    if len(shapes) > 1:
        raise TrainingError(f"snippets of different sizes in one batch ({sorted(shapes)}); use a crop no "
                            "larger than the smallest frame")
    return ClipBatch(torch.stack(frames, dim=1), torch.stack(keys), torch.stack(labels).long(),
                     torch.stack(teachers) if teacher else None, k)

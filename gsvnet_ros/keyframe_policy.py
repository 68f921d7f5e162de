"""When to run the image network: every l frames (fixed) or when propagation stops explaining the
frames (adaptive).

The adaptive policy looks only at the frames, at 1/8 resolution, before the frame is segmented:

- residual since the keyframe: the keyframe's grey image is carried along frame to frame by the
  backward flow between consecutive frames (OpenCV DIS, fast, on the 1/8 grid) and warped the way the
  logits are (bilinear, edges repeated); the mean absolute difference between this frame and the
  carried keyframe (grey levels, 0-255) is what propagation has not explained: newly uncovered
  content, flow errors, the blur of repeated resampling. A car waiting at a light leaves it near 0, a
  turn, a close truck or a cut raise it fast. A keyframe is taken when it reaches a threshold; the
  threshold follows from the keyframe budget (target mean interval) through a table calibrated on the
  train split (ADAPTIVE_CALIBRATION).
- scene change: the correlation coefficient between this frame and the one before (brightness and
  contrast do not change it). Consecutive frames of one drive correlate at 0.93 (median; 0.52 at the
  least) on the synthetic train split, the last frame of one drive and the first of another at 0.30
  (median; 0.68 at most): below `scene_change_correlation` (0.4) the frame is a keyframe at once (a
  cut in a replayed bag, a camera switch). A cut the correlation misses leaves a residual far above
  the change thresholds.
- a maximum interval bounds the time between keyframes whatever the frames show.

Cost: one DIS flow (fast, finest scale 0) and one remap of (h/8, w/8) grey images: 2.8 ms at
1024x512 on one core; nothing more under `model.flow: dis`, whose propagation step reuses that flow
(`models/dis_flow.py` keeps the last pair's).
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

import numpy as np
import torch

from .models.dis_flow import dis_flow_grey

__all__ = ["ADAPTIVE_CALIBRATION", "FrameChange", "grey_1_8", "grey_flow", "carry", "correlation",
           "frame_change", "threshold_for_budget", "scene_cuts", "sequence_flows", "simulate_keyframes",
           "calibrate_thresholds", "check_budget"]

_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601
# Budget (target mean keyframe interval) -> residual threshold (grey levels), calibrated on the train
# split: `gsvnet-eval --data data/synth_prop --split train --calibrate-keyframes --budgets 2 3 4 5 6 8
# --out runs/kf_calib` (README, "Adaptive keyframes"). Budgets between entries interpolate linearly;
# above the last one its threshold is used (max_keyframe_interval then bounds the interval).
# 120 snippets (seeds 0-119), max_keyframe_interval 10, scene_change_correlation 0.4: every budget's
# mean interval is met to 0.01 frames there.
ADAPTIVE_CALIBRATION: tuple[tuple[float, float], ...] = (
    (1.0, 0.0), (2.0, 5.18), (3.0, 6.64), (4.0, 7.90), (5.0, 8.97), (6.0, 9.98), (8.0, 12.22))


def grey_1_8(frame_1_8: torch.Tensor) -> torch.Tensor:
    """(1, 3, h, w) float RGB in [0, 1] -> (h, w) float32 grey levels 0..255 on the frame's device."""
    weights = torch.tensor(_LUMA, dtype=torch.float32, device=frame_1_8.device).view(3, 1, 1)
    return (frame_1_8[0].float() * weights).sum(0).mul_(255.0)


@dataclass(frozen=True)
class FrameChange:
    """How much a frame differs from the last keyframe carried to it by the flow (mean absolute
    difference, grey levels: what propagation has not explained) and
    how it correlates with the frame before (-1..1)."""

    since_keyframe: float
    correlation_with_previous: float


_FLAT = 1.0  # grey levels: a frame with less standard deviation has no structure to correlate


def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation of two grey images; 1 when both are flat, 0 when only one is."""
    a, b = a - a.mean(), b - b.mean()
    norm_a, norm_b = float(a.square().mean().sqrt()), float(b.square().mean().sqrt())
    if norm_a < _FLAT or norm_b < _FLAT:
        return 1.0 if norm_a < _FLAT and norm_b < _FLAT else 0.0
    return float((a * b).mean()) / (norm_a * norm_b)


def grey_flow(grey: np.ndarray, previous_grey: np.ndarray) -> np.ndarray:
    """Backward flow (h, w, 2) from a grey 1/8 frame to the one before (float grey levels 0..255)."""
    as_u8 = lambda g: np.clip(np.rint(g), 0, 255).astype(np.uint8)  # noqa: E731
    return dis_flow_grey(as_u8(grey), as_u8(previous_grey), "fast", 0)


def carry(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """(h, w) float32 image aligned with frame t-1 -> aligned with frame t, by the backward flow
    t -> t-1 (Eq. 1's warp: bilinear, edges repeated)."""
    import cv2

    height, width = image.shape
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return cv2.remap(image, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def frame_change(grey: np.ndarray, carried_keyframe: np.ndarray, previous_grey: np.ndarray
                 ) -> FrameChange:
    """How far this frame is from the keyframe carried to it, and how it correlates with the one before."""
    return FrameChange(float(np.abs(grey - carried_keyframe).mean()),
                       correlation(torch.from_numpy(grey), torch.from_numpy(previous_grey)))


def threshold_for_budget(budget: float,
                         table: Sequence[tuple[float, float]] = ADAPTIVE_CALIBRATION) -> float:
    """The change threshold whose mean keyframe interval on the train split is `budget` frames."""
    budgets = [b for b, _ in table]
    if budget <= budgets[0]:
        return table[0][1]
    if budget >= budgets[-1]:
        return table[-1][1]
    i = bisect.bisect_right(budgets, budget)
    (b0, t0), (b1, t1) = table[i - 1], table[i]
    return t0 + (t1 - t0) * (budget - b0) / (b1 - b0)


def scene_cuts(greys: np.ndarray, scene_change_correlation: float) -> list[bool]:
    """Which frames of a (T, h, w) grey sequence correlate less than the setting with the one before."""
    frames = torch.from_numpy(np.ascontiguousarray(greys))
    return [False] + [correlation(frames[t], frames[t - 1]) < scene_change_correlation
                      for t in range(1, len(frames))]


def sequence_flows(greys: np.ndarray) -> list[Optional[np.ndarray]]:
    """The policy's backward flow between consecutive frames of a (T, h, w) grey sequence (None at 0)."""
    return [None] + [grey_flow(greys[t], greys[t - 1]) for t in range(1, len(greys))]


def simulate_keyframes(greys: np.ndarray, threshold: float, max_interval: int, cuts: Sequence[bool],
                       flows: Optional[Sequence[Optional[np.ndarray]]] = None) -> list[bool]:
    """Which frames of one sequence ((T, h, w) grey levels, keyframe at 0) the adaptive policy makes
    keyframes, given its scene cuts (and flows, computed when not given): VideoSegmenter's rule, on
    frames alone (no network)."""
    flows = sequence_flows(greys) if flows is None else flows
    keyframes, carried, since = [True], greys[0].astype(np.float32), 0
    for t in range(1, len(greys)):
        carried = carry(carried, flows[t])
        change = float(np.abs(greys[t] - carried).mean())
        is_key = cuts[t] or change >= threshold or since + 1 >= max_interval
        keyframes.append(is_key)
        carried, since = (greys[t].astype(np.float32), 0) if is_key else (carried, since + 1)
    return keyframes


def calibrate_thresholds(sequences: Iterable[np.ndarray], budgets: Sequence[float], max_interval: int,
                         scene_change_correlation: float, tolerance: float = 0.01
                         ) -> list[tuple[float, float, float]]:
    """(budget, threshold, mean interval reached) for each budget, by bisection on the threshold.

    The mean interval is frames / keyframes pooled over all sequences (each starts with a keyframe);
    it grows with the threshold, up to max_interval.
    """
    greys = list(sequences)
    cuts = [scene_cuts(g, scene_change_correlation) for g in greys]
    flows = [sequence_flows(g) for g in greys]
    frames = sum(len(g) for g in greys)

    def mean_interval(threshold: float) -> float:
        keys = sum(sum(simulate_keyframes(g, threshold, max_interval, c, f))
                   for g, c, f in zip(greys, cuts, flows))
        return frames / keys

    rows = []
    for budget in budgets:
        low, high = 0.0, 255.0
        while high - low >= tolerance:
            mid = 0.5 * (low + high)
            low, high = (mid, high) if mean_interval(mid) < budget else (low, mid)
        rows.append((float(budget), round(high, 2), mean_interval(round(high, 2))))
    return rows


def check_budget(budget: Optional[float]) -> Optional[str]:
    """None when `budget` is a valid keyframe budget, else what was expected."""
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not 1.0 <= budget <= 1000.0:
        return f"keyframe_budget must be a number of frames in [1, 1000], got {budget!r}"
    return None

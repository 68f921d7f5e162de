"""When to run the image network: every l frames (fixed) or when propagation is predicted to have
lost too much (adaptive).

The adaptive policy decides before a frame is segmented, from what the stream already has:

- effective distance from the keyframe: d + k * (c_key - c_prev), where d is the number of frames
  since the keyframe, c the mean over the 1/8 grid of the top softmax probability of the logits, of
  the keyframe (c_key) and of the frame before (c_prev, propagated). Propagation loses accuracy with
  every frame, and faster where its logits lose confidence (new content, flow errors, blur of
  repeated warping); k weighs one against the other. A keyframe is taken when the effective distance
  reaches a threshold. k and the threshold of each keyframe budget (target mean interval) are
  calibrated per keyframe net on the train split from a keyframe table
  (`gsvnet-eval --calibrate-keyframes runs/kt/<net>_train/keyframe_table.npz`; README, "Adaptive
  keyframes"): k by least squares of the per-frame mIoU lost to propagation on d and the confidence
  drop, the thresholds so that the mean interval on the train split is the budget. With no
  calibration for a net, k = 0 and the threshold is the budget: a fixed interval with cut detection.
- scene change: the correlation of the hue-saturation histograms (16 x 8 bins, OpenCV) of this frame
  and the one before, at 1/8 (the classic shot-boundary test; brightness hardly moves it, the scene's
  layout not at all). On the synthetic train split (20 snippets) consecutive frames of one drive
  correlate at 0.999 (median; 0.967 at the least), the last frame of one drive and the first of
  another at 0.03 (median; 0.73 at most); the layout-dominated correlation of grey images separated
  them far less (0.55 at the least against 0.56 at most). Below `scene_change_correlation` (0.85)
  the frame is a keyframe at once (a cut in a replayed bag, a camera switch).
- a maximum interval bounds the time between keyframes whatever the frames show.

Cost: one softmax over the (C, h/8, w/8) logits and one histogram of the 1/8 frame per frame, about
1 ms at 1024x512 on one core.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch

__all__ = ["PolicyCalibration", "ADAPTIVE_CALIBRATION", "UNCALIBRATED", "calibration_for", "FrameChange",
           "colour_histogram", "histogram_correlation", "mean_confidence", "effective_distance",
           "threshold_for_budget", "scene_cuts", "check_budget"]

@dataclass(frozen=True)
class PolicyCalibration:
    """k of the effective distance, and (budget, threshold) pairs in increasing order."""

    k: float
    thresholds: tuple[tuple[float, float], ...]


# Calibrated on the train split (60 snippets, seeds 0-59, max_keyframe_interval 10; the tables' scene
# cuts came from release 12's grey-correlation test at 0.4, which found none in these snippets):
# gsvnet-eval --data data/synth_prop --split train --keyframe-table config/<net>.yaml --snippets 60
#   --out runs/kt/<net>_train
# gsvnet-eval --calibrate-keyframes runs/kt/<net>_train/keyframe_table.npz --budgets 2 3 4 5 6 8
# Budgets between entries interpolate linearly; above the last one its threshold is used.
ADAPTIVE_CALIBRATION: dict[str, PolicyCalibration] = {
    "swiftnet_r18": PolicyCalibration(91.09, ((1.0, 0.0), (2.0, 1.001), (3.0, 3.718), (4.0, 5.8), (5.0, 8.259),
                                              (6.0, 11.425), (8.0, 19.138))),
    "bisenet_r18": PolicyCalibration(53.39, ((1.0, 0.0), (2.0, 1.001), (3.0, 2.898), (4.0, 4.404), (5.0, 5.967),
                                             (6.0, 8.232), (8.0, 12.556))),
}
UNCALIBRATED = PolicyCalibration(0.0, ((1.0, 1.0), (1000.0, 1000.0)))  # threshold = budget: fixed


def calibration_for(model_name: str) -> PolicyCalibration:
    """The shipped calibration of a keyframe net, or UNCALIBRATED (a fixed interval, cuts detected)."""
    return ADAPTIVE_CALIBRATION.get(model_name, UNCALIBRATED)


def colour_histogram(frame_1_8: torch.Tensor) -> np.ndarray:
    """Hue-saturation histogram (16 x 8 bins, float32) of a (1, 3, h, w) RGB frame in [0, 1] at 1/8."""
    import cv2

    rgb = np.ascontiguousarray(frame_1_8[0].detach().float().permute(1, 2, 0).cpu().numpy())
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)  # float input: hue in [0, 360), saturation in [0, 1]
    return cv2.calcHist([hsv], [0, 1], None, [16, 8], [0, 360, 0, 1])


def histogram_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of two histograms (OpenCV HISTCMP_CORREL); 1 when both are flat and equal."""
    import cv2

    if float(a.std()) == 0.0 or float(b.std()) == 0.0:
        return 1.0 if np.array_equal(a, b) else 0.0
    return float(cv2.compareHist(a, b, cv2.HISTCMP_CORREL))


def mean_confidence(logits_1_8: torch.Tensor, height_1_8: int, width_1_8: int) -> float:
    """Mean over the frame's 1/8 grid (padding cropped) of the top softmax probability of (C, h, w) logits."""
    return float(logits_1_8[:, :height_1_8, :width_1_8].float().softmax(0).amax(0).mean())


def effective_distance(frames_since_keyframe: int, keyframe_confidence: float, previous_confidence: float,
                       k: float) -> float:
    """d + k * (confidence lost since the keyframe): the frame's distance, lengthened by the drift."""
    return frames_since_keyframe + k * (keyframe_confidence - previous_confidence)


@dataclass(frozen=True)
class FrameChange:
    """What the adaptive policy decided a frame on: the drop of the mean top softmax probability from
    the keyframe to the frame before, the effective distance it gives, and the correlation of the
    frame's colour histogram with the one before's (-1..1)."""

    confidence_drop: float
    effective_distance: float
    correlation_with_previous: float


def threshold_for_budget(budget: float, table: Sequence[tuple[float, float]]) -> float:
    """The threshold whose mean keyframe interval on the calibration split is `budget` frames."""
    budgets = [b for b, _ in table]
    if budget <= budgets[0]:
        return table[0][1]
    if budget >= budgets[-1]:
        return table[-1][1]
    i = bisect.bisect_right(budgets, budget)
    (b0, t0), (b1, t1) = table[i - 1], table[i]
    return t0 + (t1 - t0) * (budget - b0) / (b1 - b0)


def scene_cuts(histograms: Sequence[np.ndarray], scene_change_correlation: float) -> list[bool]:
    """Which frames of a sequence (their colour_histogram) correlate less than the setting with the one before."""
    return [False] + [histogram_correlation(histograms[t], histograms[t - 1]) < scene_change_correlation
                      for t in range(1, len(histograms))]


def check_budget(budget: Optional[float]) -> Optional[str]:
    """None when `budget` is a valid keyframe budget, else what was expected."""
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not 1.0 <= budget <= 1000.0:
        return f"keyframe_budget must be a number of frames in [1, 1000], got {budget!r}"
    return None

"""Keyframe table: every (keyframe at frame i, propagated to frame i + d) pair of a snippet, measured
once, so that any keyframe schedule can be scored exactly without running the networks again.

Within a snippet the stream's output at frame j depends only on the last keyframe i <= j (propagation
starts from the keyframe's logits and uses the frames i..j), so a table of the frame's score for every
pair (i, d = j - i), d < horizon, scores every schedule whose keyframe intervals are at most the
horizon: fixed intervals, the adaptive policy at any threshold, and the best schedule in hindsight
(an upper bound on any policy, `best_schedule`). For every pair it keeps the frame's confusion matrix
against its dense label (full resolution, the stream's output stage), the signals a policy may use
(the mean top softmax probability of the logits, which `keyframe_policy`'s effective distance uses;
the share of low-confidence pixels; the residual of the keyframe's grey image carried along by DIS
flow, release 12's policy signal), and the share of 1/8 pixels whose class differs from what the
image network gives on that frame (a label-free measure of propagation error, as DVSNet's).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

import numpy as np
import torch

from ..keyframe_policy import (PolicyCalibration, colour_histogram, mean_confidence, scene_cuts,
                               threshold_for_budget)
from ..metrics import confusion_matrix, mean_iou
from ..models.dis_flow import dis_flow_grey
from ..stream import VideoSegmenter
from .protocol import FRAME_PERIOD_NS
from .sequences import WORST_SHARE, LabelledSequence

__all__ = ["KeyframeTable", "measure_table", "measure_snippet", "schedule_scores", "fixed_schedule",
           "threshold_schedule", "best_schedule", "best_schedules_at", "calibrate_policy", "compare_policies",
           "render_comparison", "LOW_CONFIDENCE"]

LOW_CONFIDENCE = 0.5  # max softmax probability under which a 1/8 pixel counts as low-confidence

# per-pair signals, (snippets, frames, horizon) float32, NaN where i + d is past the snippet's end
SIGNALS = ("residual", "low_confidence", "mean_confidence", "disagreement", "ms")


@dataclass
class KeyframeTable:
    """Measured pairs of a split: confusion (N, T, H, C, C) int32 and SIGNALS (N, T, H) float32."""

    confusion: np.ndarray
    signals: dict[str, np.ndarray]
    cuts: np.ndarray  # (N, T) bool: the policy's scene cuts (keyframe_policy.scene_cuts)
    names: list[str]

    @property
    def horizon(self) -> int:
        return self.confusion.shape[2]

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez_compressed(tmp, confusion=self.confusion, cuts=self.cuts, names=np.asarray(self.names),
                            **self.signals)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> "KeyframeTable":
        with np.load(path) as data:
            return cls(data["confusion"], {k: data[k] for k in SIGNALS}, data["cuts"],
                       [str(n) for n in data["names"]])


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


def _greys(frames_1_8: Sequence[torch.Tensor]) -> np.ndarray:
    """Grey levels 0..255 (ITU-R BT.601) of (1, 3, h, w) RGB frames in [0, 1] -> (T, h, w) float32."""
    luma = torch.tensor((0.299, 0.587, 0.114)).view(3, 1, 1)
    return np.stack([(f[0].float().cpu() * luma).sum(0).mul_(255.0).numpy() for f in frames_1_8])


def measure_table(segmenter: VideoSegmenter, sequences: Iterable[LabelledSequence], horizon: int,
                  scene_change_correlation: float, num_classes: int = 19) -> KeyframeTable:
    """Run, for every frame i of every snippet, a keyframe at i and `horizon - 1` propagated frames
    (snippets are read one at a time from `sequences`; all must have the same length)."""
    rows = [measure_snippet(segmenter, s, horizon, scene_change_correlation, num_classes) for s in sequences]
    if len({r[0].shape for r in rows}) > 1:
        raise ValueError("snippets of different lengths cannot share a keyframe table")
    signals = {k: np.stack([r[1][k] for r in rows]) for k in SIGNALS}
    return KeyframeTable(np.stack([r[0] for r in rows]), signals, np.stack([r[2] for r in rows]),
                         [r[3] for r in rows])


def measure_snippet(segmenter: VideoSegmenter, sequence: LabelledSequence, horizon: int,
                    scene_change_correlation: float, num_classes: int = 19):
    """One snippet's rows of the table: (confusion (T, H, C, C), signals (T, H) each, cuts (T,), name)."""
    segmenter.keyframe_policy, segmenter.keyframe_interval = "fixed", horizon + 1  # no interval keyframe
    frames = len(sequence.frames)
    confusion = np.zeros((frames, horizon, num_classes, num_classes), np.int32)
    signals = {k: np.full((frames, horizon), np.nan, np.float32) for k in SIGNALS}
    cpu = torch.device("cpu")
    small = [VideoSegmenter.prepare(f, cpu, full=False)[1] for f in sequence.frames]
    greys = _greys(small)
    flows = [None] + [grey_flow(greys[t], greys[t - 1]) for t in range(1, frames)]
    cuts = np.asarray(scene_cuts([colour_histogram(f) for f in small], scene_change_correlation), bool)
    height, width = sequence.frames[0].shape[:2]
    h8, w8 = -(-height // 8), -(-width // 8)
    classes = np.zeros((frames, horizon, h8, w8), np.uint8)  # argmax at 1/8
    for i in range(frames):
        segmenter.reset()
        carried = greys[i].astype(np.float32)
        for d in range(min(horizon, frames - i)):
            j = i + d
            started = time.perf_counter()
            result = segmenter.step(sequence.frames[j], j * FRAME_PERIOD_NS)
            signals["ms"][i, d] = 1e3 * (time.perf_counter() - started)
            assert result.is_keyframe == (d == 0)
            if d:
                carried = carry(carried, flows[j])
            signals["residual"][i, d] = float(np.abs(greys[j] - carried).mean())
            logits = segmenter.last_logits_1_8
            assert logits is not None
            top = logits[0].float().softmax(0).amax(0)[:h8, :w8]
            signals["low_confidence"][i, d] = float((top < LOW_CONFIDENCE).float().mean())
            signals["mean_confidence"][i, d] = mean_confidence(logits[0], h8, w8)  # as the policy sees it
            classes[i, d] = logits[0].argmax(0)[:h8, :w8].cpu().numpy()
            confusion[i, d] = confusion_matrix(result.labels, sequence.labels[j], num_classes)
    for i in range(frames):
        for d in range(min(horizon, frames - i)):
            signals["disagreement"][i, d] = float((classes[i, d] != classes[i + d, 0]).mean())
    return confusion, signals, cuts, sequence.name


def fixed_schedule(frames: int, interval: int) -> np.ndarray:
    return np.arange(frames) % interval == 0


def threshold_schedule(table: KeyframeTable, n: int, rule: Callable[[int, int, int], bool]) -> np.ndarray:
    """Keyframes of snippet n under a causal rule: frame j is a keyframe when it is frame 0, a scene
    cut, the horizon is reached, or rule(n, i, d) holds for the last keyframe i and d = j - i."""
    frames = table.confusion.shape[1]
    keys, last = np.zeros(frames, bool), 0
    keys[0] = True
    for j in range(1, frames):
        d = j - last
        if table.cuts[n, j] or d >= table.horizon or rule(n, last, d):
            keys[j], last = True, j
    return keys


def _pairs(keys: np.ndarray) -> list[tuple[int, int]]:
    """(last keyframe, distance) of every frame under a schedule."""
    out, last = [], 0
    for j, key in enumerate(keys):
        last = j if key else last
        out.append((last, j - last))
    return out


def schedule_scores(table: KeyframeTable, schedules: Sequence[np.ndarray]) -> dict:
    """Pooled mIoU, worst-5 % mIoU, mean keyframe interval of one schedule per snippet; frames/s
    estimated from the table's median keyframe and non-keyframe step times."""
    pooled = np.zeros(table.confusion.shape[-2:], np.int64)
    per_frame, keyframes, frames = [], 0, 0
    for n, keys in enumerate(schedules):
        for i, d in _pairs(keys):
            if d >= table.horizon:
                raise ValueError(f"schedule of snippet {n} has an interval past the table's horizon")
            matrix = table.confusion[n, i, d]
            pooled += matrix
            per_frame.append(mean_iou(matrix))
        keyframes += int(keys.sum())
        frames += len(keys)
    ms = table.signals["ms"]
    key_ms, nonkey_ms = float(np.nanmedian(ms[:, :, 0])), float(np.nanmedian(ms[:, :, 1:]))
    scores = np.sort(np.asarray([v for v in per_frame if not np.isnan(v)]))
    worst = scores[:max(1, int(round(WORST_SHARE * len(scores))))]
    return {"miou": mean_iou(pooled), "worst5_miou": float(worst.mean()),
            "mean_keyframe_interval": frames / keyframes,
            "fps": 1e3 * frames / (keyframes * key_ms + (frames - keyframes) * nonkey_ms)}


def best_schedule(table: KeyframeTable, n: int, keyframe_cost: float,
                  miou: Optional[np.ndarray] = None) -> np.ndarray:
    """The schedule of snippet n that maximises the sum of per-frame mIoU minus keyframe_cost per
    keyframe, in hindsight (labels known): dynamic programming over the last keyframe. `miou`:
    per_pair_miou(table), when already computed."""
    frames, horizon = table.confusion.shape[1], table.horizon
    score = np.nan_to_num((per_pair_miou(table) if miou is None else miou)[n], nan=0.0)
    # best[j]: best total of frames 0..j-1 with a keyframe at j; segment value of keyframe i covering d frames
    best = np.full(frames + 1, -np.inf)
    choice = np.zeros(frames + 1, int)
    best[0] = 0.0
    for end in range(1, frames + 1):  # the segment [i, end) ends before `end`
        for i in range(max(0, end - horizon), end):
            value = best[i] + score[i, :end - i].sum() - keyframe_cost
            if value > best[end]:
                best[end], choice[end] = value, i
    keys, end = np.zeros(frames, bool), frames
    while end > 0:
        keys[choice[end]] = True
        end = choice[end]
    return keys


# --- policies scored on tables: calibrated on one split's table, compared on another's -------------

def confidence_drop_before(table: KeyframeTable) -> np.ndarray:
    """(N, T, H): the keyframe's mean confidence minus that of the frame before i + d (known before
    frame i + d is segmented; 0 at d = 1, NaN at d = 0)."""
    mean = table.signals["mean_confidence"]
    before = np.concatenate([np.full(mean.shape[:2] + (1,), np.nan, np.float32), mean[:, :, :-1]], 2)
    return mean[:, :, :1] - before


def per_pair_miou(table: KeyframeTable) -> np.ndarray:
    """(N, T, H) mIoU of every measured pair (NaN where nothing was scored)."""
    c = table.confusion.astype(np.float64)
    diag = np.diagonal(c, axis1=-2, axis2=-1)
    union = c.sum(-1) + c.sum(-2) - diag
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, diag / np.maximum(union, 1), np.nan)
        counted = np.isfinite(iou).sum(-1)
        return np.where(counted > 0, np.nansum(iou, -1) / np.maximum(counted, 1), np.nan)


def fit_effective_distance(table: KeyframeTable) -> float:
    """k of the effective distance d + k * confidence drop: least squares of the per-frame mIoU lost
    to propagation (keyframe at i + d against propagated from i) on d and the drop, k = ratio of
    their weights (frames per unit of mean confidence lost); 0 when the fit does not say that lost
    confidence and distance both cost accuracy (then the policy is a fixed interval)."""
    miou = per_pair_miou(table)
    loss = np.full_like(miou, np.nan)
    for d in range(1, table.horizon):
        loss[:, :miou.shape[1] - d, d] = miou[:, d:, 0] - miou[:, :miou.shape[1] - d, d]
    drop = confidence_drop_before(table)
    distance = np.broadcast_to(np.arange(table.horizon, dtype=np.float64), loss.shape)
    use = np.isfinite(loss) & np.isfinite(drop) & (distance > 0)
    x = np.stack([distance[use], drop[use], np.ones(int(use.sum()))], 1)
    (w_distance, w_drop, _), *_ = np.linalg.lstsq(x, loss[use], rcond=None)
    return float(w_drop / w_distance) if w_distance > 0 and w_drop > 0 else 0.0


def score_schedules(table: KeyframeTable, score: np.ndarray, threshold: float) -> list[np.ndarray]:
    """Every snippet's keyframes when a frame is one as soon as `score` (N, T, H) reaches `threshold`."""
    return [threshold_schedule(table, n, lambda n, i, d: bool(score[n, i, d] >= threshold))
            for n in range(len(table.names))]


def threshold_for_interval(table: KeyframeTable, score: np.ndarray, interval: float, low: float,
                           high: float, steps: int = 40) -> float:
    """The smallest threshold (bisection) whose pooled mean keyframe interval on `table` is `interval`."""
    for _ in range(steps):
        mid = 0.5 * (low + high)
        reached = schedule_scores(table, score_schedules(table, score, mid))["mean_keyframe_interval"]
        low, high = (mid, high) if reached < interval else (low, mid)
    return high


def best_schedules_at(table: KeyframeTable, interval: float, steps: int = 14) -> list[np.ndarray]:
    """Hindsight-best schedules (labels known) whose pooled mean interval is closest above `interval`
    (bisection on the keyframe cost): the bound no causal policy can pass at that interval."""
    low, high, best, miou = 0.0, 2.0, None, per_pair_miou(table)
    for _ in range(steps):
        cost = 0.5 * (low + high)
        schedules = [best_schedule(table, n, cost, miou) for n in range(len(table.names))]
        if schedule_scores(table, schedules)["mean_keyframe_interval"] < interval:
            low = cost
        else:
            high, best = cost, schedules
    if best is None:
        best = [best_schedule(table, n, high, miou) for n in range(len(table.names))]
    return best


# The policy before the effective distance (release 12): a keyframe when the mean |frame - keyframe
# carried to it by DIS flow| reached a threshold (grey levels), calibrated on the train split's frames.
RESIDUAL_THRESHOLDS = ((1.0, 0.0), (2.0, 5.18), (3.0, 6.64), (4.0, 7.90), (5.0, 8.97), (6.0, 9.98),
                       (8.0, 12.22))


def effective_distances(table: KeyframeTable, k: float) -> np.ndarray:
    """(N, T, H): keyframe_policy.effective_distance of every pair (0 where d = 0)."""
    return np.arange(table.horizon)[None, None, :] + k * np.nan_to_num(confidence_drop_before(table))


def calibrate_policy(table: KeyframeTable, budgets: Sequence[float]
                     ) -> tuple[PolicyCalibration, list[float]]:
    """The adaptive policy's calibration on a (train split) table: k by least squares, then for each
    budget the threshold whose mean keyframe interval is the budget; and the intervals reached."""
    k = fit_effective_distance(table)
    distance = effective_distances(table, k)
    thresholds, reached = [(1.0, 0.0)], []
    for budget in sorted(b for b in budgets if b > 1.0):
        threshold = threshold_for_interval(table, distance, budget, 0.0, 2.0 * table.horizon)
        thresholds.append((float(budget), math.ceil(threshold * 1000) / 1000))  # rounded up: still reached
        reached.append(schedule_scores(table, score_schedules(table, distance, thresholds[-1][1]))
                       ["mean_keyframe_interval"])
    return PolicyCalibration(round(k, 2), tuple(thresholds)), reached


def compare_policies(calibration: KeyframeTable, evaluation: KeyframeTable, intervals: Sequence[int],
                     budgets: Sequence[float]) -> dict:
    """Keyframe policies calibrated on `calibration` (train split) and scored on `evaluation`:
    fixed intervals; release 12's residual policy (RESIDUAL_THRESHOLDS); the effective distance
    (calibrate_policy on `calibration`); and the hindsight-best schedule at each fixed interval's
    keyframe rate (an upper bound)."""
    frames = evaluation.confusion.shape[1]
    count = len(evaluation.names)
    rows = [{"policy": "fixed", "setting": float(l),
             **schedule_scores(evaluation, [fixed_schedule(frames, l)] * count)} for l in intervals]
    for budget in budgets:
        threshold = threshold_for_budget(budget, RESIDUAL_THRESHOLDS)
        rows.append({"policy": "DIS residual (release 12)", "setting": budget, "threshold": threshold,
                     **schedule_scores(evaluation, score_schedules(
                         evaluation, evaluation.signals["residual"], threshold))})
    fitted, _ = calibrate_policy(calibration, budgets)
    distance = effective_distances(evaluation, fitted.k)
    for budget in budgets:
        threshold = threshold_for_budget(budget, fitted.thresholds)
        rows.append({"policy": "effective distance", "setting": budget, "threshold": threshold,
                     **schedule_scores(evaluation, score_schedules(evaluation, distance, threshold))})
    for fixed in rows[:len(intervals)]:  # at the fixed interval's keyframe rate (30 frames: l=4 -> 3.75)
        rows.append({"policy": "hindsight best (bound)", "setting": fixed["setting"], **schedule_scores(
            evaluation, best_schedules_at(evaluation, fixed["mean_keyframe_interval"]))})
    return {"k": fitted.k, "rows": rows}


def render_comparison(result: dict, command: str, names: tuple[str, str]) -> str:
    lines = ["# Keyframe policies scored on keyframe tables (generated by `gsvnet-eval --compare-policies`)",
             "", f"Command: `{command}`", "",
             f"Calibrated on `{names[0]}`, scored on `{names[1]}`: every frame of every snippet, exactly as "
             "`--whole-sequences` scores it (the table's pairs are the stream's outputs). frames/s is an "
             "estimate from the table's median keyframe and non-keyframe step times, not a measurement. "
             f"Effective distance: d + {result['k']:.1f} x (keyframe's mean confidence - previous frame's).",
             "", "| policy | interval / budget | threshold | mIoU | worst 5 % | mean keyframe interval | "
             "frames/s (est.) |", "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        threshold = f"{r['threshold']:.3f}" if "threshold" in r else ""
        lines.append(f"| {r['policy']} | {r['setting']:g} | {threshold} | {100 * r['miou']:.2f} | "
                     f"{100 * r['worst5_miou']:.2f} | {r['mean_keyframe_interval']:.2f} | {r['fps']:.1f} |")
    return "\n".join(lines + [""])

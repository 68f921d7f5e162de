"""Whole-sequence evaluation: every frame of every snippet segmented from frame 0 and scored.

The paper's protocol scores one frame at fixed offsets from a keyframe, which cannot judge a keyframe
policy. Here the stream runs over each densely labelled snippet as a robot would (keyframe policy,
propagation, output stage) and every frame is scored: mIoU over all frames (pooled confusion), the
worst 5 % of frames (mean of their per-frame mIoU), the mean keyframe interval, why keyframes were
taken, and frames/s end to end (RGB frame in memory -> full-resolution labels, summed over frames).
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

import numpy as np

from ..data import cityscapes
from ..metrics import confusion_matrix, mean_iou
from ..stream import VideoSegmenter
from .protocol import FRAME_PERIOD_NS

__all__ = ["LabelledSequence", "list_labelled_sequences", "load_sequence", "score_sequences",
           "WORST_SHARE", "SequencePlan", "sequence_rows",
           "render_sequence_markdown", "plot_sequences"]

WORST_SHARE = 0.05  # "worst 5 % of frames"


@dataclass(frozen=True)
class LabelledSequence:
    """All frames of one snippet with a dense label each (oldest first)."""

    name: str
    frames: Sequence[np.ndarray]  # (H, W, 3) uint8 RGB
    labels: Sequence[np.ndarray]  # (H, W) uint8 trainIds, 255 = ignored


def list_labelled_sequences(root: str | Path, split: str) -> list[list[cityscapes.Snippet]]:
    """The densely labelled frames of a split, grouped by snippet, in frame order."""
    groups: dict[tuple[str, int], list[cityscapes.Snippet]] = {}
    for item in cityscapes.list_snippets(root, split, "gtFine_sequence"):
        groups.setdefault((item.city, item.seq), []).append(item)
    return [sorted(items, key=lambda s: s.frame) for _, items in sorted(groups.items())]


def load_sequence(root: str | Path, split: str, items: Sequence[cityscapes.Snippet],
                  with_labels: bool = True) -> LabelledSequence:
    frames = [cityscapes.read_rgb(cityscapes.frame_path(root, split, s)) for s in items]
    labels = [cityscapes.read_train_ids(cityscapes.label_path(root, split, s, None, "gtFine_sequence"))
              for s in items] if with_labels else []
    return LabelledSequence(items[0].stem(None).rsplit("_", 1)[0], frames, labels)


def score_sequences(segmenter: VideoSegmenter, sequences: Iterable[LabelledSequence],
                    num_classes: int = 19, frame_stride: int = 1,
                    progress: Optional[Callable] = None) -> dict:
    """Run the stream over every sequence from frame 0 (reset before each) and score every frame.

    `frame_stride` > 1 segments and scores every n-th frame only, each as its own keyframe: for
    per-frame segmentation (keyframe interval 1), which does not depend on earlier frames.
    """
    if frame_stride > 1 and not (segmenter.keyframe_policy == "fixed" and segmenter.keyframe_interval == 1):
        raise ValueError("frame_stride > 1 is only exact for per-frame segmentation (fixed, interval 1)")
    pooled = np.zeros((num_classes, num_classes), np.int64)
    per_frame, reasons, seconds = [], Counter(), 0.0
    frames = keyframes = 0
    for sequence in sequences:
        segmenter.reset()
        for index in range(0, len(sequence.frames), frame_stride):
            started = time.perf_counter()
            result = segmenter.step(sequence.frames[index], index * FRAME_PERIOD_NS)
            seconds += time.perf_counter() - started
            matrix = confusion_matrix(result.labels, sequence.labels[index], num_classes)
            pooled += matrix
            per_frame.append(mean_iou(matrix))
            frames += 1
            if result.is_keyframe:
                keyframes += 1
                reasons[result.keyframe_reason] += 1
        if progress is not None:
            progress()
    scores = np.sort(np.asarray([v for v in per_frame if not np.isnan(v)]))
    worst = scores[:max(1, int(round(WORST_SHARE * len(scores))))]
    return {"miou": mean_iou(pooled), "worst5_miou": float(worst.mean()), "frames": frames,
            "keyframes": keyframes, "mean_keyframe_interval": frames / max(keyframes, 1),
            "fps": frames / seconds, "ms_per_frame": 1e3 * seconds / frames,
            "keyframe_reasons": dict(reasons)}


@dataclass(frozen=True)
class SequencePlan:
    """The rows of a whole-sequence run for one configuration."""

    scales: Sequence[float] = (1.0, 0.75, 0.6, 0.5)  # per-frame segmentation (keyframe interval 1)
    intervals: Sequence[int] = (2, 3, 4, 5, 6, 8)  # fixed policy
    budgets: Sequence[float] = (4.0, 5.0, 6.0, 8.0)  # adaptive policy
    per_frame_stride: int = 5  # per-frame rows score every n-th frame (they do not depend on history)


def sequence_rows(build: Callable[[float], VideoSegmenter], sequences: Sequence[LabelledSequence],
                  plan: SequencePlan, name: str, progress: Optional[Callable] = None) -> list[dict]:
    """Per-frame rows by input scale, then fixed-interval and adaptive rows at the config's scale.

    `build(scale)` returns a stream for that keyframe input scale (None: the configured one)."""
    rows = []
    for scale in plan.scales:
        segmenter = build(scale)
        segmenter.keyframe_policy, segmenter.keyframe_interval = "fixed", 1
        rows.append({"config": name, "policy": "per frame", "scale": scale, "setting": 1,
                     **score_sequences(segmenter, sequences, segmenter.num_classes,
                                       frame_stride=plan.per_frame_stride, progress=progress)})
    segmenter = build(None)
    for interval in plan.intervals:
        segmenter.keyframe_policy, segmenter.keyframe_interval = "fixed", interval
        rows.append({"config": name, "policy": "fixed", "setting": interval,
                     **score_sequences(segmenter, sequences, segmenter.num_classes, progress=progress)})
    for budget in plan.budgets:
        segmenter.keyframe_policy, segmenter.keyframe_budget = "adaptive", budget
        rows.append({"config": name, "policy": "adaptive", "setting": budget,
                     "change_threshold": segmenter.change_threshold,
                     **score_sequences(segmenter, sequences, segmenter.num_classes, progress=progress)})
    return rows


def render_sequence_markdown(results: dict, command: str) -> str:
    """The whole-sequence page: one table per configuration, generated from `results`."""
    lines = ["# Whole-sequence evaluation (generated by `gsvnet-eval --whole-sequences`)", "",
             f"Command: `{command}`", "",
             f"Data: {results['sequences']} snippets of {results['frames_per_sequence']} frames, every "
             "frame segmented from frame 0 and scored against its dense label. mIoU: pooled over all "
             f"frames; worst 5 %: mean per-frame mIoU of the {100 * WORST_SHARE:.0f} % lowest frames; "
             "frames/s: end to end (RGB frame in memory -> full-resolution labels), summed over the "
             f"frames. Per-frame rows score every {results['per_frame_stride']}th frame. "
             f"{results.get('machine', '')}", ""]
    for name in dict.fromkeys(r["config"] for r in results["rows"]):
        lines += [f"## {name}", "",
                  "| policy | scale / interval / budget | mIoU | worst 5 % | mean keyframe interval | "
                  "frames/s | keyframe reasons |", "|---|---|---|---|---|---|---|"]
        for r in (r for r in results["rows"] if r["config"] == name):
            setting = r["scale"] if r["policy"] == "per frame" else r["setting"]
            reasons = ", ".join(f"{k} {v}" for k, v in sorted(r["keyframe_reasons"].items()))
            lines.append(f"| {r['policy']} | {setting} | {100 * r['miou']:.1f} | {100 * r['worst5_miou']:.1f}"
                         f" | {r['mean_keyframe_interval']:.2f} | {r['fps']:.1f} | {reasons} |")
        lines.append("")
    lines += ["![mIoU over all frames against frames/s](sequences.png)", ""]
    return "\n".join(lines)


def plot_sequences(results: dict, path: Path) -> None:
    """mIoU over all frames against frames/s: per frame by scale, fixed by interval, adaptive by budget."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    styles = {"per frame": "s--", "fixed": "o-", "adaptive": "D-"}
    for name in dict.fromkeys(r["config"] for r in results["rows"]):
        for policy, style in styles.items():
            rows = sorted((r for r in results["rows"] if r["config"] == name and r["policy"] == policy),
                          key=lambda r: r["fps"])
            if not rows:
                continue
            ax.plot([r["fps"] for r in rows], [100 * r["miou"] for r in rows], style,
                    label=f"{name}: {policy}", markersize=4)
            for r in rows:
                tag = {"per frame": f"{r.get('scale')}", "fixed": f"l={r['setting']}",
                       "adaptive": f"b={r['setting']:g}"}[policy]
                ax.annotate(tag, (r["fps"], 100 * r["miou"]), fontsize=6, textcoords="offset points",
                            xytext=(3, 3))
    ax.set_xlabel("frames/s (end to end)")
    ax.set_ylabel("mIoU over all frames (%)")
    ax.set_title("Keyframe policies over whole sequences")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)

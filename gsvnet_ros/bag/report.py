"""Report of an offline segmentation run: latency statistics, speed-up, mIoU by keyframe distance."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gsvnet_ros.labels import CLASS_NAMES
from gsvnet_ros.metrics import as_percent
from gsvnet_ros.reporting import json_safe, latency_stats

__all__ = ["TimingLog", "latency_stats", "build_report", "accuracy_section", "write_report_json",
           "format_report"]

# Left out of the latency statistics: the first keyframe and the first non-keyframe, i.e. the first
# call of each network, which pays one-off costs (allocation, kernel selection, ONNX session
# creation) that a long-running stream never sees again. Kept when it is the only frame of its kind.


@dataclass
class TimingLog:
    """Per-frame step timings: the segmenter's own total (ms) and the wall time around step()."""

    total_ms: list[float] = field(default_factory=list)
    wall_s: list[float] = field(default_factory=list)
    is_keyframe: list[bool] = field(default_factory=list)

    def add(self, total_ms: float, wall_s: float, is_keyframe: bool) -> None:
        self.total_ms.append(float(total_ms))
        self.wall_s.append(float(wall_s))
        self.is_keyframe.append(bool(is_keyframe))

    def __len__(self) -> int:
        return len(self.total_ms)


def _warm(is_keyframe: np.ndarray) -> np.ndarray:
    """Mask of the frames kept for statistics: all but the first of each kind (if it has others)."""
    keep = np.ones(is_keyframe.size, bool)
    for kind in (True, False):
        where = np.flatnonzero(is_keyframe == kind)
        if where.size > 1:
            keep[where[0]] = False
    return keep


def _timing_section(log: TimingLog) -> dict[str, Any]:
    keep = _warm(np.asarray(log.is_keyframe, bool))
    total = np.asarray(log.total_ms, np.float64)[keep]
    key = np.asarray(log.is_keyframe, bool)[keep]
    wall = float(np.sum(np.asarray(log.wall_s, np.float64)[keep]))
    keyframe, per_frame = latency_stats(total[key]), latency_stats(total)
    # Speed-up over running the keyframe network on every frame (the paper's per-frame baseline):
    # keyframe cost divided by the average cost of a frame in the keyframe/propagation mix.
    speed_up = (keyframe["mean"] / per_frame["mean"]
                if keyframe["mean"] is not None and per_frame["mean"] else None)
    return {
        "warmup_frames_excluded": int((~keep).sum()),
        "keyframe_ms": keyframe,
        "non_keyframe_ms": latency_stats(total[~key]),
        "per_frame_ms": per_frame,
        "throughput_fps": (len(total) / wall) if wall > 0 else None,
        "speed_up_over_per_frame": speed_up,
    }


def build_report(*, bag: Path, output: Path, topic: str, frames: int, keyframes: int,
                 keyframe_interval: int | None, model_name: str, backend: str, log: TimingLog,
                 wall_s: float, accuracy: dict[str, Any] | None) -> dict[str, Any]:
    """The JSON-ready report of one run."""
    return {
        "bag": str(bag),
        "output": str(output),
        "image_topic": topic,
        "model_name": model_name,
        "backend": backend,
        "keyframe_interval": keyframe_interval,
        "frames": frames,
        "keyframes": keyframes,
        "timing": _timing_section(log),
        "end_to_end_fps": frames / wall_s if wall_s > 0 else None,
        "accuracy": accuracy,
    }


def accuracy_section(summary: dict[str, Any], *, labels_topic: str, labelled_frames: int,
                     unmatched_labels: int) -> dict[str, Any]:
    """metrics.DistanceConfusion.summary() made JSON-safe (string keys) with class names."""
    return {
        "labels_topic": labels_topic,
        "labelled_frames": labelled_frames,
        "unmatched_labels": unmatched_labels,
        "average_miou": summary["average_miou"],
        "minimum_miou": summary["minimum_miou"],
        "per_distance_miou": {str(d): v for d, v in summary["per_distance_miou"].items()},
        "per_class_iou": dict(zip(CLASS_NAMES, summary["per_class_iou"]))
        if len(summary["per_class_iou"]) == len(CLASS_NAMES) else summary["per_class_iou"],
    }


def write_report_json(report: dict[str, Any], path: Path) -> None:
    """Write the report as strict JSON (NaN/inf written as null)."""
    path.write_text(json.dumps(json_safe(report), indent=2, allow_nan=False) + "\n", encoding="utf-8")


def _num(value: float | None, fmt: str = ".1f") -> str:
    return "-" if value is None else format(value, fmt)


def format_report(report: dict[str, Any]) -> str:
    """A readable table of the report for the terminal."""
    timing = report["timing"]
    lines = [
        f"bag {report['bag']}  topic {report['image_topic']}  ->  {report['output']}",
        f"model {report['model_name']} ({report['backend']}), keyframe interval "
        f"{report['keyframe_interval'] or '-'}: {report['frames']} frames, "
        f"{report['keyframes']} keyframes",
        "",
        f"{'latency (ms)':<16}{'count':>7}{'mean':>9}{'median':>9}{'p95':>9}{'max':>9}",
    ]
    for name, key in (("keyframe", "keyframe_ms"), ("non-keyframe", "non_keyframe_ms"),
                      ("every frame", "per_frame_ms")):
        s = timing[key]
        lines.append(f"{name:<16}{s['count']:>7}{_num(s['mean']):>9}{_num(s['median']):>9}"
                     f"{_num(s['p95']):>9}{_num(s['max']):>9}")
    lines.append(f"throughput {_num(timing['throughput_fps'])} frames/s (segmentation), "
                 f"{_num(report['end_to_end_fps'])} frames/s end to end; speed-up over per-frame "
                 f"{_num(timing['speed_up_over_per_frame'], '.2f')}x "
                 f"({timing['warmup_frames_excluded']} warm-up frame(s) excluded: the first of each "
                 "kind)")
    acc = report.get("accuracy")
    if acc:
        lines += ["", f"mIoU on {acc['labelled_frames']} labelled frames ({acc['labels_topic']}):"
                      f" average {_num(as_percent(acc['average_miou']))}%, minimum "
                      f"{_num(as_percent(acc['minimum_miou']))}%",
                  f"{'distance from keyframe':<24}{'mIoU (%)':>10}"]
        for dist, miou in acc["per_distance_miou"].items():
            lines.append(f"{dist:<24}{_num(as_percent(miou)):>10}")
    return "\n".join(lines)

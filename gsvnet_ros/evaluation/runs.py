"""The experiments of the paper's Tables 1, 2, 4, A5 and Fig. A5, run on shipped weights over a dataset."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from ..backends import build_backend, build_model
from .bench import fps_by_interval, gsvnet_gmacs, time_stream
from ..config import GSVNetConfig, ModelConfig, RuntimeConfig
from .protocol import Snippet, interval_table, score_offsets, score_per_frame
from ..metrics import iou_per_class, mean_iou
from ..stream import VideoSegmenter

__all__ = ["ModelFiles", "find_model_files", "EvalPlan", "run_all"]

KEYFRAME_NETS = ("swiftnet_r18", "bisenet_r18")
# Propagation variants: file suffix -> (ModelConfig changes, table it belongs to)
VARIANTS = {
    "": ({}, "GSVNet"),
    "_nointra": ({"use_intra": False}, "without intra features (Table 4)"),
    "_learned": ({"learnable_kernels": True}, "learned kernels (Table A5)"),
    "_dis": ({"flow": "dis"}, "OpenCV DIS flow (model.flow: dis)"),
}


@dataclass(frozen=True)
class ModelFiles:
    """Weight files of one keyframe net and its propagation variants found in a models folder."""

    keyframe_net: str
    keyframe: Path
    propagation: dict[str, Path]  # variant suffix -> file


def find_model_files(models_dir: Path) -> list[ModelFiles]:
    """`keyframe_<net>.pt` and `propagation_<net><variant>.pt` files present in `models_dir`."""
    found = []
    for net in KEYFRAME_NETS:
        keyframe = models_dir / f"keyframe_{net}.pt"
        if not keyframe.is_file():
            continue
        variants = {suffix: models_dir / f"propagation_{net}{suffix}.pt" for suffix in VARIANTS}
        found.append(ModelFiles(net, keyframe, {s: p for s, p in variants.items() if p.is_file()}))
    return found


@dataclass(frozen=True)
class EvalPlan:
    """What to run: scales for the image baselines, intervals, timing frames, runtime settings."""

    scales: Sequence[float] = (1.0, 0.75, 0.6, 0.5)
    intervals: Sequence[int] = (1, 2, 3, 4, 5)
    keyframe_scale: float = 0.75
    timing_frames: int = 30
    runtime: RuntimeConfig = RuntimeConfig()
    warp_padding: str = ModelConfig.warp_padding  # of every GSVNet row: border | zeros
    flow: str = ModelConfig.flow  # of every GSVNet row: learned | dis
    dis_preset: str = ModelConfig.dis_preset  # model.flow: dis
    dis_finest_scale: int = ModelConfig.dis_finest_scale  # model.flow: dis


def _config(files: ModelFiles, plan: EvalPlan, scale: float, variant: Optional[str]) -> GSVNetConfig:
    changes = VARIANTS[variant][0] if variant is not None else {}
    switches = {"warp_padding": plan.warp_padding, "flow": plan.flow, "dis_preset": plan.dis_preset,
                "dis_finest_scale": plan.dis_finest_scale, **changes}
    model = ModelConfig(keyframe_net=files.keyframe_net, keyframe_scale=scale, **switches)
    runtime = dataclasses.replace(
        plan.runtime, keyframe_weights=str(files.keyframe),
        propagation_weights=str(files.propagation[variant]) if variant is not None else None)
    return GSVNetConfig(model=model, runtime=runtime)


def _timing_frames(snippets: Sequence[Snippet], count: int) -> list[np.ndarray]:
    frames = [f for s in snippets for f in s.frames]
    return [frames[i % len(frames)] for i in range(count)]


def _parameter_counts(model) -> dict[str, int]:
    return {"keyframe": sum(p.numel() for p in model.keyframe_parameters()),
            "non_keyframe": sum(p.numel() for p in model.propagation_parameters())}


def _per_frame_rows(files: ModelFiles, plan: EvalPlan, snippets: Sequence[Snippet],
                    timing: list[np.ndarray], tick: Callable) -> list[dict]:
    rows = []
    for scale in plan.scales:
        cfg = _config(files, plan, scale, None)
        segmenter = VideoSegmenter(build_backend(cfg), cfg.stream)
        confusion = score_per_frame(segmenter, snippets, progress=tick)
        run = time_stream(segmenter, timing, interval=1, warmup=1)
        stages = run.stage_medians(True)
        rows.append({"method": f"{files.keyframe_net} per frame", "keyframe_net": files.keyframe_net,
                     "scale": scale, "interval": 1, "average_miou": mean_iou(confusion.pooled()),
                     "per_class_iou": [None if np.isnan(v) else float(v)
                                       for v in iou_per_class(confusion.pooled())],
                     "ms_per_frame": run.keyframe_median, "fps": 1e3 / run.keyframe_median,
                     "stages_ms": stages})
    return rows


def _gsvnet_rows(files: ModelFiles, plan: EvalPlan, snippets: Sequence[Snippet],
                 timing: list[np.ndarray], tick: Callable) -> tuple[list[dict], dict]:
    rows, extra = [], {}
    for variant in files.propagation:
        cfg = _config(files, plan, plan.keyframe_scale, variant)
        model = build_model(cfg)
        segmenter = VideoSegmenter(build_backend(cfg, model), cfg.stream)
        scores = score_offsets(segmenter, snippets, max_offset=max(plan.intervals), progress=tick)
        table = interval_table(scores.confusion, plan.intervals)
        run = time_stream(segmenter, timing, interval=max(plan.intervals), warmup=1)
        key_ms, non_ms = run.keyframe_median, run.non_keyframe_median
        fps = fps_by_interval(key_ms, non_ms, plan.intervals)
        height, width = snippets[0].label.shape
        padded = (-(-height // 32) * 32, -(-width // 32) * 32)
        gmacs = gsvnet_gmacs(model, *padded)
        for interval in plan.intervals:
            rows.append({
                "method": f"GSVNet-{files.keyframe_net}{variant}", "keyframe_net": files.keyframe_net,
                "variant": VARIANTS[variant][1], "scale": plan.keyframe_scale, "interval": interval,
                "average_miou": table[interval]["average_miou"],
                "minimum_miou": table[interval]["minimum_miou"],
                "per_class_iou": table[interval]["per_class_iou"],
                "ms_per_frame": 1e3 / fps[interval], "fps": fps[interval],
                "gmac_per_frame": (gmacs["keyframe"] + (interval - 1) * gmacs["non_keyframe"]) / interval})
        extra[f"{files.keyframe_net}{variant}"] = {
            "keyframe_ms": key_ms, "non_keyframe_ms": non_ms, "non_keyframe_share": non_ms / key_ms,
            "keyframe_stages_ms": run.stage_medians(True),
            "non_keyframe_stages_ms": run.stage_medians(False),
            "miou_by_distance": {d: mean_iou(scores.confusion.at(d)) for d in scores.confusion.distances},
            "parameters": _parameter_counts(model), "gmacs": gmacs,
            "backend": segmenter.backend.describe()}
    return rows, extra


def run_all(model_files: Sequence[ModelFiles], snippets: Sequence[Snippet], plan: EvalPlan,
            tick: Callable = lambda: None) -> dict:
    """Every row of the results tables, plus timings, complexity and mIoU by keyframe distance."""
    torch.set_num_threads(plan.runtime.threads or torch.get_num_threads())
    timing = _timing_frames(snippets, plan.timing_frames)
    results: dict = {"rows": [], "gsvnet": {}, "threads": torch.get_num_threads(),
                     "snippets": len(snippets), "size": list(snippets[0].label.shape)}
    for files in model_files:
        results["rows"] += _per_frame_rows(files, plan, snippets, timing, tick)
        rows, extra = _gsvnet_rows(files, plan, snippets, timing, tick)
        results["rows"] += rows
        results["gsvnet"].update(extra)
    return results

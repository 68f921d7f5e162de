"""gsvnet-eval: the paper's tables (accuracy–throughput, complexity, ablations) from shipped weights;
--whole-sequences: keyframe policies scored on every frame; --calibrate-keyframes: the adaptive
policy's thresholds from a split's frames."""
from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from tqdm import tqdm

from ..backends import choose_backend
from ..config import ConfigError, GSVNetConfig, ModelConfig, RuntimeConfig, StreamConfig, load_config
from ..data.cityscapes import CityscapesClips, DatasetLayoutError
from ..evaluation.report import plot_accuracy_throughput, write_atomic, write_json, write_markdown
from ..evaluation.runs import VARIANTS, EvalPlan, find_model_files, run_all
from ..evaluation.keyframe_table import (KeyframeTable, calibrate_policy, compare_policies, fixed_schedule,
                                         measure_table, render_comparison, schedule_scores)
from ..evaluation.protocol import Snippet
from ..evaluation.sequences import (SequencePlan, list_labelled_sequences,
                                    load_sequence, plot_sequences, render_sequence_markdown, sequence_rows)
from ..models.dis_flow import DIS_PRESETS
from ..models.weights import WeightsError
from ..stream import VideoSegmenter
from .common import fail, interruptible, prepare_dir


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gsvnet-eval", description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("data/synth"), help="Cityscapes-layout root")
    parser.add_argument("--split", default="val")
    parser.add_argument("--models-dir", type=Path, default=Path("models"),
                        help="folder with keyframe_<net>.pt and propagation_<net>[_nointra|_learned].pt")
    parser.add_argument("--out", type=Path, default=Path("docs"),
                        help="writes results.json, results.md and accuracy_throughput.png here")
    parser.add_argument("--snippets", type=int, default=None, help="use the first N snippets only")
    parser.add_argument("--quick", action="store_true",
                        help="a few-minute subset: 3 snippets, scales 0.75 and 0.5, 12 timing frames")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--backend", choices=("auto", "torch", "onnxruntime"), default="auto")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--onnx-precision", choices=("fp32", "int8"), default="fp32",
                        help="onnxruntime backend: int8 = the statically quantized keyframe and "
                             "propagation graphs")
    parser.add_argument("--warp-padding", choices=("zeros", "border"), default=ModelConfig.warp_padding,
                        help="what the warp samples outside the frame (model.warp_padding)")
    parser.add_argument("--flow", choices=("learned", "dis"), default=ModelConfig.flow,
                        help="flow of the propagation step: the flow net O or OpenCV DIS (model.flow)")
    parser.add_argument("--dis-preset", choices=DIS_PRESETS, default=ModelConfig.dis_preset,
                        help="OpenCV DIS preset with --flow dis (model.dis_preset)")
    parser.add_argument("--dis-finest-scale", type=int, default=ModelConfig.dis_finest_scale,
                        help="pyramid level DIS stops at with --flow dis: 0 = the 1/8 grid, 1 = half of it, "
                             "upsampled by DIS (model.dis_finest_scale)")
    parser.add_argument("--allow-mismatched-weights", action="store_true",
                        help="use propagation files trained with another flow or keyframe file "
                             "(runtime.allow_mismatched_weights; a warning instead of an error)")
    mode = parser.add_argument_group("keyframe policies (issue: adaptive keyframes)")
    mode.add_argument("--whole-sequences", nargs="+", type=Path, metavar="CONFIG",
                      help="score every frame of every snippet with each config (YAML): per frame by "
                           "scale, fixed intervals, adaptive budgets; writes sequences.{json,md,png}")
    mode.add_argument("--intervals", type=int, nargs="+", default=list(SequencePlan.intervals),
                      help="--whole-sequences: fixed keyframe intervals")
    mode.add_argument("--budgets", type=float, nargs="+", default=list(SequencePlan.budgets),
                      help="--whole-sequences / --calibrate-keyframes: adaptive keyframe budgets")
    mode.add_argument("--scales", type=float, nargs="*", default=list(SequencePlan.scales),
                      help="--whole-sequences: input scales of the per-frame rows")
    mode.add_argument("--keyframe-table", type=Path, metavar="CONFIG",
                      help="measure every (keyframe, propagated frame) pair up to --horizon frames apart "
                           "with one config, so any keyframe schedule can be scored without the "
                           "networks; writes keyframe_table.npz")
    mode.add_argument("--horizon", type=int, default=StreamConfig.max_keyframe_interval,
                      help="--keyframe-table: longest keyframe interval measured")
    mode.add_argument("--compare-policies", nargs=2, type=Path, metavar=("CALIBRATION_TABLE", "TABLE"),
                      help="keyframe policies calibrated on one keyframe_table.npz (train split) and "
                           "scored on another, with the hindsight bound; writes policies.{md,json}")
    mode.add_argument("--calibrate-keyframes", type=Path, metavar="TABLE",
                      help="the adaptive policy's k and thresholds for --budgets from a keyframe_table.npz "
                           "(train split; keyframe_policy.ADAPTIVE_CALIBRATION); writes "
                           "keyframe_calibration.json")
    return parser


def _machine(threads: int) -> str:
    return f"{platform.machine()} CPU with {os.cpu_count()} cores, {threads} threads"


def _command(argv: Optional[Sequence[str]]) -> str:
    return "gsvnet-eval " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))


def _calibrate(args: argparse.Namespace, argv: Optional[Sequence[str]]) -> int:
    try:
        table = KeyframeTable.load(args.calibrate_keyframes)
    except (OSError, KeyError, ValueError) as exc:
        return fail(f"cannot read keyframe table {args.calibrate_keyframes}: {exc}; expected a "
                    "keyframe_table.npz written by gsvnet-eval --keyframe-table")
    calibration, reached = calibrate_policy(table, args.budgets)
    result = {"command": _command(argv), "table": str(args.calibrate_keyframes), "k": calibration.k,
              "thresholds": [{"budget": b, "threshold": t, "mean_interval": m}
                             for (b, t), m in zip(calibration.thresholds[1:], reached)]}
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(result, args.out / "keyframe_calibration.json")
    print(f"k {calibration.k:g}")
    for row in result["thresholds"]:
        print(f"budget {row['budget']:g}: threshold {row['threshold']:.3f} "
              f"(mean interval {row['mean_interval']:.2f})")
    print(f"PolicyCalibration({calibration.k!r}, {calibration.thresholds!r})")
    return 0


def _whole_sequences(args: argparse.Namespace, argv: Optional[Sequence[str]]) -> int:
    plan = SequencePlan(scales=tuple(args.scales), intervals=tuple(args.intervals),
                        budgets=tuple(args.budgets))
    try:
        configs = {path.stem: load_config(path, {"runtime": {"threads": args.threads,
                                                             "device": args.device}})
                   for path in args.whole_sequences}
        groups = list_labelled_sequences(args.data, args.split)[:args.snippets]
        if not groups:
            return fail(f"no densely labelled snippets under {args.data} split {args.split!r} "
                        "(gtFine_sequence)")
        sequences = [load_sequence(args.data, args.split, items)
                     for items in tqdm(groups, desc="load sequences", unit="snippet")]
    except (ConfigError, DatasetLayoutError) as exc:
        return fail(str(exc))
    started, rows = time.perf_counter(), []
    runs = len(plan.scales) + len(plan.intervals) + len(plan.budgets)
    try:
        with tqdm(total=runs * len(sequences) * len(configs), desc="evaluate", unit="sequence") as bar:
            for name, cfg in configs.items():
                def build(scale: Optional[float], cfg: GSVNetConfig = cfg):
                    model = cfg.model if scale is None else dataclasses.replace(cfg.model, keyframe_scale=scale)
                    return VideoSegmenter.from_config(dataclasses.replace(cfg, model=model))
                rows += sequence_rows(build, sequences, plan, name, progress=bar.update)
    except (ConfigError, WeightsError) as exc:
        return fail(str(exc))
    results = {"rows": rows, "sequences": len(sequences), "frames_per_sequence": len(sequences[0].frames),
               "per_frame_stride": plan.per_frame_stride, "machine": _machine(args.threads) + ".",
               "wall_s": time.perf_counter() - started, "command": _command(argv)}
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(results, args.out / "sequences.json")
    write_atomic(args.out / "sequences.md", render_sequence_markdown(results, results["command"]))
    plot_sequences(results, args.out / "sequences.png")
    print(f"wrote {args.out / 'sequences.md'}, sequences.json and sequences.png in {results['wall_s']:.0f} s")
    return 0


def _keyframe_table(args: argparse.Namespace, argv: Optional[Sequence[str]]) -> int:
    try:
        cfg = load_config(args.keyframe_table, {"runtime": {"threads": args.threads, "device": args.device}})
        groups = list_labelled_sequences(args.data, args.split)[:args.snippets]
        if not groups:
            return fail(f"no densely labelled snippets under {args.data} split {args.split!r} "
                        "(gtFine_sequence)")
        segmenter = VideoSegmenter.from_config(cfg)
    except (ConfigError, DatasetLayoutError, WeightsError) as exc:
        return fail(str(exc))
    started = time.perf_counter()
    with tqdm(groups, desc="keyframe table", unit="snippet") as bar:
        table = measure_table(segmenter, (load_sequence(args.data, args.split, g) for g in bar),
                              args.horizon, cfg.stream.scene_change_correlation, segmenter.num_classes)
    args.out.mkdir(parents=True, exist_ok=True)
    table.save(args.out / "keyframe_table.npz")
    write_json({"command": _command(argv), "config": str(args.keyframe_table), "horizon": args.horizon,
                "snippets": len(table.names), "machine": _machine(args.threads),
                "wall_s": time.perf_counter() - started}, args.out / "keyframe_table.json")
    for interval in (1, 3, 5):
        row = schedule_scores(table, [fixed_schedule(table.confusion.shape[1], interval)] * len(table.names))
        print(f"fixed l={interval}: mIoU {100 * row['miou']:.1f}, worst 5 % {100 * row['worst5_miou']:.1f}")
    print(f"wrote {args.out / 'keyframe_table.npz'} in {time.perf_counter() - started:.0f} s")
    return 0


def _compare_policies(args: argparse.Namespace, argv: Optional[Sequence[str]]) -> int:
    tables = []
    for path in args.compare_policies:
        try:
            tables.append(KeyframeTable.load(path))
        except (OSError, KeyError, ValueError) as exc:
            return fail(f"cannot read keyframe table {path}: {exc}; expected a keyframe_table.npz written "
                        "by gsvnet-eval --keyframe-table")
    result = compare_policies(tables[0], tables[1], sorted(args.intervals), sorted(args.budgets))
    result["command"] = _command(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(result, args.out / "policies.json")
    text = render_comparison(result, result["command"], tuple(str(p) for p in args.compare_policies))
    write_atomic(args.out / "policies.md", text)
    print(text)
    return 0


def load_snippets(root: Path, split: str, frames: int, limit: Optional[int]) -> list[Snippet]:
    """The annotated frame of every snippet and the `frames - 1` frames before it."""
    clips = CityscapesClips(root, split, k=frames - 1)
    count = len(clips) if limit is None else min(limit, len(clips))
    snippets = []
    for index in tqdm(range(count), desc="load snippets", unit="snippet"):
        clip = clips[index]
        snippets.append(Snippet(clip.snippet.stem(), list(clip.frames), clip.label))
    return snippets


@interruptible("gsvnet-eval")
def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    problem = prepare_dir(args.out, "--out")
    if problem:
        return fail(problem)
    if args.calibrate_keyframes:
        return _calibrate(args, argv)
    if args.whole_sequences:
        return _whole_sequences(args, argv)
    if args.keyframe_table:
        return _keyframe_table(args, argv)
    if args.compare_policies:
        return _compare_policies(args, argv)
    model_files = find_model_files(args.models_dir)
    if not model_files:
        return fail(f"no weight files in {args.models_dir}: expected keyframe_<net>.pt and "
                    "propagation_<net>.pt (see models/MODEL_CARD.md)")
    try:
        # the DIS flags, checked up front (one line, before any snippet is loaded)
        ModelConfig(flow=args.flow, dis_preset=args.dis_preset, dis_finest_scale=args.dis_finest_scale)
        plan = EvalPlan(runtime=RuntimeConfig(device=args.device, backend=args.backend,
                                              threads=args.threads, onnx_precision=args.onnx_precision,
                                              allow_mismatched_weights=args.allow_mismatched_weights),
                        warp_padding=args.warp_padding, flow=args.flow, dis_preset=args.dis_preset,
                        dis_finest_scale=args.dis_finest_scale)
    except ConfigError as exc:
        return fail(str(exc))
    limit = args.snippets
    if args.quick:
        plan = dataclasses.replace(plan, scales=(0.75, 0.5), timing_frames=12)
        limit = limit or 3
    try:
        snippets = load_snippets(args.data, args.split, max(plan.intervals), limit)
    except DatasetLayoutError as exc:
        return fail(str(exc))
    started = time.perf_counter()
    steps = sum(len(plan.scales) + len(f.propagation) for f in model_files) * len(snippets)
    try:
        with tqdm(total=steps, desc="evaluate", unit="run") as bar:
            results = run_all(model_files, snippets, plan, tick=bar.update)
    except (ConfigError, WeightsError) as exc:
        return fail(str(exc))
    backend = choose_backend(GSVNetConfig(runtime=plan.runtime))
    if backend == "onnxruntime":
        backend += f", {args.onnx_precision} graphs"
    results["machine"] = (f"{platform.machine()} CPU with {os.cpu_count()} cores, {args.threads} threads, "
                          f"backend {args.backend} = {backend}")
    results["wall_s"] = time.perf_counter() - started
    results["variants"] = {k or "full": v[1] for k, v in VARIANTS.items()}
    command = _command(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(results, args.out / "results.json")
    write_markdown(results, command, args.out / "results.md")
    plot_accuracy_throughput(results, args.out / "accuracy_throughput.png")
    print(f"wrote {args.out / 'results.md'}, results.json and accuracy_throughput.png "
          f"in {results['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""gsvnet-eval: the paper's tables (accuracy–throughput, complexity, ablations) from shipped weights."""
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
from ..config import ConfigError, GSVNetConfig, ModelConfig, RuntimeConfig
from ..data.cityscapes import CityscapesClips, DatasetLayoutError
from ..evaluation.report import plot_accuracy_throughput, write_json, write_markdown
from ..evaluation.runs import VARIANTS, EvalPlan, find_model_files, run_all
from ..evaluation.protocol import Snippet
from ..models.weights import WeightsError
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
                        help="onnxruntime backend: int8 = the statically quantized keyframe graph")
    parser.add_argument("--warp-padding", choices=("zeros", "border"), default=ModelConfig.warp_padding,
                        help="what the warp samples outside the frame (model.warp_padding)")
    parser.add_argument("--flow", choices=("learned", "dis"), default=ModelConfig.flow,
                        help="flow of the propagation step: the flow net O or OpenCV DIS (model.flow)")
    parser.add_argument("--allow-mismatched-weights", action="store_true",
                        help="use propagation files trained with another flow or keyframe file "
                             "(runtime.allow_mismatched_weights; a warning instead of an error)")
    return parser


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
    model_files = find_model_files(args.models_dir)
    if not model_files:
        return fail(f"no weight files in {args.models_dir}: expected keyframe_<net>.pt and "
                    "propagation_<net>.pt (see models/MODEL_CARD.md)")
    try:
        plan = EvalPlan(runtime=RuntimeConfig(device=args.device, backend=args.backend,
                                              threads=args.threads, onnx_precision=args.onnx_precision,
                                              allow_mismatched_weights=args.allow_mismatched_weights),
                        warp_padding=args.warp_padding, flow=args.flow)
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
        backend += f", {args.onnx_precision} keyframe graph"
    results["machine"] = (f"{platform.machine()} CPU with {os.cpu_count()} cores, {args.threads} threads, "
                          f"backend {args.backend} = {backend}")
    results["wall_s"] = time.perf_counter() - started
    results["variants"] = {k or "full": v[1] for k, v in VARIANTS.items()}
    command = "gsvnet-eval " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(results, args.out / "results.json")
    write_markdown(results, command, args.out / "results.md")
    plot_accuracy_throughput(results, args.out / "accuracy_throughput.png")
    print(f"wrote {args.out / 'results.md'}, results.json and accuracy_throughput.png "
          f"in {results['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

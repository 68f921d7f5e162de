"""Benchmark of `gsvnet-bag batch` against `gsvnet-bag segment` run one recording after another.

Generates synthetic drives (gsvnet-synth, with labels) as rosbag2 recordings, then times, each as
its own process the way a user runs it:

  1. `gsvnet-bag segment` on N recordings one after another (each process builds the model);
  2. `gsvnet-bag batch` on the same N recordings, 1 worker x 2 threads;
  3. the same, 2 workers x 1 thread;
  4. one long recording: `gsvnet-bag segment`, and `gsvnet-bag batch` with 2 workers x 1 thread
     and the recording split into chunks (mIoU of both printed: what chunking costs or gains).

frames/s are printed over the whole command (process start, Ray start-up, model builds and
shutdown included) and over segmentation alone ("after start-up": the segmentation loops of
`segment`, the time from all workers ready to the last result of `batch`); "overhead s" is the
difference. Run:
`.venv/bin/python -m gsvnet_ros.cli.bench_batch [--size 1024x512 --frames 40 --recordings 4]`.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from .common import interruptible, parse_size

PROG = "gsvnet-bench-batch"


def _run(argv: list[str]) -> float:
    """Run a command as a subprocess; its wall time in seconds (an error ends the benchmark)."""
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{PROG}: `{' '.join(argv)}` failed ({done.returncode}): "
                         f"{done.stderr.strip()[-2000:]}")
    return wall


def _bag_cli() -> list[str]:
    return [sys.executable, "-m", "gsvnet_ros.cli.bag"]


def _make_recording(work: Path, name: str, frames: int, size: str, seed: int) -> Path:
    """A synthetic drive of `frames` frames (one snippet, dense labels) as a rosbag2."""
    from . import synth as synth_cli

    bag = work / "bags" / name
    if (bag / "metadata.yaml").is_file():
        return bag
    data = work / "data" / name
    if synth_cli.main(["generate", "--root", str(data), "--split", "val", "--sequences", "1",
                       "--frames", str(frames), "--size", size, "--seed-offset", str(seed),
                       "--skip-existing", "--quiet"]):
        raise SystemExit(f"{PROG}: generating {data} failed")
    _run(_bag_cli() + ["convert", str(data), str(bag), "--split", "val", "--labels", "dense",
                       "--overwrite", "--quiet"])
    shutil.rmtree(data)
    return bag


def _segment_one_after_another(bags: list[Path], out: Path, model: list[str]) -> dict[str, Any]:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    wall, frames, seg_s, reports = 0.0, 0, 0.0, []
    for bag in bags:
        report = out / f"{bag.name}.report.json"
        wall += _run(_bag_cli() + ["segment", str(bag), str(out / bag.name), "--report",
                                   str(report), "--quiet", *model])
        data = json.loads(report.read_text())
        frames += data["frames"]
        seg_s += data["frames"] / data["end_to_end_fps"]
        reports.append(data)
    return {"wall_s": wall, "frames": frames, "work_s": seg_s, "startup_s": wall - seg_s,
            "reports": reports}


def _batch(bags: list[Path], out: Path, model: list[str], workers: int, threads: int,
           chunk_s: float) -> dict[str, Any]:
    shutil.rmtree(out, ignore_errors=True)
    wall = _run(_bag_cli() + ["batch", *map(str, bags), "--out", str(out), "--workers",
                              str(workers), "--threads", str(threads), "--chunk-seconds",
                              str(chunk_s), "--quiet", *model])
    data = json.loads((out / "batch_report.json").read_text())
    reports = [json.loads(Path(r["report"]).read_text()) for r in data["recordings"]]
    return {"wall_s": wall, "frames": data["totals"]["frames_segmented"],
            "work_s": data["work_s"], "startup_s": wall - data["work_s"], "reports": reports}


def _fps(frames: int, seconds: float | None) -> str:
    return "-" if not seconds else f"{frames / seconds:.2f}"


def _miou(report: dict[str, Any]) -> str:
    acc = report.get("accuracy") or {}
    value = acc.get("average_miou")
    return "-" if value is None else f"{100 * value:.2f}"


@interruptible(PROG)
def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("out/bench_batch"),
                        help="working folder: recordings and outputs (default: out/bench_batch)")
    parser.add_argument("--size", type=parse_size, default=(1024, 512), help="WIDTHxHEIGHT")
    parser.add_argument("--recordings", type=int, default=4, help="short recordings (4)")
    parser.add_argument("--frames", type=int, default=40, help="frames per short recording (40)")
    # 162 frames at 17 frames/s cut in 2 puts the chunk boundary at frame 81, off the keyframe
    # grid of interval 5: the second chunk's keyframes are shifted and one is added, as in a
    # real recording (with 160 the boundary would fall on a keyframe and change nothing).
    parser.add_argument("--long-frames", type=int, default=162, help="frames of the long one (162)")
    parser.add_argument("--chunks", type=int, default=2, help="chunks of the long one (2)")
    parser.add_argument("--keyframe-interval", type=int, default=5)
    parser.add_argument("--backend", choices=("auto", "torch", "onnxruntime"), default=None,
                        help="inference backend (default: the config's, auto)")
    parser.add_argument("--config", type=Path, default=None,
                        help="model config (default: config/swiftnet_r18.yaml with its shipped "
                        "weights when present)")
    args = parser.parse_args(argv)
    from .demo import shipped_config

    config = args.config or shipped_config("swiftnet_r18")
    size = f"{args.size[0]}x{args.size[1]}"
    model = ["--keyframe-interval", str(args.keyframe_interval)]
    model += ["--config", str(config)] if config else []
    model += ["--backend", args.backend] if args.backend else []
    work = args.work.absolute()
    print(f"{PROG}: {os.cpu_count()} CPUs; {args.recordings} recordings x {args.frames} frames "
          f"and one of {args.long_frames} frames at {size}; keyframe interval "
          f"{args.keyframe_interval}; {config.name if config else 'untrained weights'}; "
          f"backend {args.backend or 'from the config'}", flush=True)
    bags = [_make_recording(work, f"rec{i}", args.frames, size, i) for i in range(args.recordings)]
    long_bag = _make_recording(work, "long", args.long_frames, size, 50)
    # Warm-up (not timed): ONNX graphs for this size are exported and cached on first use.
    _run(_bag_cli() + ["segment", str(bags[0]), str(work / "warmup"), "--overwrite", "--quiet",
                       *model])
    shutil.rmtree(work / "warmup", ignore_errors=True)
    duration_s = (args.long_frames - 1) / 17.0  # converted at 17 frames/s
    chunk_s = duration_s / args.chunks

    cases = [
        (f"segment x {args.recordings}, one after another (default threads)",
         _segment_one_after_another(bags, work / "out_segment", model)),
        (f"batch, 1 worker x 2 threads", _batch(bags, work / "out_batch_1x2", model, 1, 2, 0)),
        (f"batch, 2 workers x 1 thread", _batch(bags, work / "out_batch_2x1", model, 2, 1, 0)),
        (f"long: segment (default threads)",
         _segment_one_after_another([long_bag], work / "out_long_segment", model)),
        (f"long: batch, 2 workers x 1 thread, {args.chunks} chunks",
         _batch([long_bag], work / "out_long_batch", model, 2, 1, chunk_s)),
    ]
    print(f"\n{'case':<58}{'frames':>7}{'wall s':>8}{'overhead s':>11}{'frames/s':>10}"
          f"{'frames/s after start-up':>25}{'mIoU %':>8}")
    for name, result in cases:
        mious = "/".join(_miou(r) for r in result["reports"]) if "long" in name else ""
        print(f"{name:<58}{result['frames']:>7}{result['wall_s']:>8.1f}{result['startup_s']:>11.1f}"
              f"{_fps(result['frames'], result['wall_s']):>10}"
              f"{_fps(result['frames'], result['work_s']):>25}{mious:>8}")
    base, chunked = cases[3][1]["reports"][0], cases[4][1]["reports"][0]
    print(f"\nlong recording: {base['keyframes']} keyframes unchunked, {chunked['keyframes']} in "
          f"{args.chunks} chunks; average mIoU {_miou(base)} % unchunked, {_miou(chunked)} % "
          "chunked")
    return 0


if __name__ == "__main__":
    sys.exit(main())

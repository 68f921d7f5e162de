"""python -m gsvnet_ros.cli.real_motion: the flow net against OpenCV DIS on real video (KITTI pair,
CamVid sequence, dashcam clip; gsvnet_ros/real_motion.py). Measures; nothing is tuned to these files."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from ..backends import build_model
from ..backends.base import resolve_device
from ..config import ConfigError, ModelConfig
from ..data.errors import DatasetLayoutError
from ..models.weights import WeightsError
from ..evaluation.real_motion import (FlowFn, dis_flow, learned_flow, measure_real_motion, synthetic_flow_epe,
                           zero_flow)
from .common import add_flow_net_arguments, fail, flow_net_config_from_args, interruptible

DEFAULT_ROOT = Path(__file__).resolve().parents[2].parent / "shared" / "realdata" / "real-motion"


class _Timed:
    """A flow function that remembers how long each call took (ms)."""

    def __init__(self, fn: FlowFn) -> None:
        self.fn, self.ms = fn, []

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        started = time.perf_counter()
        out = self.fn(a, b)
        self.ms.append(1000.0 * (time.perf_counter() - started))
        return out


def _print(table: dict, timings: dict[str, list[float]], label: str) -> None:
    kitti, camvid, dashcam = table["kitti"], table["camvid"], table["dashcam"]
    print(f"KITTI 2015 pair 000010 (non-occluded ground truth, median "
          f"{next(iter(kitti.values()))['true_median_px']} px); learned flow: {label}")
    print(f"{'flow':24s}{'EPE (px)':>10s}{'Fl (%)':>9s}")
    for name, row in kitti.items():
        print(f"{name:24s}{row['epe_px']:10.2f}{row['outliers_pct']:9.1f}")
    ks = list(next(iter(camvid.values())))
    print("\nCamVid 0016E5_07959-07977 at 15 Hz: labels of frame t-k carried to t, mIoU (%) over 11 classes")
    print(f"{'flow':24s}" + "".join(f"{'k=' + k:>8s}" for k in ks))
    for name, row in camvid.items():
        print(f"{name:24s}" + "".join(f"{'-' if v is None else f'{v:.1f}':>8s}" for v in row.values()))
    print(f"\ndashcam clip, {dashcam['frames']} frames at 25 Hz, 1280x720: photometric error of frame "
          "t-1 warped onto t (mean |grey difference|, 0-255)")
    for name, value in dashcam["mae"].items():
        print(f"{name:24s}{value:10.2f}")
    print("\nflow time per pair, median ms over every pair above (most are the dashcam's 1280x720; "
          "includes resizing to the 1/8 grid)")
    for name, ms in timings.items():
        if ms:
            print(f"{name:24s}{float(np.median(ms)):10.2f}")


def _synthetic(args: argparse.Namespace, model) -> int:
    """EPE against exact synthetic flow: where DIS settings are chosen (never on the real files)."""
    methods = {"learned (1/8)": learned_flow(model)}
    methods.update({f"DIS {args.dis_preset} s{s} (1/8)": dis_flow(args.dis_preset, finest_scale=s)
                    for s in range(4)})
    table = synthetic_flow_epe(args.synthetic, "train", methods)
    print(f"end-point error (px, full resolution) against exact flow, {args.synthetic} train")
    for name, epe in table.items():
        print(f"{name:24s}{epe:10.3f}")
    if args.json:
        args.json.write_text(json.dumps(table, indent=2) + "\n")
    return 0


@interruptible("python -m gsvnet_ros.cli.real_motion")
def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gsvnet_ros.cli.real_motion", description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_ROOT,
                        help="folder with kitti-flow-pair/, camvid-sequence/, dashcam-video/")
    parser.add_argument("--max-k", type=int, default=4, help="largest number of steps labels are carried")
    parser.add_argument("--dis-preset", default="fast", choices=("ultrafast", "fast", "medium"),
                        help="DIS preset on the 1/8 grid (the full-resolution KITTI row uses medium)")
    parser.add_argument("--dis-finest-scale", type=int, default=ModelConfig.dis_finest_scale,
                        help="finest pyramid level of DIS on the 1/8 grid (model.dis_finest_scale; -1 = "
                             "the preset's own)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--synthetic", type=Path, metavar="ROOT",
                        help="instead: end-point error against the exact flow of `gsvnet-synth generate "
                             "--flow` data (train split), for the flow net and DIS at finest scales 0-3")
    add_flow_net_arguments(parser)
    args = parser.parse_args(argv)
    try:
        cfg = flow_net_config_from_args(args)
        device = resolve_device(cfg.runtime.device)
    except (ConfigError, RuntimeError) as exc:  # RuntimeError: CUDA asked for but absent
        return fail(str(exc))
    if not cfg.runtime.propagation_weights:
        return fail("no propagation weights in the config (runtime.propagation_weights): the learned "
                    "flow would be an untrained net's zero flow; expected e.g. --config "
                    "config/swiftnet_r18.yaml")
    if cfg.runtime.threads > 0:
        torch.set_num_threads(cfg.runtime.threads)
    try:
        model = build_model(cfg).to(device).eval()
        if args.synthetic:
            return _synthetic(args, model)
        finest = None if args.dis_finest_scale < 0 else args.dis_finest_scale
        label = f"DIS {args.dis_preset}" + ("" if finest is None else f" s{finest}")
        methods = {"no motion": _Timed(zero_flow), "learned (1/8)": _Timed(learned_flow(model)),
                   f"{label} (1/8)": _Timed(dis_flow(args.dis_preset, finest_scale=finest))}
        extra = {"DIS medium (full res)": _Timed(dis_flow("medium", at_1_8=False))}
        table = measure_real_motion(args.data, methods, max_k=args.max_k, kitti_extra=extra,
                                    progress=lambda line: print(line, file=sys.stderr))
    except (WeightsError, DatasetLayoutError, FileNotFoundError) as exc:
        return fail(str(exc))
    timings = {name: fn.ms for name, fn in methods.items() if name != "no motion"}
    _print(table, timings, f"{cfg.model.keyframe_net} propagation weights")
    if args.json:
        table["ms_per_pair_median"] = {n: round(float(np.median(ms)), 2) for n, ms in timings.items()}
        args.json.write_text(json.dumps(table, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

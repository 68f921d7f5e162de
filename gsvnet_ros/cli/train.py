"""gsvnet-train: train a keyframe (image) net, or the propagation nets (O, phi, G) on a frozen keyframe net.

  gsvnet-train keyframe --model swiftnet_r18 --data ROOT --out RUN_DIR [--config config/train_keyframe.yaml]
  gsvnet-train propagation --keyframe-weights RUN/keyframe_swiftnet_r18.pt --data ROOT --out RUN_DIR
               [--no-intra] [--learnable-kernels] [--kernel-size 3|5] [--cache-dir DIR]

A run directory holds checkpoint.pt (written atomically; `--resume` continues a killed run from it),
train_<mode>.csv, the release weight file(s) and summary.json.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, Optional, Sequence

from ..config import ConfigError
from ..models.weights import WeightsError
from ..training import (DatasetLayoutError, KeyframeTrainConfig, KeyframeTrainer, PropagationTrainConfig,
                        PropagationTrainer, TrainingError, load_train_config)
from .common import fail, interruptible, prepare_dir

__all__ = ["main", "build_parser"]


def _common(parser: argparse.ArgumentParser, default_config: str) -> None:
    parser.add_argument("--data", required=True, help="dataset root in the Cityscapes sequence layout")
    parser.add_argument("--out", required=True, help="run directory (checkpoint, CSV log, weights, summary)")
    parser.add_argument("--config", help=f"training YAML (without it: the built-in defaults, the same values "
                                         f"as {default_config})")
    parser.add_argument("--resume", action="store_true",
                        help="continue from RUN_DIR/checkpoint.pt if present")
    parser.add_argument("--iterations", type=int, help="total iterations (overrides loop.iterations)")
    parser.add_argument("--batch-size", type=int, help="overrides loop.batch_size")
    parser.add_argument("--lr", type=float, help="overrides optim.lr")
    parser.add_argument("--threads", type=int, help="torch CPU threads (overrides loop.threads)")
    parser.add_argument("--seed", type=int, help="overrides loop.seed")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), help="overrides loop.precision")
    parser.add_argument("--val-every", type=int, help="overrides loop.val_every (0 = only at the end)")
    parser.add_argument("--max-train-snippets", type=int, help="overrides data.max_train_snippets")
    parser.add_argument("--val-snippets", type=int, help="overrides data.val_snippets")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gsvnet-train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    key = sub.add_parser("keyframe", help="train SwiftNet-R18 or BiSeNet-R18 per frame")
    key.add_argument("--model", choices=("swiftnet_r18", "bisenet_r18"), help="overrides model.keyframe_net")
    key.add_argument("--init-weights", help="keyframe weight file to start from (warm start, e.g. models/...)")
    key.add_argument("--init-backbone", help="keyframe weight file whose ResNet-18 trunk starts this net's "
                                             "(e.g. the SwiftNet-R18 file for BiSeNet-R18); with --init-weights, "
                                             "replaces that file's trunk")
    key.add_argument("--data-workers", type=int,
                     help="overrides loop.data_workers (threads preparing crops; 0 = none)")
    _common(key, "config/train_keyframe.yaml")
    prop = sub.add_parser("propagation", help="train O + phi + G with the keyframe net frozen")
    prop.add_argument("--keyframe-weights", required=True, help="keyframe_<net>.pt from a keyframe run")
    prop.add_argument("--init-weights", help="propagation weight file to start from (warm start)")
    prop.add_argument("--no-intra", action="store_true", help="ablation without phi (model.use_intra: false)")
    prop.add_argument("--learnable-kernels", action="store_true", help="trainable shift kernels (Table A5)")
    prop.add_argument("--kernel-size", type=int, choices=(3, 5), help="ideal-delay kernels 3x3 or 5x5")
    prop.add_argument("--distill", type=float, help="overrides distill_weight (KL from N on the target)")
    prop.add_argument("--cache-dir", help="keyframe-logit cache (default RUN_DIR/cache; share it between "
                                          "runs on the same keyframe weights)")
    _common(prop, "config/train_propagation.yaml")
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, dict[str, Any]] = {"loop": {}, "optim": {}, "data": {}, "model": {}}
    for flag, section, key in (("iterations", "loop", "iterations"), ("batch_size", "loop", "batch_size"),
                               ("threads", "loop", "threads"), ("seed", "loop", "seed"),
                               ("precision", "loop", "precision"), ("val_every", "loop", "val_every"),
                               ("lr", "optim", "lr"), ("max_train_snippets", "data", "max_train_snippets"),
                               ("val_snippets", "data", "val_snippets"), ("model", "model", "keyframe_net"),
                               ("kernel_size", "model", "kernel_size"),
                               ("data_workers", "loop", "data_workers")):
        value = getattr(args, flag, None)
        if value is not None:
            out[section][key] = value
    if getattr(args, "no_intra", False):
        out["model"]["use_intra"] = False
    if getattr(args, "learnable_kernels", False):
        out["model"]["learnable_kernels"] = True
    if getattr(args, "init_weights", None):
        out["init_weights"] = args.init_weights  # type: ignore[assignment]
    if getattr(args, "init_backbone", None):
        out["init_backbone"] = args.init_backbone  # type: ignore[assignment]
    if getattr(args, "distill", None) is not None:
        out["distill_weight"] = args.distill  # type: ignore[assignment]
    return {k: v for k, v in out.items() if v != {}}


def run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    for setting, path in (("--out", args.out), ("--cache-dir", getattr(args, "cache_dir", None))):
        problem = path and prepare_dir(path, setting)
        if problem:
            return fail(problem)
    common = dict(data_root=args.data, device=args.device, resume=args.resume,
                  command_line=["gsvnet-train", *argv], progress=not args.no_progress)
    if args.mode == "keyframe":
        cfg = load_train_config(KeyframeTrainConfig, args.config, _overrides(args))
        trainer: Any = KeyframeTrainer(cfg, args.out, **common)
    else:
        cfg = load_train_config(PropagationTrainConfig, args.config, _overrides(args))
        trainer = PropagationTrainer(cfg, args.out, keyframe_weights=args.keyframe_weights,
                                     cache_dir=args.cache_dir, **common)
    if trainer.resumed_from is not None:
        print(f"resuming {args.out} at iteration {trainer.resumed_from}/{cfg.loop.iterations}")
    summary = trainer.run()
    print(f"{args.mode}: {summary['iterations']} iterations, {summary['wall_time_s']:.0f} s "
          f"({summary['seconds_per_iteration']} s/iteration)")
    print(f"  best validation: {summary['best_val']}")
    for weights in summary["weights"]:
        print(f"  weights: {args.out}/{weights['file']} ({weights['bytes'] / 2**20:.1f} MiB, "
              f"sha256 {weights['sha256'][:12]})")
    return 0


@interruptible("gsvnet-train", "continue with --resume (from the last checkpoint)")
def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        return run(args, argv)
    except ConfigError as exc:
        return fail(str(exc))
    except (TrainingError, DatasetLayoutError, WeightsError) as exc:
        return fail(str(exc), code=1)


if __name__ == "__main__":
    sys.exit(main())

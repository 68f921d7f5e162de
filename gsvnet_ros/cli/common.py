"""Small helpers shared by the command-line wrappers: size parsing, config loading, error exit."""
from __future__ import annotations

import argparse
import sys
from typing import Any, Mapping

from ..config import GSVNetConfig, load_config

__all__ = ["parse_size", "config_from_args", "add_config_arguments", "fail"]


def parse_size(text: str) -> tuple[int, int]:
    """'1024x512' -> (width, height)."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 1024x512 (WIDTHxHEIGHT), got {text!r}")
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return width, height


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """--config, --device, --backend, --threads, --keyframe-net, --onnx-precision: every runner's options."""
    parser.add_argument("--config", help="model/runtime YAML (see config/model.yaml)")
    parser.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--backend", choices=("auto", "torch", "onnxruntime"))
    parser.add_argument("--threads", type=int, help="CPU threads for the networks")
    parser.add_argument("--keyframe-net", choices=("swiftnet_r18", "bisenet_r18"))
    parser.add_argument("--onnx-precision", choices=("fp32", "int8"),
                        help="onnxruntime backend: fp32 or int8 (statically quantized keyframe graph)")


def config_from_args(args: argparse.Namespace, extra: Mapping[str, Mapping[str, Any]] | None = None
                     ) -> GSVNetConfig:
    """Load --config and apply the command-line overrides that were given."""
    overrides: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (extra or {}).items()}
    runtime = overrides.setdefault("runtime", {})
    for key in ("device", "backend", "threads", "onnx_precision"):
        if getattr(args, key, None) is not None:
            runtime[key] = getattr(args, key)
    if getattr(args, "keyframe_net", None):
        overrides.setdefault("model", {})["keyframe_net"] = args.keyframe_net
    return load_config(getattr(args, "config", None), overrides)


def fail(message: str, code: int = 2) -> int:
    """Print a one-line error to stderr and return the exit code."""
    print(f"error: {message}", file=sys.stderr)
    return code

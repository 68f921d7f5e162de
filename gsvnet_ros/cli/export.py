"""gsvnet-export: export the keyframe and propagation graphs to ONNX for given frame sizes (cached)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from ..backends import build_model
from ..backends.onnx_export import cached_export, default_cache_dir, model_fingerprint, model_parts
from ..config import ConfigError
from ..models.weights import WeightsError
from .common import add_config_arguments, config_from_args, fail, interruptible, parse_size, prepare_dir


@interruptible("gsvnet-export")
def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="gsvnet-export", description=__doc__)
    parser.add_argument("--size", type=parse_size, action="append",
                        help="frame size WIDTHxHEIGHT, repeatable (default 1024x512); padded to x32")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help=f"where graphs go (default: runtime.onnx_cache_dir or {default_cache_dir()})")
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    try:
        cfg = config_from_args(args)
        model = build_model(cfg)
    except (ConfigError, WeightsError) as exc:
        return fail(str(exc))
    cache = args.cache_dir or (Path(cfg.runtime.onnx_cache_dir) if cfg.runtime.onnx_cache_dir else None)
    problem = prepare_dir(cache or default_cache_dir(),
                          "--cache-dir" if args.cache_dir else "runtime.onnx_cache_dir")
    if problem:
        return fail(problem)
    fingerprint = model_fingerprint(model)
    for width, height in args.size or [(1024, 512)]:
        padded_h, padded_w = -(-height // 32) * 32, -(-width // 32) * 32
        for part in model_parts(model):
            precision = cfg.runtime.onnx_precision
            if part != "keyframe" and cfg.runtime.onnx_propagation_precision:
                precision = cfg.runtime.onnx_propagation_precision
            path = cached_export(model, part, padded_h, padded_w, cache, fingerprint, precision)
            print(f"{part:12s} {padded_w}x{padded_h}  {precision}  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

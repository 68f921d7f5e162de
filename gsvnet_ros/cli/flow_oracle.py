"""python -m gsvnet_ros.cli.flow_oracle: mIoU by distance from the keyframe with the trained flow net
and with the generator's exact flow (gsvnet_ros/flow_oracle.py), to see where propagation loses."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

from ..backends import build_model
from ..backends.base import resolve_device
from ..config import ConfigError
from ..data.errors import DatasetLayoutError
from ..evaluation.flow_oracle import ROWS, flow_oracle
from ..models.weights import WeightsError
from .common import add_flow_net_arguments, fail, flow_net_config_from_args, interruptible


@interruptible("python -m gsvnet_ros.cli.flow_oracle")
def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gsvnet_ros.cli.flow_oracle", description=__doc__)
    parser.add_argument("--data", required=True,
                        help="Cityscapes-layout root with flow_sequence/ (gsvnet-synth generate --flow)")
    parser.add_argument("--split", default="val")
    parser.add_argument("--snippets", type=int, default=0, help="first N snippets only (0 = all)")
    parser.add_argument("--max-distance", type=int, default=4, help="largest keyframe distance (l - 1)")
    parser.add_argument("--json", type=Path, help="also write the table here")
    add_flow_net_arguments(parser)
    args = parser.parse_args(argv)
    try:
        cfg = flow_net_config_from_args(args)
        device = resolve_device(cfg.runtime.device)
    except (ConfigError, RuntimeError) as exc:  # RuntimeError: CUDA asked for but absent
        return fail(str(exc))
    try:
        model = build_model(cfg).to(device)
        table = flow_oracle(model, args.data, args.split, args.max_distance, args.snippets,
                            progress=lambda line: print(line, file=sys.stderr))
    except (WeightsError, DatasetLayoutError, FileNotFoundError) as exc:
        return fail(str(exc))
    distances = [str(d) for d in range(args.max_distance + 1)]
    print(f"mIoU (%) by distance from the keyframe, {cfg.model.keyframe_net}, {args.data} {args.split}")
    print(f"{'row':20s}" + "".join(f"{d:>8s}" for d in distances))
    for row in ROWS:
        print(f"{row:20s}" + "".join(f"{table[row][d]:8.1f}" for d in distances))
    if args.json:
        args.json.write_text(json.dumps(table, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`make demo`: generate a short synthetic drive, convert it to a rosbag2, segment it, print the summary."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from . import bag as bag_cli
from . import synth as synth_cli
from .common import interruptible

REPO_CONFIG = Path(__file__).resolve().parents[2] / "config"


def shipped_config(keyframe_net: str) -> Optional[Path]:
    """config/<net>.yaml when it and the weight files it names exist (source checkout), else None."""
    from ..config import load_config

    path = REPO_CONFIG / f"{keyframe_net}.yaml"
    if not path.is_file():
        return None
    runtime = load_config(path).runtime
    weights = [runtime.keyframe_weights, runtime.propagation_weights]
    return path if all(w and Path(w).is_file() for w in weights) else None


def _step(title: str) -> None:
    print(f"\n== {title}", flush=True)


@interruptible("gsvnet-demo")
def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="gsvnet-demo", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder (out/demo)")
    parser.add_argument("--sequences", type=int, default=2, help="30-frame snippets to generate (2)")
    parser.add_argument("--size", default="1024x512", help="frame size WIDTHxHEIGHT (1024x512)")
    parser.add_argument("--keyframe-net", default="swiftnet_r18", choices=("swiftnet_r18", "bisenet_r18"))
    parser.add_argument("--keyframe-interval", type=int, default=5)
    args = parser.parse_args(argv)

    out: Path = args.out
    data, bag, segmented = out / "data", out / "drive_bag", out / "drive_bag_segmented"
    report, strip = out / "report.json", out / "overlay_strip.png"
    started = time.perf_counter()

    _step(f"1/3 generate {args.sequences} synthetic snippets ({args.size}) into {data}")
    code = synth_cli.main(["generate", "--root", str(data), "--split", "val", "--sequences",
                           str(args.sequences), "--size", args.size, "--skip-existing"])
    if code:
        return code

    _step(f"2/3 convert them to a rosbag2 (sqlite3, metadata v8): {bag}")
    code = bag_cli.main(["convert", str(data), str(bag), "--split", "val", "--labels", "dense",
                         "--overwrite", "--quiet"])
    if code:
        return code

    config = shipped_config(args.keyframe_net)
    _step("3/3 segment the bag with GSVNet "
          + (f"(shipped weights, {config.name})" if config else "(UNTRAINED weights: none shipped yet)"))
    common = ["--keyframe-interval", str(args.keyframe_interval), "--overwrite"]
    if config:
        common += ["--config", str(config)]
    code = bag_cli.main(["segment", str(bag), str(segmented), "--report", str(report),
                         "--overlay", str(strip), *common])
    if code:
        return code

    print(f"\nDemo done in {time.perf_counter() - started:.0f} s.")
    print(f"  input bag:        {bag}")
    print(f"  segmented bag:    {segmented}  (class_mask, color_mask, info topics)")
    print(f"  report:           {report}")
    print(f"  overlay strip:    {strip}")
    print(f"  play it in ROS 2: ros2 bag play {segmented}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""gsvnet-synth: generate synthetic driving sequences, draw a contact sheet, print class shares."""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from gsvnet_ros.cli.common import interruptible, prepare_dir
from gsvnet_ros.data.errors import DatasetLayoutError

__all__ = ["main", "build_parser"]


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r} is not WIDTHxHEIGHT, e.g. 1024x512") from None
    return w, h


def _ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gsvnet-synth", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="write sequences in the Cityscapes layout")
    g.add_argument("--root", required=True, help="dataset root (created if missing)")
    g.add_argument("--split", required=True, choices=["train", "val", "test"])
    g.add_argument("--sequences", type=int, required=True, help="number of 30-frame snippets")
    g.add_argument("--frames", type=int, default=30, help="frames per snippet (default 30)")
    g.add_argument("--size", type=_size, default=(1024, 512), help="WIDTHxHEIGHT (default 1024x512)")
    g.add_argument("--seed-offset", type=int, default=0,
                   help="first sequence index (seed = split base + index); extends a dataset")
    g.add_argument("--flow", action="store_true", help="also write the true backward flow (.npy)")
    g.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    g.add_argument("--skip-existing", action="store_true", help="skip sequences already written")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    c = sub.add_parser("contact-sheet", help="PNG of frames beside colour-coded labels")
    c.add_argument("--out", required=True, help="output PNG, e.g. docs/synth_contact_sheet.png")
    c.add_argument("--root", help="read this dataset root; without it, render --seeds in memory")
    c.add_argument("--split", default="val", choices=["train", "val", "test"])
    c.add_argument("--snippets", type=int, default=4, help="snippets to show (with --root)")
    c.add_argument("--seeds", type=_ints, default=[100000, 100001, 100002, 100003],
                   help="comma-separated seeds to render (without --root)")
    c.add_argument("--frames", type=_ints, default=[0, 19], help="frame numbers, e.g. 0,19")
    c.add_argument("--size", type=_size, default=(1024, 512), help="render size (without --root)")
    c.add_argument("--width", type=int, default=384, help="width of each tile in pixels")
    s = sub.add_parser("stats", help="pixel share of every class over a split's labels")
    s.add_argument("--root", required=True)
    s.add_argument("--split", default="val", choices=["train", "val", "test"])
    s.add_argument("--labels", default="gtFine_sequence", help="label folder (or gtFine)")
    s.add_argument("--stride", type=int, default=1, help="use every n-th label image")
    return p


def _generate(a: argparse.Namespace) -> int:
    from gsvnet_ros.data.synth.writer import SynthJob, generate_split

    problem = prepare_dir(a.root, "--root")
    if problem:
        print(f"gsvnet-synth: error: {problem}", file=sys.stderr)
        return 2
    job = SynthJob(a.root, a.split, a.sequences, a.frames, a.size[0], a.size[1], a.seed_offset,
                   a.flow, a.skip_existing)
    summary = generate_split(job, workers=a.workers, progress=not a.quiet)
    print(f"wrote {summary.frames} frames ({summary.sequences} sequences, {a.split}, "
          f"{a.size[0]}x{a.size[1]}) to {a.root} in {summary.seconds:.1f} s: "
          f"{summary.frames_per_second:.1f} frames/s")
    return 0


def _contact_sheet(a: argparse.Namespace) -> int:
    from gsvnet_ros.data import contact_sheet as cs

    if a.root:
        sheet = cs.sheet_from_root(a.root, a.split, a.snippets, a.frames, width=a.width)
    else:
        sheet = cs.sheet_from_seeds(a.seeds, a.frames, a.size, max(30, max(a.frames) + 1),
                                    width=a.width)
    print(f"wrote {cs.write_sheet(sheet, a.out)} ({sheet.shape[1]}x{sheet.shape[0]})")
    return 0


def _stats(a: argparse.Namespace) -> int:
    from gsvnet_ros.data.cityscapes import class_shares
    from gsvnet_ros.labels import CLASS_NAMES

    shares = class_shares(a.root, a.split, a.labels, a.stride)
    print("| trainId | class | share of pixels |\n|---:|---|---:|")
    for i, name in enumerate(CLASS_NAMES):
        print(f"| {i} | {name} | {100 * shares[str(i)]:.2f} % |")
    print(f"| 255 | ignored (ego vehicle, unlabeled) | {100 * shares['ignore']:.2f} % |")
    return 0


@interruptible("gsvnet-synth")
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return {"generate": _generate, "contact-sheet": _contact_sheet, "stats": _stats}[
            args.command](args)
    except (ValueError, DatasetLayoutError) as exc:
        print(f"gsvnet-synth: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

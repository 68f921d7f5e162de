"""`gsvnet-bag`: convert sequences/videos to rosbag2, segment a rosbag2 offline, show bag info."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from gsvnet_ros.bag.errors import BagError
from gsvnet_ros.cli.common import interrupted, sigterm_as_interrupt
from gsvnet_ros.codec import DEFAULT_MAX_IMAGE_PIXELS, ImageDecodeError
from gsvnet_ros.config import ConfigError

__all__ = ["main", "build_parser"]

PROG = "gsvnet-bag"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="rosbag2 tools without ROS: convert image sequences or videos to "
        "rosbag2, segment a bag's image topic offline with GSVNet, show a bag's contents.")
    sub = parser.add_subparsers(dest="command", required=True,
                                metavar="{convert,segment,info,batch}")

    conv = sub.add_parser("convert", help="image sequence or video -> rosbag2 of sensor_msgs/Image",
                          description="Write a Cityscapes-layout sequence folder, a dataset root "
                          "(with --split) or a video file as a rosbag2: images, CameraInfo and "
                          "ground-truth trainIds (mono8) where the dataset has labels.")
    conv.add_argument("src", type=Path, help="sequence folder, dataset root, or video file")
    conv.add_argument("out", type=Path, help="output rosbag2 directory")
    conv.add_argument("--storage", choices=("sqlite3", "mcap"), default="sqlite3")
    conv.add_argument("--fps", type=float, default=None,
                      help="frame rate for the stamps (default: 17 for sequences, the video's own)")
    conv.add_argument("--frame-id", default="camera", help="header.frame_id (default: camera)")
    conv.add_argument("--topic", default="/camera/image_raw", help="image topic (default: %(default)s)")
    conv.add_argument("--encoding", choices=("rgb8", "bgr8"), default="rgb8")
    conv.add_argument("--limit", type=int, default=None, metavar="N", help="write at most N frames")
    conv.add_argument("--labels", choices=("dense", "sparse", "none"), default="dense",
                      help="dense: gtFine_sequence for every frame (gtFine where missing); sparse: "
                      "gtFine only (frame 19 of each snippet); none (default: dense)")
    conv.add_argument("--labels-topic", default=None,
                      help="ground-truth topic (default: <image namespace>/labels)")
    conv.add_argument("--split", default="val", help="split under a dataset root (default: val)")
    conv.add_argument("--overwrite", action="store_true", help="replace an existing OUT bag")
    conv.add_argument("--quiet", action="store_true", help="no progress bar")

    seg = sub.add_parser("segment", help="segment a rosbag2's image topic into an output rosbag2",
                         description="Run GSVNet over the image topic of BAG in bag order and "
                         "write class masks, colour masks and SegmentationInfo to OUT, plus a "
                         "latency/accuracy report.")
    seg.add_argument("bag", type=Path, help="input rosbag2 directory (sqlite3 or mcap)")
    seg.add_argument("out", type=Path, help="output rosbag2 directory")
    seg.add_argument("--topic", default=None, help="image topic (default: the only image topic)")
    seg.add_argument("--config", type=Path, default=None, help="model/runtime YAML config")
    seg.add_argument("--keyframe-interval", type=int, default=None, metavar="L",
                     help="keyframe every L frames (overrides the config)")
    seg.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N (overrides the config)")
    seg.add_argument("--backend", choices=("auto", "torch", "onnxruntime"), default=None,
                     help="inference backend (overrides the config)")
    seg.add_argument("--storage", choices=("sqlite3", "mcap"), default="sqlite3")
    seg.add_argument("--report", type=Path, default=None, help="write the report as JSON here")
    seg.add_argument("--overlay", type=Path, default=None,
                     help="preview: a .mp4/.avi video of every frame or a .png strip of a few")
    seg.add_argument("--overlay-frames", type=int, default=8, metavar="N",
                     help="frames in a .png strip (default: 8)")
    seg.add_argument("--labels-topic", default=None,
                     help="ground truth (mono8 trainIds) paired by stamp (default: /camera/labels "
                     "when present)")
    seg.add_argument("--output-ns", default="/segmentation_node",
                     help="namespace of the output topics, the live node's by default "
                     "(default: %(default)s)")
    seg.add_argument("--max-image-pixels", type=int, default=DEFAULT_MAX_IMAGE_PIXELS, metavar="N",
                     help="largest image accepted, width x height, checked from the message "
                     "header before decoding; a larger one is an error (default: %(default)s = "
                     "4096 x 4096)")
    seg.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    seg.add_argument("--quiet", action="store_true", help="no progress bar")
    seg.add_argument("--sequential", action="store_true",
                     help="one frame after another on one thread (default: the next frame's host work and "
                          "the last one's output stage on a second thread, VideoSegmenter.segment)")

    bat = sub.add_parser(
        "batch", help="segment many recordings on Ray (this machine, or a cluster)",
        description="Segment every recording INPUT names into DIR on Ray: a local Ray instance "
        "by default, an existing cluster with --ray-address. One worker actor per --workers "
        "builds the model once; long recordings are split into time chunks that run in "
        "parallel. Per recording DIR holds NAME/ (the segmented bag) and NAME.report.json, as "
        "`segment` writes them; for the batch, batch_report.json and batch_summary.txt. A rerun "
        "skips recordings whose outputs are complete for the same inputs and settings "
        "(batch_manifest.json). Exit status: 0 all done, 1 some recordings failed (see the "
        "report), 2 nothing was run (bad input or settings, no Ray), 130/143 interrupted "
        "(finished outputs kept, unfinished ones removed). Needs Ray: pip install '.[batch]'.")
    bat.add_argument("inputs", type=Path, nargs="+", metavar="INPUT",
                     help="rosbag2 folder, folder searched recursively for them (and for videos "
                     "and sequence folders), video file, Cityscapes-layout sequence folder, or a "
                     ".txt/.list file naming such inputs one a line")
    bat.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    bat.add_argument("--workers", type=int, default=None, metavar="N",
                     help="worker actors (default: the Ray cluster's CPUs // --threads)")
    bat.add_argument("--threads", type=int, default=1, metavar="T",
                     help="CPU threads (and Ray CPUs) per worker (default: %(default)s)")
    bat.add_argument("--gpus-per-worker", type=float, default=0.0, metavar="G",
                     help="Ray GPUs per worker, e.g. 1 or 0.5 with --device cuda (default: 0)")
    bat.add_argument("--ray-address", default=None, metavar="ADDR",
                     help="join this Ray cluster, e.g. 10.0.0.5:6379 (`ray start --head` prints "
                     "it; default: $RAY_ADDRESS, else a new local Ray instance)")
    bat.add_argument("--chunk-seconds", type=float, default=60.0, metavar="S",
                     help="split recordings longer than 1.5 S into time chunks of about S seconds, "
                     "each starting with a keyframe; 0 = never (default: %(default)s)")
    bat.add_argument("--retries", type=int, default=2, metavar="K",
                     help="retries of a task whose worker process died (default: %(default)s)")
    bat.add_argument("--hash-inputs", action="store_true",
                     help="fingerprint inputs by sha256 of their contents instead of size + mtime")
    bat.add_argument("--config", type=Path, default=None, help="model/runtime YAML config")
    bat.add_argument("--keyframe-interval", type=int, default=None, metavar="L",
                     help="keyframe every L frames (overrides the config)")
    bat.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N (overrides the config)")
    bat.add_argument("--backend", choices=("auto", "torch", "onnxruntime"), default=None,
                     help="inference backend (overrides the config)")
    bat.add_argument("--topic", default=None, help="image topic (default: the only image topic)")
    bat.add_argument("--labels-topic", default=None,
                     help="ground truth (mono8 trainIds) paired by stamp (default: /camera/labels "
                     "when present)")
    bat.add_argument("--output-ns", default="/segmentation_node",
                     help="namespace of the output topics (default: %(default)s)")
    bat.add_argument("--storage", choices=("sqlite3", "mcap"), default="sqlite3")
    bat.add_argument("--max-image-pixels", type=int, default=DEFAULT_MAX_IMAGE_PIXELS, metavar="N",
                     help="largest image accepted, width x height (default: %(default)s)")
    bat.add_argument("--split", default="val",
                     help="split of a dataset root given as a sequence input (default: val)")
    bat.add_argument("--quiet", action="store_true", help="no progress bar")

    info = sub.add_parser("info", help="topics, counts, time range, storage, metadata version")
    info.add_argument("bag", type=Path, help="rosbag2 directory")
    info.add_argument("--quick", action="store_true",
                      help="metadata only; do not read every message back to check the counts")
    return parser


def _options(cls: type, **kwargs: object) -> object:
    """Build an options dataclass; its validation errors are usage errors (exit status 2)."""
    try:
        return cls(**kwargs)
    except ValueError as exc:
        raise BagError(str(exc)) from None


def _convert(args: argparse.Namespace) -> int:
    from gsvnet_ros.bag.convert import ConvertOptions, convert

    options = _options(
        ConvertOptions, storage=args.storage, fps=args.fps, frame_id=args.frame_id,
        topic=args.topic, labels_topic=args.labels_topic, encoding=args.encoding, limit=args.limit,
        labels=args.labels, split=args.split, overwrite=args.overwrite, progress=not args.quiet)
    summary = convert(args.src, args.out, options)
    print(f"wrote {summary.path}: {summary.frames} frames ({summary.labelled_frames} labelled) from "
          f"{summary.snippets} snippet(s), {summary.duration_ns / 1e9:.3f} s, {args.storage}")
    return 0


def _segment(args: argparse.Namespace) -> int:
    from gsvnet_ros.bag.report import format_report
    from gsvnet_ros.bag.segment import SegmentOptions, build_segmenter, segment_bag

    options = _options(
        SegmentOptions, topic=args.topic, labels_topic=args.labels_topic, output_ns=args.output_ns,
        storage=args.storage, report=args.report, overlay=args.overlay,
        overlay_frames=args.overlay_frames, overwrite=args.overwrite, progress=not args.quiet,
        pipelined=not args.sequential, max_image_pixels=args.max_image_pixels)
    result = segment_bag(args.bag, args.out, lambda: build_segmenter(
        args.config, keyframe_interval=args.keyframe_interval, device=args.device,
        backend=args.backend), options)
    print(format_report(result.report))
    written = [str(p) for p in (result.output, result.report_path, result.overlay_path) if p]
    print("wrote " + ", ".join(written))
    return 0


def _batch(args: argparse.Namespace) -> int:
    from gsvnet_ros.bag.batch import BATCH_REPORT, BATCH_SUMMARY, BatchOptions, run_batch

    options = _options(
        BatchOptions, out_dir=args.out, config=args.config,
        keyframe_interval=args.keyframe_interval, device=args.device, backend=args.backend,
        topic=args.topic, labels_topic=args.labels_topic, output_ns=args.output_ns,
        storage=args.storage, max_image_pixels=args.max_image_pixels, split=args.split,
        chunk_seconds=args.chunk_seconds, workers=args.workers, threads=args.threads,
        gpus_per_worker=args.gpus_per_worker, ray_address=args.ray_address, retries=args.retries,
        fingerprint="sha256" if args.hash_inputs else "stat", progress=not args.quiet)
    result = run_batch(args.inputs, options)
    print(result.summary)
    print(f"wrote {args.out / BATCH_REPORT}, {args.out / BATCH_SUMMARY}")
    return result.exit_code


def _info(args: argparse.Namespace) -> int:
    from gsvnet_ros.bag.info import bag_info, format_info

    print(format_info(bag_info(args.bag, verify=not args.quick)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `gsvnet-bag`; returns the exit status (2 on a usage or input error, 130 on
    SIGINT, 143 on SIGTERM: both leave no unfinished output behind; `batch`: 1 when some
    recordings failed)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    command = {"convert": _convert, "segment": _segment, "info": _info,
               "batch": _batch}[args.command]
    with sigterm_as_interrupt():
        try:
            return command(args)
        except (BagError, ImageDecodeError, ConfigError, OSError) as exc:
            message = " ".join(str(exc).split()) or type(exc).__name__
            print(f"{PROG}: error: {message}", file=sys.stderr)
            return 2
        except KeyboardInterrupt as exc:
            note = ("finished recordings kept, unfinished ones removed" if args.command == "batch"
                    else "no output written")
            return interrupted(PROG, exc, note)


if __name__ == "__main__":
    sys.exit(main())

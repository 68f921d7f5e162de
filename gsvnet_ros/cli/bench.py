"""gsvnet-bench: keyframe vs non-keyframe latency, per-stage breakdown, frames/s by interval, GMAC."""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
from typing import Optional, Sequence

import numpy as np
import torch

from ..evaluation import bench
from ..backends import build_backend, build_model
from ..models.dis_flow import dis_flow_1_8
from ..models.preprocess import normalize
from ..stream import VideoSegmenter
from .common import add_config_arguments, config_from_args, fail, interruptible, parse_size


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gsvnet-bench", description=__doc__)
    parser.add_argument("--size", type=parse_size, default=(1024, 512), help="WIDTHxHEIGHT (1024x512)")
    parser.add_argument("--frames", type=int, default=40, help="frames streamed at interval 5 (40)")
    parser.add_argument("--repeats", type=int, default=10, help="repeats per stage in the breakdown")
    parser.add_argument("--stream-rounds", type=int, default=7,
                        help="interleaved rounds of the measured stream (each: step() and segment() at l=1 and 4)")
    parser.add_argument("--backends", default=DEFAULT_BACKENDS,
                        help="comma-separated backends to time in this run: torch, onnxruntime[:PRECISION]"
                             "[@THREADS] with PRECISION fp32, int8 (keyframe and propagation graphs "
                             "quantized) or int8key (int8 keyframe graph, fp32 propagation graph) and "
                             "THREADS the propagation graph's intra-op threads (default: --threads); "
                             f"default {DEFAULT_BACKENDS}")
    parser.add_argument("--output-1-8", action="store_true",
                        help="also time each backend with stream.output_resolution 1/8 (labels at the "
                             "network's resolution, no output stage)")
    parser.add_argument("--no-macs", action="store_true", help="skip the GMAC count")
    parser.add_argument("--op-profile", action="store_true",
                        help="onnxruntime backends: also print the kernel time of each op type in the "
                             "keyframe and propagation graphs (ONNX Runtime's profiler), and the fp32 "
                             "GMAC/s of a large matrix product on the same threads (a reference for "
                             "fp32 conv speed)")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    add_config_arguments(parser)
    parser.set_defaults(threads=2)
    return parser


DEFAULT_BACKENDS = "torch,onnxruntime,onnxruntime:int8key,onnxruntime:int8,onnxruntime:int8@1"
# --backends precision -> (onnx_precision, onnx_propagation_precision)
_PRECISIONS = {"": (None, None), "fp32": ("fp32", "fp32"), "int8": ("int8", "int8"),
               "int8key": ("int8", "fp32")}


@dataclasses.dataclass(frozen=True)
class BackendEntry:
    """One --backends entry: the backend, its graphs' precisions (None = the config's) and the
    propagation graph's threads (0 = the config's)."""

    name: str
    backend: str
    precision: Optional[str] = None
    propagation_precision: Optional[str] = None
    propagation_threads: int = 0

    def runtime(self, base):
        """`base` (a RuntimeConfig) with this entry's settings."""
        changes = {"backend": self.backend}
        if self.precision:
            changes.update(onnx_precision=self.precision, onnx_propagation_precision=self.propagation_precision)
        if self.propagation_threads:
            changes["onnx_propagation_threads"] = self.propagation_threads
        return dataclasses.replace(base, **changes)


def parse_backends(text: str) -> list[BackendEntry]:
    """The comma-separated --backends entries; ValueError naming the first unknown one."""
    entries = []
    for name in [b.strip() for b in text.split(",") if b.strip()]:
        head, _, threads = name.partition("@")
        backend, _, precision = head.partition(":")
        ok = (backend in ("auto", "torch", "onnxruntime") and precision in _PRECISIONS
              and (threads == "" or (threads.isdigit() and 1 <= int(threads) <= 1024))
              and not (backend == "torch" and (precision or threads)))
        if not ok:
            raise ValueError(f"--backends entry {name!r} is not one of torch, auto, "
                             "onnxruntime[:fp32|:int8|:int8key][@THREADS]")
        entries.append(BackendEntry(name, backend, *_PRECISIONS[precision], int(threads or 0)))
    return entries


def graph_feeds(backend, frames) -> tuple[tuple[int, int], dict[str, dict[str, np.ndarray]]]:
    """(height, width) and the feeds of each of the backend's graphs for the second of two stream frames
    (the first a keyframe)."""
    from ..backends.onnx_export import model_parts
    from ..backends.onnxruntime_backend import warped_labels

    (full, first_1_8), (_, second_1_8) = (VideoSegmenter.prepare(frame, backend.device, full=True)
                                         for frame in frames[:2])
    height, width = int(full.shape[-2]), int(full.shape[-1])

    def host(tensor: torch.Tensor) -> np.ndarray:
        return np.ascontiguousarray(tensor.numpy(), dtype=np.float32)

    model = backend.model
    with torch.inference_mode():
        logits = backend.keyframe(full)
        if model.cfg.flow == "dis":
            flow = dis_flow_1_8(second_1_8, first_1_8, model.cfg.dis_preset, model.cfg.dis_finest_scale)
        else:
            flow = model.flow(normalize(second_1_8), normalize(first_1_8))
        warped = model.warp(logits, flow)
        intra = model.intra_logits(second_1_8)
    feeds = {"keyframe": {"frame": host(full)},
             "flow": {"frame_1_8": host(second_1_8), "prev_frame_1_8": host(first_1_8)},
             "intra": {"frame_1_8": host(second_1_8)},
             "propagation": {"warped_1_8": host(warped), "labels_1_8": host(warped_labels(warped))}}
    if intra is not None:
        feeds["propagation"]["intra_1_8"] = host(intra)
    return (height, width), {part: feeds[part] for part in model_parts(model)}


def graph_time_by_op(backend, size: tuple[int, int], feeds: dict[str, dict[str, np.ndarray]]
                     ) -> dict[str, dict[str, float]]:
    """ms per op type of each of the backend's graphs at `size` (height, width), given `graph_feeds`."""
    height, width = size
    return {part: bench.onnx_time_by_op(backend.graph_path(part, height, width), part_feeds,
                                        backend.threads(part))
            for part, part_feeds in feeds.items()}


def propagation_graph_ms_by_threads(backend, size: tuple[int, int], feeds: dict[str, dict[str, np.ndarray]],
                                    threads=(1, 2), repeats: int = 30) -> dict[int, float]:
    """Median ms of the non-keyframe's graphs alone (the flow graph, if any, then the correction graph;
    session runs only) at each intra-op thread count, given `graph_feeds`."""
    import onnxruntime as ort

    from ..backends.onnxruntime_backend import session_options

    height, width = size
    parts = [part for part in feeds if part != "keyframe"]
    result = {}
    for count in threads:
        runs = []
        for part in parts:
            session = ort.InferenceSession(str(backend.graph_path(part, height, width)), session_options(count),
                                           providers=backend.providers)
            used = {node.name for node in session.get_inputs()}
            runs.append((session, {name: value for name, value in feeds[part].items() if name in used}))
        result[count] = bench.median_ms(lambda: [session.run(None, part_feeds) for session, part_feeds in runs],
                                        repeats, warmup=3)
    return result


def time_backend(cfg, model, frames, interval: int = 5, op_profile: bool = False,
                 output_1_8: bool = False, stream_rounds: int = 7) -> dict:
    """End-to-end stream timing (frame in memory -> full-resolution labels) on one backend; with
    `output_1_8` also the non-keyframe with labels at 1/8 (stream.output_resolution 1/8)."""
    segmenter = VideoSegmenter(build_backend(cfg, model), cfg.stream)
    timing = bench.time_stream(segmenter, frames, interval=interval, warmup=1)
    key_ms, non_ms = timing.keyframe_median, timing.non_keyframe_median
    extra = {}
    if output_1_8:
        at_1_8 = VideoSegmenter(segmenter.backend, dataclasses.replace(cfg.stream, output_resolution="1/8"))
        small = bench.time_stream(at_1_8, frames, interval=interval, warmup=1)
        extra["output_1_8"] = {"keyframe_ms": small.keyframe_median,
                               "non_keyframe_ms": small.non_keyframe_median}
    # frames/s measured on the whole stream, at l = 1 and 4: step() by step(), and segment() (pipelined),
    # in interleaved rounds; the speed-up is the median of the rounds' l=4 / l=1 ratios
    rates = bench.stream_fps(segmenter, frames, rounds=stream_rounds)
    extra["stream_fps_rounds"] = rates
    extra["stream_fps"] = {mode: {l: statistics.median(r) for l, r in by_l.items()} for mode, by_l in rates.items()}
    extra["stream_speedup_rounds"] = {mode: bench.round_ratios(by_l[4], by_l[1]) for mode, by_l in rates.items()}
    segmenter.keyframe_interval = cfg.stream.keyframe_interval
    if segmenter.backend.name == "onnxruntime":
        size, feeds = graph_feeds(segmenter.backend, frames)  # once for both measurements
        extra["propagation_graph_ms_by_threads"] = propagation_graph_ms_by_threads(segmenter.backend, size, feeds)
        if op_profile:
            extra["graph_ms_by_op"] = graph_time_by_op(segmenter.backend, size, feeds)
    backend = segmenter.backend
    precision = getattr(backend, "precisions", {}).get("keyframe") if backend.name == "onnxruntime" else None
    return {
        "backend": backend.describe(),
        "keyframe_precision": precision or "fp32",
        "keyframe_ms": key_ms,
        "non_keyframe_ms": non_ms,
        "non_keyframe_share": non_ms / key_ms,
        "keyframe_stages_ms": timing.stage_medians(True),
        "non_keyframe_stages_ms": timing.stage_medians(False),
        "fps_by_interval": bench.fps_by_interval(key_ms, non_ms),
        "frames_timed": {"keyframes": len(timing.keyframe_ms),
                         "non_keyframes": len(timing.non_keyframe_ms)},
        **extra,
    }


def run(args: argparse.Namespace) -> dict:
    base = config_from_args(args)
    torch.set_num_threads(base.runtime.threads or torch.get_num_threads())
    width, height = args.size
    model = build_model(base)
    frames = bench.driving_frames(args.frames, height, width)
    figures: dict = {"size": f"{width}x{height}", "threads": torch.get_num_threads(),
                     "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
                     "keyframe_net": base.model.keyframe_net,
                     "weights": {"keyframe": base.runtime.keyframe_weights,
                                 "propagation": base.runtime.propagation_weights},
                     "backends": {}}
    for entry in parse_backends(args.backends):
        cfg = dataclasses.replace(base, runtime=entry.runtime(base.runtime))
        figures["backends"][entry.name] = time_backend(cfg, model, frames, op_profile=args.op_profile,
                                                       output_1_8=args.output_1_8,
                                                       stream_rounds=args.stream_rounds)
    int8 = [fig for fig in figures["backends"].values() if fig.get("keyframe_precision") == "int8"]
    if int8:  # the per-frame net a CPU user would otherwise run: the int8 keyframe graph, every frame
        # (its fastest keyframe among this run's int8 entries: the comparison never flatters GSVNet)
        figures["int8_per_frame_fps"] = 1e3 / min(fig["keyframe_ms"] for fig in int8)
        figures["int8_per_frame_stream_fps"] = {mode: max(fig["stream_fps"][mode][1] for fig in int8)
                                                for mode in ("step", "segment")}
    figures["propagation_breakdown_ms"] = bench.propagation_breakdown(model, height, width, args.repeats)
    if not args.no_macs:
        figures["gmacs"] = bench.gsvnet_gmacs(model, height, width)
    if args.op_profile:
        figures["fp32_gemm_gmacs_per_s"] = bench.gemm_gmacs_per_second()
    return figures


def print_fp32_reference(figures: dict) -> None:
    """The keyframe graph's Conv rate and eager PyTorch's 2x target against a large fp32 GEMM's rate."""
    reference = figures["fp32_gemm_gmacs_per_s"]
    print(f"fp32 reference: a 2048x2048 matrix product runs at {reference:.0f} GMAC/s on "
          f"{figures['threads']} threads")
    if "gmacs" not in figures:
        return
    gmac = figures["gmacs"]["keyframe"]
    print(f"  the keyframe's {gmac:.2f} GMAC at that rate: {1e3 * gmac / reference:.1f} ms")
    for name, fig in figures["backends"].items():
        conv_ms = fig.get("graph_ms_by_op", {}).get("keyframe", {}).get("Conv")
        if conv_ms:
            rate = 1e3 * gmac / conv_ms
            print(f"  {name}: keyframe Conv kernels {conv_ms:.1f} ms = {rate:.0f} GMAC/s "
                  f"({100 * rate / reference:.0f} % of the matrix product's rate)")
    torch_fig = figures["backends"].get("torch")
    if torch_fig:
        needed = 2e3 * gmac / torch_fig["keyframe_ms"]
        print(f"  2x faster than torch eager's keyframe ({torch_fig['keyframe_ms']:.1f} ms) needs "
              f"{needed:.0f} GMAC/s end to end ({100 * needed / reference:.0f} % of the matrix product's rate)")


def print_report(figures: dict) -> None:
    print(f"gsvnet-bench  {figures['size']}  {figures['keyframe_net']}  threads={figures['threads']}  "
          f"cpu={figures['cpu']} x{figures['cpu_count']}")
    for name, fig in figures["backends"].items():
        print(f"[{fig['backend']}]")
        print(f"  keyframe step      {fig['keyframe_ms']:8.1f} ms (median, end to end)")
        print(f"  non-keyframe step  {fig['non_keyframe_ms']:8.1f} ms")
        print(f"  non-key / key      {100 * fig['non_keyframe_share']:8.1f} %")
        for label, key in (("keyframe stages", "keyframe_stages_ms"),
                           ("non-keyframe stages", "non_keyframe_stages_ms")):
            parts = ", ".join(f"{k} {v:.1f}" for k, v in fig[key].items() if k != "total")
            print(f"  {label:19s} {parts} (ms)")
        print("  frames/s by keyframe interval: " + ", ".join(
            f"l={l}: {fps:.1f}" for l, fps in fig["fps_by_interval"].items()))
        if "propagation_graph_ms_by_threads" in fig:
            print("  non-keyframe graphs alone: " + ", ".join(
                f"{count} thread{'s' if count > 1 else ''} {ms:.2f} ms"
                for count, ms in fig["propagation_graph_ms_by_threads"].items()))
        measured = fig["stream_fps"]
        print("  measured stream frames/s: " + ", ".join(
            f"{mode}() l=1 {measured[mode][1]:.1f}, l=4 {measured[mode][4]:.1f}" for mode in ("step", "segment")))
        if "output_1_8" in fig:
            small = fig["output_1_8"]
            print(f"  labels at 1/8 (stream.output_resolution 1/8): keyframe {small['keyframe_ms']:.1f}, "
                  f"non-keyframe {small['non_keyframe_ms']:.1f} ms")
        for part, by_op in fig.get("graph_ms_by_op", {}).items():
            total = sum(by_op.values())
            top = ", ".join(f"{op} {ms:.2f}" for op, ms in list(by_op.items())[:6])
            print(f"  {part} graph kernels {total:.1f} ms/run by op type: {top}")
    torch_fig = figures["backends"].get("torch")
    for name, fig in figures["backends"].items():
        if torch_fig and name != "torch":
            print(f"{name} vs torch: keyframe {torch_fig['keyframe_ms'] / fig['keyframe_ms']:.2f}x faster, "
                  f"non-keyframe {torch_fig['non_keyframe_ms'] / fig['non_keyframe_ms']:.2f}x faster")
        line = (f"{name}: GSVNet l=4 vs per-frame (l=1) frames/s "
                f"{fig['fps_by_interval'][4] / fig['fps_by_interval'][1]:.2f}x")
        if "int8_per_frame_fps" in figures:
            line += (f", vs the int8 per-frame net ({figures['int8_per_frame_fps']:.1f} frames/s) "
                     f"{fig['fps_by_interval'][4] / figures['int8_per_frame_fps']:.2f}x")
        print(line)
        measured, speedups = fig["stream_fps"], fig["stream_speedup_rounds"]
        line = f"{name}: measured on the stream, l=4 vs l=1 (median of {len(speedups['step'])} interleaved rounds, " \
               "range): " + ", ".join(f"{mode}() {statistics.median(speedups[mode]):.2f}x "
                                      f"({min(speedups[mode]):.2f}-{max(speedups[mode]):.2f})"
                                      for mode in ("step", "segment"))
        if fig.get("keyframe_precision") == "int8":
            line += " (its l=1 runs the int8 keyframe graph on every frame: the int8 per-frame net)"
        elif "int8_per_frame_stream_fps" in figures:  # another backend's rounds: medians only
            reference = figures["int8_per_frame_stream_fps"]
            line += (f"; vs the int8 per-frame net run the same way ({reference['step']:.1f} / "
                     f"{reference['segment']:.1f} frames/s) {measured['step'][4] / reference['step']:.2f}x / "
                     f"{measured['segment'][4] / reference['segment']:.2f}x")
        print(line)
    print("propagation path in torch eager on random inputs, per stage (ms):")
    for name, value in figures["propagation_breakdown_ms"].items():
        print(f"  {name:34s} {value:7.2f}")
    if "gmacs" in figures:
        g = figures["gmacs"]
        print(f"GMAC: keyframe {g['keyframe']:.2f}, non-keyframe {g['non_keyframe']:.3f} "
              f"({100 * g['non_keyframe'] / g['keyframe']:.1f} % of a keyframe)")
    if "fp32_gemm_gmacs_per_s" in figures:
        print_fp32_reference(figures)


@interruptible("gsvnet-bench")
def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    if args.frames < 12:
        return fail(f"--frames must be at least 12 to time both frame types, got {args.frames}")
    if args.stream_rounds < 1:
        return fail(f"--stream-rounds must be at least 1, got {args.stream_rounds}")
    try:
        parse_backends(args.backends)
    except ValueError as exc:
        return fail(str(exc))
    from ..config import ConfigError
    from ..models.weights import WeightsError
    try:
        figures = run(args)
    except (ConfigError, WeightsError) as exc:
        return fail(str(exc))
    print_report(figures)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(figures, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Latency per stage, keyframe vs non-keyframe, throughput by keyframe interval, and MACs."""
from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from ..models.gsvnet import GSVNet
from ..models.preprocess import downsample_1_8, normalize
from ..models.dis_flow import dis_flow_1_8
from ..models.warp import backward_warp
from ..output_stage import LabelUpsampler
from ..stream import VideoSegmenter

__all__ = [
    "StreamTiming",
    "driving_frames",
    "time_stream",
    "fps_by_interval",
    "stream_fps",
    "round_ratios",
    "median_ms",
    "propagation_breakdown",
    "count_gmacs",
    "gsvnet_gmacs",
    "onnx_time_by_op",
    "gemm_gmacs_per_second",
]


def driving_frames(count: int, height: int, width: int, sequence: int = 0) -> list[np.ndarray]:
    """`count` consecutive frames of a synthetic driving snippet from the TEST seed range.

    Real scene content matters for timing: the output stage only interpolates blocks on class
    boundaries, so its cost follows what the nets see (a textured pattern gives an unrealistically
    fragmented label map: ~6.5 instead of ~3 ms per frame at 1024x512).
    """
    from ..data.synth.render import build_scene, render_frame
    from ..data.synth.writer import sequence_seed

    scene = build_scene(sequence_seed("test", sequence), width, height, count)
    return [render_frame(scene, frame).image for frame in range(count)]


def median_ms(fn: Callable[[], object], repeats: int = 10, warmup: int = 2) -> float:
    """Median wall-clock milliseconds of fn() after warm-up."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(1e3 * (time.perf_counter() - start))
    return statistics.median(samples)


@dataclass
class StreamTiming:
    """Per-frame milliseconds of one stream run, split by frame type and stage."""

    keyframe_ms: list[float] = field(default_factory=list)
    non_keyframe_ms: list[float] = field(default_factory=list)
    keyframe_stages: dict[str, list[float]] = field(default_factory=dict)
    non_keyframe_stages: dict[str, list[float]] = field(default_factory=dict)

    @property
    def keyframe_median(self) -> float:
        return statistics.median(self.keyframe_ms)

    @property
    def non_keyframe_median(self) -> float:
        return statistics.median(self.non_keyframe_ms)

    def stage_medians(self, keyframe: bool) -> dict[str, float]:
        stages = self.keyframe_stages if keyframe else self.non_keyframe_stages
        return {name: statistics.median(values) for name, values in stages.items()}


def time_stream(segmenter: VideoSegmenter, frames: Sequence[np.ndarray], interval: int,
                warmup: int = 2, period_ns: int = 50_000_000) -> StreamTiming:
    """Run the stream end to end (frame in memory -> full-resolution labels) and time every frame.

    The first `warmup` keyframe intervals are run but not recorded.
    """
    segmenter.reset()
    segmenter.keyframe_interval = interval
    timing = StreamTiming()
    skip = warmup * interval
    for index, frame in enumerate(frames):
        result = segmenter.step(frame, index * period_ns)
        if index < skip:
            continue
        total = timing.keyframe_ms if result.is_keyframe else timing.non_keyframe_ms
        stages = timing.keyframe_stages if result.is_keyframe else timing.non_keyframe_stages
        total.append(result.timings_ms["total"])
        for name, value in result.timings_ms.items():
            stages.setdefault(name, []).append(value)
    return timing


def stream_fps(segmenter: VideoSegmenter, frames: Sequence[np.ndarray], intervals: Sequence[int] = (1, 4),
               modes: Sequence[str] = ("step", "segment"), rounds: int = 5, period_ns: int = 50_000_000
               ) -> dict[str, dict[int, list[float]]]:
    """Measured frames/s of the whole stream (every frame in memory -> labels): {mode: {interval: one rate
    per round}}. Mode "step" runs one `step()` after another, "segment" runs `segment()` (the next frame's
    host work and the last one's output stage on a second thread).

    After one warm-up pass of each setting, every round runs one pass of every (mode, interval) in turn, so
    a drift of the machine's speed (other tenants, clocks) meets every setting alike, and a ratio of two
    settings can be taken within each round (`round_ratios`)."""
    items = [(frame, index * period_ns) for index, frame in enumerate(frames)]
    rates: dict[str, dict[int, list[float]]] = {mode: {interval: [] for interval in intervals} for mode in modes}
    for round_index in range(rounds + 1):
        for mode in modes:
            for interval in intervals:
                segmenter.keyframe_interval = interval
                segmenter.reset()
                start = time.perf_counter()
                if mode == "segment":
                    for _ in segmenter.segment(items):
                        pass
                else:
                    for frame, stamp in items:
                        segmenter.step(frame, stamp)
                if round_index:  # round 0 warms up
                    rates[mode][interval].append(len(items) / (time.perf_counter() - start))
    return rates


def round_ratios(numerator: Sequence[float], denominator: Sequence[float]) -> list[float]:
    """numerator[i] / denominator[i] for each round i (two settings measured side by side)."""
    return [a / b for a, b in zip(numerator, denominator)]


def fps_by_interval(keyframe_ms: float, non_keyframe_ms: float, intervals: Sequence[int] = (1, 2, 3, 4, 5)
                    ) -> dict[int, float]:
    """Frames/s at each interval l: one keyframe and l-1 propagated frames per l frames."""
    return {l: 1e3 * l / (keyframe_ms + (l - 1) * non_keyframe_ms) for l in intervals}


def propagation_breakdown(model: GSVNet, height: int, width: int, repeats: int = 10
                          ) -> dict[str, float]:
    """Median ms of each stage of the non-keyframe path at full size height x width (torch eager), on the
    model's device and in its dtype (a backend may have moved it: the torch backend on CUDA, fp16)."""
    h8, w8 = height // 8, width // 8
    parameter = next(model.parameters())
    gen = torch.Generator().manual_seed(0)

    def made(*shape: int, normal: bool = False) -> torch.Tensor:
        values = torch.randn(*shape, generator=gen) if normal else torch.rand(*shape, generator=gen)
        return values.to(parameter.device, parameter.dtype)

    frame, frame_1_8 = made(1, 3, height, width), made(1, 3, h8, w8)
    logits = made(1, model.num_classes, h8, w8, normal=True)
    upsampler = LabelUpsampler()

    def timed(fn: Callable[[], object]) -> float:  # until the device has finished the work
        return median_ms(lambda: (fn(), _synchronize(parameter.device)), repeats)

    with torch.inference_mode():
        current, previous = normalize(frame_1_8), normalize(frame_1_8.flip(-1))
        flow = model.flow(current, previous)
        padding = model.cfg.warp_padding
        warped = backward_warp(logits, flow, padding)
        stages = {
            "downsample_1_8": timed(lambda: downsample_1_8(frame)),
            "flow_net": timed(lambda: model.flow(current, previous)),
            f"DIS {model.cfg.dis_preset} (host, model.flow: dis)": timed(
                lambda: dis_flow_1_8(frame_1_8, frame_1_8.flip(-1), model.cfg.dis_preset,
                                     model.cfg.dis_finest_scale)),
            f"warp ({padding})": timed(lambda: backward_warp(logits, flow, padding)),
            "gsv (intra, edge, guide, fusion)": timed(lambda: model.gsv(warped, current)),
            "output, random logits (worst case)": timed(lambda: upsampler(logits[0])),
        }
    return stages


def _synchronize(device: torch.device) -> None:
    """Wait for the work queued on `device` (an accelerator runs it asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def count_gmacs(fn: Callable[[], object]) -> float:
    """Multiply-accumulates (GMAC) of fn() measured with torch.utils.flop_counter (MAC = FLOP / 2)."""
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        fn()
    return counter.get_total_flops() / 2e9


def gemm_gmacs_per_second(size: int = 2048, repeats: int = 5) -> float:
    """fp32 multiply-accumulates per second (GMAC/s) of a size x size matrix product on torch's threads.

    A large dense GEMM is the best case of a tuned BLAS, so its rate is a practical reference for what
    fp32 convolutions can reach on the same threads (a reference, not a hard peak: clocks vary run to
    run, and a conv kernel may edge past it).
    """
    gen = torch.Generator().manual_seed(0)
    a, b = torch.rand(size, size, generator=gen), torch.rand(size, size, generator=gen)
    with torch.inference_mode():
        ms = median_ms(lambda: torch.mm(a, b), repeats)
    return size ** 3 / 1e9 / (ms / 1e3)


def gsvnet_gmacs(model: GSVNet, height: int, width: int) -> dict[str, float]:
    """GMAC of a keyframe and of a non-keyframe at full size height x width, counted on the meta device."""
    meta = torch.device("meta")
    model_meta = type(model)(model.cfg).to(meta).eval()
    frame = torch.zeros(1, 3, height, width, device=meta)
    small = torch.zeros(1, 3, height // 8, width // 8, device=meta)
    logits = torch.zeros(1, model.num_classes, height // 8, width // 8, device=meta)
    return {
        "keyframe": count_gmacs(lambda: model_meta.keyframe_forward(frame)),
        "non_keyframe": count_gmacs(lambda: model_meta.propagate_forward(small, small, logits)),
    }


def onnx_time_by_op(graph_path: Path, feeds: dict[str, np.ndarray], threads: int = 0, runs: int = 20,
                    warmup: int = 3) -> dict[str, float]:
    """Milliseconds per run spent in each ONNX op type of a graph, largest first.

    From ONNX Runtime's own profiler, with the session options the backend uses; the `warmup` runs
    are excluded. The sum is the kernel time of one run (less than its wall time: no dispatch gaps).
    """
    import onnxruntime as ort

    from ..backends.onnxruntime_backend import session_options

    with tempfile.TemporaryDirectory(prefix="gsvnet-ort-profile-") as work:
        session = ort.InferenceSession(str(graph_path), session_options(threads, str(Path(work) / "ort")),
                                       providers=["CPUExecutionProvider"])
        used = {node.name for node in session.get_inputs()}
        feeds = {name: value for name, value in feeds.items() if name in used}
        for _ in range(warmup + runs):
            session.run(None, feeds)
        events = json.loads(Path(session.end_profiling()).read_text())
    windows = sorted((e["ts"], e["ts"] + e["dur"]) for e in events if e.get("name") == "model_run")[warmup:]
    totals: Counter = Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time") and any(
                start <= event["ts"] <= end for start, end in windows):
            totals[event["args"]["op_name"]] += event["dur"]
    return {op: microseconds / len(windows) / 1e3 for op, microseconds in totals.most_common()}

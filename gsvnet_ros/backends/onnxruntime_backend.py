"""ONNX Runtime backend: the exported keyframe and propagation graphs, one session pair per frame size.

Graphs have static shapes, so each frame size gets its own sessions; the sessions of at most
`max_sizes` sizes stay in memory (least recently used closed first), so a stream of ever new
sizes cannot grow memory without bound. A size seen again after eviction reloads its graphs from
the disk cache (no export).
"""
from __future__ import annotations

import contextlib
import os
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np
import torch

from ..config import ConfigError, GSVNetConfig, RuntimeConfig
from ..models.dis_flow import dis_flow_1_8
from ..models.gsv import GuidedSpatiallyVaryingConv
from ..models.gsvnet import GSVNet
from ..output_stage import compiled_kernel_available
from .base import Ahead, Backend, torch_threads
from .onnx_export import (DEFAULT_CACHE_MAX_MB, PARTS, PRECISIONS, cached_export, default_cache_dir,
                          model_fingerprint)

__all__ = ["OnnxRuntimeBackend", "onnxruntime_available", "session_options", "warped_labels", "fused",
           "DEFAULT_MAX_SIZES"]

DEFAULT_MAX_SIZES = RuntimeConfig.onnx_max_sizes


def onnxruntime_available() -> bool:
    """True when the onnxruntime package imports."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def session_options(threads: int = 0, profile_prefix: Optional[str] = None):
    """The SessionOptions of every gsvnet_ros session: all graph optimisations, `threads` intra-op
    threads (0 = ONNX Runtime's default), no busy-waiting; with `profile_prefix`, ORT's profiler on."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # No busy-waiting between runs: the stream runs torch (upload, downsample, output stage) on the
    # same cores between two graphs, and spinning ORT workers steal them. Measured in VideoSegmenter
    # at 1024x512, 2 threads: keyframe 186-190 -> 155 ms, non-keyframe 25-32 -> 22 ms (graphs alone
    # unchanged).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    if profile_prefix:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    return options


def warped_labels(warped_1_8: torch.Tensor) -> torch.Tensor:
    """argmax over the classes of (1, C, h, w) logits as (1, 1, h, w) float32, the first class on ties: the
    compiled kernel (`labels_kernel`, ~0.01 ms at 19x64x128), or torch's argmax without numba."""
    if compiled_kernel_available():
        from ..labels_kernel import channel_argmax  # imports numba

        return torch.from_numpy(channel_argmax(warped_1_8.detach().numpy()))
    return warped_1_8.argmax(1, keepdim=True).float()


def fused(gsv: GuidedSpatiallyVaryingConv, warped_1_8: torch.Tensor, weights_1_8: torch.Tensor,
          intra_1_8: Optional[torch.Tensor]) -> torch.Tensor:
    """Eq. 2's weighted sum of the candidates: the compiled kernel (`fusion_kernel`, 0.12 instead of 0.26 ms
    at 19x64x128 on one thread, the same sums), or `gsv.fuse_inference` without numba or with learnable
    shift kernels. `weights_1_8` may be overwritten."""
    if compiled_kernel_available() and not gsv.shifts.learnable:
        from ..fusion_kernel import fuse_on_host  # imports numba

        return fuse_on_host(warped_1_8, weights_1_8, intra_1_8, gsv.shifts.offsets)
    return gsv.fuse_inference(warped_1_8, weights_1_8, intra_1_8)


class OnnxRuntimeBackend(Backend):
    """Runs GSVNet's two steps as ONNX graphs exported on first use of a size (and cached on disk).

    Uses the CUDA execution provider when `device` is CUDA and the installed onnxruntime has it
    (onnxruntime-gpu); the CPU provider otherwise. Tensors cross to the session as numpy on the CPU.
    """

    name = "onnxruntime"
    # torch only glues the graphs here (the host flow's grey levels, the warp, Eq. 2's sum, layout).
    # On more than one thread each of those small ops is an OpenMP parallel region, after which
    # torch's OpenMP workers keep spinning for milliseconds (libgomp's default wait policy) on the
    # cores the graphs' own threads and DIS need. One torch thread, measured on the int8 DIS-ultrafast
    # stream at 1024x512 (2 cores, a runs-local profile over 40 frames): correction graph 3.2-3.7 ->
    # 2.2-2.4 ms, DIS 1.06-1.19 -> 0.76-0.81 ms, non-keyframe 5.9-6.5 -> 4.6-5.0 ms.
    glue_threads = 1

    def __init__(self, model: GSVNet, *, threads: int = 0, use_cuda: bool = False,
                 cache_dir: Optional[str] = None, precision: str = "fp32",
                 cache_max_mb: int = DEFAULT_CACHE_MAX_MB, max_sizes: int = DEFAULT_MAX_SIZES,
                 propagation_precision: Optional[str] = None, propagation_threads: int = 0,
                 segment_threads: int = 0) -> None:
        import onnxruntime as ort

        if isinstance(max_sizes, bool) or not isinstance(max_sizes, int) or max_sizes < 1:
            raise ValueError(f"runtime.onnx_max_sizes must be an integer >= 1, got {max_sizes!r}")

        self._ort = ort
        self.model = model.eval().to("cpu", torch.float32)
        self.model_name = model.cfg.keyframe_net
        self.num_classes = model.num_classes
        self.device = torch.device("cpu")
        # intra-op threads per graph: the small propagation graph may run as fast on fewer threads
        self._export_threads = threads or torch.get_num_threads()
        self._threads = {"keyframe": threads, "propagation": propagation_threads or threads}
        self._threads["flow"] = self._threads["intra"] = self._threads["propagation"]
        # the flow, intra and propagation graphs' threads while `pipelined()` (segment()); 0 = as above
        self._segment_threads = segment_threads
        self._pipelines = 0  # pipelined() blocks running now
        self._pipelines_lock = threading.Lock()
        self._cache_dir = Path(cache_dir) if cache_dir else None
        self._cache_max_mb = cache_max_mb
        # precision of each graph; the propagation graph follows the keyframe graph unless chosen
        self.precisions = {"keyframe": precision, "propagation": propagation_precision or precision}
        # the flow net's graph (model.flow: learned) and phi's graph (model.use_intra)
        self.precisions["flow"] = self.precisions["intra"] = self.precisions["propagation"]
        self._fingerprint = model_fingerprint(self.model)
        available = ort.get_available_providers()
        self.providers = (["CUDAExecutionProvider", "CPUExecutionProvider"]
                          if use_cuda and "CUDAExecutionProvider" in available
                          else ["CPUExecutionProvider"])
        for key, value in (("onnx_precision", precision), ("onnx_propagation_precision",
                                                            self.precisions["propagation"])):
            if value not in PRECISIONS:
                raise ValueError(f"runtime.{key} must be one of {PRECISIONS}, got {value!r}")
            if value == "int8" and self.providers[0] == "CUDAExecutionProvider":
                raise ValueError(f"runtime.{key} int8 is for the CPU execution provider; expected fp32 "
                                 "with CUDA (or backend: torch with half: true)")
        self.max_sizes = max_sizes
        # (height, width) -> {(part, intra-op threads): InferenceSession}, least recently used first.
        self._sessions: OrderedDict[tuple[int, int], dict[tuple[str, int], Any]] = OrderedDict()
        # ((height, width), part) -> the session's input names (the exporter drops inputs a graph
        # does not use: with DIS and no phi, the frame itself)
        self._inputs: dict[tuple[tuple[int, int], str], frozenset[str]] = {}
        self._check_cache_dir()
        self._phi: Optional[ThreadPoolExecutor] = None  # phi's graph beside DIS (ahead), made on first use
        self._phi_lock = threading.Lock()
        # segment()'s host thread and the networks' thread both ask for sessions: one at a time changes
        # the table, and a graph met by both at once is exported (and quantized) once
        self._sessions_lock = threading.Lock()

    def _cache_setting(self) -> str:
        return f"runtime.onnx_cache_dir {self._cache_dir or default_cache_dir()}"

    def _check_cache_dir(self) -> None:
        """The cache folder exists or can be created (a read-only one with the graphs still works)."""
        folder = self._cache_dir or default_cache_dir()
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"{self._cache_setting()}: cannot create the directory: {exc}") from None

    @classmethod
    def from_config(cls, cfg: GSVNetConfig, model: GSVNet) -> "OnnxRuntimeBackend":
        wants_cuda = cfg.runtime.device.startswith("cuda") or (
            cfg.runtime.device == "auto" and torch.cuda.is_available())
        return cls(model, threads=cfg.runtime.threads, use_cuda=wants_cuda,
                   cache_dir=cfg.runtime.onnx_cache_dir, precision=cfg.runtime.onnx_precision,
                   cache_max_mb=cfg.runtime.onnx_cache_max_mb, max_sizes=cfg.runtime.onnx_max_sizes,
                   propagation_precision=cfg.runtime.onnx_propagation_precision,
                   propagation_threads=cfg.runtime.onnx_propagation_threads,
                   segment_threads=cfg.runtime.onnx_segment_threads)

    def describe(self) -> str:
        key, prop = self.precisions["keyframe"], self.precisions["propagation"]
        precision = {("fp32", "fp32"): "", ("int8", "int8"): ", int8 graphs"}.get(
            (key, prop), f", {key} keyframe / {prop} propagation graph")
        threads = "" if self._threads["keyframe"] == self._threads["propagation"] else (
            f", threads {self._threads['keyframe']} keyframe / {self._threads['propagation']} propagation")
        return f"{self.name} backend ({self.providers[0]}{precision}{threads}), {self.model_name}"

    def threads(self, part: str) -> int:
        """Intra-op threads of the sessions of `part` (0 = ONNX Runtime's default); inside `pipelined()`
        the flow, intra and propagation graphs run on `segment_threads` when that is set."""
        if part != "keyframe" and self._segment_threads and self._pipelines:
            return self._segment_threads
        return self._threads[part]

    @contextlib.contextmanager
    def pipelined(self) -> Iterator[None]:
        """segment()'s two threads already run the next frame's flow and phi beside this frame's correction
        graph, so their sessions' own thread pools then only contend for the cores: with `segment_threads`
        set, the non-keyframe graphs run on that many threads inside the block (sessions of their own,
        made on first use; the keyframe graph keeps its threads). A/B on the 2-core dev machine, int8,
        1024x512, l = 4, 6 interleaved rounds of 40 frames: segment() 3.19x (3.12-3.26) the per-frame
        stream's frames/s on one thread against 3.05x (2.82-3.14) on two (runs-local script); step() is
        best on two (2.97x against 2.83x), so it keeps `propagation_threads`."""
        with self._pipelines_lock:
            self._pipelines += 1
        try:
            yield
        finally:
            with self._pipelines_lock:
                self._pipelines -= 1

    def graph_path(self, part: str, height: int, width: int) -> Path:
        """The verified cached graph of `part` for full-resolution frames of height x width (exported once)."""
        precision = self.precisions[part]
        try:
            with torch_threads(self._export_threads):  # export and int8 calibration run the torch model
                return cached_export(self.model, part, height, width, self._cache_dir, self._fingerprint,
                                     precision, self._cache_max_mb)
        except OSError as exc:
            raise ConfigError(f"{self._cache_setting()}: cannot write the {part} graph for "
                              f"{width}x{height} frames: {exc}") from None

    @property
    def session_count(self) -> int:
        """InferenceSessions held in memory now (per size: the keyframe graph's, and the intra, propagation
        and flow graphs' at each thread count they ran on: as configured, inside `pipelined`, and phi's
        beside DIS)."""
        return sum(len(parts) for parts in self._sessions.values())

    @property
    def cached_sizes(self) -> list[tuple[int, int]]:
        """(height, width) of the sizes whose sessions are in memory, least recently used first."""
        return list(self._sessions)

    def session(self, part: str, height: int, width: int, threads: Optional[int] = None):
        """The InferenceSession for `part` at full-resolution size height x width, on `threads` intra-op
        threads (None: `threads(part)`).

        Using a size makes it the most recently used; a new size beyond `max_sizes` closes the
        sessions of the least recently used one first.
        """
        if part not in PARTS:
            raise ValueError(f"unknown part {part!r}; expected one of {PARTS}")
        threads = self.threads(part) if threads is None else threads
        with self._sessions_lock:
            return self._session(part, (height, width), threads)

    def _session(self, part: str, key: tuple[int, int], threads: int):
        height, width = key
        parts = self._sessions.get(key)
        if parts is None:
            while len(self._sessions) >= self.max_sizes:
                size, evicted = self._sessions.popitem(last=False)
                evicted.clear()  # the last references: ONNX Runtime frees the sessions now
                for name in PARTS:
                    self._inputs.pop((size, name), None)
            parts = self._sessions[key] = {}
        else:
            self._sessions.move_to_end(key)
        if (part, threads) not in parts:
            session = parts[(part, threads)] = self._ort.InferenceSession(
                str(self.graph_path(part, height, width)), session_options(threads), providers=self.providers)
            self._inputs[(key, part)] = frozenset(node.name for node in session.get_inputs())
        return parts[(part, threads)]

    @staticmethod
    def _numpy(tensor: torch.Tensor) -> np.ndarray:
        return tensor.detach().to("cpu", torch.float32).contiguous().numpy()

    def keyframe(self, frame: torch.Tensor) -> torch.Tensor:
        height, width = int(frame.shape[-2]), int(frame.shape[-1])
        (logits,) = self.session("keyframe", height, width).run(None, {"frame": self._numpy(frame)})
        return torch.from_numpy(logits)

    def _run(self, part: str, height: int, width: int, feeds: dict[str, torch.Tensor],
             threads: Optional[int] = None) -> list[np.ndarray]:
        session = self.session(part, height, width, threads)
        used = self._inputs.get(((height, width), part))  # None: evicted meanwhile by another thread
        if used is None:
            used = frozenset(node.name for node in session.get_inputs())
        return session.run(None, {name: self._numpy(value) for name, value in feeds.items() if name in used})

    def _beside_dis_threads(self) -> int:
        """phi's threads while DIS runs beside it: one fewer than its graph's (all cores for 0), at least one,
        so DIS keeps a core. A/B on the 2-core dev machine (int8, 1024x512, step() at l = 4 against the
        per-frame stream, 6 interleaved rounds of 40 frames, `runs`-local script): 3.09x with phi on one
        thread against 2.98x on two."""
        threads = self.threads("intra") or os.cpu_count() or 1
        return max(1, threads - 1)

    def _phi_thread(self) -> ThreadPoolExecutor:
        with self._phi_lock:
            if self._phi is None:
                self._phi = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gsvnet-phi")
            return self._phi

    def ahead(self, frame_1_8: torch.Tensor, prev_frame_1_8: torch.Tensor, *, overlap: bool = True
              ) -> Optional[Ahead]:
        """The flow (DIS on the host, or the flow graph) and phi's intra logits (the intra graph).

        With DIS and `overlap`, phi's graph runs on a helper thread while this one computes DIS. In-process
        A/Bs (int8, DIS ultrafast, 1024x512, alternating passes over 24 frames at l = 4): a `step()`
        non-keyframe 3.89 instead of 4.17 ms and 4.49 instead of 4.65 ms (4.40 / 4.84 instead of 4.88 /
        5.51 with one propagation thread); inside `segment()`, whose host thread already runs beside the
        networks, it cost 1-2 % of frames/s, so segment() asks for no overlap. Beside DIS, phi's graph
        runs on one thread fewer than configured (`_beside_dis_threads`)."""
        height, width = 8 * int(frame_1_8.shape[-2]), 8 * int(frame_1_8.shape[-1])
        cfg = self.model.cfg
        intra = None
        if overlap and cfg.use_intra and cfg.flow == "dis":  # phi's graph beside DIS: they are independent
            beside = self._beside_dis_threads()
            self.session("intra", height, width, beside)  # made (exported, quantized) on this thread
            intra = self._phi_thread().submit(self._run, "intra", height, width, {"frame_1_8": frame_1_8}, beside)
        if cfg.flow == "dis":
            flow = dis_flow_1_8(frame_1_8, prev_frame_1_8, cfg.dis_preset, cfg.dis_finest_scale)
        else:
            (flow_graph,) = self._run("flow", height, width, {"frame_1_8": frame_1_8,
                                                              "prev_frame_1_8": prev_frame_1_8})
            flow = torch.from_numpy(flow_graph)
        if intra is not None:
            (intra_graph,) = intra.result()
            intra = torch.from_numpy(intra_graph)
        elif cfg.use_intra:
            (intra_graph,) = self._run("intra", height, width, {"frame_1_8": frame_1_8})
            intra = torch.from_numpy(intra_graph)
        return Ahead(flow_1_8=flow, intra_1_8=intra)

    def propagate(self, frame_1_8: torch.Tensor, prev_frame_1_8: torch.Tensor,
                  prev_logits_1_8: torch.Tensor, ahead: Optional[Ahead] = None) -> torch.Tensor:
        """`ahead` (the flow and phi's graph, unless given), the warp (Eq. 1) in torch, the warped logits'
        labels (`warped_labels`), the correction graph (the guide's weights), and Eq. 2's weighted sum on the
        host (`fused`)."""
        height, width = 8 * int(frame_1_8.shape[-2]), 8 * int(frame_1_8.shape[-1])
        if ahead is None or ahead.flow_1_8 is None or (self.model.cfg.use_intra and ahead.intra_1_8 is None):
            ahead = self.ahead(frame_1_8, prev_frame_1_8)
        warped = self.model.warp(prev_logits_1_8.to("cpu", torch.float32), ahead.flow_1_8)
        feeds = {"warped_1_8": warped, "labels_1_8": warped_labels(warped)}  # the edge map's argmax
        if ahead.intra_1_8 is not None:
            feeds["intra_1_8"] = ahead.intra_1_8
        (weights,) = self._run("propagation", height, width, feeds)
        return fused(self.model.gsv, warped, torch.from_numpy(weights), ahead.intra_1_8)  # Eq. 2's sum

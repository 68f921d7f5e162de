"""ONNX Runtime backend: the exported keyframe and propagation graphs, one session pair per frame size.

Graphs have static shapes, so each frame size gets its own sessions; the sessions of at most
`max_sizes` sizes stay in memory (least recently used closed first), so a stream of ever new
sizes cannot grow memory without bound. A size seen again after eviction reloads its graphs from
the disk cache (no export).
"""
from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from ..config import ConfigError, GSVNetConfig, RuntimeConfig
from ..models.dis_flow import dis_flow_1_8
from ..models.gsvnet import GSVNet
from .base import Backend
from .onnx_export import (DEFAULT_CACHE_MAX_MB, PARTS, PRECISIONS, cached_export, default_cache_dir,
                          model_fingerprint)

__all__ = ["OnnxRuntimeBackend", "onnxruntime_available", "session_options", "DEFAULT_MAX_SIZES"]

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


class OnnxRuntimeBackend(Backend):
    """Runs GSVNet's two steps as ONNX graphs exported on first use of a size (and cached on disk).

    Uses the CUDA execution provider when `device` is CUDA and the installed onnxruntime has it
    (onnxruntime-gpu); the CPU provider otherwise. Tensors cross to the session as numpy on the CPU.
    """

    name = "onnxruntime"

    def __init__(self, model: GSVNet, *, threads: int = 0, use_cuda: bool = False,
                 cache_dir: Optional[str] = None, precision: str = "fp32",
                 cache_max_mb: int = DEFAULT_CACHE_MAX_MB, max_sizes: int = DEFAULT_MAX_SIZES) -> None:
        import onnxruntime as ort

        if isinstance(max_sizes, bool) or not isinstance(max_sizes, int) or max_sizes < 1:
            raise ValueError(f"runtime.onnx_max_sizes must be an integer >= 1, got {max_sizes!r}")

        self._ort = ort
        self.model = model.eval().to("cpu", torch.float32)
        self.model_name = model.cfg.keyframe_net
        self.num_classes = model.num_classes
        self.device = torch.device("cpu")
        self._threads = threads
        self._cache_dir = Path(cache_dir) if cache_dir else None
        self._cache_max_mb = cache_max_mb
        self.precision = precision  # of the keyframe graph; propagation is always fp32
        self._fingerprint = model_fingerprint(self.model)
        available = ort.get_available_providers()
        self.providers = (["CUDAExecutionProvider", "CPUExecutionProvider"]
                          if use_cuda and "CUDAExecutionProvider" in available
                          else ["CPUExecutionProvider"])
        if precision not in PRECISIONS:
            raise ValueError(f"runtime.onnx_precision must be one of {PRECISIONS}, got {precision!r}")
        if precision == "int8" and self.providers[0] == "CUDAExecutionProvider":
            raise ValueError("runtime.onnx_precision int8 is for the CPU execution provider; expected fp32 "
                             "with CUDA (or backend: torch with half: true)")
        self.max_sizes = max_sizes
        # (height, width) -> {part: InferenceSession}, least recently used first.
        self._sessions: OrderedDict[tuple[int, int], dict[str, Any]] = OrderedDict()
        self._check_cache_dir()

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
                   cache_max_mb=cfg.runtime.onnx_cache_max_mb, max_sizes=cfg.runtime.onnx_max_sizes)

    def describe(self) -> str:
        precision = "" if self.precision == "fp32" else f", {self.precision} keyframe graph"
        return f"{self.name} backend ({self.providers[0]}{precision}), {self.model_name}"

    def graph_path(self, part: str, height: int, width: int) -> Path:
        """The verified cached graph of `part` for full-resolution frames of height x width (exported once)."""
        precision = self.precision if part == "keyframe" else "fp32"
        try:
            return cached_export(self.model, part, height, width, self._cache_dir, self._fingerprint,
                                 precision, self._cache_max_mb)
        except OSError as exc:
            raise ConfigError(f"{self._cache_setting()}: cannot write the {part} graph for "
                              f"{width}x{height} frames: {exc}") from None

    @property
    def session_count(self) -> int:
        """InferenceSessions held in memory now (at most 2 * max_sizes)."""
        return sum(len(parts) for parts in self._sessions.values())

    @property
    def cached_sizes(self) -> list[tuple[int, int]]:
        """(height, width) of the sizes whose sessions are in memory, least recently used first."""
        return list(self._sessions)

    def session(self, part: str, height: int, width: int):
        """The InferenceSession for `part` at full-resolution size height x width.

        Using a size makes it the most recently used; a new size beyond `max_sizes` closes the
        sessions of the least recently used one first.
        """
        if part not in PARTS:
            raise ValueError(f"unknown part {part!r}; expected one of {PARTS}")
        key = (height, width)
        parts = self._sessions.get(key)
        if parts is None:
            while len(self._sessions) >= self.max_sizes:
                _, evicted = self._sessions.popitem(last=False)
                evicted.clear()  # the last references: ONNX Runtime frees the sessions now
            parts = self._sessions[key] = {}
        else:
            self._sessions.move_to_end(key)
        if part not in parts:
            parts[part] = self._ort.InferenceSession(
                str(self.graph_path(part, height, width)), session_options(self._threads),
                providers=self.providers)
        return parts[part]

    @staticmethod
    def _numpy(tensor: torch.Tensor) -> np.ndarray:
        return tensor.detach().to("cpu", torch.float32).contiguous().numpy()

    def keyframe(self, frame: torch.Tensor) -> torch.Tensor:
        height, width = int(frame.shape[-2]), int(frame.shape[-1])
        (logits,) = self.session("keyframe", height, width).run(None, {"frame": self._numpy(frame)})
        return torch.from_numpy(logits)

    def propagate(self, frame_1_8: torch.Tensor, prev_frame_1_8: torch.Tensor,
                  prev_logits_1_8: torch.Tensor) -> torch.Tensor:
        height, width = 8 * int(frame_1_8.shape[-2]), 8 * int(frame_1_8.shape[-1])
        if self.model.cfg.flow == "dis":  # DIS on the host; the graph takes the flow as input
            cfg = self.model.cfg
            flow = dis_flow_1_8(frame_1_8, prev_frame_1_8, cfg.dis_preset, cfg.dis_finest_scale)
            second = {"flow_1_8": self._numpy(flow)}
        else:
            second = {"prev_frame_1_8": self._numpy(prev_frame_1_8)}
        feeds = {"frame_1_8": self._numpy(frame_1_8), **second,
                 "prev_logits_1_8": self._numpy(prev_logits_1_8)}
        session = self.session("propagation", height, width)
        # The exporter drops inputs a graph does not use (with DIS and no phi, the frame itself).
        used = {node.name for node in session.get_inputs()}
        (logits,) = session.run(None, {name: value for name, value in feeds.items() if name in used})
        return torch.from_numpy(logits)

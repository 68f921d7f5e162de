"""Export GSVNet's keyframe and propagation steps to ONNX, cached by weight hash and input size."""
from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import tempfile
import threading
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Iterable, Optional

import torch
import torch.nn as nn

from .. import __version__
from ..config import RuntimeConfig
from ..models.gsvnet import GSVNet
from ..models.preprocess import normalize
from ..reporting import file_sha256

__all__ = [
    "OPSET",
    "PARTS",
    "PRECISIONS",
    "default_cache_dir",
    "model_fingerprint",
    "export_part",
    "GRAPH_INPUTS",
    "GRAPH_OUTPUTS",
    "model_parts",
    "cached_export",
    "prune_cache",
    "DEFAULT_CACHE_MAX_MB",
]

OPSET = 17  # (grid_sample, in the graphs until GRAPH_VERSION 2, needed >= 16)
PARTS = ("keyframe", "intra", "propagation", "flow")
PRECISIONS = ("fp32", "int8")
# Bump whenever the exported graphs change for the same weights, so caches written by an older
# gsvnet_ros are rebuilt rather than reused.
# 2: a flow graph (learned flow) and a correction graph: warped logits -> Eq. 2's weights
# 3: phi in its own graph ("intra"), the correction graph takes its output
# 4: the edge map's argmax on the host: the correction graph takes the labels
GRAPH_VERSION = 5  # 5: phi's and G's last layers padded to 16-channel multiples (`_zero_padded`)
# torch.onnx.export keeps its state in module globals: two exports at once (segment()'s host thread and
# the networks' thread each meeting a graph for the first time) fail in torch's own assertion
# ("GLOBALS.in_onnx_export must be True"). One export at a time per process.
_EXPORT_LOCK = threading.Lock()
# Exported graphs kept on disk (least recently used evicted first): ~50 MB per fp32 keyframe graph,
# so several weight sets x sizes fit, and retraining does not fill the disk with stale graphs.
DEFAULT_CACHE_MAX_MB = RuntimeConfig.onnx_cache_max_mb


# ONNX Runtime's CPU convolutions (int8 QLinearConv above all) run a layer whose output channels are not a
# multiple of 16 far below their rate: in the int8 correction graph G's last conv (32 -> 11) took 0.28 ms
# for 26 MMAC, and phi's (32 -> 19) 0.33 ms for 45 MMAC, against 0.21 ms for phi's 32 -> 32 (151 MMAC).
# The exported graphs therefore pad those layers with zero output channels, sliced off after the layer.
# The real channels compute exactly what they did: per-output-channel weights and bias, and a zero channel
# widens no activation range (int8 ranges always hold 0).
_CHANNEL_BLOCK = 16
PAD_CHANNELS = True  # False exports the layers as they are (tests compare the two)


class _SliceChannels(nn.Module):
    """`layers`, then the first `channels` channels of their output."""

    def __init__(self, layers: nn.Module, channels: int) -> None:
        super().__init__()
        self.layers, self.channels = layers, channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)[:, :self.channels]


def _zero_padded(layers: nn.Sequential) -> nn.Module:
    """Conv2d (+ BatchNorm2d) (+ ReLU) with its output channels padded with zeros up to a multiple of
    `_CHANNEL_BLOCK`, then sliced back: the same output. The padded channels are exactly 0 before the
    slice (zero weights and bias; a padded BatchNorm maps 0 to 0)."""
    conv = layers[0]
    channels = conv.out_channels
    extra = -channels % _CHANNEL_BLOCK
    if extra == 0:
        return layers
    padded = copy.deepcopy(layers)
    wide = nn.Conv2d(conv.in_channels, channels + extra, conv.kernel_size, conv.stride, conv.padding,
                     conv.dilation, conv.groups, conv.bias is not None)
    with torch.no_grad():
        wide.weight.zero_()
        wide.weight[:channels] = conv.weight
        if conv.bias is not None:
            wide.bias.zero_()
            wide.bias[:channels] = conv.bias
    padded[0] = wide
    for index, layer in enumerate(padded):
        if isinstance(layer, nn.BatchNorm2d):  # mean 0, var 1, scale 1, shift 0: 0 -> 0
            norm = nn.BatchNorm2d(channels + extra, eps=layer.eps).eval()
            with torch.no_grad():
                norm.weight.fill_(1.0)
                norm.bias.zero_()
                norm.running_mean.zero_()
                norm.running_var.fill_(1.0)
                norm.weight[:channels] = layer.weight
                norm.bias[:channels] = layer.bias
                norm.running_mean[:channels] = layer.running_mean
                norm.running_var[:channels] = layer.running_var
            padded[index] = norm
    return _SliceChannels(padded, channels)


def _export_copy(model: GSVNet) -> GSVNet:
    """A copy of `model` whose phi and G end in channel-padded layers (`_zero_padded`), for export."""
    model = copy.deepcopy(model)
    gsv = model.gsv
    if gsv.intra is not None:
        gsv.intra.layers[-1] = _zero_padded(nn.Sequential(gsv.intra.layers[-1]))
    gsv.guide.d = _zero_padded(gsv.guide.d)
    return model


class _KeyframeGraph(nn.Module):
    """frame (1, 3, H, W) float RGB [0, 1] -> logits (1, C, H/8, W/8)."""

    def __init__(self, model: GSVNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, frame: torch.Tensor) -> torch.Tensor:
        return self.model.keyframe_forward(frame)


class _FlowGraph(nn.Module):
    """(frame_1_8, prev_frame_1_8) float RGB [0, 1] -> flow_1_8: the flow net O (model.flow: learned)."""

    def __init__(self, model: GSVNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, frame_1_8: torch.Tensor, prev_frame_1_8: torch.Tensor) -> torch.Tensor:
        return self.model.flow(normalize(frame_1_8), normalize(prev_frame_1_8))


class _IntraGraph(nn.Module):
    """frame_1_8 float RGB [0, 1] -> phi's intra logits (model.use_intra). It needs no previous logits,
    so it runs before the warp, beside DIS (`OnnxRuntimeBackend.ahead`)."""

    def __init__(self, model: GSVNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, frame_1_8: torch.Tensor) -> torch.Tensor:
        return self.model.intra_logits(frame_1_8)


class _CorrectionGraph(nn.Module):
    """(warped_1_8, intra_1_8, labels_1_8) -> the guide's weights: the guiding net G of the spatially-varying
    correction (Eq. 2), with the edge map of the warped logits from their labels (argmax, computed on the
    host by `labels_kernel`). The host runs the flow (DIS, or the "flow" graph), the warp (Eq. 1), phi
    (the "intra" graph), the labels and Eq. 2's final weighted sum (`fusion_kernel`, or torch):
    in one graph, ONNX Runtime's CPU GridSample took 1.1 ms of the 5.3 ms fp32 DIS graph at 1024x512
    (2 threads, `gsvnet-bench --op-profile`; torch's grid_sample 0.2 ms) and the sum's broadcast
    Mul/Add/Slice kernels 0.8 ms (torch 0.3 ms). Without phi, intra_1_8 is unused (dropped)."""

    def __init__(self, model: GSVNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, warped_1_8: torch.Tensor, intra_1_8: torch.Tensor, labels_1_8: torch.Tensor
                ) -> torch.Tensor:
        return self.model.guide_weights(warped_1_8, intra_1_8 if self.model.cfg.use_intra else None,
                                        labels_1_8)


GRAPH_INPUTS = {"keyframe": ["frame"], "flow": ["frame_1_8", "prev_frame_1_8"], "intra": ["frame_1_8"],
                "propagation": ["warped_1_8", "intra_1_8", "labels_1_8"]}


# the guide's weights are summed on the host with the shifted warped logits and phi's (onnxruntime_backend.fused)
GRAPH_OUTPUTS = {"keyframe": ["logits_1_8"], "flow": ["flow_1_8"], "intra": ["intra_1_8"],
                 "propagation": ["weights_1_8"]}


def model_parts(model: GSVNet) -> tuple[str, ...]:
    """The graphs a model runs as: the intra graph only with phi (model.use_intra), the flow graph only
    with model.flow: learned (DIS runs on the host)."""
    return tuple(part for part in PARTS if (part != "intra" or model.cfg.use_intra)
                 and (part != "flow" or model.cfg.flow == "learned"))


def default_cache_dir() -> Path:
    """~/.cache/gsvnet_ros/onnx, or $XDG_CACHE_HOME/gsvnet_ros/onnx."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gsvnet_ros" / "onnx"


def model_fingerprint(model: GSVNet) -> str:
    """sha256 over the model config and every parameter and buffer (names, shapes, bytes)."""
    digest = hashlib.sha256(json.dumps(asdict(model.cfg), sort_keys=True).encode())
    digest.update(f"{torch.__version__}|{__version__}|opset{OPSET}|graph{GRAPH_VERSION}".encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


def _example_inputs(model: GSVNet, part: str, height: int, width: int) -> tuple[torch.Tensor, ...]:
    if part == "keyframe":
        return (torch.rand(1, 3, height, width),)
    h8, w8 = height // 8, width // 8
    if part == "flow":
        return (torch.rand(1, 3, h8, w8), torch.rand(1, 3, h8, w8))
    if part == "intra":
        return (torch.rand(1, 3, h8, w8),)
    warped = torch.randn(1, model.num_classes, h8, w8)
    return (warped, torch.randn(1, model.num_classes, h8, w8), warped.argmax(1, keepdim=True).float())


def export_part(model: GSVNet, part: str, height: int, width: int, path: Path) -> None:
    """Write the ONNX graph of one part for frames of height x width to `path` (atomically)."""
    if part not in model_parts(model):
        raise ValueError(f"unknown part {part!r} for model.flow {model.cfg.flow} and use_intra "
                         f"{model.cfg.use_intra}; expected one of "
                         f"{model_parts(model)}")
    if part in ("intra", "propagation") and PAD_CHANNELS:
        model = _export_copy(model)
    graph = {"keyframe": _KeyframeGraph, "flow": _FlowGraph, "intra": _IntraGraph,
             "propagation": _CorrectionGraph}[part](model)
    graph = graph.eval().to("cpu", torch.float32)
    inputs = _example_inputs(model, part, height, width)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with _EXPORT_LOCK, warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
            torch.onnx.export(graph, inputs, tmp_name, input_names=GRAPH_INPUTS[part],
                              output_names=GRAPH_OUTPUTS[part],
                              opset_version=OPSET, dynamo=False, do_constant_folding=True)
        os.replace(tmp_name, path)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


def _graph_is_valid(graph_path: Path, sidecar_path: Path, key: str) -> bool:
    """True when the graph's bytes match its sidecar's sha256 and the sidecar holds `key`."""
    if not (graph_path.is_file() and sidecar_path.is_file()):
        return False
    try:
        sidecar = json.loads(sidecar_path.read_text())
    except (OSError, ValueError):
        return False
    return sidecar.get("fingerprint") == key and sidecar.get("sha256") == file_sha256(graph_path)


def cached_export(model: GSVNet, part: str, height: int, width: int,
                  cache_dir: Optional[Path] = None, fingerprint: Optional[str] = None,
                  precision: str = "fp32", max_cache_mb: int = DEFAULT_CACHE_MAX_MB) -> Path:
    """Path of a verified ONNX file for (model weights, part, size, precision), exporting it when needed.

    Each graph has a sidecar JSON holding the cache key (the model fingerprint; for int8 also the
    quantization recipe) and the sha256 of the graph file. A graph whose bytes no longer match its
    sidecar (corrupt, truncated, replaced) or whose key is another model's is rebuilt, never used.
    `precision` int8 quantizes the fp32 graph of either part (backends/onnx_quantize.py). A hit refreshes
    the graph's mtime; after an export the least recently used graphs are evicted until the cache
    holds at most `max_cache_mb` (0 = no limit), never the graphs this call returns or reads.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected one of {PRECISIONS}")
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    fingerprint = fingerprint or model_fingerprint(model)
    key = fingerprint
    if precision == "int8":
        from .onnx_quantize import int8_recipe

        key = hashlib.sha256(f"{fingerprint}|{int8_recipe(part)}".encode()).hexdigest()
    suffix = "" if precision == "fp32" else f"_{precision}"
    stem = f"{model.cfg.keyframe_net}_{part}{suffix}_{height}x{width}_{key[:16]}"
    graph_path, sidecar_path = cache_dir / f"{stem}.onnx", cache_dir / f"{stem}.json"
    if _graph_is_valid(graph_path, sidecar_path, key):
        with contextlib.suppress(OSError):  # a read-only cache is still usable
            os.utime(graph_path)  # recently used: the last to be evicted
        return graph_path
    keep = [graph_path]
    if precision == "fp32":
        export_part(model, part, height, width, graph_path)
    else:
        from .onnx_quantize import quantize_graph

        source = cached_export(model, part, height, width, cache_dir, fingerprint, "fp32", max_cache_mb)
        quantize_graph(model, part, source, graph_path, height, width)
        keep.append(source)
    sidecar = {"fingerprint": key, "sha256": file_sha256(graph_path), "part": part, "precision": precision,
               "size": [height, width], "opset": OPSET, "torch": torch.__version__}
    tmp_sidecar = sidecar_path.with_suffix(".json.tmp")
    tmp_sidecar.write_text(json.dumps(sidecar, indent=1))
    os.replace(tmp_sidecar, sidecar_path)
    if max_cache_mb:
        prune_cache(cache_dir, max_cache_mb * 2**20, keep)
    return graph_path


def prune_cache(cache_dir: Path, max_bytes: int, keep: Iterable[Path] = ()) -> list[Path]:
    """Delete the least recently used graphs (and their sidecars) until `cache_dir` holds at most
    `max_bytes` of graphs; never one in `keep`. Returns the deleted graphs, oldest first."""
    protected = {Path(path).resolve() for path in keep}
    graphs = []
    for path in Path(cache_dir).glob("*.onnx"):
        try:
            stat = path.stat()
        except FileNotFoundError:  # removed by another process meanwhile
            continue
        graphs.append((stat.st_mtime, stat.st_size, path))
    total = sum(size for _, size, _ in graphs)
    removed = []
    for _, size, path in sorted(graphs):
        if total <= max_bytes:
            break
        if path.resolve() in protected:
            continue
        for victim in (path, path.with_suffix(".json")):
            with contextlib.suppress(FileNotFoundError):
                victim.unlink()
        total -= size
        removed.append(path)
    return removed

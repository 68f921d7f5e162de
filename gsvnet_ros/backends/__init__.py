"""Inference backends behind one interface: eager PyTorch and ONNX Runtime."""
from __future__ import annotations

from ..config import GSVNetConfig
from .base import Backend, resolve_device

__all__ = ["Backend", "build_backend", "build_model", "choose_backend", "resolve_device"]


def choose_backend(cfg: GSVNetConfig) -> str:
    """'torch' or 'onnxruntime': `auto` means ONNX Runtime on the CPU when installed, torch on CUDA."""
    from .onnxruntime_backend import onnxruntime_available

    wanted = cfg.runtime.backend
    if wanted == "auto":
        on_cpu = resolve_device(cfg.runtime.device).type == "cpu"
        return "onnxruntime" if on_cpu and onnxruntime_available() else "torch"
    if wanted == "onnxruntime" and not onnxruntime_available():
        raise RuntimeError("backend 'onnxruntime' was asked for but the onnxruntime package is not "
                           "installed; expected `pip install onnxruntime` or backend: torch")
    return wanted


def build_model(cfg: GSVNetConfig):
    """The GSVNet of `cfg.model` with `cfg.runtime` weight files loaded (untrained where none given).

    A keyframe + propagation pair must be one the propagation file was trained with
    (models.weights.check_lineage), trained with the configured flow (check_flow);
    runtime.allow_mismatched_weights turns either into a warning.
    """
    from ..models.gsvnet import build_gsvnet
    from ..models.weights import check_flow, check_lineage, load_weights

    model = build_gsvnet(cfg.model)
    runtime = cfg.runtime
    if runtime.keyframe_weights:
        load_weights(model, runtime.keyframe_weights, part="keyframe")
    if runtime.propagation_weights:
        meta = load_weights(model, runtime.propagation_weights, part="propagation")
        check_flow(runtime.propagation_weights, meta, cfg.model.flow,
                   allow_mismatch=runtime.allow_mismatched_weights)
        if runtime.keyframe_weights:  # a pair: the propagation file must be the keyframe file's
            check_lineage(runtime.keyframe_weights, runtime.propagation_weights, meta,
                          allow_mismatch=runtime.allow_mismatched_weights)
    return model.eval()


def build_backend(cfg: GSVNetConfig, model=None) -> Backend:
    """The backend `cfg` asks for, on `model` or on a model built and loaded from `cfg`."""
    import torch

    if cfg.runtime.threads:
        torch.set_num_threads(cfg.runtime.threads)
    model = build_model(cfg) if model is None else model
    if choose_backend(cfg) == "onnxruntime":
        from .onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend.from_config(cfg, model)
    from .torch_backend import TorchBackend

    return TorchBackend(model, resolve_device(cfg.runtime.device), half=cfg.runtime.half,
                        channels_last=cfg.runtime.channels_last)

"""Inference backends behind one interface: eager PyTorch and ONNX Runtime."""
from __future__ import annotations

from ..config import GSVNetConfig
from .base import Backend, resolve_device

__all__ = ["Backend", "build_backend", "resolve_device"]


def build_backend(cfg: GSVNetConfig) -> Backend:
    """The backend `cfg.runtime.backend` names; 'auto' = ONNX Runtime on CPU when installed, else torch."""
    from .torch_backend import TorchBackend

    return TorchBackend.from_config(cfg)

"""PyTorch backend: runs `models.GSVNet` directly (CPU or CUDA, optional fp16 and channels_last)."""
from __future__ import annotations

import torch

from ..config import GSVNetConfig
from ..models.build import build_gsvnet
from ..models.gsvnet import GSVNet
from .base import Backend, resolve_device

__all__ = ["TorchBackend"]


class TorchBackend(Backend):
    """Eager PyTorch inference of a GSVNet in eval mode."""

    name = "torch"

    def __init__(self, model: GSVNet, device: torch.device, *, half: bool = False,
                 channels_last: bool = False) -> None:
        accelerated = device.type == "cuda"
        self.dtype = torch.float16 if (half and accelerated) else torch.float32
        self.memory_format = (torch.channels_last if (channels_last and accelerated)
                              else torch.contiguous_format)
        self.model = model.eval().to(device=device, dtype=self.dtype,
                                     memory_format=self.memory_format)
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)
        self.device = device
        self.model_name = model.cfg.keyframe_net
        self.num_classes = model.num_classes

    @classmethod
    def from_config(cls, cfg: GSVNetConfig, model: GSVNet | None = None) -> "TorchBackend":
        """Build the model of `cfg.model`, load `cfg.runtime` weights, place it on the device."""
        from ..models.weights import load_weights

        if model is None:
            model = build_gsvnet(cfg.model)
            if cfg.runtime.keyframe_weights:
                load_weights(model, cfg.runtime.keyframe_weights, part="keyframe")
            if cfg.runtime.propagation_weights:
                load_weights(model, cfg.runtime.propagation_weights, part="propagation")
        if cfg.runtime.threads:
            torch.set_num_threads(cfg.runtime.threads)
        return cls(model, resolve_device(cfg.runtime.device), half=cfg.runtime.half,
                   channels_last=cfg.runtime.channels_last)

    def _cast(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.to(dtype=self.dtype, memory_format=self.memory_format)

    def keyframe(self, frame: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.model.keyframe_forward(self._cast(frame)).float()

    def propagate(self, frame_1_8: torch.Tensor, prev_frame_1_8: torch.Tensor,
                  prev_logits_1_8: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            logits = self.model.propagate_forward(self._cast(frame_1_8), self._cast(prev_frame_1_8),
                                                  self._cast(prev_logits_1_8))
            return logits.float()

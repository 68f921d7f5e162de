"""PyTorch backend: runs `models.GSVNet` directly (CPU or CUDA, optional fp16 and channels_last)."""
from __future__ import annotations

from typing import Optional

import torch

from ..models.dis_flow import dis_flow_1_8
from ..models.gsvnet import GSVNet
from .base import Ahead, Backend

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

    def _cast(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.to(dtype=self.dtype, memory_format=self.memory_format)

    def keyframe(self, frame: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.model.keyframe_forward(self._cast(frame)).float()

    def propagate(self, frame_1_8: torch.Tensor, prev_frame_1_8: torch.Tensor,
                  prev_logits_1_8: torch.Tensor, ahead: Optional[Ahead] = None) -> torch.Tensor:
        with torch.inference_mode():
            if ahead is not None and ahead.flow_1_8 is not None:
                logits = self.model.propagate_with_flow(self._cast(frame_1_8), self._cast(ahead.flow_1_8),
                                                        self._cast(prev_logits_1_8))
            else:
                logits = self.model.propagate_forward(self._cast(frame_1_8), self._cast(prev_frame_1_8),
                                                      self._cast(prev_logits_1_8))
            return logits.float()

    def ahead(self, frame_1_8: torch.Tensor, prev_frame_1_8: torch.Tensor, *, overlap: bool = True
              ) -> Optional[Ahead]:
        """The DIS flow (model.flow: dis); the networks run on the device in propagate."""
        cfg = self.model.cfg
        if cfg.flow != "dis":
            return None
        return Ahead(flow_1_8=dis_flow_1_8(frame_1_8, prev_frame_1_8, cfg.dis_preset, cfg.dis_finest_scale))

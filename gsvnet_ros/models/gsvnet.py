"""GSVNet: stateless keyframe and propagation steps (paper Sec. 3, Fig. 2); the stream owns all state."""
from __future__ import annotations

from typing import Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import ModelConfig
from .dis_flow import dis_flow_1_8
from .flownet import FlowNetHFFB
from .gsv import GuidedSpatiallyVaryingConv
from .keyframe_nets import build_keyframe_net
from .preprocess import normalize, resize_to_scale
from .warp import backward_warp

__all__ = ["GSVNet", "SIZE_MULTIPLE", "build_gsvnet", "check_frame_size"]

SIZE_MULTIPLE = 32  # full-resolution H, W; the guiding net downsamples x4 from 1/8


def check_frame_size(height: int, width: int, what: str = "frame") -> None:
    """Raise ValueError unless the full-resolution size is a multiple of 32 on both sides."""
    if height <= 0 or width <= 0 or height % SIZE_MULTIPLE or width % SIZE_MULTIPLE:
        raise ValueError(f"{what} size {height}x{width} (HxW) is not supported: height and width must be "
                         f"positive multiples of {SIZE_MULTIPLE} at full resolution (multiples of "
                         f"{SIZE_MULTIPLE // 8} at 1/8)")


def _check_batch(name: str, tensor: torch.Tensor, channels: int) -> None:
    if tensor.dim() != 4 or tensor.shape[1] != channels:
        raise ValueError(f"{name}: expected shape (B, {channels}, h, w), got {tuple(tensor.shape)}")


class GSVNet(nn.Module):
    """Keyframe net N + flow net O + guided spatially-varying convolution, built from a ModelConfig."""

    def __init__(self, cfg: ModelConfig, keyframe_net: nn.Module | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.keyframe_net = keyframe_net if keyframe_net is not None else \
            build_keyframe_net(cfg.keyframe_net, cfg.num_classes)
        self.flow_net = FlowNetHFFB()
        self.gsv = GuidedSpatiallyVaryingConv(cfg.num_classes, kernel_size=cfg.kernel_size,
                                              learnable_kernels=cfg.learnable_kernels, fusion=cfg.fusion,
                                              edge=cfg.edge, use_intra=cfg.use_intra)

    @property
    def num_classes(self) -> int:
        return self.cfg.num_classes

    def keyframe_forward(self, frame: torch.Tensor) -> torch.Tensor:
        """frame (B, 3, H, W) float RGB in [0, 1] -> logits (B, C, H/8, W/8).

        The frame is resized to cfg.keyframe_scale (preprocess.scaled_size), normalised and segmented;
        the logits are resized bilinearly to 1/8 of the FULL frame, not of the scaled one.
        """
        _check_batch("keyframe_forward frame", frame, 3)
        height, width = int(frame.shape[-2]), int(frame.shape[-1])
        check_frame_size(height, width)
        logits = self.keyframe_net(normalize(resize_to_scale(frame, self.cfg.keyframe_scale)))
        return F.interpolate(logits, size=(height // 8, width // 8), mode="bilinear", align_corners=False)

    def flow(self, frame_1_8: torch.Tensor, prev_frame_1_8: torch.Tensor) -> torch.Tensor:
        """Backward flow I_t -> I_{t-1} at 1/8, pixels of the 1/8 grid; frames normalised."""
        return self.flow_net(torch.cat((frame_1_8, prev_frame_1_8), dim=1))

    def propagate_forward(self, frame_1_8: torch.Tensor, prev_frame_1_8: torch.Tensor,
                          prev_logits_1_8: torch.Tensor) -> torch.Tensor:
        """One non-keyframe step: frames float RGB [0, 1] at 1/8, previous logits at 1/8 -> logits at 1/8.

        flow = O(cat(I_t, I_{t-1})) (or DIS, model.flow); S^- = warp(S_{t-1}, flow) (Eq. 1);
        S_t = GSV(S^-, I_t) (Eq. 2).
        """
        _check_batch("propagate_forward frame_1_8", frame_1_8, 3)
        _check_batch("propagate_forward prev_frame_1_8", prev_frame_1_8, 3)
        _check_batch("propagate_forward prev_logits_1_8", prev_logits_1_8, self.num_classes)
        size = tuple(frame_1_8.shape[-2:])
        if tuple(prev_frame_1_8.shape[-2:]) != size or tuple(prev_logits_1_8.shape[-2:]) != size:
            raise ValueError(f"propagate_forward: frame_1_8 {tuple(frame_1_8.shape)}, prev_frame_1_8 "
                             f"{tuple(prev_frame_1_8.shape)} and prev_logits_1_8 "
                             f"{tuple(prev_logits_1_8.shape)} must share h, w")
        height, width = int(size[0]), int(size[1])
        if height <= 0 or width <= 0 or height % 4 or width % 4:
            raise ValueError(f"propagate_forward: 1/8-resolution size {height}x{width} (hxw) is not "
                             f"supported: h and w must be positive multiples of 4 (full-resolution "
                             f"frames multiples of {SIZE_MULTIPLE})")
        current = normalize(frame_1_8)
        if self.cfg.flow == "dis":
            flow = dis_flow_1_8(frame_1_8, prev_frame_1_8, self.cfg.dis_preset,
                                self.cfg.dis_finest_scale)
        else:
            flow = self.flow(current, normalize(prev_frame_1_8))
        return self._warp_and_correct(current, flow, prev_logits_1_8)

    def propagate_with_flow(self, frame_1_8: torch.Tensor, flow_1_8: torch.Tensor,
                            prev_logits_1_8: torch.Tensor) -> torch.Tensor:
        """The non-keyframe step with the flow given (DIS computed on the host): warp + GSV."""
        _check_batch("propagate_with_flow frame_1_8", frame_1_8, 3)
        _check_batch("propagate_with_flow flow_1_8", flow_1_8, 2)
        return self._warp_and_correct(normalize(frame_1_8), flow_1_8, prev_logits_1_8)

    def correct_warped(self, frame_1_8: torch.Tensor, warped_1_8: torch.Tensor) -> torch.Tensor:
        """S_t = GSV(S^-, I_t) (Eq. 2) for a frame (float RGB [0, 1] at 1/8) and its warped logits S^-:
        the part of a DIS non-keyframe that runs as a network (the ONNX propagation graph)."""
        _check_batch("correct_warped frame_1_8", frame_1_8, 3)
        _check_batch("correct_warped warped_1_8", warped_1_8, self.num_classes)
        return self.gsv(warped_1_8, normalize(frame_1_8))

    def intra_logits(self, frame_1_8: torch.Tensor) -> torch.Tensor | None:
        """phi's intra-frame prediction f_i for a frame (float RGB [0, 1] at 1/8); None without phi. It
        needs no previous logits, so the ONNX backend runs it as its own graph, ahead of the warp."""
        _check_batch("intra_logits frame_1_8", frame_1_8, 3)
        return self.gsv.intra(normalize(frame_1_8)) if self.gsv.intra is not None else None

    def guide_weights(self, warped_1_8: torch.Tensor, intra_1_8: torch.Tensor | None,
                      labels_1_8: torch.Tensor | None = None) -> torch.Tensor:
        """The guide's per-pixel weights for S^- and phi's prediction (`intra_logits`): Eq. 2 without its
        final weighted sum (the ONNX backend's correction graph; the host sums them,
        `onnxruntime_backend.fused`). labels_1_8: argmax(S^-) for the edge map, (B, 1, h, w), when given."""
        _check_batch("guide_weights warped_1_8", warped_1_8, self.num_classes)
        return self.gsv.guide_weights(warped_1_8, intra_1_8 if intra_1_8 is not None else warped_1_8,
                                      labels_1_8)

    def warp(self, prev_logits_1_8: torch.Tensor, flow_1_8: torch.Tensor) -> torch.Tensor:
        """S^- = warp(S_t-1, flow) (Eq. 1) with the configured padding outside the frame."""
        return backward_warp(prev_logits_1_8, flow_1_8, self.cfg.warp_padding)

    def _warp_and_correct(self, current: torch.Tensor, flow: torch.Tensor,
                          prev_logits_1_8: torch.Tensor) -> torch.Tensor:
        return self.gsv(self.warp(prev_logits_1_8, flow), current)  # Eq. 1, Eq. 2

    def keyframe_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the image net N (trained first, frozen while training propagation)."""
        return self.keyframe_net.parameters()

    def propagation_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters trained end to end for propagation: O, phi, G and learnable shift kernels."""
        yield from self.flow_net.parameters()
        yield from self.gsv.parameters()

    def propagation_modules(self) -> dict[str, nn.Module]:
        """The sub-modules a propagation weight file holds, by state_dict prefix."""
        return {"flow_net": self.flow_net, "gsv": self.gsv}


def build_gsvnet(cfg: ModelConfig) -> GSVNet:
    """GSVNet with randomly initialised weights (load trained ones with models.weights.load_weights)."""
    return GSVNet(cfg)

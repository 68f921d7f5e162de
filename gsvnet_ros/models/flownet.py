"""Lightweight optical flow net O with a hierarchical feature fusion block (paper Sec. 3.3, Fig. A8)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["ConvBNLeaky", "FlowNetHFFB"]


class ConvBNLeaky(nn.Sequential):
    """conv (with bias, as in the authors' code) -> BN -> LeakyReLU(0.1)."""

    def __init__(self, in_ch: int, out_ch: int, k: int = 3, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, k, stride, padding=dilation * (k // 2), dilation=dilation)
        self.bn = nn.BatchNorm2d(out_ch)
        self.act = nn.LeakyReLU(0.1)


class FlowNetHFFB(nn.Module):
    """Backward flow from I_t to I_{t-1} at 1/8 resolution; 186,402 parameters.

    Input: cat(I_t, I_{t-1}) normalised RGB at 1/8 of the frame, (B, 6, h, w), h and w multiples of 4.
    Output: (B, 2, h, w) flow, channel 0 = u (x), channel 1 = v (y), in PIXELS OF THE 1/8 GRID:
    the net predicts at h/4 x w/4 and the prediction is upsampled bilinearly x4 without rescaling
    (the unit is learnt; no division by 4 anywhere else). `to_flow` starts at zero, so an untrained
    net returns zero flow and the warp is the identity.
    """

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        mid = 2 * width
        self.conv1 = ConvBNLeaky(6, width, stride=2)
        self.conv2 = ConvBNLeaky(width, mid, stride=2)
        self.dilated = nn.ModuleList(ConvBNLeaky(mid, mid, dilation=d) for d in (1, 2, 4, 8))
        self.merge = ConvBNLeaky(4 * mid, mid, k=1)
        self.to_flow = nn.Conv2d(mid, 2, 3, padding=1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, a=0.1, nonlinearity="leaky_relu")
                nn.init.zeros_(m.bias)
        nn.init.zeros_(self.to_flow.weight)

    def forward_coarse(self, pair: torch.Tensor) -> torch.Tensor:
        """Flow at 1/4 of the input size (1/32 of the full frame)."""
        x = self.conv2(self.conv1(pair))
        # hierarchical sum: x1 = d1, x_k = d_k + x_{k-1} (HFFB)
        fused: list[torch.Tensor] = []
        for conv in self.dilated:
            y = conv(x)
            fused.append(y if not fused else y + fused[-1])
        out = self.merge(torch.cat(fused, dim=1)) + x
        return self.to_flow(out)

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        coarse = self.forward_coarse(pair)
        return F.interpolate(coarse, scale_factor=4.0, mode="bilinear", align_corners=False)

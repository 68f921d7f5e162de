"""SwiftNet-R18 single scale (Orsic et al. 2019): ResNet-18, SPP, ladder upsampling, logits at stride 4."""
from __future__ import annotations

from typing import Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from .resnet import STAGE_CHANNELS, ResNet18

__all__ = ["BNReluConv", "SpatialPyramidPooling", "UpsampleBlock", "SwiftNetR18", "adaptive_avg_pool"]

_NUM_FEATURES = 128
_SPP_GRIDS = (8, 4, 2)


class BNReluConv(nn.Sequential):
    """BN -> ReLU -> k x k conv (pre-activation ordering used throughout SwiftNet's decoder)."""

    def __init__(self, in_ch: int, out_ch: int, k: int = 3, bias: bool = False) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(in_ch)
        self.relu = nn.ReLU()
        self.conv = nn.Conv2d(in_ch, out_ch, k, padding=k // 2, bias=bias)


def _pool_matrix(n_in: int, n_out: int, like: torch.Tensor) -> torch.Tensor:
    """(n_out, n_in) averaging matrix with adaptive_avg_pool's bins [floor(i*n/o), ceil((i+1)*n/o))."""
    rows = []
    for i in range(n_out):
        start, end = (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)
        rows.append([1.0 / (end - start) if start <= j < end else 0.0 for j in range(n_in)])
    return torch.tensor(rows, dtype=like.dtype, device=like.device)


def adaptive_avg_pool(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Same result as F.adaptive_avg_pool2d, written as two matmuls so it exports to ONNX at any ratio."""
    rows = _pool_matrix(int(x.shape[-2]), size[0], x)
    cols = _pool_matrix(int(x.shape[-1]), size[1], x)
    return rows @ x @ cols.t()


class SpatialPyramidPooling(nn.Module):
    """SPP on layer4: 512->128 bottleneck, pooled grids 8/4/2 along the short side (aspect kept), fuse."""

    def __init__(self, in_ch: int = 512, width: int = _NUM_FEATURES,
                 grids: tuple[int, ...] = _SPP_GRIDS) -> None:
        super().__init__()
        self.grids = grids
        level_ch = width // len(grids)  # 42 for 128 and 3 levels
        self.bottleneck = BNReluConv(in_ch, width, k=1)
        self.levels = nn.ModuleList(BNReluConv(width, level_ch, k=1) for _ in grids)
        self.fuse = BNReluConv(width + level_ch * len(grids), width, k=1)  # 254 -> 128

    def grid_size(self, grid: int, height: int, width: int) -> tuple[int, int]:
        """Grid cells: `grid` along the short side, the long side scaled by the aspect ratio."""
        if height <= width:
            return grid, max(1, round(grid * width / height))
        return max(1, round(grid * height / width)), grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = int(x.shape[-2]), int(x.shape[-1])
        x = self.bottleneck(x)
        levels = [x]
        for grid, level in zip(self.grids, self.levels):
            pooled = adaptive_avg_pool(x, self.grid_size(grid, height, width))
            levels.append(F.interpolate(level(pooled), size=(height, width), mode="bilinear",
                                        align_corners=False))
        return self.fuse(torch.cat(levels, dim=1))


class UpsampleBlock(nn.Module):
    """Ladder step: 1x1 bottleneck on the skip, upsample x to the skip's size, add, 3x3 blend."""

    def __init__(self, skip_ch: int, width: int = _NUM_FEATURES) -> None:
        super().__init__()
        self.skip = BNReluConv(skip_ch, width, k=1)
        self.blend = BNReluConv(width, width, k=3)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        skip = self.skip(skip)
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.blend(x + skip)


class SwiftNetR18(nn.Module):
    """SwiftNet-R18 single scale; `forward` returns logits at stride 4 (11,797,071 params for C=19)."""

    output_stride = 4

    def __init__(self, num_classes: int = 19) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.backbone = ResNet18()
        self.spp = SpatialPyramidPooling(STAGE_CHANNELS[3], _NUM_FEATURES)
        # decoder order: skip from layer3, then layer2, then layer1
        self.upsample = nn.ModuleList(UpsampleBlock(ch) for ch in reversed(STAGE_CHANNELS[:3]))
        self.logits = BNReluConv(_NUM_FEATURES, num_classes, k=1, bias=True)
        for m in [self.spp, self.upsample, self.logits]:
            for sub in m.modules():
                if isinstance(sub, nn.Conv2d):
                    nn.init.kaiming_normal_(sub.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """128-channel decoder features at stride 4 (x normalised RGB)."""
        pre = self.backbone.forward_stages(x).pre  # lateral skips before the final ReLU
        feats = self.spp(pre[3])
        for skip, block in zip(reversed(pre[:3]), self.upsample):
            feats = block(feats, skip)
        return feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(self.forward_features(x))

    def forward_train(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(main logits, auxiliary logits): SwiftNet has no auxiliary heads."""
        return self.forward(x), []

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        """ImageNet-initialisable encoder parameters (lower learning rate in SwiftNet's recipe)."""
        return self.backbone.parameters()

    def head_parameters(self) -> Iterator[nn.Parameter]:
        """Randomly initialised decoder parameters (SPP, upsampling, logits)."""
        for m in (self.spp, self.upsample, self.logits):
            yield from m.parameters()

"""BiSeNet-R18 (Yu et al. 2018, TorchSeg variant): spatial + ResNet-18 context path, logits at stride 8."""
from __future__ import annotations

from typing import Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from .resnet import ResNet18

__all__ = ["ConvBNReLU", "AttentionRefinement", "FeatureFusion", "SegHead", "SpatialPath", "BiSeNetR18"]

_WIDTH = 128  # context channels


def _resize(x: torch.Tensor, size: torch.Size | tuple[int, int]) -> torch.Tensor:
    # TorchSeg's BiSeNet resizes with align_corners=True throughout
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


class ConvBNReLU(nn.Module):
    """conv (no bias) -> BN -> optional ReLU."""

    def __init__(self, in_ch: int, out_ch: int, k: int, stride: int = 1, relu: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, k, stride, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU() if relu else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class AttentionRefinement(nn.Module):
    """ARM: 3x3 ConvBNReLU, then channel attention GAP -> 1x1 conv -> BN -> sigmoid, multiplied in."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv_3x3 = ConvBNReLU(in_ch, out_ch, 3)
        self.attention = ConvBNReLU(out_ch, out_ch, 1, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fm = self.conv_3x3(x)
        att = torch.sigmoid(self.attention(F.adaptive_avg_pool2d(fm, 1)))
        return fm * att


class FeatureFusion(nn.Module):
    """FFM: concat -> 1x1 ConvBNReLU; attention GAP -> 1x1 -> ReLU -> 1x1 -> sigmoid; out = fm + fm * att."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv_1x1 = ConvBNReLU(in_ch, out_ch, 1)
        self.att_reduce = nn.Conv2d(out_ch, out_ch, 1, bias=False)
        self.att_expand = nn.Conv2d(out_ch, out_ch, 1, bias=False)

    def forward(self, spatial: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        fm = self.conv_1x1(torch.cat([spatial, context], dim=1))
        att = F.adaptive_avg_pool2d(fm, 1)
        att = torch.sigmoid(self.att_expand(F.relu(self.att_reduce(att))))
        return fm + fm * att


class SegHead(nn.Module):
    """3x3 ConvBNReLU to `mid` channels, then 1x1 conv (with bias) to the class logits."""

    def __init__(self, in_ch: int, mid_ch: int, num_classes: int) -> None:
        super().__init__()
        self.conv_3x3 = ConvBNReLU(in_ch, mid_ch, 3)
        self.conv_1x1 = nn.Conv2d(mid_ch, num_classes, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_1x1(self.conv_3x3(x))


class SpatialPath(nn.Module):
    """7x7 s2 3->64, 3x3 s2, 3x3 s2, 1x1 -> 128: stride 8, 128 channels."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_7x7 = ConvBNReLU(3, 64, 7, 2)
        self.conv_3x3_1 = ConvBNReLU(64, 64, 3, 2)
        self.conv_3x3_2 = ConvBNReLU(64, 64, 3, 2)
        self.conv_1x1 = ConvBNReLU(64, _WIDTH, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_1x1(self.conv_3x3_2(self.conv_3x3_1(self.conv_7x7(x))))


class BiSeNetR18(nn.Module):
    """BiSeNet-R18; `forward` gives logits at stride 8 (12,894,163 params for C=19 without aux heads).

    The two auxiliary heads (on the 1/16 and 1/8 context features) are always built so that training
    and inference share one state_dict, but only `forward_train` runs them.
    """

    output_stride = 8

    def __init__(self, num_classes: int = 19) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.context_path = ResNet18()
        self.spatial_path = SpatialPath()
        self.global_context = ConvBNReLU(512, _WIDTH, 1)
        self.arms = nn.ModuleList([AttentionRefinement(512, _WIDTH), AttentionRefinement(256, _WIDTH)])
        self.refines = nn.ModuleList([ConvBNReLU(_WIDTH, _WIDTH, 3), ConvBNReLU(_WIDTH, _WIDTH, 3)])
        self.ffm = FeatureFusion(2 * _WIDTH, 2 * _WIDTH)
        self.head = SegHead(2 * _WIDTH, 64, num_classes)
        self.aux_heads = nn.ModuleList([SegHead(_WIDTH, 256, num_classes),
                                        SegHead(_WIDTH, 256, num_classes)])
        backbone = {id(m) for m in self.context_path.modules()}
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and id(m) not in backbone:
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Fused 256-channel features at stride 8 and the context features at strides 16 and 8."""
        spatial = self.spatial_path(x)
        _, c8, c16, c32 = self.context_path(x)
        # global context: GAP -> 1x1 on layer4; "upsampling" a 1x1 map is a broadcast
        last = self.global_context(F.adaptive_avg_pool2d(c32, 1))
        context: list[torch.Tensor] = []
        for fm, arm, refine, size in zip((c32, c16), self.arms, self.refines,
                                          (c16.shape[-2:], spatial.shape[-2:])):
            last = refine(_resize(arm(fm) + last, size))
            context.append(last)
        return self.ffm(spatial, last), context

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self._features(x)[0])

    def forward_train(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(main logits, [aux logits from 1/16, aux logits from 1/8]), aux resized to the main size."""
        fused, context = self._features(x)
        main = self.head(fused)
        aux = [_resize(head(feat), main.shape[-2:]) for head, feat in zip(self.aux_heads, context)]
        return main, aux

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        """ImageNet-initialisable context-path parameters."""
        return self.context_path.parameters()

    def head_parameters(self) -> Iterator[nn.Parameter]:
        """Every randomly initialised parameter (spatial path, ARMs, FFM, heads incl. aux)."""
        backbone = {id(p) for p in self.context_path.parameters()}
        return (p for p in self.parameters() if id(p) not in backbone)

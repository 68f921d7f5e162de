"""ResNet-18 encoder with torchvision state_dict names, exposing each stage's output before its last ReLU."""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["BasicBlock", "ResNet18", "StageOutputs", "STAGE_CHANNELS"]

STAGE_CHANNELS = (64, 128, 256, 512)  # layer1..layer4, strides 4/8/16/32


class StageOutputs(NamedTuple):
    """Per-stage features: `post` after the final ReLU, `pre` before it (SwiftNet's lateral skips)."""

    post: list[torch.Tensor]
    pre: list[torch.Tensor]


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 conv-BN) shortcut; torchvision layout."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False),
                                            nn.BatchNorm2d(out_ch))

    def forward_pre(self, x: torch.Tensor) -> torch.Tensor:
        """Block output before the final ReLU."""
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return out + shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.forward_pre(x))


class ResNet18(nn.Module):
    """ResNet-18 without the classifier (no avgpool/fc): conv1, bn1, maxpool, layer1..layer4."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        in_ch = 64
        for i, ch in enumerate(STAGE_CHANNELS):
            stride = 1 if i == 0 else 2
            self.add_module(f"layer{i + 1}", nn.Sequential(BasicBlock(in_ch, ch, stride),
                                                           BasicBlock(ch, ch, 1)))
            in_ch = ch
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @property
    def stages(self) -> list[nn.Sequential]:
        return [self.layer1, self.layer2, self.layer3, self.layer4]

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """conv1-bn1-relu-maxpool: stride 4, 64 channels."""
        return self.maxpool(F.relu(self.bn1(self.conv1(x))))

    def forward_stages(self, x: torch.Tensor) -> StageOutputs:
        """Run the encoder; return every stage's output after and before its last ReLU."""
        x = self.stem(x)
        post: list[torch.Tensor] = []
        pre: list[torch.Tensor] = []
        for stage in self.stages:
            *head, last = list(stage)
            for block in head:
                x = block(x)
            before = last.forward_pre(x)
            x = F.relu(before)
            pre.append(before)
            post.append(x)
        return StageOutputs(post, pre)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Post-ReLU outputs of layer1..layer4 (strides 4, 8, 16, 32)."""
        return self.forward_stages(x).post

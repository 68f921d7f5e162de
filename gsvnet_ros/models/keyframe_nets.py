"""The registry of keyframe (image) networks: name -> constructor."""
from __future__ import annotations

from typing import Callable

import torch.nn as nn

from .bisenet import BiSeNetR18
from .swiftnet import SwiftNetR18

__all__ = ["KEYFRAME_NETS", "build_keyframe_net"]

KEYFRAME_NETS: dict[str, Callable[[int], nn.Module]] = {
    "swiftnet_r18": SwiftNetR18,
    "bisenet_r18": BiSeNetR18,
}


def build_keyframe_net(name: str, num_classes: int) -> nn.Module:
    """Image segmentation net by registry name; its forward(x_normalised) returns logits at its stride."""
    try:
        factory = KEYFRAME_NETS[name]
    except KeyError:
        raise ValueError(f"unknown keyframe net {name!r}; expected one of: "
                         + ", ".join(sorted(KEYFRAME_NETS))) from None
    return factory(num_classes)


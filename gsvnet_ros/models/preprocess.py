"""Input preprocessing shared by every network: ImageNet normalisation, 1/8 downsampling, rescaling."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "normalize", "downsample_1_8", "scaled_size",
           "resize_to_scale"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize(x01: torch.Tensor) -> torch.Tensor:
    """ImageNet mean/std normalisation of float RGB in [0, 1], shape (B, 3, H, W); returns a new tensor."""
    mean = torch.tensor(IMAGENET_MEAN, device=x01.device, dtype=x01.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x01.device, dtype=x01.dtype).view(1, 3, 1, 1)
    return (x01 - mean) / std


def downsample_1_8(frame: torch.Tensor) -> torch.Tensor:
    """Exact area average over 8x8 blocks: (B, C, H, W) -> (B, C, H//8, W//8)."""
    return F.avg_pool2d(frame, 8)


def scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """Size of a frame resized by `scale`, rounded to the NEAREST multiple of 8 (at least 8).

    For H, W multiples of 32 and scale 1, 0.75 or 0.5 this is exactly round(H*scale), round(W*scale)
    (already multiples of 8); for 0.6 it is the multiple of 8 nearest to H*0.6 (1024 -> 616, 512 -> 304),
    so the keyframe net's stride-8 grid tiles the scaled frame exactly.
    """
    def one(n: int) -> int:
        return max(8, 8 * math.floor(n * scale / 8 + 0.5))
    return one(height), one(width)


def resize_to_scale(frame: torch.Tensor, scale: float) -> torch.Tensor:
    """Bilinear (align_corners=False) resize to `scaled_size(H, W, scale)`; the input itself at that size."""
    height, width = int(frame.shape[-2]), int(frame.shape[-1])
    size = scaled_size(height, width, scale)
    if size == (height, width):
        return frame
    return F.interpolate(frame, size=size, mode="bilinear", align_corners=False)

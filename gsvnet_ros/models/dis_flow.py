"""OpenCV's DIS optical flow on the 1/8 grid: the classical alternative to the flow net O.

DIS (Kroeger et al., ECCV 2016) runs on the host CPU on grey levels, so it is computed outside the
networks: the propagation step then takes the flow as an input (GSVNet.propagate_with_flow; the
ONNX backend warps with it on the host and feeds the warped logits to its graph). Same convention as O:
backward flow from frame t to t-1 in
pixels of the 1/8 grid, channel 0 = u (x), 1 = v (y), so that warp(S_{t-1}, flow) aligns with t.
"""
from __future__ import annotations

import threading
from typing import Any, Optional

import numpy as np
import torch

__all__ = ["DIS_PRESETS", "dis_flow_1_8", "dis_flow_grey", "make_dis"]

DIS_PRESETS = ("ultrafast", "fast", "medium")  # cv2.DISOPTICAL_FLOW_PRESET_<NAME>
_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, what cv2.COLOR_RGB2GRAY uses
# One DIS object per thread, preset, finest scale and image size. An OpenCV DIS object keeps state
# between calls: after frames of another size it gives a different flow from then on (mean |flow|
# doubled on a 64x128 pair after one 32x64 call, OpenCV 4.x; it keeps the pyramid level it clamped
# for the small frames), so results would depend on what it saw before. Per size, repeated calls
# equal a new object's (tested).
_local = threading.local()
_CACHE_LIMIT = 16  # sizes per thread; a new DIS object costs ~30 us
_MIN_SIDE = 12  # OpenCV DIS refuses an image with both sides under 12 px: such grids are padded


def make_dis(preset: str, finest_scale: Optional[int] = None) -> Any:
    """A new cv2.DISOpticalFlow with one of DIS_PRESETS, estimating down to pyramid level
    `finest_scale` (None: the preset's). OpenCV is imported only when DIS is used."""
    if preset not in DIS_PRESETS:
        raise ValueError(f"DIS preset {preset!r}: expected one of {', '.join(DIS_PRESETS)}")
    import cv2

    dis = cv2.DISOpticalFlow_create(getattr(cv2, f"DISOPTICAL_FLOW_PRESET_{preset.upper()}"))
    if finest_scale is not None:
        dis.setFinestScale(int(finest_scale))
    return dis


def _dis(preset: str, finest_scale: Optional[int], height: int, width: int) -> Any:
    cache = getattr(_local, "dis", None)
    if cache is None:
        cache = _local.dis = {}
    key = (preset, finest_scale, height, width)
    if key not in cache:
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[key] = make_dis(preset, finest_scale)
    return cache[key]


def _grey_u8(frames_1_8: torch.Tensor) -> np.ndarray:
    """(B, 3, h, w) float RGB in [0, 1] -> (B, h, w) uint8 grey levels, on the CPU."""
    weights = torch.tensor(_LUMA, dtype=torch.float32, device=frames_1_8.device).view(1, 3, 1, 1)
    grey = (frames_1_8.detach().float() * weights).sum(1).mul_(255.0).round_().clamp_(0, 255)
    return np.ascontiguousarray(grey.to(torch.uint8).cpu().numpy())


def dis_flow_1_8(frame_1_8: torch.Tensor, prev_frame_1_8: torch.Tensor, preset: str = "fast",
                 finest_scale: Optional[int] = None) -> torch.Tensor:
    """Backward flow I_t -> I_{t-1} at 1/8 by DIS: (B, 3, h, w) frames in [0, 1] -> (B, 2, h, w)
    float32 on the frames' device. cv2 gives d with I_t(x) ~ I_{t-1}(x + d): the warp's convention.
    No gradient flows through it."""
    if frame_1_8.dim() != 4 or frame_1_8.shape[1] != 3 or prev_frame_1_8.shape != frame_1_8.shape:
        raise ValueError(f"dis_flow_1_8: expected two (B, 3, h, w) frames of one shape, got "
                         f"{tuple(frame_1_8.shape)} and {tuple(prev_frame_1_8.shape)}")
    if frame_1_8.is_meta:  # shape-only runs (GMAC counting): DIS is host code, not network MACs
        return frame_1_8.new_zeros((frame_1_8.shape[0], 2, *frame_1_8.shape[-2:]))
    current, previous = _grey_u8(frame_1_8), _grey_u8(prev_frame_1_8)
    flows = np.stack([dis_flow_grey(current[i], previous[i], preset, finest_scale)
                      for i in range(len(current))])
    return torch.from_numpy(flows).permute(0, 3, 1, 2).contiguous().to(frame_1_8.device)


def dis_flow_grey(current: np.ndarray, previous: np.ndarray, preset: str = "fast",
                  finest_scale: Optional[int] = None) -> np.ndarray:
    """Backward flow between two (h, w) uint8 grey images -> (h, w, 2) float32, d with
    current(x) ~ previous(x + d). Grids under OpenCV's 12 px minimum are edge-padded, then cropped."""
    height, width = current.shape
    if max(height, width) < _MIN_SIDE:  # edge-replicate up to what DIS accepts, crop after
        pad = ((0, max(0, _MIN_SIDE - height)), (0, max(0, _MIN_SIDE - width)))
        current, previous = np.pad(current, pad, mode="edge"), np.pad(previous, pad, mode="edge")
    flow = _dis(preset, finest_scale, current.shape[0], current.shape[1]).calc(current, previous, None)
    return np.ascontiguousarray(flow[:height, :width])

"""Backward warping with a dense flow field (paper Eq. 1), a pure function."""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["backward_warp", "base_grid", "clear_grid_cache"]

# Keyed by inference mode too: a grid made under torch.inference_mode() cannot enter autograd.
_GRID_CACHE: dict[tuple[int, int, torch.device, torch.dtype, bool], tuple[torch.Tensor, torch.Tensor]] = {}
_CACHE_LIMIT = 16


def _exporting() -> bool:
    return (torch.jit.is_tracing() or torch.jit.is_scripting() or torch.onnx.is_in_onnx_export()
            or torch.compiler.is_compiling())


def base_grid(height: int, width: int, device: torch.device, dtype: torch.dtype
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """(grid, scale): pixel centres in grid_sample's [-1, 1] (align_corners=True) as (1, h, w, 2), x first,
    and the pixel -> normalised factor (2/(w-1), 2/(h-1)) as (2,). Cached per (h, w, device, dtype)."""
    key = (height, width, device, dtype, torch.is_inference_mode_enabled())
    hit = _GRID_CACHE.get(key)
    if hit is None:
        ys = torch.linspace(-1.0, 1.0, height, device=device, dtype=dtype) if height > 1 \
            else torch.zeros(1, device=device, dtype=dtype)
        xs = torch.linspace(-1.0, 1.0, width, device=device, dtype=dtype) if width > 1 \
            else torch.zeros(1, device=device, dtype=dtype)
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        grid = torch.stack((grid_x, grid_y), dim=-1).unsqueeze(0)
        scale = torch.tensor([2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)], device=device, dtype=dtype)
        if len(_GRID_CACHE) >= _CACHE_LIMIT:
            _GRID_CACHE.clear()
        hit = _GRID_CACHE[key] = (grid, scale)
    return hit


def clear_grid_cache() -> None:
    """Forget every cached base grid."""
    _GRID_CACHE.clear()


def _grid_in_graph(flow: torch.Tensor) -> torch.Tensor:
    """The sampling grid built from `flow` by tensor ops only, so traced/ONNX graphs keep dynamic h, w."""
    ones = torch.ones_like(flow[:, :1])
    xs = ones.cumsum(3) - 1.0  # pixel x index
    ys = ones.cumsum(2) - 1.0
    x_den = xs[:, :, :1, -1:].clamp(min=1.0)  # w - 1
    y_den = ys[:, :, -1:, :1].clamp(min=1.0)  # h - 1
    gx = (xs + flow[:, :1]) * (2.0 / x_den) - 1.0
    gy = (ys + flow[:, 1:2]) * (2.0 / y_den) - 1.0
    return torch.cat((gx, gy), dim=1).permute(0, 2, 3, 1)


def backward_warp(tensor: torch.Tensor, flow: torch.Tensor, padding: str = "zeros") -> torch.Tensor:
    """out(c, y, x) = in(c, y + v(y, x), x + u(y, x)), bilinear (paper Eq. 1); outside the frame
    zeros (`padding="zeros"`) or the nearest edge value (`"border"`).

    tensor: (B, C, h, w); flow: (B, 2, h, w) in pixels of that grid, channel 0 = u (x), 1 = v (y).
    grid_sample with align_corners=True, so pixel centres sit at -1 .. 1. Inputs are never modified.
    """
    if _exporting():
        grid = _grid_in_graph(flow)
    else:
        if tensor.dim() != 4 or flow.dim() != 4 or flow.shape[1] != 2 \
                or tensor.shape[-2:] != flow.shape[-2:]:
            raise ValueError(f"backward_warp: expected tensor (B, C, h, w) and flow (B, 2, h, w) with the "
                             f"same h, w; got {tuple(tensor.shape)} and {tuple(flow.shape)}")
        base, scale = base_grid(int(flow.shape[-2]), int(flow.shape[-1]), flow.device, flow.dtype)
        grid = base + flow.permute(0, 2, 3, 1) * scale
    if padding not in ("zeros", "border"):
        raise ValueError(f"backward_warp: padding must be 'zeros' or 'border', got {padding!r}")
    return F.grid_sample(tensor, grid.to(tensor.dtype), mode="bilinear", padding_mode=padding,
                         align_corners=True)

"""Eq. 2's weighted sum on the host, compiled by numba: S(c, y, x) = sum_k w_k(y, x) cand_k(c, y, x).

The ONNX Runtime backend's correction graph gives the guide's per-pixel weights; the candidates are the D
shifted copies of the warped logits S^- (zero outside the frame), the all-zero map (fusion "code": it only
takes weight) and phi's logits. torch runs that sum as one in-place multiply-add per candidate over strided
views of a padded copy (`GuidedSpatiallyVaryingConv.fuse_inference`, ~0.25 ms at 19x64x128 on one thread,
most of it per-call overhead). Here each shift of each class plane is one contiguous run over the flat
plane: a shift by (dy, dx) reads index i + dy * w + dx. Rows that leave the frame are left out of the run;
for columns, the weights of a shift are first set to 0 where it leaves the frame sideways, so what a run
reads from the neighbouring row there is multiplied by 0, as the zero padding would be. ~0.12 ms; the
same products summed in the same order (candidate 0 first) as `fuse_inference`.
"""
from __future__ import annotations

import functools
from typing import Optional, Sequence

import numpy as np
import torch
from numba import njit, uint64

__all__ = ["fuse_on_host"]


@njit(cache=True, nogil=True)
def _zero_outside_columns(weights, dxs, height, width):
    """weights (K, h*w): 0 where candidate d's horizontal shift dxs[d] reads outside the frame."""
    for d in range(dxs.shape[0]):
        dx = dxs[d]
        first, stop = (0, min(-dx, width)) if dx < 0 else (max(width - dx, 0), width)
        for y in range(height):
            for x in range(first, stop):
                weights[d, y * width + x] = 0.0


@njit(cache=True, nogil=True, fastmath=True)
def _fuse(warped, weights, dys, dxs, intra, intra_index, out, height, width):
    """out (C*h*w,) = sum over the shifts d of weights[d] * warped shifted by (dys[d], dxs[d]) (+ the intra
    candidate's weight * intra), all flat C-order arrays, the weights already zeroed outside the columns.
    Indices are unsigned: numba then drops its negative-index wraparound, and the runs vectorize."""
    plane = height * width
    for c in range(out.shape[0] // plane):
        base = uint64(c * plane)
        for i in range(plane):
            k = uint64(i)
            out[base + k] = weights[k] * warped[base + k]  # the identity shift (0, 0) comes first
        for d in range(1, dys.shape[0]):
            shift = dys[d] * width + dxs[d]
            # the rows whose shifted row is inside the frame, then the run clipped to the plane
            start = max(max(0, -dys[d]) * width, -shift)
            stop = min(min(height, height - dys[d]) * width, plane - shift)
            if stop <= start:
                continue
            row = uint64(d * plane + start)
            target = base + uint64(start)
            source = base + uint64(start + shift)
            for i in range(stop - start):
                k = uint64(i)
                out[target + k] += weights[row + k] * warped[source + k]
        if intra_index >= 0:
            row = uint64(intra_index * plane)
            for i in range(plane):
                k = uint64(i)
                out[base + k] += weights[row + k] * intra[base + k]


@functools.lru_cache(maxsize=8)
def _shift_arrays(offsets: tuple[tuple[int, int], ...]) -> tuple[np.ndarray, np.ndarray]:
    """(dys, dxs) as int64 arrays, made once per list of shifts rather than every frame."""
    dys = np.array([dy for dy, _ in offsets], np.int64)
    dxs = np.array([dx for _, dx in offsets], np.int64)
    dys.flags.writeable = dxs.flags.writeable = False
    return dys, dxs


def fuse_on_host(warped: torch.Tensor, weights: torch.Tensor, intra: Optional[torch.Tensor],
                 offsets: Sequence[tuple[int, int]]) -> torch.Tensor:
    """Eq. 2 for (1, C, h, w) float32 CPU logits `warped`, (1, K, h, w) `weights` whose first len(offsets)
    channels weigh the shifts `offsets` ((dy, dx), the identity first) and whose last weighs `intra` (None:
    no intra candidate). The logits must be finite (the stream checks every frame's). `weights` is
    overwritten where a shift leaves the frame sideways. Returns (1, C, h, w) float32."""
    _, classes, height, width = warped.shape
    if tuple(offsets[0]) != (0, 0):
        raise ValueError(f"fuse_on_host: the first shift must be the identity (0, 0), got {offsets[0]}")
    plane = height * width
    dys, dxs = _shift_arrays(tuple(map(tuple, offsets)))
    candidates = weights.detach().contiguous().numpy().reshape(-1, plane)
    _zero_outside_columns(candidates, dxs, height, width)
    flat = warped.detach().contiguous().numpy().reshape(-1)
    extra = intra.detach().contiguous().numpy().reshape(-1) if intra is not None else flat  # unread: index -1
    out = np.empty(classes * plane, np.float32)
    _fuse(flat, candidates.reshape(-1), dys, dxs, extra, len(candidates) - 1 if intra is not None else -1, out,
          height, width)
    return torch.from_numpy(out.reshape(1, classes, height, width))

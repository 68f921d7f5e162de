"""Exact and cheap output stage: labels of bilinear ×8 upsampling + argmax without upsampling everything.

Reference semantics: ``F.interpolate(logits, scale ×8, mode="bilinear", align_corners=False).argmax(1)``.
Inside one low-resolution cell, every output pixel is a convex combination of the cell's four corner
logit vectors. When the four corners share their argmax c, the combination keeps c as its largest
component, so the whole 8×8 block takes label c without computing anything (MODEL_SPEC.md: output
step). Only the blocks on class boundaries are interpolated, as one small matrix product; pixels whose
top-two margin is within rounding of a tie are recomputed with ``F.interpolate`` itself, so the labels
equal the reference's exactly, ties included.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["FACTOR", "LabelUpsampler", "reference_labels"]

FACTOR = 8
# A margin smaller than this (relative to the largest |logit|) may flip under float32 rounding.
_REL_TIE_TOLERANCE = 4e-6
_CHUNK = 2048  # near-tie pixels interpolated per batch


def reference_labels(logits: torch.Tensor) -> torch.Tensor:
    """The slow definition: full bilinear ×8 upsampling of (C, h, w) logits, then argmax."""
    up = F.interpolate(logits[None].float(), scale_factor=FACTOR, mode="bilinear",
                       align_corners=False)
    return up[0].argmax(0).to(torch.uint8)


def exact_pixel_labels(logits: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    """Reference labels of chosen output pixels, each from F.interpolate on its own 2×2 cell window.

    A window whose first low-res row is r0 maps output row 8·r0 + y' to the same source coordinate
    and weights as the full image (scale 1/8 both ways), and clamps at the image border exactly as
    the full image does, so the values are the reference's bit for bit. Pixels outside the image
    (the cropped half-cell margin) get label 0.
    """
    _, h, w = logits.shape
    labels = torch.zeros(ys.shape, dtype=torch.long, device=logits.device)
    inside = (ys >= 0) & (ys < FACTOR * h) & (xs >= 0) & (xs < FACTOR * w)
    ys, xs, where = ys[inside], xs[inside], inside.nonzero()[:, 0]
    win_h, win_w = min(2, h), min(2, w)
    r0 = ((ys - FACTOR // 2).div(FACTOR, rounding_mode="floor")).clamp(0, h - win_h)
    q0 = ((xs - FACTOR // 2).div(FACTOR, rounding_mode="floor")).clamp(0, w - win_w)
    offsets_h = torch.arange(win_h, device=logits.device)
    offsets_w = torch.arange(win_w, device=logits.device)
    for start in range(0, len(ys), _CHUNK):
        part = slice(start, start + _CHUNK)
        rows = (r0[part, None] + offsets_h)[:, :, None]  # (n, win_h, 1)
        cols = (q0[part, None] + offsets_w)[:, None, :]  # (n, 1, win_w)
        windows = logits[:, rows, cols].permute(1, 0, 2, 3)  # (n, C, win_h, win_w)
        up = F.interpolate(windows, size=(FACTOR * win_h, FACTOR * win_w), mode="bilinear",
                           align_corners=False)
        n = torch.arange(len(rows), device=logits.device)
        local_y, local_x = ys[part] - FACTOR * r0[part], xs[part] - FACTOR * q0[part]
        labels[where[part]] = up[n, :, local_y, local_x].argmax(dim=1)
    return labels


def _block_weights(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(4, 64) bilinear weights of the corners (00, 01, 10, 11) for each pixel of an 8×8 block.

    With the logits replicate-padded by one cell, output row 8i-4+k of block i sits at fraction
    λ_k = (k + 0.5)/8 between padded rows i and i+1 (align_corners=False source mapping).
    """
    lam = (torch.arange(FACTOR, dtype=torch.float64) + 0.5) / FACTOR
    ly, lx = lam[:, None], lam[None, :]
    w = torch.stack([(1 - ly) * (1 - lx), (1 - ly) * lx, ly * (1 - lx), ly * lx])
    return w.reshape(4, FACTOR * FACTOR).to(dtype=dtype, device=device)


class LabelUpsampler:
    """Turns (C, h, w) logits into (8h, 8w) uint8 labels identical to :func:`reference_labels`."""

    def __init__(self) -> None:
        self._weights: dict[tuple[torch.dtype, torch.device], torch.Tensor] = {}
        self._pad_index: dict[tuple[int, torch.device], torch.Tensor] = {}

    def _padded_index(self, n: int, device: torch.device) -> torch.Tensor:
        """Indices -1..n clamped into 0..n-1: replicate padding by one cell as a gather."""
        key = (n, device)
        if key not in self._pad_index:
            self._pad_index[key] = torch.arange(-1, n + 1, device=device).clamp_(0, n - 1)
        return self._pad_index[key]

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        if logits.dim() == 4 and logits.shape[0] == 1:
            logits = logits[0]
        if logits.dim() != 3:
            raise ValueError(f"logits must be (C, h, w) or (1, C, h, w), got {tuple(logits.shape)}")
        logits = logits.float()
        num_classes, h, w = logits.shape
        rows = self._padded_index(h, logits.device)
        cols = self._padded_index(w, logits.device)
        # Channels last so that every reduction over classes runs along contiguous memory.
        padded = logits.permute(1, 2, 0)[rows][:, cols].contiguous()  # (h+2, w+2, C)
        if num_classes > 1:
            top2 = padded.topk(2, dim=-1)
            corner_label = top2.indices[..., 0]
            tolerance = _REL_TIE_TOLERANCE * float(top2.values[..., 0].abs().max()
                                                   .maximum(top2.values[..., 1].abs().max()))
            near_tie = (top2.values[..., 0] - top2.values[..., 1]) <= tolerance
        else:
            corner_label = torch.zeros(padded.shape[:2], dtype=torch.long, device=logits.device)
            tolerance, near_tie = 0.0, torch.zeros_like(corner_label, dtype=torch.bool)
        c00, c01 = corner_label[:-1, :-1], corner_label[:-1, 1:]
        c10, c11 = corner_label[1:, :-1], corner_label[1:, 1:]
        uniform = (c00 == c01) & (c00 == c10) & (c00 == c11)  # (h+1, w+1) blocks
        uniform &= ~(near_tie[:-1, :-1] | near_tie[:-1, 1:] | near_tie[1:, :-1] | near_tie[1:, 1:])

        blocks = c00.to(torch.uint8)[:, :, None, None].repeat(1, 1, FACTOR, FACTOR)
        boundary = (~uniform).nonzero()
        if boundary.numel():
            self._fill_boundary_blocks(logits, rows, cols, boundary, blocks, tolerance)
        image = blocks.permute(0, 2, 1, 3).reshape((h + 1) * FACTOR, (w + 1) * FACTOR)
        half = FACTOR // 2
        return image[half: half + FACTOR * h, half: half + FACTOR * w]

    def _fill_boundary_blocks(self, logits: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
                              boundary: torch.Tensor, blocks: torch.Tensor, tolerance: float) -> None:
        """Interpolate only the boundary blocks: values (C, 64, N) = weights (64, 4) @ corners (C, 4, N).

        Classes lead, so the argmax and the near-tie test are element-wise passes over C planes.
        """
        padded = logits[:, rows][:, :, cols]  # (C, h+2, w+2), replicate-padded by one cell
        bi, bj = boundary[:, 0], boundary[:, 1]
        corners = torch.stack([padded[:, bi, bj], padded[:, bi, bj + 1],
                               padded[:, bi + 1, bj], padded[:, bi + 1, bj + 1]], dim=1)
        key = (logits.dtype, logits.device)
        if key not in self._weights:
            self._weights[key] = _block_weights(logits.dtype, logits.device).T.contiguous()
        values = torch.matmul(self._weights[key], corners)  # (C, 64, N)
        best, labels = values.max(dim=0)  # (64, N)
        if values.shape[0] > 1:
            runner_up = values.scatter_(0, labels[None], float("-inf")).amax(dim=0)
            ties = ((best - runner_up) <= tolerance).nonzero()
            if len(ties):
                p, n = ties[:, 0], ties[:, 1]
                ys = FACTOR * bi[n] - FACTOR // 2 + p // FACTOR
                xs = FACTOR * bj[n] - FACTOR // 2 + p % FACTOR
                labels[p, n] = exact_pixel_labels(logits, ys, xs)
        blocks[bi, bj] = labels.T.to(torch.uint8).reshape(-1, FACTOR, FACTOR)

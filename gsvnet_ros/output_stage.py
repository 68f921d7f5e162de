"""Exact and cheap output stage: labels of bilinear ×8 upsampling + argmax without upsampling everything.

Reference semantics: ``F.interpolate(logits, scale ×8, mode="bilinear", align_corners=False).argmax(1)``.
Inside one low-resolution cell, every output pixel is a convex combination of the cell's four corner
logit vectors. When the four corners share their argmax c, the combination keeps c as its largest
component, so the whole 8×8 block takes label c without computing anything (MODEL_SPEC.md: output
step). Only the blocks on class boundaries are interpolated, as one small matrix product over the
classes that can still win in the block (a class below another's corner minimum cannot); pixels whose
top-two margin is within rounding of a tie are recomputed with ``F.interpolate`` itself, so the labels
equal the reference's exactly, ties included (the one exception, a real-number tie that float32
rounding alone decides, is in `exact_pixel_labels`).

Two implementations of that method, chosen by `LabelUpsampler(kernel=...)`:
- "compiled", for CPU tensors: a numba-compiled kernel (`output_kernel.py`), JIT-compiled on first use
  and cached on disk. It does the whole block pass in one call instead of ~60 small torch ops: 0.3 ms
  per call on trained 19×64×128 logits (two threads) where the torch ops took 2.1 ms, almost all of it
  per-op dispatch and temporaries.
- "torch": the same method in torch ops, on any device; the CPU fallback when numba is missing.
"auto" (the default) runs the compiled kernel on the CPU and, on an accelerator, the reference itself:
there the full interpolation and argmax are two asynchronous kernels, while the block method waits for
the device several times per frame (nonzero, the tie tolerance). On an H200, each with the copy of the
labels to the host: 2.06 ms for the torch block kernel on trained 19×64×128 logits, 0.15 ms for the
reference (README "Propagation on real motion", 2026-12-04).
"""
from __future__ import annotations

import functools
import warnings

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["FACTOR", "KERNELS", "LabelUpsampler", "compiled_kernel_available", "reference_labels"]

FACTOR = 8
# A margin smaller than this (relative to the largest |logit|) may flip under float32 rounding.
_REL_TIE_TOLERANCE = 4e-6
_CHUNK = 2048  # near-tie pixels interpolated per batch
# Classes interpolated in a boundary block when the others provably lose there (a segmentation
# net's block boundaries are contested by 2-3 classes); otherwise all C are.
_CANDIDATES = 4


def reference_labels(logits: torch.Tensor) -> torch.Tensor:
    """The slow definition: full bilinear ×8 upsampling of (C, h, w) logits, then argmax."""
    up = F.interpolate(logits[None].float(), scale_factor=FACTOR, mode="bilinear",
                       align_corners=False)
    return up[0].argmax(0).to(torch.uint8)


def exact_pixel_labels(logits: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    """Reference labels of chosen output pixels, each from F.interpolate on its own 2×2 cell window.

    A window whose first low-res row is r0 maps output row 8·r0 + y' to the same source coordinate
    and weights as the full image (scale 1/8 both ways), and clamps at the image border exactly as
    the full image does. Where the reference's float32 arithmetic is exact (logits on a binary grid,
    as in the Hypothesis test) the labels are the reference's, exact ties included. Where two classes
    tie in real numbers but their float32 values round differently, the full image and the window
    may round differently (F.interpolate's CPU loop changes with the output size): such a pixel's
    label is decided by rounding alone, in the reference as here. Pixels outside the image (the
    cropped half-cell margin) get label 0.
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


def _exact_pixel_labels_host(logits: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """`exact_pixel_labels` for (C, h, w) float32 host logits and pixels inside the image, with the
    index work in numpy and one F.interpolate on the same (permuted) window layout: the same values,
    without a dozen small torch ops (0.36 ms a frame inside the stream, where they wake torch's pool)."""
    _, h, w = logits.shape
    win_h, win_w = min(2, h), min(2, w)
    r0 = np.clip((ys - FACTOR // 2) // FACTOR, 0, h - win_h)
    q0 = np.clip((xs - FACTOR // 2) // FACTOR, 0, w - win_w)
    labels = np.empty(len(ys), np.int64)
    # in batches of _CHUNK pixels: where every class ties (constant logits) every pixel is flagged, and
    # one batch would need C x 1 KiB per pixel (10 GiB at 1024x512)
    for start in range(0, len(ys), _CHUNK):
        part = slice(start, start + _CHUNK)
        rows = (r0[part, None] + np.arange(win_h))[:, :, None]  # (n, win_h, 1)
        cols = (q0[part, None] + np.arange(win_w))[:, None, :]  # (n, 1, win_w)
        windows = torch.from_numpy(np.ascontiguousarray(logits[:, rows, cols])).permute(1, 0, 2, 3)
        up = F.interpolate(windows, size=(FACTOR * win_h, FACTOR * win_w), mode="bilinear",
                           align_corners=False).numpy()  # (n, C, 8 win_h, 8 win_w)
        labels[part] = up[np.arange(len(rows)), :, ys[part] - FACTOR * r0[part],
                          xs[part] - FACTOR * q0[part]].argmax(axis=1)
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


KERNELS = ("auto", "compiled", "torch")


@functools.lru_cache(maxsize=1)
def compiled_kernel_available() -> bool:
    """True when numba imports. Without it (a ROS machine where only `colcon build` installed the
    package) "auto" runs the torch kernel and the stream's preprocessing its OpenCV path, with one
    warning naming the missing package."""
    try:
        import numba  # noqa: F401
    except ImportError:
        warnings.warn("gsvnet_ros host kernels: numba is not installed, so the labels are upsampled by "
                      "the slower torch kernel (about 2 ms instead of under 1 ms per 1024x512 frame), "
                      "frames are reduced to 1/8 through a float copy (0.5 instead of 0.1 ms), and the "
                      "ONNX Runtime backend's labels and Eq. 2's sum run in torch; "
                      "install it with: python3 -m pip install numba", RuntimeWarning, stacklevel=3)
        return False
    return True


class LabelUpsampler:
    """Turns (C, h, w) logits into (8h, 8w) uint8 labels identical to :func:`reference_labels`.

    kernel: "compiled" (numba, CPU tensors only), "torch" (any device), or "auto" (compiled on the
    CPU, or torch there without numba; `reference_labels` itself on an accelerator).
    """

    def __init__(self, kernel: str = "auto") -> None:
        if kernel not in KERNELS:
            raise ValueError(f"LabelUpsampler kernel must be one of {', '.join(KERNELS)}, got {kernel!r}")
        self.kernel = kernel
        self.last_near_ties = 0  # pixels the last call recomputed with the reference (near ties)
        self._block_kernel = None  # output_kernel.BlockKernel, made on first use (imports numba)
        self._weights: dict[tuple[torch.dtype, torch.device], torch.Tensor] = {}

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        if logits.dim() == 4 and logits.shape[0] == 1:
            logits = logits[0]
        if logits.dim() != 3:
            raise ValueError(f"logits must be (C, h, w) or (1, C, h, w), got {tuple(logits.shape)}")
        logits = logits.float()
        if self.kernel == "auto" and logits.device.type != "cpu":  # the definition: cheapest on a GPU
            self.last_near_ties = 0
            return reference_labels(logits)
        compiled = self.kernel == "compiled" or (self.kernel == "auto" and logits.device.type == "cpu"
                                                 and compiled_kernel_available())
        if compiled:
            return self._compiled(logits)
        return self._torch(logits)

    def _compiled(self, logits: torch.Tensor) -> torch.Tensor:
        if logits.device.type != "cpu":
            raise ValueError(f"the compiled output kernel runs on CPU tensors, got {logits.device}; "
                             "expected kernel 'torch' or 'auto' for other devices")
        if self._block_kernel is None:
            from .output_kernel import BlockKernel

            self._block_kernel = BlockKernel()
        host = logits.detach().contiguous().numpy()
        labels, ys, xs = self._block_kernel(host, _REL_TIE_TOLERANCE)  # flagged pixels lie inside the image
        self.last_near_ties = len(ys)
        if len(ys):
            labels[ys, xs] = _exact_pixel_labels_host(host, ys, xs)
        return torch.from_numpy(labels)

    def _torch(self, logits: torch.Tensor) -> torch.Tensor:
        num_classes, h, w = logits.shape
        # Replicate-padded by one cell: block (i, j) spans padded cells (i, j) .. (i+1, j+1).
        padded = F.pad(logits[None], (1, 1, 1, 1), mode="replicate")[0]  # (C, h+2, w+2)
        if num_classes > 1:
            best, corner_label = padded.max(dim=0)
            runner_up = padded.clone().scatter_(0, corner_label[None], float("-inf")).amax(dim=0)
            tolerance = _REL_TIE_TOLERANCE * float(best.abs().max().maximum(runner_up.abs().max()))
            near_tie = (best - runner_up) <= tolerance
        else:
            corner_label = torch.zeros(padded.shape[1:], dtype=torch.long, device=logits.device)
            tolerance, near_tie = 0.0, torch.zeros_like(corner_label, dtype=torch.bool)
        c00, c01 = corner_label[:-1, :-1], corner_label[:-1, 1:]
        c10, c11 = corner_label[1:, :-1], corner_label[1:, 1:]
        uniform = (c00 == c01) & (c00 == c10) & (c00 == c11)  # (h+1, w+1) blocks
        uniform &= ~(near_tie[:-1, :-1] | near_tie[:-1, 1:] | near_tie[1:, :-1] | near_tie[1:, 1:])

        self.last_near_ties = 0
        blocks = c00.to(torch.uint8)[:, :, None, None].repeat(1, 1, FACTOR, FACTOR)
        boundary = (~uniform).flatten().nonzero()[:, 0]  # block index i * (w+1) + j
        if boundary.numel():
            self._fill_boundary_blocks(logits, padded, boundary, blocks, tolerance)
        image = blocks.permute(0, 2, 1, 3).reshape((h + 1) * FACTOR, (w + 1) * FACTOR)
        half = FACTOR // 2
        return image[half: half + FACTOR * h, half: half + FACTOR * w]

    def _fill_boundary_blocks(self, logits: torch.Tensor, padded: torch.Tensor, boundary: torch.Tensor,
                              blocks: torch.Tensor, tolerance: float) -> None:
        """Interpolate only the boundary blocks, and in each only the classes that can win there.

        Values (K, 64, N) = weights (64, 4) @ corners (K, 4, N): K = the `_CANDIDATES` classes of a
        block when the others provably lose (see `_candidate_classes`), all C classes otherwise.
        """
        num_classes, padded_w = padded.shape[0], padded.shape[2]
        bi, bj = boundary.div(padded_w - 1, rounding_mode="floor"), boundary % (padded_w - 1)
        top_left = bi * padded_w + bj
        corner_cells = torch.cat((top_left, top_left + 1, top_left + padded_w, top_left + padded_w + 1))
        corners = padded.reshape(num_classes, -1).index_select(1, corner_cells)
        corners = corners.view(num_classes, 4, -1)  # (C, 4, N) corners 00, 01, 10, 11
        labels = torch.empty(FACTOR * FACTOR, len(boundary), dtype=torch.long, device=logits.device)
        ties = torch.empty(FACTOR * FACTOR, len(boundary), dtype=torch.bool, device=logits.device)
        rest = torch.arange(len(boundary), device=logits.device)
        if num_classes > _CANDIDATES:
            pruned, classes = _candidate_classes(corners, tolerance)
            if len(pruned):
                subset = corners.index_select(2, pruned).gather(0, classes[:, None, :].expand(-1, 4, -1))
                best, near = self._interpolate(subset, tolerance)
                labels.index_copy_(1, pruned, classes.gather(0, best))
                ties.index_copy_(1, pruned, near)
                keep = torch.ones(len(boundary), dtype=torch.bool, device=logits.device)
                keep[pruned] = False
                rest = keep.nonzero()[:, 0]
        if len(rest):
            best, near = self._interpolate(corners.index_select(2, rest), tolerance)
            labels.index_copy_(1, rest, best)
            ties.index_copy_(1, rest, near)
        tie_positions = ties.nonzero()
        self.last_near_ties = len(tie_positions)
        if len(tie_positions):
            p, n = tie_positions[:, 0], tie_positions[:, 1]
            ys = FACTOR * bi[n] - FACTOR // 2 + p // FACTOR
            xs = FACTOR * bj[n] - FACTOR // 2 + p % FACTOR
            labels[p, n] = exact_pixel_labels(logits, ys, xs)
        blocks.view(-1, FACTOR * FACTOR).index_copy_(0, boundary, labels.T.to(torch.uint8))

    def _interpolate(self, corners: torch.Tensor, tolerance: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(K, 4, N) corner logits -> (index into K of the best class, near-tie flag), each (64, N).

        Classes lead, so the argmax and the near-tie test are element-wise passes over K planes.
        """
        key = (corners.dtype, corners.device)
        if key not in self._weights:
            self._weights[key] = _block_weights(corners.dtype, corners.device).T.contiguous()
        values = torch.matmul(self._weights[key], corners)  # (K, 64, N)
        best, labels = values.max(dim=0)
        if values.shape[0] == 1:
            return labels, torch.zeros_like(labels, dtype=torch.bool)
        runner_up = values.scatter_(0, labels[None], float("-inf")).amax(dim=0)
        return labels, (best - runner_up) <= tolerance


def _candidate_classes(corners: torch.Tensor, tolerance: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Blocks whose winner is provably among their `_CANDIDATES` classes, and those classes.

    Every pixel of a block is a convex combination of the block's four corner logit vectors, so class
    k scores at most ceiling_k = max over corners of S_k, and the best class scores at least
    floor = max over classes of (min over corners). A class whose ceiling is below the floor by more
    than the tie tolerance can neither win nor tie anywhere in the block. corners: (C, 4, N).
    Returns (indices of those blocks (N_pruned,), their classes (_CANDIDATES, N_pruned)).
    """
    ceiling = corners.amax(dim=1)  # (C, N)
    floor = corners.amin(dim=1).amax(dim=0)  # (N,)
    top = ceiling.topk(_CANDIDATES + 1, dim=0)
    pruned = (top.values[-1] < floor - tolerance).nonzero()[:, 0]  # the best excluded class loses
    return pruned, top.indices[:_CANDIDATES].index_select(1, pruned)

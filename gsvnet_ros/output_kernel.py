"""The output stage's CPU kernel, compiled by numba: labels of bilinear ×8 + argmax in one pass.

Same method as `output_stage.LabelUpsampler` (MODEL_SPEC.md, output step), written as loops so it runs as
one compiled call instead of ~60 small torch ops (2.1 ms of dispatch and temporaries at 1024x512 on the
dev CPU). On the one-cell replicate-padded logits, output block (i, j) (8×8 pixels, rows 8i-4 .. 8i+3)
lies between padded cells (i, j) .. (i+1, j+1); every pixel is a convex combination of those four
corner vectors with weights that are multiples of 1/256. A block whose corners share their argmax with
a margin above the tie tolerance takes that label. Elsewhere each pixel is interpolated in float64
over the classes that can still win in the block (a class whose largest corner value is below the best
smallest corner value can not); float64 holds those products and sums exactly, so the only rounding
left is the float32 reference's own, which the tolerance covers. Pixels whose margin is within the
tolerance are returned for the caller to recompute with the reference (`exact_pixel_labels`).
"""
from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["FACTOR", "BlockKernel"]

FACTOR = 8


@njit(cache=True, nogil=True)
def _corner_argmax(logits, tolerance):
    """Per low-resolution cell: argmax (first index of the maximum) and whether the top two are
    within `tolerance` (an exact or near tie)."""
    classes, height, width = logits.shape
    best = logits[0].copy()
    label = np.zeros((height, width), np.uint8)
    runner_up = np.full((height, width), -np.inf, np.float32)
    for c in range(1, classes):
        for y in range(height):
            for x in range(width):
                value = logits[c, y, x]
                if value > best[y, x]:
                    runner_up[y, x] = best[y, x]
                    best[y, x] = value
                    label[y, x] = c
                elif value > runner_up[y, x]:
                    runner_up[y, x] = value
    near_tie = np.zeros((height, width), np.bool_)
    if classes > 1:
        for y in range(height):
            for x in range(width):
                near_tie[y, x] = best[y, x] - runner_up[y, x] <= tolerance
    return label, near_tie


@njit(cache=True, nogil=True)
def _kernel(logits, tolerance, out, flagged_y, flagged_x):
    """Fill `out` (8h, 8w) uint8; write near-tie pixel coordinates to flagged_y/x; return their count."""
    classes, height, width = logits.shape
    label, near_tie = _corner_argmax(logits, tolerance)
    out_h, out_w = FACTOR * height, FACTOR * width
    half = FACTOR // 2
    lam = (np.arange(FACTOR) + 0.5) / FACTOR  # fraction between the block's top (left) and bottom (right) cells
    ceiling = np.empty(classes, np.float64)
    candidates = np.empty(classes, np.int64)
    top_row = np.empty((classes, FACTOR), np.float64)  # a candidate's values along the block's top edge
    bottom_row = np.empty((classes, FACTOR), np.float64)
    values = np.empty((classes, FACTOR, FACTOR), np.float64)
    boundary = np.empty(width + 1, np.bool_)
    block_label = np.empty(width + 1, np.uint8)
    flagged = 0
    for bi in range(height + 1):
        # padded cells bi, bi+1 are the original rows bi-1, bi clamped to the image (replicate padding)
        top, bottom = max(bi - 1, 0), min(bi, height - 1)
        y0, y1 = max(FACTOR * bi - half, 0), min(FACTOR * bi + half, out_h)
        # first every block of this band takes its top-left corner's label (plain loops: numba turns
        # them into vector stores, where a slice copy per row costs a view each)
        for bj in range(width + 1):
            left, right = max(bj - 1, 0), min(bj, width - 1)
            first = label[top, left]
            block_label[bj] = first
            boundary[bj] = (label[top, right] != first or label[bottom, left] != first
                            or label[bottom, right] != first or near_tie[top, left] or near_tie[top, right]
                            or near_tie[bottom, left] or near_tie[bottom, right])
        for y in range(y0, y1):
            for x in range(out_w):
                out[y, x] = block_label[(x + half) // FACTOR]
        for bj in range(width + 1):
            if not boundary[bj]:
                continue
            left, right = max(bj - 1, 0), min(bj, width - 1)
            x0, x1 = max(FACTOR * bj - half, 0), min(FACTOR * bj + half, out_w)
            # classes that can win somewhere in the block: ceiling >= best floor - tolerance
            floor = -np.inf
            for c in range(classes):
                a, b = logits[c, top, left], logits[c, top, right]
                d, e = logits[c, bottom, left], logits[c, bottom, right]
                ceiling[c] = max(max(a, b), max(d, e))
                floor = max(floor, min(min(a, b), min(d, e)))
            count = 0
            for c in range(classes):
                if ceiling[c] >= floor - tolerance:
                    candidates[count] = c
                    count += 1
            # bilinear values, separably: along x on the top and bottom edges, then along y (exact in float64)
            for n in range(count):
                c = candidates[n]
                a, b = np.float64(logits[c, top, left]), np.float64(logits[c, top, right])
                d, e = np.float64(logits[c, bottom, left]), np.float64(logits[c, bottom, right])
                for k in range(FACTOR):
                    top_row[n, k] = (1.0 - lam[k]) * a + lam[k] * b
                    bottom_row[n, k] = (1.0 - lam[k]) * d + lam[k] * e
                for i in range(FACTOR):
                    for k in range(FACTOR):
                        values[n, i, k] = (1.0 - lam[i]) * top_row[n, k] + lam[i] * bottom_row[n, k]
            for y in range(y0, y1):
                i = y - (FACTOR * bi - half)
                for x in range(x0, x1):
                    k = x - (FACTOR * bj - half)
                    best, second, winner = -np.inf, -np.inf, 0
                    for n in range(count):  # branch-free: the comparisons become selects
                        value = values[n, i, k]
                        second = max(second, min(value, best))
                        winner = candidates[n] if value > best else winner
                        best = max(best, value)
                    out[y, x] = winner
                    if count > 1 and best - second <= tolerance:
                        flagged_y[flagged], flagged_x[flagged] = y, x
                        flagged += 1
    return flagged


@njit(cache=True, nogil=True)
def _largest_magnitude(logits):
    largest = np.float32(0.0)
    for value in logits.ravel():
        largest = max(largest, abs(value))
    return largest


class BlockKernel:
    """Calls the compiled kernel with reusable buffers for the near-tie coordinates (one per instance:
    not shared between threads)."""

    def __init__(self) -> None:
        self._flagged = np.empty((2, 0), np.int64)

    def __call__(self, logits: np.ndarray, relative_tolerance: float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(C, h, w) float32 logits -> ((8h, 8w) uint8 labels, ys, xs of the pixels whose top two classes
        are within `relative_tolerance` x max |logit| of each other, whose labels the caller must
        recompute with the reference)."""
        logits = np.ascontiguousarray(logits, dtype=np.float32)
        _, height, width = logits.shape
        out = np.empty((FACTOR * height, FACTOR * width), np.uint8)
        if self._flagged.shape[1] < out.size:
            self._flagged = np.empty((2, out.size), np.int64)
        tolerance = relative_tolerance * float(_largest_magnitude(logits))
        count = _kernel(logits, tolerance, out, self._flagged[0], self._flagged[1])
        return out, self._flagged[0, :count].copy(), self._flagged[1, :count].copy()

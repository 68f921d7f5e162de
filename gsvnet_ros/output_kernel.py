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

Written for the vector units: the per-class loops run along contiguous rows, a boundary block's 64 pixels
are one vectorized loop per candidate class, and the labels go out as 4-byte words (a block column
starts half a block, 4 bytes, into the image, so every block row is 1 or 2 aligned words).
"""
from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["FACTOR", "BlockKernel"]

FACTOR = 8
_PIXELS = FACTOR * FACTOR


@njit(cache=True, nogil=True)
def _cells(logits, relative_tolerance):
    """Per low-resolution cell: argmax (first index of the maximum) and whether the top two are within
    the tolerance (an exact or near tie); and the tolerance, relative_tolerance × max |logit|."""
    classes, height, width = logits.shape
    cells = height * width
    flat = logits.reshape(classes, cells)
    best = flat[0].copy()
    low = flat[0].copy()
    runner_up = np.full(cells, -np.inf, np.float32)
    label = np.zeros(cells, np.int32)  # not uint8: more than 256 classes must not alias in the corner test
    for c in range(1, classes):
        row = flat[c]
        for p in range(cells):  # branch-free, so it vectorizes
            value = row[p]
            runner_up[p] = max(runner_up[p], min(value, best[p]))
            label[p] = c if value > best[p] else label[p]
            best[p] = max(best[p], value)
            low[p] = min(low[p], value)
    largest = np.float32(0.0)
    for p in range(cells):
        largest = max(largest, max(best[p], -low[p]))
    tolerance = relative_tolerance * np.float64(largest)
    near_tie = np.zeros(cells, np.bool_)
    if classes > 1:
        for p in range(cells):
            near_tie[p] = best[p] - runner_up[p] <= tolerance
    return label.reshape(height, width), near_tie.reshape(height, width), tolerance


@njit(cache=True, nogil=True)
def _kernel(logits, relative_tolerance, out, flagged_y, flagged_x):
    """Fill `out` (8h, 8w) uint8 (C-contiguous); write the near-tie pixels' coordinates to flagged_y/x
    (each at least 8h·8w long); return their count."""
    classes, height, width = logits.shape
    label, near_tie, tolerance = _cells(logits, relative_tolerance)
    out_h, out_w = FACTOR * height, FACTOR * width
    half = FACTOR // 2
    words = out_w // 4
    out32 = out.reshape(out_h * out_w).view(np.uint32).reshape(out_h, words)
    # bilinear weights of the corners 00, 01, 10, 11 for block pixel p = 8 i + k: the fraction between
    # the block's top (left) and bottom (right) cells is λ = (i + 0.5)/8 (align_corners=False)
    lam = (np.arange(FACTOR) + 0.5) / FACTOR
    weights = np.empty((4, _PIXELS))
    for i in range(FACTOR):
        for k in range(FACTOR):
            weights[0, i * FACTOR + k] = (1.0 - lam[i]) * (1.0 - lam[k])
            weights[1, i * FACTOR + k] = (1.0 - lam[i]) * lam[k]
            weights[2, i * FACTOR + k] = lam[i] * (1.0 - lam[k])
            weights[3, i * FACTOR + k] = lam[i] * lam[k]
    w00, w01, w10, w11 = weights[0], weights[1], weights[2], weights[3]
    candidates = np.empty(classes, np.int64)
    corners = np.empty((classes, 4), np.float32)  # the candidates' corner values 00, 01, 10, 11
    best = np.empty(_PIXELS)
    second = np.empty(_PIXELS)
    winner = np.empty(_PIXELS, np.int64)
    winner8 = np.empty(_PIXELS, np.uint8)
    winner32 = winner8.view(np.uint32)  # block row i is words 2i, 2i+1
    boundary = np.empty(width + 1, np.bool_)
    block_word = np.empty(width + 1, np.uint32)
    flagged = 0
    for bi in range(height + 1):
        # padded cells bi, bi+1 are the original rows bi-1, bi clamped to the image (replicate padding)
        top, bottom = max(bi - 1, 0), min(bi, height - 1)
        oy = FACTOR * bi - half  # the block's first row (may lie above the image)
        y0, y1 = max(oy, 0), min(oy + FACTOR, out_h)
        # first every block of this band takes its top-left corner's label, 4 bytes a word: word m
        # (pixels 4m .. 4m+3) lies in block (m + 1) // 2
        for bj in range(width + 1):
            left, right = max(bj - 1, 0), min(bj, width - 1)
            first = label[top, left]
            block_word[bj] = np.uint32(np.uint8(first)) * np.uint32(0x01010101)
            boundary[bj] = (label[top, right] != first or label[bottom, left] != first
                            or label[bottom, right] != first or near_tie[top, left] or near_tie[top, right]
                            or near_tie[bottom, left] or near_tie[bottom, right])
        first_row = out32[y0]
        for m in range(words):
            first_row[m] = block_word[(m + 1) // 2]
        for y in range(y0 + 1, y1):
            row = out32[y]
            for m in range(words):
                row[m] = first_row[m]
        for bj in range(width + 1):
            if not boundary[bj]:
                continue
            left, right = max(bj - 1, 0), min(bj, width - 1)
            # classes that can win or tie somewhere in the block: ceiling >= floor - tolerance, where
            # floor (a lower bound of the best class's smallest corner value) is taken over the four
            # corner winners; a lower floor only keeps more classes
            floor = -np.inf
            for q in range(4):
                c = label[top if q < 2 else bottom, left if q % 2 == 0 else right]
                a, b = logits[c, top, left], logits[c, top, right]
                d, e = logits[c, bottom, left], logits[c, bottom, right]
                floor = max(floor, min(min(a, b), min(d, e)))
            count = 0
            for c in range(classes):
                a, b = logits[c, top, left], logits[c, top, right]
                d, e = logits[c, bottom, left], logits[c, bottom, right]
                if max(max(a, b), max(d, e)) >= floor - tolerance:
                    candidates[count] = c
                    corners[count, 0], corners[count, 1] = a, b
                    corners[count, 2], corners[count, 3] = d, e
                    count += 1
            if count == 0:  # only without finite logits (rejected by the caller): keep every class
                for c in range(classes):
                    candidates[c] = c
                    corners[c, 0], corners[c, 1] = logits[c, top, left], logits[c, top, right]
                    corners[c, 2], corners[c, 3] = logits[c, bottom, left], logits[c, bottom, right]
                count = classes
            # the 4-term bilinear value in float64 (exact), argmax in class order (first index wins
            # ties) and the runner-up, branch-free over the block's 64 pixels
            for n in range(count):
                c = candidates[n]
                a, b = np.float64(corners[n, 0]), np.float64(corners[n, 1])
                d, e = np.float64(corners[n, 2]), np.float64(corners[n, 3])
                if n == 0:
                    for p in range(_PIXELS):
                        best[p] = w00[p] * a + w01[p] * b + w10[p] * d + w11[p] * e
                        second[p] = -np.inf
                        winner[p] = c
                else:
                    for p in range(_PIXELS):
                        value = w00[p] * a + w01[p] * b + w10[p] * d + w11[p] * e
                        second[p] = max(second[p], min(value, best[p]))
                        winner[p] = c if value > best[p] else winner[p]
                        best[p] = max(best[p], value)
            for p in range(_PIXELS):
                winner8[p] = winner[p]
            # block column bj covers words 2bj-1, 2bj (the first and last block are half outside)
            m0, m1 = max(2 * bj - 1, 0), min(2 * bj + 1, words)
            for y in range(y0, y1):
                source = 2 * (y - oy) - (2 * bj - 1)
                for m in range(m0, m1):
                    out32[y, m] = winner32[source + m]
            if count > 1:
                near = 0
                for p in range(_PIXELS):
                    near += best[p] - second[p] <= tolerance
                if near:
                    ox = FACTOR * bj - half
                    x0, x1 = max(ox, 0), min(ox + FACTOR, out_w)
                    for y in range(y0, y1):
                        for x in range(x0, x1):
                            p = (y - oy) * FACTOR + x - ox
                            if best[p] - second[p] <= tolerance:
                                flagged_y[flagged], flagged_x[flagged] = y, x
                                flagged += 1
    return flagged


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
        count = _kernel(logits, float(relative_tolerance), out, self._flagged[0], self._flagged[1])
        return out, self._flagged[0, :count].copy(), self._flagged[1, :count].copy()

"""The edge map's labels on the host, compiled by numba: argmax over the classes of (C, h, w) logits.

The edge map E (Sec. 3.4.3) is the Laplacian of argmax(S^-), the warped logits' labels. In the ONNX
correction graph that argmax was an ArgMax node (0.12-0.17 ms of the 1.4-2.0 ms int8 graph at 1024x512,
`gsvnet-bench --op-profile`); here it is one pass over the classes with a running maximum per pixel,
vectorized over pixels: about 0.01 ms. Ties go to the first class, as torch.argmax and ONNX ArgMax
(select_last_index 0) do, so the labels, and the edge map made from them, are identical.
"""
from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["channel_argmax"]


@njit(cache=True, nogil=True)
def _channel_argmax(logits, labels):
    best = logits[0].copy()
    labels[:] = 0.0
    for c in range(1, logits.shape[0]):
        row = logits[c]
        for p in range(row.shape[0]):
            if row[p] > best[p]:
                best[p] = row[p]
                labels[p] = c


def channel_argmax(logits: np.ndarray) -> np.ndarray:
    """(1, C, h, w) float32 logits -> (1, 1, h, w) float32 labels (the first class on ties)."""
    _, classes, height, width = logits.shape
    flat = np.ascontiguousarray(logits, dtype=np.float32).reshape(classes, height * width)
    labels = np.empty(height * width, np.float32)
    _channel_argmax(flat, labels)
    return labels.reshape(1, 1, height, width)

"""Segmentation metrics: confusion matrix (numpy bincount), IoU/mIoU, mIoU by distance from keyframe."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "MetricInputError",
    "as_percent",
    "confusion_matrix",
    "iou_per_class",
    "mean_iou",
    "DistanceConfusion",
]


class MetricInputError(ValueError):
    """A prediction, label map, confusion matrix or distance is not what the metric expects."""


def confusion_matrix(pred: np.ndarray, gt: np.ndarray, num_classes: int = 19,
                     ignore_index: int = 255) -> np.ndarray:
    """Count pixels by (truth, prediction): a (C, C) int64 matrix, rows = truth, cols = prediction.

    Pixels whose truth is `ignore_index` are skipped. A truth value outside [0, C) that is not
    `ignore_index` is an error, and so is a prediction outside [0, C) on a pixel that is scored:
    a (C, C) matrix cannot hold such a prediction without inventing a false positive for some
    class, and an argmax never produces one. (cityscapesScripts counts such predictions as false
    negatives of the truth class; map them to a wrong class first if that is what you want.)
    """
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.shape != gt.shape:
        raise MetricInputError(f"prediction shape {pred.shape} differs from label shape {gt.shape}; "
                               "expected the same shape")
    if num_classes < 1:
        raise MetricInputError(f"num_classes must be >= 1, got {num_classes}")
    for name, arr in (("prediction", pred), ("label", gt)):
        if not np.issubdtype(arr.dtype, np.integer):
            raise MetricInputError(f"{name} must hold integers (class ids), got dtype {arr.dtype}")
    gt = gt.ravel().astype(np.int64, copy=False)
    pred = pred.ravel().astype(np.int64, copy=False)
    scored = gt != ignore_index
    gt = gt[scored]
    pred = pred[scored]
    if gt.size and (gt.min() < 0 or gt.max() >= num_classes):
        bad = np.unique(gt[(gt < 0) | (gt >= num_classes)])[:8].tolist()
        raise MetricInputError(f"label values {bad} are neither in [0, {num_classes}) nor the "
                               f"ignore index {ignore_index}")
    if pred.size and (pred.min() < 0 or pred.max() >= num_classes):
        bad = np.unique(pred[(pred < 0) | (pred >= num_classes)])[:8].tolist()
        raise MetricInputError(f"prediction values {bad} on scored pixels are outside "
                               f"[0, {num_classes}); expected class ids")
    counts = np.bincount(gt * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64, copy=False)


def _check_matrix(cm: np.ndarray) -> np.ndarray:
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise MetricInputError(f"confusion matrix must be square (C, C), got shape {cm.shape}")
    if cm.size and cm.min() < 0:
        raise MetricInputError("confusion matrix has negative counts; expected counts >= 0")
    return cm


def iou_per_class(cm: np.ndarray) -> np.ndarray:
    """IoU = TP / (TP + FP + FN) per class, float64; NaN for a class absent from truth and prediction."""
    cm = _check_matrix(cm).astype(np.float64)
    tp = np.diag(cm)
    union = cm.sum(axis=0) + cm.sum(axis=1) - tp
    iou = np.full(cm.shape[0], np.nan)
    present = union > 0
    iou[present] = tp[present] / union[present]
    return iou


def mean_iou(cm: np.ndarray) -> float:
    """Mean IoU in [0, 1] over the classes that are not NaN; NaN when every class is NaN."""
    iou = iou_per_class(cm)
    valid = iou[~np.isnan(iou)]
    return float(valid.mean()) if valid.size else float("nan")


def as_percent(value: float | None) -> float | None:
    """A fraction as a percentage; None (nothing to score) stays None."""
    return None if value is None else 100.0 * float(value)


def _none_if_nan(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


class DistanceConfusion:
    """Confusion matrices kept per distance from the keyframe (0 = the keyframe itself).

    MODEL_SPEC.md's protocol: for interval l, offsets 0..l-1 are scored; the *average* mIoU is the
    mIoU of one matrix pooled over every offset, the *minimum* mIoU that of the largest offset.
    """

    def __init__(self, num_classes: int = 19, ignore_index: int = 255) -> None:
        if num_classes < 1:
            raise MetricInputError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self._by_distance: dict[int, np.ndarray] = {}

    def update(self, pred: np.ndarray, gt: np.ndarray, distance: int) -> None:
        """Add one prediction scored `distance` frames after its keyframe."""
        if isinstance(distance, bool) or not isinstance(distance, (int, np.integer)) or distance < 0:
            raise MetricInputError(f"distance must be an integer >= 0, got {distance!r}")
        cm = confusion_matrix(pred, gt, self.num_classes, self.ignore_index)
        key = int(distance)
        if key in self._by_distance:
            self._by_distance[key] += cm
        else:
            self._by_distance[key] = cm

    @property
    def distances(self) -> tuple[int, ...]:
        """Distances seen so far, ascending."""
        return tuple(sorted(self._by_distance))

    def at(self, distance: int) -> np.ndarray:
        """The (C, C) matrix of one distance (a copy)."""
        if distance not in self._by_distance:
            raise MetricInputError(f"no prediction at distance {distance}; distances seen: "
                                   f"{list(self.distances)}")
        return self._by_distance[distance].copy()

    def merge(self, other: "DistanceConfusion") -> None:
        """Add every matrix of `other` (same classes) to this one, distance by distance."""
        if other.num_classes != self.num_classes or other.ignore_index != self.ignore_index:
            raise MetricInputError(f"cannot merge confusions of {other.num_classes} classes "
                                   f"(ignore {other.ignore_index}) into {self.num_classes} classes "
                                   f"(ignore {self.ignore_index})")
        for distance, cm in other._by_distance.items():
            if distance in self._by_distance:
                self._by_distance[distance] += cm
            else:
                self._by_distance[distance] = cm.copy()

    def pooled(self) -> np.ndarray:
        """One matrix summed over every distance ((C, C) zeros when nothing was added)."""
        total = np.zeros((self.num_classes, self.num_classes), np.int64)
        for cm in self._by_distance.values():
            total += cm
        return total

    def summary(self) -> dict[str, Any]:
        """JSON-ready numbers: NaN (nothing to score) is written as None."""
        dists = self.distances
        per_class = iou_per_class(self.pooled())
        return {
            "average_miou": _none_if_nan(mean_iou(self.pooled())),
            "minimum_miou": _none_if_nan(mean_iou(self._by_distance[dists[-1]])) if dists else None,
            "per_distance_miou": {d: _none_if_nan(mean_iou(self._by_distance[d])) for d in dists},
            "per_class_iou": [_none_if_nan(v) for v in per_class],
        }

"""The paper's evaluation protocol (DFF/Accel/GSVNet) over Cityscapes-layout snippets, through the stream.

For keyframe interval l and offset i in {0..l-1}, the keyframe is frame 19-i and the segmentation
is propagated i steps to frame 19, which is scored (MODEL_SPEC.md, Evaluation protocol). The result
for offset i does not depend on l, so each snippet is segmented once per offset and the intervals
are pooled afterwards: average mIoU(l) pools offsets 0..l-1, minimum mIoU(l) is offset l-1 alone.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Optional, Sequence

import numpy as np

from ..metrics import DistanceConfusion, iou_per_class, mean_iou
from ..stream import VideoSegmenter

__all__ = [
    "Snippet",
    "OffsetScores",
    "segment_offsets",
    "score_offsets",
    "score_per_frame",
    "interval_table",
]

FRAME_PERIOD_NS = 58_823_529  # Cityscapes sequences run at 17 Hz


@dataclass(frozen=True)
class Snippet:
    """The last frames of one sequence snippet (oldest first, ending at the annotated frame) + its label."""

    name: str
    frames: Sequence[np.ndarray]  # (H, W, 3) uint8 RGB, frames 19-k .. 19
    label: np.ndarray  # (H, W) uint8 trainIds, 255 = ignored


@dataclass
class OffsetScores:
    """Confusion matrices by distance from the keyframe."""

    confusion: DistanceConfusion


def segment_offsets(segmenter: VideoSegmenter, snippet: Snippet, max_offset: int
                    ) -> dict[int, np.ndarray]:
    """Labels of the annotated (last) frame for each keyframe offset 0..max_offset-1.

    Offset i resets the stream, takes frame 19-i as keyframe and propagates i steps to frame 19.
    """
    if len(snippet.frames) < max_offset:
        raise ValueError(f"snippet {snippet.name} has {len(snippet.frames)} frames; offsets up to "
                         f"{max_offset - 1} need {max_offset}")
    predictions = {}
    for offset in range(max_offset):
        segmenter.reset()
        clip = snippet.frames[len(snippet.frames) - 1 - offset:]
        for index, frame in enumerate(clip):
            result = segmenter.step(frame, index * FRAME_PERIOD_NS)
        assert result.frames_since_keyframe == offset
        predictions[offset] = result.labels
    return predictions


def score_offsets(segmenter: VideoSegmenter, snippets: Iterable[Snippet], max_offset: int = 5,
                  num_classes: int = 19, progress: Optional[Callable] = None) -> OffsetScores:
    """Run every offset on every snippet and pool confusion matrices by distance from the keyframe."""
    segmenter.keyframe_policy = "fixed"
    segmenter.keyframe_interval = 10 ** 6  # keyframes only where the protocol puts them
    scores = OffsetScores(DistanceConfusion(num_classes=num_classes))
    for snippet in snippets:
        for offset, labels in segment_offsets(segmenter, snippet, max_offset).items():
            scores.confusion.update(labels, snippet.label, offset)
        if progress is not None:
            progress()
    return scores


def score_per_frame(segmenter: VideoSegmenter, snippets: Iterable[Snippet], num_classes: int = 19,
                    progress: Optional[Callable] = None) -> DistanceConfusion:
    """Image-based segmentation of the annotated frame alone (every frame a keyframe)."""
    segmenter.keyframe_policy = "fixed"
    segmenter.keyframe_interval = 1
    confusion = DistanceConfusion(num_classes=num_classes)
    for snippet in snippets:
        segmenter.reset()
        confusion.update(segmenter.step(snippet.frames[-1], 0).labels, snippet.label, 0)
        if progress is not None:
            progress()
    return confusion


def interval_table(confusion: DistanceConfusion, intervals: Sequence[int] = (1, 2, 3, 4, 5)
                   ) -> dict[int, dict[str, float]]:
    """Average mIoU (offsets 0..l-1 pooled) and minimum mIoU (offset l-1) for each interval l."""
    table = {}
    for interval in intervals:
        pooled = sum(confusion.at(offset) for offset in range(interval))
        table[interval] = {
            "average_miou": mean_iou(pooled),
            "minimum_miou": mean_iou(confusion.at(interval - 1)),
            "per_class_iou": [None if np.isnan(v) else float(v) for v in iou_per_class(pooled)],
        }
    return table

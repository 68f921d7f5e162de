"""Time chunks of a long recording: plan them, merge their segmented bags and measurements.

Each chunk is segmented by its own stream that starts with a keyframe (reason "first" for the
first chunk, "reset" for the others), so chunks run in parallel on separate workers; the merged
output bag holds the chunks' messages in order, as one bag written by `gsvnet-bag segment` would.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Sequence

from .errors import BagError
from .reader import BagReader
from .report import TimingLog, write_report_json
from .segment import SegmentStats, report_from_stats
from .writer import BagWriter, StagedPath

__all__ = ["Window", "plan_chunks", "merge_stats", "merge_chunks"]

Window = tuple[int | None, int | None]  # [start_ns, end_ns) of receive timestamps; None: open


def plan_chunks(bag: str | Path, chunk_s: float) -> list[Window]:
    """Equal time windows of about `chunk_s` seconds over the bag's time range (metadata.yaml only).

    A recording shorter than 1.5 chunks is one window (None, None); chunk_s <= 0 turns chunking
    off. The first window starts and the last one ends open, so every message is in exactly one.
    """
    if chunk_s <= 0:
        return [(None, None)]
    info = BagReader(bag).metadata
    start = int(info["starting_time"]["nanoseconds_since_epoch"])
    duration = int(info["duration"]["nanoseconds"])
    count = int(round(duration / (chunk_s * 1e9)))
    if count < 2:
        return [(None, None)]
    cuts = [start + (duration * i) // count for i in range(1, count)]
    return list(zip([None] + cuts, cuts + [None]))


def merge_stats(parts: Sequence[SegmentStats]) -> SegmentStats:
    """One run's measurements from its chunks' (in order): timings concatenated, confusion
    matrices added, counts and segmentation wall time summed."""
    if not parts:
        raise ValueError("merge_stats needs at least one chunk")
    first = parts[0]
    log = TimingLog()
    confusion = None
    merged = SegmentStats(topic=first.topic, labels_topic=first.labels_topic,
                          model_name=first.model_name, backend=first.backend,
                          keyframe_interval=first.keyframe_interval, log=log, confusion=None)
    for part in parts:
        log.total_ms += part.log.total_ms
        log.wall_s += part.log.wall_s
        log.is_keyframe += part.log.is_keyframe
        if part.confusion is not None:
            if confusion is None:
                confusion = copy.deepcopy(part.confusion)
            else:
                confusion.merge(part.confusion)
        merged.frames += part.frames
        merged.keyframes += part.keyframes
        merged.labelled += part.labelled
        merged.scored += part.scored
        merged.wall_s += part.wall_s
    merged.confusion = confusion
    return merged


def merge_chunks(bag: str | Path, chunk_bags: Sequence[str | Path], out: str | Path,
                 stats: Sequence[SegmentStats], windows: Sequence[Window], *,
                 report: str | Path | None = None, storage: str = "sqlite3",
                 overwrite: bool = False, report_source: str | Path | None = None
                 ) -> dict[str, Any]:
    """Copy the chunks' segmented bags (raw messages, in order) into one bag at `out` and write
    the merged report (naming `report_source`, default `bag`, as its input); both appear
    complete or not at all. Returns the report."""
    if len(chunk_bags) != len(stats) or len(stats) != len(windows):
        raise ValueError("merge_chunks: one chunk bag, one stats and one window per chunk")
    writer = BagWriter(out, storage=storage, overwrite=overwrite, commit_on_exit=False, label="OUT")
    report_stage = (StagedPath(report, is_dir=False, overwrite=overwrite, label="report")
                    if report is not None else None)
    try:
        with writer:
            declared: set[str] = set()
            for chunk in chunk_bags:
                with BagReader(chunk) as reader:
                    for topic in reader.topics:
                        if topic.name not in declared:
                            writer.add_topic(topic.name, topic.msgtype)
                            declared.add(topic.name)
                    for topic, _, timestamp, raw in reader.raw_messages():
                        writer.write_raw(topic, timestamp, raw)
            if not declared:
                raise BagError(f"chunks of {bag} hold no topics; expected segmented bags")
        merged = merge_stats(stats)
        result = report_from_stats(Path(report_source or bag), writer.path, merged)
        result["chunks"] = [
            {"start_ns": start, "end_ns": end, "frames": part.frames, "keyframes": part.keyframes,
             "wall_s": part.wall_s} for (start, end), part in zip(windows, stats)]
        if report_stage is not None:
            write_report_json(result, report_stage.prepare())
            report_stage.commit()
        writer.commit()
    except BaseException:
        writer.discard()
        if report_stage is not None:
            report_stage.discard()
        raise
    return result

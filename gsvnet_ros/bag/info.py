"""`gsvnet-bag info`: topics, types, counts, time range, storage and metadata version of a rosbag2."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

from .reader import BagReader, TopicSummary

__all__ = ["BagInfo", "bag_info", "format_info"]


class BagInfo(NamedTuple):
    """Summary of a rosbag2 directory."""

    path: Path
    storage: str
    metadata_version: int | None
    ros_distro: str | None
    compression: str | None
    message_count: int
    start_ns: int | None  # first message (None for an empty bag)
    end_ns: int | None  # last message
    size_bytes: int
    files: tuple[str, ...]
    topics: tuple[TopicSummary, ...]
    verified: bool  # every message was read back and the counts match metadata.yaml


def bag_info(path: str | Path, *, verify: bool = True) -> BagInfo:
    """Read a bag's metadata; with verify, also read every message (finds truncated storage)."""
    with BagReader(path) as reader:
        bag = reader.reader
        count = bag.message_count
        start = bag.start_time if count else None
        end = bag.end_time - 1 if count else None  # rosbags' end_time is exclusive
        if verify:
            for _ in reader.raw_messages():
                pass
        files = tuple(sorted(p.name for p in reader.path.iterdir() if p.name != "metadata.yaml"))
        size = sum(p.stat().st_size for p in reader.path.iterdir() if p.is_file())
        compression = (f"{bag.compression_format} ({bag.compression_mode})"
                       if bag.compression_mode else None)
        return BagInfo(reader.path, reader.storage, reader.version, bag.ros_distro or None,
                       compression, count, start, end, size, files, tuple(reader.topics), verify)


def _time(ns: int | None) -> str:
    if ns is None:
        return "-"
    utc = datetime.fromtimestamp(ns / 1e9, tz=timezone.utc)
    sec, nanosec = divmod(ns, 1_000_000_000)
    return f"{utc:%Y-%m-%d %H:%M:%S}.{nanosec:09d} UTC ({sec}.{nanosec:09d} s)"


def _size(num_bytes: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if num_bytes < 1024 or unit == "GiB":
            return f"{num_bytes:.0f} {unit}" if unit == "B" else f"{num_bytes:.1f} {unit}"
        num_bytes /= 1024  # type: ignore[assignment]
    return ""


def format_info(info: BagInfo) -> str:
    """`ros2 bag info`-like text."""
    duration = (info.end_ns - info.start_ns) / 1e9 if info.start_ns is not None else 0.0
    lines = [
        f"Bag:              {info.path}",
        f"Storage:          {info.storage}",
        f"Metadata version: {info.metadata_version if info.metadata_version is not None else '-'}",
        f"ROS distro:       {info.ros_distro or '-'}",
        f"Compression:      {info.compression or 'none'}",
        f"Files:            {', '.join(info.files)} ({_size(info.size_bytes)})",
        f"Duration:         {duration:.3f} s",
        f"Start:            {_time(info.start_ns)}",
        f"End:              {_time(info.end_ns)}",
        f"Messages:         {info.message_count}"
        + ("  (all read back, counts match metadata)" if info.verified else ""),
        f"Topics:           {len(info.topics)}",
    ]
    width = max((len(t.name) for t in info.topics), default=0)
    type_width = max((len(t.msgtype) for t in info.topics), default=0)
    for topic in info.topics:
        lines.append(f"  {topic.name:<{width}}  {topic.msgtype:<{type_width}}  {topic.count:>8} msgs")
    return "\n".join(lines)

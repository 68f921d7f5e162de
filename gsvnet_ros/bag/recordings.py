"""The recordings of `gsvnet-bag batch`: rosbag2 folders, folders that hold them, videos, sequence
folders and list files, each given a unique output name."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from .errors import SourceError

__all__ = ["Recording", "find_recordings", "LIST_SUFFIXES", "VIDEO_INPUT_SUFFIXES"]

# A file with one of these suffixes lists inputs, one a line ('#' starts a comment; relative paths
# are relative to the list file's folder).
LIST_SUFFIXES = (".txt", ".list", ".lst")
# Files found while searching a folder that are taken as videos (a file named on the command line
# is a video whatever its suffix, unless it is a list or a bag's storage file).
VIDEO_INPUT_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg")
_STORAGE_SUFFIXES = (".db3", ".mcap")
_SEQUENCE_DIRS = ("leftImg8bit_sequence", "leftImg8bit")
_MAX_LIST_DEPTH = 8


@dataclass(frozen=True)
class Recording:
    """One recording to segment: its unique output name in --out, absolute source, and kind."""

    name: str
    source: Path
    kind: str  # "bag" (rosbag2 folder), "video" (file) or "sequence" (Cityscapes-layout folder)

    @property
    def needs_convert(self) -> bool:
        return self.kind != "bag"


def _is_bag(path: Path) -> bool:
    return path.is_dir() and (path / "metadata.yaml").is_file()


def _is_sequence(path: Path) -> bool:
    if not path.is_dir():
        return False
    if any(path.glob("*_leftImg8bit.png")):
        return True
    return any((path / name).is_dir() for name in _SEQUENCE_DIRS)


def _inside(path: Path, folders: tuple[Path, ...]) -> bool:
    return any(path == f or f in path.parents for f in folders)


def _search(root: Path, exclude: tuple[Path, ...]) -> list[tuple[Path, str]]:
    """(path, kind) of every recording under `root`; found bags and sequences are not searched."""
    found: list[tuple[Path, str]] = []
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs.sort()
        keep = []
        for name in dirs:
            child = here / name
            if name.startswith(".") or _inside(child, exclude):
                continue
            if _is_bag(child):
                found.append((child, "bag"))
            elif _is_sequence(child):
                found.append((child, "sequence"))
            else:
                keep.append(name)
        dirs[:] = keep
        for name in sorted(files):
            if Path(name).suffix.lower() in VIDEO_INPUT_SUFFIXES and not name.startswith("."):
                found.append((here / name, "video"))
    return sorted(found)


def _stem(path: Path, kind: str) -> str:
    return path.stem if kind == "video" else path.name


def _expand(item: Path, exclude: tuple[Path, ...], depth: int
            ) -> list[tuple[Path, str, str]]:
    """(source, kind, name) of the recordings one input stands for."""
    if not item.exists():
        raise SourceError(f"input {item} does not exist; expected a rosbag2 folder, a folder that "
                          "holds some, a video file, a sequence folder or a list file")
    path = item.resolve()
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in LIST_SUFFIXES:
            return _read_list(path, exclude, depth)
        if suffix in _STORAGE_SUFFIXES and (path.parent / "metadata.yaml").is_file():
            return [(path.parent, "bag", path.parent.name)]
        return [(path, "video", path.stem)]
    if _is_bag(path):
        return [(path, "bag", path.name)]
    if _is_sequence(path):
        return [(path, "sequence", path.name)]
    found = _search(path, exclude)
    if not found:
        raise SourceError(f"no recordings under {item}: expected rosbag2 folders (with "
                          "metadata.yaml), video files or Cityscapes-layout sequence folders")
    named = []
    for source, kind in found:
        parts = source.relative_to(path).parts
        named.append((source, kind, "__".join(parts[:-1] + (_stem(source, kind),))))
    return named


def _read_list(path: Path, exclude: tuple[Path, ...], depth: int) -> list[tuple[Path, str, str]]:
    if depth >= _MAX_LIST_DEPTH:
        raise SourceError(f"list file {path}: lists nested more than {_MAX_LIST_DEPTH} deep; "
                          "expected a list of recordings")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"cannot read list file {path}: {exc}") from None
    out = []
    for line in lines:
        entry = line.split("#", 1)[0].strip()
        if entry:
            target = Path(entry).expanduser()
            out += _expand(target if target.is_absolute() else path.parent / target, exclude,
                           depth + 1)
    if not out:
        raise SourceError(f"list file {path} names no recordings; expected one path a line")
    return out


def find_recordings(inputs: Iterable[str | Path], *, exclude: Iterable[str | Path] = ()
                    ) -> list[Recording]:
    """The recordings named by `inputs`, in order, each once, with unique names.

    A folder without metadata.yaml that is no sequence folder is searched recursively for rosbag2
    folders, sequence folders and video files (hidden folders and `exclude`, e.g. the output
    folder, are skipped); a recording found there is named by its path below that folder, with
    '__' between the parts. A name used twice gets -2, -3, ... A missing input, or one that holds
    no recording, is a SourceError.
    """
    skip = tuple(Path(p).resolve() for p in exclude)
    seen: set[Path] = set()
    names: set[str] = set()
    recordings = []
    for item in inputs:
        for source, kind, name in _expand(Path(item), skip, 0):
            if source in seen:
                continue
            seen.add(source)
            unique, n = name, 1
            while unique in names:
                n += 1
                unique = f"{name}-{n}"
            names.add(unique)
            recordings.append(Recording(unique, source, kind))
    if not recordings:
        raise SourceError("no recordings given; expected at least one INPUT")
    return recordings

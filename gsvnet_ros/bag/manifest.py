"""What `gsvnet-bag batch` has finished in an output folder, so that a rerun skips it.

`DIR/batch_manifest.json` holds, per recording name: the fingerprint of its input (size and mtime
of every input file, or their sha256), the hash of the settings that shape the outputs, and the
size of every output file. A recording is up to date when all three still match; anything else is
redone. The file is replaced atomically after each finished recording.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from gsvnet_ros.reporting import file_sha256

from .recordings import Recording

__all__ = ["MANIFEST_NAME", "FINGERPRINT_MODES", "Manifest", "input_files", "input_fingerprint",
           "settings_hash", "output_sizes"]

MANIFEST_NAME = "batch_manifest.json"
FINGERPRINT_MODES = ("stat", "sha256")
_FORMAT = 1


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def settings_hash(settings: Mapping[str, Any]) -> str:
    """sha256 of the settings (any JSON-able mapping), independent of key order."""
    return hashlib.sha256(_canonical(settings).encode()).hexdigest()


def input_files(recording: Recording, *, split: str = "val") -> list[Path]:
    """The files a recording's outputs are made from (what convert or segment reads)."""
    source = recording.source
    if recording.kind == "video":
        return [source]
    if recording.kind == "sequence":
        from .convert import find_sequence_frames

        files = []
        for frame in find_sequence_frames(source, split=split):
            files.append(frame.image)
            if frame.labels is not None:
                files.append(frame.labels)
        return files
    return sorted(p for p in source.iterdir() if p.is_file())


def input_fingerprint(recording: Recording, *, mode: str = "stat", split: str = "val") -> str:
    """sha256 over (relative name, size, mtime_ns) of every input file, or over their contents."""
    if mode not in FINGERPRINT_MODES:
        raise ValueError(f"fingerprint mode {mode!r}: expected one of {', '.join(FINGERPRINT_MODES)}")
    base = recording.source if recording.source.is_dir() else recording.source.parent
    rows = []
    for path in input_files(recording, split=split):
        stat = path.stat()
        name = os.path.relpath(path, base)
        rows.append([name, stat.st_size, file_sha256(path)] if mode == "sha256"
                    else [name, stat.st_size, stat.st_mtime_ns])
    return settings_hash({"mode": mode, "files": rows})


def output_sizes(paths: Iterable[Path], root: Path) -> dict[str, int]:
    """{path relative to root: size} of the given files and of every file in the given folders."""
    sizes = {}
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            sizes[os.path.relpath(file, root)] = file.stat().st_size
    return sizes


class Manifest:
    """The manifest of one output folder (entries of recordings of earlier runs are kept)."""

    def __init__(self, out_dir: str | Path) -> None:
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / MANIFEST_NAME
        self.entries: dict[str, dict[str, Any]] = {}
        try:
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # absent or unreadable: nothing counts as done
            return
        if isinstance(loaded, dict) and loaded.get("format") == _FORMAT \
                and isinstance(loaded.get("recordings"), dict):
            self.entries = {k: v for k, v in loaded["recordings"].items() if isinstance(v, dict)}

    def is_complete(self, name: str, fingerprint: str, settings: str) -> bool:
        """The outputs recorded for `name` exist with their sizes, made from the same input and
        settings."""
        entry = self.entries.get(name)
        if not entry or entry.get("input") != fingerprint or entry.get("settings") != settings:
            return False
        outputs = entry.get("outputs")
        if not isinstance(outputs, dict) or not outputs:
            return False
        for rel, size in outputs.items():
            try:
                if (self.out_dir / rel).stat().st_size != size:
                    return False
            except OSError:
                return False
        return True

    def record(self, recording: Recording, fingerprint: str, settings: str,
               outputs: Iterable[Path]) -> None:
        """Note a finished recording and save the manifest."""
        self.entries[recording.name] = {
            "source": str(recording.source), "kind": recording.kind, "input": fingerprint,
            "settings": settings, "outputs": output_sizes(outputs, self.out_dir)}
        self.save()

    def forget(self, name: str) -> None:
        """Drop an entry (its outputs are about to be replaced) and save."""
        if self.entries.pop(name, None) is not None:
            self.save()

    def save(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({"format": _FORMAT, "recordings": self.entries}, indent=1,
                                  sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)

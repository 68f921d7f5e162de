"""Atomic outputs: a rosbag2 (sqlite3 or mcap) or a file, written under a .partial name, then moved."""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from types import TracebackType
from typing import Any

from rosbags.interfaces import (Connection, Qos, QosDurability, QosHistory, QosLiveliness,
                                QosReliability, QosTime)
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys.store import Typestore

from .errors import OutputExistsError, OutputPathError
from .typestore import build_typestore

__all__ = ["STORAGES", "METADATA_VERSION", "StagedPath", "BagWriter"]

STORAGES = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}
# rosbags writes metadata version 8 or 9; 8 is the one Humble's `ros2 bag play` reads.
METADATA_VERSION = 8
# What a camera driver offers: reliable, volatile, keep last 10 (rmw "0" durations = default).
_ZERO = QosTime(0, 0)
CAMERA_QOS = Qos(QosHistory.KEEP_LAST, 10, QosReliability.RELIABLE, QosDurability.VOLATILE,
                 _ZERO, _ZERO, QosLiveliness.AUTOMATIC, _ZERO, False)


class StagedPath:
    """An output written at `partial` and moved to `final` by commit(); discard() removes it.

    Files are staged as `name.partial.suffix` (writers such as cv2.VideoWriter pick the container
    from the suffix); directories as `name.partial/`. An existing final path is an error unless
    overwrite is set, and a directory is only replaced when it is a rosbag2 (has metadata.yaml).
    """

    def __init__(self, final: str | Path, *, is_dir: bool, overwrite: bool = False,
                 label: str = "output") -> None:
        self.final = Path(final)
        self.is_dir = is_dir
        self.overwrite = overwrite
        self.label = label  # the setting that named the path (OUT, --report, ...) in errors
        name = self.final.name
        self.partial = (self.final.with_name(name + ".partial") if is_dir else
                        self.final.with_name(f"{self.final.stem}.partial{self.final.suffix}"))
        self.check()

    def _unusable(self, action: str, exc: OSError) -> OutputPathError:
        return OutputPathError(f"{self.label} {self.final}: cannot {action}: {exc}")

    def _check_parent(self) -> None:
        """The nearest existing folder above the output must be a writable directory."""
        parent = self.final.absolute().parent
        while not parent.exists() and not parent.is_symlink() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            raise OutputPathError(f"{self.label} {self.final}: cannot create it: {parent} is not a "
                                  "directory")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise OutputPathError(f"{self.label} {self.final}: cannot create it: {parent} is not "
                                  "writable")

    def check(self) -> None:
        """Fail early, before any work, when the final path may not be written."""
        if not self.final.exists() and not self.final.is_symlink():
            self._check_parent()
            return
        if not self.overwrite:
            raise OutputExistsError(
                f"output {self.final} exists already; pass --overwrite to replace it")
        if self.final.is_dir() and not self.is_dir:
            raise OutputExistsError(f"output {self.final} is a directory; expected a file path")
        if self.is_dir and self.final.is_dir() and any(self.final.iterdir()) \
                and not (self.final / "metadata.yaml").is_file():
            raise OutputExistsError(f"output {self.final} exists and is not a rosbag2 directory; "
                                    "refusing to replace it")
        if self.is_dir and not self.final.is_dir():
            raise OutputExistsError(f"output {self.final} is a file; expected a directory path")

    def prepare(self) -> Path:
        """Create the parent folder, clear a stale partial from an earlier run, return `partial`."""
        try:
            self.final.parent.mkdir(parents=True, exist_ok=True)
            self._remove(self.partial)
        except OSError as exc:
            raise self._unusable(f"create {self.partial}", exc) from None
        return self.partial

    def commit(self, content: Path | None = None) -> Path:
        """Move `content` (default: partial) to the final path, replacing it if allowed."""
        self.check()
        source = content if content is not None else self.partial
        try:
            if self.final.exists() or self.final.is_symlink():
                self._remove(self.final)
            os.replace(source, self.final)
            if content is not None:
                self._remove(self.partial)
        except OSError as exc:
            raise self._unusable(f"move {source} into place", exc) from None
        return self.final

    def discard(self) -> None:
        self._remove(self.partial)

    @staticmethod
    def _remove(path: Path) -> None:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


class BagWriter:
    """A rosbag2 written inside `OUT.partial/` and moved to OUT by commit().

    The storage file keeps the final bag's name (`OUT/OUT.db3`), so metadata.yaml is valid after
    the move. Use as a context manager: leaving with an exception discards everything; leaving
    normally closes the bag, and commit() (or commit_on_exit=True) moves it into place.
    """

    def __init__(self, path: str | Path, *, storage: str = "sqlite3", overwrite: bool = False,
                 typestore: Typestore | None = None, commit_on_exit: bool = True,
                 label: str = "output bag") -> None:
        if storage not in STORAGES:
            raise ValueError(f"unknown storage {storage!r}; expected one of {', '.join(STORAGES)}")
        self.storage = storage
        self.staged = StagedPath(path, is_dir=True, overwrite=overwrite, label=label)
        self.typestore = typestore if typestore is not None else build_typestore()
        self.commit_on_exit = commit_on_exit
        self._writer: Writer | None = None
        self._inner = self.staged.partial / self.staged.final.name
        self._closed = False
        self._connections: dict[str, Connection] = {}

    @property
    def path(self) -> Path:
        return self.staged.final

    def __enter__(self) -> BagWriter:
        try:
            self.staged.prepare().mkdir()
            self._writer = Writer(self._inner, version=METADATA_VERSION,
                                  storage_plugin=STORAGES[self.storage])
            self._writer.open()
        except OSError as exc:
            self.discard()
            raise self.staged._unusable(f"create {self.staged.partial}", exc) from None
        except BaseException:
            self.discard()
            raise
        return self

    def add_topic(self, topic: str, msgtype: str, qos: Qos = CAMERA_QOS) -> None:
        """Declare a topic before writing to it."""
        assert self._writer is not None, "BagWriter is not open"
        self._connections[topic] = self._writer.add_connection(
            topic, msgtype, typestore=self.typestore, offered_qos_profiles=[qos])

    def write(self, topic: str, timestamp_ns: int, msg: Any) -> None:
        """Serialise and write `msg` on a declared topic, recorded at `timestamp_ns`."""
        assert self._writer is not None, "BagWriter is not open"
        conn = self._connections[topic]
        self._writer.write(conn, int(timestamp_ns), self.typestore.serialize_cdr(msg, conn.msgtype))

    def write_raw(self, topic: str, timestamp_ns: int, data: bytes) -> None:
        """Write an already serialised (CDR) message of the declared topic's type, e.g. copied
        from another bag (bag.chunks merges the time chunks of one recording this way)."""
        assert self._writer is not None, "BagWriter is not open"
        self._writer.write(self._connections[topic], int(timestamp_ns), data)

    def close(self) -> None:
        """Finish the bag (metadata.yaml written) without moving it into place."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
        self._closed = True

    def commit(self) -> Path:
        """Move the finished bag to its final path."""
        if not self._closed:
            self.close()
        return self.staged.commit(self._inner)

    def discard(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.abort()
            except Exception:  # noqa: BLE001 - the partial folder is removed next anyway
                pass
        self.staged.discard()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None:
            self.discard()
            return
        try:
            self.close()
            if self.commit_on_exit:
                self.commit()
        except BaseException:
            self.discard()
            raise

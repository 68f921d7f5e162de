"""Read rosbag2 directories (sqlite3 or mcap, metadata versions 4-9) with rosbags, with named errors."""
from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any, Iterator, NamedTuple

import yaml
from rosbags.rosbag2 import Reader
from rosbags.typesys.store import Typestore

from .errors import (BagCorruptError, BagError, BagMetadataError, BagNotFoundError,
                     NoImageTopicError, TopicError)
from .typestore import IMAGE_TYPES, build_typestore

__all__ = ["TopicSummary", "BagMessage", "BagReader", "resolve_bag_dir", "describe_topics"]

_STORAGE_SUFFIXES = (".db3", ".mcap")


class TopicSummary(NamedTuple):
    """A topic of a bag as its metadata states it."""

    name: str
    msgtype: str
    count: int


class BagMessage(NamedTuple):
    """One deserialised message: topic, type, receive timestamp (ns) and the message object."""

    topic: str
    msgtype: str
    timestamp: int
    msg: Any


def describe_topics(topics: list[TopicSummary]) -> str:
    """'/a (std_msgs/msg/String), /b (...)' or '(none)'."""
    return ", ".join(f"{t.name} ({t.msgtype})" for t in topics) or "(none)"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def resolve_bag_dir(path: str | Path) -> Path:
    """The rosbag2 directory for a path (a storage file inside a bag resolves to its folder)."""
    path = Path(path)
    if not path.exists():
        raise BagNotFoundError(f"bag {path} does not exist; expected a rosbag2 directory")
    if path.is_file():
        if path.suffix in _STORAGE_SUFFIXES and (path.parent / "metadata.yaml").is_file():
            return path.parent
        raise BagMetadataError(
            f"bag {path} is a file; expected a rosbag2 directory with metadata.yaml")
    if not (path / "metadata.yaml").is_file():
        raise BagMetadataError(
            f"bag {path} has no metadata.yaml; expected a rosbag2 directory with metadata.yaml "
            "and its .db3/.mcap storage files")
    return path


def _read_metadata(bag_dir: Path) -> dict[str, Any]:
    """rosbag2_bagfile_information from metadata.yaml (for version and storage id)."""
    path = bag_dir / "metadata.yaml"
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise BagMetadataError(f"cannot read {path}: {_one_line(exc)}") from None
    info = loaded.get("rosbag2_bagfile_information") if isinstance(loaded, dict) else None
    if not isinstance(info, dict):
        raise BagMetadataError(
            f"{path} has no 'rosbag2_bagfile_information' mapping; expected rosbag2 metadata")
    return info


class BagReader:
    """A rosbag2 directory opened for reading; use as a context manager.

    Failures of the storage layer (truncated or corrupt files) become BagCorruptError, metadata
    problems BagMetadataError, so callers see one named error instead of sqlite/mcap internals.
    """

    def __init__(self, path: str | Path, *, typestore: Typestore | None = None) -> None:
        self.path = resolve_bag_dir(path)
        self.metadata = _read_metadata(self.path)
        self._typestore = typestore
        self._reader: Reader | None = None

    @property
    def typestore(self) -> Typestore:
        """The typestore used to deserialise (built on first use: `info` never needs it)."""
        if self._typestore is None:
            self._typestore = build_typestore()
        return self._typestore

    def __enter__(self) -> BagReader:
        try:
            reader = Reader(self.path)
            reader.open()
        except BagError:
            raise
        except Exception as exc:  # rosbags ReaderError, apsw/sqlite, OSError, bad YAML values
            text = _one_line(exc)
            if isinstance(exc, PermissionError):
                raise BagError(f"cannot read bag {self.path}: {text}") from None
            if "metadata" in text.lower() or "yaml" in text.lower():
                raise BagMetadataError(f"cannot open bag {self.path}: {text}") from None
            raise BagCorruptError(
                f"cannot open bag {self.path} (truncated or corrupt?): {text}") from None
        self._reader = reader
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            try:
                reader.close()
            except Exception:  # closing a broken storage must not hide the first error
                if exc_type is None:
                    raise

    @property
    def reader(self) -> Reader:
        if self._reader is None:
            raise RuntimeError("BagReader is not open; use it as a context manager")
        return self._reader

    @property
    def storage(self) -> str:
        return str(self.metadata.get("storage_identifier", ""))

    @property
    def version(self) -> int | None:
        version = self.metadata.get("version")
        return version if isinstance(version, int) else None

    @property
    def topics(self) -> list[TopicSummary]:
        """Topics in metadata order, one entry per topic (connections of a topic merged)."""
        merged: dict[str, TopicSummary] = {}
        for conn in self.reader.connections:
            have = merged.get(conn.topic)
            count = conn.msgcount + (have.count if have else 0)
            merged[conn.topic] = TopicSummary(conn.topic, conn.msgtype, count)
        return list(merged.values())

    def topic(self, name: str, *, types: tuple[str, ...] | None = None) -> TopicSummary:
        """The topic called `name`, optionally checked against allowed message types."""
        topics = self.topics
        found = next((t for t in topics if t.name == name), None)
        if found is None:
            raise TopicError(
                f"topic {name} is not in {self.path}; topics are: {describe_topics(topics)}")
        if types is not None and found.msgtype not in types:
            raise TopicError(f"topic {name} in {self.path} is {found.msgtype}; expected "
                             + " or ".join(types))
        return found

    def image_topic(self, name: str | None = None, *, exclude: tuple[str, ...] = ()) -> TopicSummary:
        """The image topic: `name` if given, else the only Image/CompressedImage topic.

        Topics in `exclude` (e.g. the ground-truth label topic, itself an Image) are not candidates.
        """
        if name is not None:
            return self.topic(name, types=IMAGE_TYPES)
        topics = self.topics
        images = [t for t in topics if t.msgtype in IMAGE_TYPES and t.name not in exclude]
        if not images:
            raise NoImageTopicError(
                f"no image topic in {self.path}; topics are: {describe_topics(topics)}")
        if len(images) > 1:
            raise TopicError(f"several image topics in {self.path}: {describe_topics(images)}; "
                             "choose one with --topic")
        return images[0]

    def raw_messages(self, topics: list[str] | None = None, *, check_counts: bool = True
                     ) -> Iterator[tuple[str, str, int, bytes]]:
        """(topic, msgtype, timestamp, raw CDR) in bag order; all topics when `topics` is None.

        With check_counts, reading fewer messages than metadata.yaml states is a BagCorruptError.
        """
        conns = [c for c in self.reader.connections if topics is None or c.topic in topics]
        expected: dict[str, int] = {}
        for conn in conns:
            expected[conn.topic] = expected.get(conn.topic, 0) + conn.msgcount
        seen = dict.fromkeys(expected, 0)
        if not conns:
            return
        iterator = self._storage_messages({(c.topic, c.msgtype) for c in conns})
        while True:
            try:
                conn, timestamp, raw = next(iterator)
            except StopIteration:
                break
            except Exception as exc:  # the storage layer failed mid-file
                raise BagCorruptError(
                    f"bag {self.path} is truncated or corrupt: {_one_line(exc)}") from None
            seen[conn.topic] += 1
            yield conn.topic, conn.msgtype, timestamp, raw
        if check_counts:
            for topic, count in expected.items():
                if seen[topic] < count:
                    raise BagCorruptError(f"bag {self.path} is truncated: read {seen[topic]} of "
                                          f"{count} messages on {topic}")

    def _storage_messages(self, wanted: set[tuple[str, str]]) -> Iterator[tuple[Any, int, bytes]]:
        """(connection, timestamp, raw) of the wanted (topic, type) pairs, storage file by file.

        rosbags' directory reader pairs metadata.yaml topics with the storage file's channels by
        (topic, type, QoS); real recordings (rosbag2's own mcap talker bag, metadata version 4)
        store different QoS in the two places, and then nothing at all is read. Matching on topic
        and type at the storage level reads them. Message-compressed bags keep the rosbags path.
        """
        storages = getattr(self.reader.storage, "storages", None)
        if storages is None or self.reader.compression_mode == "message":
            conns = [c for c in self.reader.connections if (c.topic, c.msgtype) in wanted]
            yield from self.reader.messages(connections=conns)
            return
        for storage in storages:
            conns = [c for c in storage.connections if (c.topic, c.msgtype) in wanted]
            if conns:
                yield from storage.messages(conns)

    def messages(self, topics: list[str]) -> Iterator[BagMessage]:
        """Deserialised messages of `topics` in bag order."""
        for topic, msgtype, timestamp, raw in self.raw_messages(topics):
            try:
                msg = self.typestore.deserialize_cdr(raw, msgtype)
            except KeyError:
                raise TopicError(
                    f"message type {msgtype} of {topic} is unknown to the typestore") from None
            except Exception as exc:
                raise BagCorruptError(f"bag {self.path}: cannot deserialise a {msgtype} message on "
                                      f"{topic} at {timestamp} ns: {_one_line(exc)}") from None
            yield BagMessage(topic, msgtype, timestamp, msg)

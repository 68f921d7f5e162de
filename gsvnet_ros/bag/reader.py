"""Read rosbag2 directories (sqlite3 or mcap, metadata versions 4-9) with rosbags, with named errors."""
from __future__ import annotations

import re
from pathlib import Path, PurePath
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
_STORAGE_IDS = ("sqlite3", "mcap")
# A metadata.yaml larger than this is not read (real ones are kilobytes, even with many topics).
_MAX_METADATA_BYTES = 16 * 2**20
_INT64_MAX = 2**63 - 1  # rosbag2 stores counts and nanoseconds as int64
_BAD_NAME_CHARS = re.compile(r"[\s\x00-\x1f\x7f]")


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
    """rosbag2_bagfile_information from metadata.yaml, its fields checked (see _check_metadata)."""
    path = bag_dir / "metadata.yaml"
    try:
        size = path.stat().st_size
        if size > _MAX_METADATA_BYTES:
            raise BagMetadataError(f"{path} is {size} bytes; expected a rosbag2 metadata.yaml of at "
                                   f"most {_MAX_METADATA_BYTES} bytes")
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError) as exc:
        raise BagMetadataError(f"cannot read {path}: {_one_line(exc)}") from None
    info = loaded.get("rosbag2_bagfile_information") if isinstance(loaded, dict) else None
    if not isinstance(info, dict):
        raise BagMetadataError(
            f"{path} has no 'rosbag2_bagfile_information' mapping; expected rosbag2 metadata")
    _check_metadata(info, path)
    for name in info["relative_file_paths"]:
        if not (bag_dir / PurePath(name).name).is_file():
            raise BagMetadataError(
                f"{path} lists storage file {name!r}, which is not in {bag_dir}; expected every "
                "file in relative_file_paths beside metadata.yaml")
    return info


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_ABSENT = object()  # an optional metadata field that is not there


class _Fields:
    """Typed access to metadata.yaml fields; a missing or ill-typed one is a BagMetadataError that
    names the file, the field and what was expected."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def error(self, field: str, value: Any, expected: str) -> BagMetadataError:
        return BagMetadataError(f"{self.path}: field '{field}' is {_show(value)}; expected {expected}")

    def get(self, mapping: dict, key: str, field: str, required: bool = True) -> Any:
        """The value, or _ABSENT for a missing optional field (a missing required one: error)."""
        if key not in mapping:
            if required:
                raise BagMetadataError(f"{self.path}: field '{field}' is missing; expected rosbag2 "
                                       "metadata with it")
            return _ABSENT
        return mapping[key]

    def integer(self, mapping: dict, key: str, field: str, low: int = 0, high: int = _INT64_MAX,
                required: bool = True) -> int | None:
        value = self.get(mapping, key, field, required)
        if value is _ABSENT:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.error(field, value, f"an integer >= {low} (int64)" if high == _INT64_MAX
                             else f"an integer in {low}..{high}")
        return value

    def text(self, mapping: dict, key: str, field: str, required: bool = True,
             choices: tuple[str, ...] = (), nullable: bool = False) -> str | None:
        value = self.get(mapping, key, field, required)
        if value is _ABSENT or (value is None and nullable):
            return None
        if not isinstance(value, str) or (choices and value not in choices):
            raise self.error(field, value, " or ".join(repr(c) for c in choices) if choices
                             else "a string" + (" or null" if nullable else ""))
        return value

    def mapping(self, mapping: dict, key: str, field: str, required: bool = True,
                nullable: bool = False) -> dict | None:
        value = self.get(mapping, key, field, required)
        if value is _ABSENT or (value is None and nullable):
            return None
        if not isinstance(value, dict):
            raise self.error(field, value, "a mapping" + (" or null" if nullable else ""))
        return value

    def sequence(self, mapping: dict, key: str, field: str, required: bool = True) -> list:
        value = self.get(mapping, key, field, required)
        if value is _ABSENT:
            return []
        if not isinstance(value, list):
            raise self.error(field, value, "a list")
        return value


def _check_qos(f: _Fields, qos: Any, field: str) -> None:
    """QoS profiles as rosbags parses them (a YAML string or a list of mappings)."""
    if not isinstance(qos, (str, list)):
        raise f.error(field, qos, "a YAML string or a list of QoS profiles")
    try:
        from rosbags.rosbag2.metadata import parse_qos
    except ImportError:  # another rosbags layout: its reader reports problems itself
        return
    try:
        parse_qos(qos)
    except Exception as exc:  # noqa: BLE001 - any failure of the parser is a bad field
        raise f.error(field, qos, f"rosbag2 QoS profiles ({_one_line(exc)})") from None


def _check_metadata(info: dict[str, Any], path: Path) -> None:
    """Every metadata.yaml field the reader (and rosbags) uses has the type and range rosbag2 writes.

    So a hand-edited or hostile file is one named error, never a TypeError deep in a reader; a
    storage file listed twice (which would be read twice) is an error too.
    """
    f = _Fields(path)
    f.integer(info, "version", "version", 1, 9)
    f.text(info, "storage_identifier", "storage_identifier", choices=_STORAGE_IDS)
    files = f.sequence(info, "relative_file_paths", "relative_file_paths")
    if not files:
        raise f.error("relative_file_paths", files, "at least one storage file")
    seen: dict[str, int] = {}
    for i, name in enumerate(files):
        if not isinstance(name, str) or not PurePath(name).name:
            raise f.error(f"relative_file_paths[{i}]", name, "a storage file name")
        base = PurePath(name).name  # rosbags opens <bag>/<name>, whatever folders are written
        if base in seen:
            raise BagMetadataError(
                f"{path}: field 'relative_file_paths' lists storage file {base!r} twice (entries "
                f"{seen[base]} and {i}); expected each storage file once")
        seen[base] = i
    f.integer(f.mapping(info, "duration", "duration"), "nanoseconds", "duration.nanoseconds")
    f.integer(f.mapping(info, "starting_time", "starting_time"), "nanoseconds_since_epoch",
              "starting_time.nanoseconds_since_epoch")
    f.integer(info, "message_count", "message_count")
    for i, topic in enumerate(f.sequence(info, "topics_with_message_count",
                                         "topics_with_message_count")):
        where = f"topics_with_message_count[{i}]"
        if not isinstance(topic, dict):
            raise f.error(where, topic, "a mapping with topic_metadata and message_count")
        f.integer(topic, "message_count", f"{where}.message_count")
        meta = f.mapping(topic, "topic_metadata", f"{where}.topic_metadata")
        assert meta is not None
        for key, what in (("name", "a topic name such as /camera/image_raw"),
                          ("type", "a message type such as sensor_msgs/msg/Image")):
            value = f.text(meta, key, f"{where}.topic_metadata.{key}")
            if not value or _BAD_NAME_CHARS.search(value):  # ROS names have no spaces or controls
                raise f.error(f"{where}.topic_metadata.{key}", value, what)
        f.text(meta, "serialization_format", f"{where}.topic_metadata.serialization_format",
               choices=("cdr",))
        qos = f.get(meta, "offered_qos_profiles", f"{where}.topic_metadata.offered_qos_profiles",
                    required=False)
        if qos is not _ABSENT:
            _check_qos(f, qos, f"{where}.topic_metadata.offered_qos_profiles")
        f.text(meta, "type_description_hash", f"{where}.topic_metadata.type_description_hash",
               required=False, nullable=True)
    for i, item in enumerate(f.sequence(info, "files", "files", required=False)):
        if not isinstance(item, dict):
            raise f.error(f"files[{i}]", item, "a mapping with path and message_count")
        f.text(item, "path", f"files[{i}].path")
        f.integer(item, "message_count", f"files[{i}].message_count", required=False)
    compression = f.text(info, "compression_format", "compression_format", required=False,
                         nullable=True)
    mode = f.text(info, "compression_mode", "compression_mode", required=False)
    if mode is not None and mode.lower() not in ("", "none", "file", "message"):
        raise f.error("compression_mode", mode, "'', 'none', 'file' or 'message'")
    if mode and mode.lower() != "none" and compression != "zstd":
        raise f.error("compression_format", compression,
                      f"'zstd' (the only compression rosbag2 writes) with compression_mode {mode!r}")
    f.mapping(info, "custom_data", "custom_data", required=False, nullable=True)
    f.text(info, "ros_distro", "ros_distro", required=False, nullable=True)


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
        try:
            self._check_storage_matches()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _check_storage_matches(self) -> None:
        """Each topic metadata.yaml lists with messages is in a storage file, with the same type.

        Otherwise reading finds none of its messages; say what does not match instead.
        """
        storages = getattr(self.reader.storage, "storages", None)
        if storages is None:
            return
        held: dict[str, set[str]] = {}
        for storage in storages:
            for conn in storage.connections:
                held.setdefault(conn.topic, set()).add(conn.msgtype)
        for conn in self.reader.connections:
            types = held.get(conn.topic)
            if conn.msgcount == 0 or (types and conn.msgtype in types):
                continue
            where = f"{self.path / 'metadata.yaml'} does not match the storage"
            if not types:
                stored = ", ".join(f"{t} ({', '.join(sorted(held[t]))})" for t in held) or "(none)"
                raise BagMetadataError(
                    f"{where}: it lists {conn.topic} ({conn.msgtype}, {conn.msgcount} messages), "
                    f"which no storage file holds; the storage files hold: {stored}")
            raise BagMetadataError(
                f"{where}: it lists {conn.topic} as {conn.msgtype}, the storage files hold "
                f"{conn.topic} as {' and '.join(sorted(types))}; expected the same type in both")

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

    def raw_messages(self, topics: list[str] | None = None, *, check_counts: bool = True,
                     start: int | None = None, stop: int | None = None
                     ) -> Iterator[tuple[str, str, int, bytes]]:
        """(topic, msgtype, timestamp, raw CDR) in bag order; all topics when `topics` is None.

        Only messages with start <= timestamp < stop (ns) when either is given. With check_counts
        (and no such window), reading fewer messages than metadata.yaml states is a BagCorruptError.
        """
        if start is not None or stop is not None:
            check_counts = False
        conns = [c for c in self.reader.connections if topics is None or c.topic in topics]
        expected: dict[str, int] = {}
        for conn in conns:
            expected[conn.topic] = expected.get(conn.topic, 0) + conn.msgcount
        seen = dict.fromkeys(expected, 0)
        if not conns:
            return
        iterator = self._storage_messages({(c.topic, c.msgtype) for c in conns}, start, stop)
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
                    raise BagCorruptError(
                        f"bag {self.path} is truncated, or its metadata.yaml does not match the "
                        f"storage: read {seen[topic]} of the {count} messages it lists on {topic}")
                if seen[topic] > count:
                    raise BagMetadataError(
                        f"{self.path / 'metadata.yaml'} does not match the storage: it lists {count} "
                        f"messages on {topic}, the storage files hold {seen[topic]}")

    def _storage_messages(self, wanted: set[tuple[str, str]], start: int | None = None,
                          stop: int | None = None) -> Iterator[tuple[Any, int, bytes]]:
        """(connection, timestamp, raw) of the wanted (topic, type) pairs, storage file by file.

        rosbags' directory reader pairs metadata.yaml topics with the storage file's channels by
        (topic, type, QoS); real recordings (rosbag2's own mcap talker bag, metadata version 4)
        store different QoS in the two places, and then nothing at all is read. Matching on topic
        and type at the storage level reads them. Message-compressed bags keep the rosbags path.
        """
        storages = getattr(self.reader.storage, "storages", None)
        if storages is None or self.reader.compression_mode == "message":
            conns = [c for c in self.reader.connections if (c.topic, c.msgtype) in wanted]
            yield from self.reader.messages(connections=conns, start=start, stop=stop)
            return
        for storage in storages:
            conns = [c for c in storage.connections if (c.topic, c.msgtype) in wanted]
            if conns:
                yield from storage.messages(conns, start=start, stop=stop)

    def messages(self, topics: list[str], *, start: int | None = None, stop: int | None = None
                 ) -> Iterator[BagMessage]:
        """Deserialised messages of `topics` in bag order (start <= timestamp < stop when given)."""
        for topic, msgtype, timestamp, raw in self.raw_messages(topics, start=start, stop=stop):
            try:
                msg = self.typestore.deserialize_cdr(raw, msgtype)
            except KeyError:
                raise TopicError(
                    f"message type {msgtype} of {topic} is unknown to the typestore") from None
            except Exception as exc:
                raise BagCorruptError(f"bag {self.path}: cannot deserialise a {msgtype} message on "
                                      f"{topic} at {timestamp} ns: {_one_line(exc)}") from None
            yield BagMessage(topic, msgtype, timestamp, msg)

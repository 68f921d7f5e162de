"""Offline segmentation of a rosbag2: class/colour masks and SegmentationInfo out, report and preview.

torch is imported only inside build_segmenter(), so `gsvnet-bag info` and `convert` never load it.
"""
from __future__ import annotations

import contextlib
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Iterator, Mapping, NamedTuple

import numpy as np
from tqdm import tqdm

from gsvnet_ros.codec import (DEFAULT_MAX_IMAGE_PIXELS, ImageDecodeError, decode_compressed,
                              decode_image, encode_image, labels_to_color, resize_labels)

from .errors import BagError, BagImageError, SegmenterError, TopicError
from .overlay import STRIP_SUFFIXES, VIDEO_SUFFIXES, OverlaySink, make_overlay_sink
from .reader import BagReader
from .report import TimingLog, accuracy_section, build_report, write_report_json
from .typestore import (COMPRESSED_IMAGE, IMAGE, SEGMENTATION_INFO, make_image,
                        make_segmentation_info, stamp_to_ns)
from .writer import STORAGES, BagWriter, StagedPath

__all__ = ["DEFAULT_LABELS_TOPIC", "SegmentOptions", "SegmentResult", "SegmentStats",
           "build_segmenter", "report_from_stats", "segment_bag"]

DEFAULT_LABELS_TOPIC = "/camera/labels"
# Predictions (or labels) waiting for their partner with the same stamp; oldest dropped beyond this.
_PENDING_LIMIT = 32


@dataclass(frozen=True)
class SegmentOptions:
    """Options of `gsvnet-bag segment` (see the CLI help for each)."""

    topic: str | None = None  # None: the only Image/CompressedImage topic
    labels_topic: str | None = None  # None: DEFAULT_LABELS_TOPIC when the bag has it
    output_ns: str = "/segmentation_node"  # outputs: <output_ns>/class_mask, /color_mask, /info
    storage: str = "sqlite3"
    report: Path | None = None
    overlay: Path | None = None
    overlay_frames: int = 8
    overlay_alpha: float = 0.5
    overwrite: bool = False
    progress: bool = True
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS  # larger images (header size) are an error
    # Time window [start_ns, end_ns) of receive timestamps to segment (None: open end); a window
    # may hold no frame. Used by `gsvnet-bag batch` for the time chunks of a long recording.
    start_ns: int | None = None
    end_ns: int | None = None
    # Called after every segmented frame with the number of frames done so far (progress of
    # `gsvnet-bag batch`); an exception it raises aborts the run like any other (nothing is kept).
    on_frame: Callable[[int], None] | None = field(default=None, compare=False)
    # What the report names as its input (default: the bag): the video or sequence folder that
    # `gsvnet-bag batch` converted into the temporary bag it segments.
    report_source: str | None = None
    # Segment through the segmenter's segment() when it has one: the next frame's host work and the
    # last one's output stage on a second thread, while this one decodes, runs the networks and writes.
    # `gsvnet-bag batch` turns it off: Ray gives each worker its own CPUs, and the batch scales by workers.
    pipelined: bool = True

    def __post_init__(self) -> None:
        if self.start_ns is not None and self.end_ns is not None and self.end_ns <= self.start_ns:
            raise ValueError(f"time window [{self.start_ns}, {self.end_ns}) ns is empty; expected "
                             "start_ns < end_ns")
        if isinstance(self.max_image_pixels, bool) or not isinstance(self.max_image_pixels, int) \
                or self.max_image_pixels < 1:
            raise ValueError(f"--max-image-pixels {self.max_image_pixels!r}: expected an integer "
                             ">= 1 (width x height)")
        if self.storage not in STORAGES:
            raise ValueError(f"storage {self.storage!r}: expected one of {', '.join(STORAGES)}")
        if self.overlay is not None and \
                Path(self.overlay).suffix.lower() not in VIDEO_SUFFIXES + STRIP_SUFFIXES:
            raise ValueError(f"overlay {self.overlay}: expected a .mp4, .avi or .png path")
        if not self.output_ns.startswith("/"):
            raise ValueError(f"output namespace {self.output_ns!r}: expected an absolute name")


@dataclass
class SegmentStats:
    """What one run measured, before it becomes a report: runs over the time chunks of one
    recording are merged by concatenating `log`s and adding `confusion`s (bag.chunks)."""

    topic: str
    labels_topic: str | None
    model_name: str
    backend: str
    keyframe_interval: int | None
    log: TimingLog
    confusion: Any  # metrics.DistanceConfusion, or None without ground truth
    frames: int = 0
    keyframes: int = 0
    labelled: int = 0  # ground-truth messages read
    scored: int = 0  # of them paired with a prediction
    wall_s: float = 0.0


class SegmentResult(NamedTuple):
    """What segment_bag() wrote and measured."""

    output: Path
    report: dict[str, Any]
    report_path: Path | None
    overlay_path: Path | None
    stats: SegmentStats | None = None


def build_segmenter(config: str | Path | None = None, *, keyframe_interval: int | None = None,
                    device: str | None = None, backend: str | None = None,
                    overrides: Mapping[str, Mapping[str, Any]] | None = None) -> Any:
    """A stream.VideoSegmenter from a YAML config plus overrides (imports torch).

    `overrides` is {section: {key: value}} as config.load_config takes it; keyframe_interval,
    device and backend are shorthands for stream.keyframe_interval, runtime.device/backend.
    """
    from gsvnet_ros.config import ConfigError, load_config
    from gsvnet_ros.models.weights import WeightsError
    from gsvnet_ros.stream import VideoSegmenter

    merged: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (overrides or {}).items()}
    if keyframe_interval is not None:
        merged.setdefault("stream", {})["keyframe_interval"] = keyframe_interval
    if device is not None:
        merged.setdefault("runtime", {})["device"] = device
    if backend is not None:
        merged.setdefault("runtime", {})["backend"] = backend
    try:
        return VideoSegmenter.from_config(load_config(config, merged))
    except (ConfigError, WeightsError, RuntimeError, OSError) as exc:
        raise SegmenterError(f"cannot build the segmenter: {exc}") from None


def _decode_frame(msg: Any, msgtype: str, topic: str, timestamp: int, max_pixels: int) -> np.ndarray:
    decode = decode_compressed if msgtype == COMPRESSED_IMAGE else decode_image
    try:
        return decode(msg, max_pixels=max_pixels)
    except ImageDecodeError as exc:
        raise BagImageError(f"image on {topic} at {timestamp} ns: {exc}") from None


def _decode_labels(msg: Any, topic: str, timestamp: int, max_pixels: int) -> np.ndarray:
    """(H, W) uint8 trainIds from a mono8 (or 8UC1) label image."""
    if msg.encoding not in ("mono8", "8UC1"):
        raise BagImageError(f"label image on {topic} at {timestamp} ns has encoding "
                            f"{msg.encoding!r}; expected mono8 trainIds")
    shim = SimpleNamespace(height=msg.height, width=msg.width, encoding="mono8", step=msg.step,
                           is_bigendian=0, data=msg.data)
    try:
        return decode_image(shim, max_pixels=max_pixels)[:, :, 0].copy()
    except ImageDecodeError as exc:
        raise BagImageError(f"label image on {topic} at {timestamp} ns: {exc}") from None


def _bounded_put(store: OrderedDict, key: int, value: Any) -> None:
    store[key] = value
    while len(store) > _PENDING_LIMIT:
        store.popitem(last=False)


class _Scorer:
    """Pairs predictions and ground truth by exact header stamp; feeds metrics.DistanceConfusion."""

    def __init__(self, num_classes: int, topic: str) -> None:
        from gsvnet_ros.metrics import DistanceConfusion  # numpy only

        self.topic = topic
        self.confusion = DistanceConfusion(num_classes=num_classes)
        self.pending_preds: OrderedDict[int, tuple[np.ndarray, int]] = OrderedDict()
        self.pending_labels: OrderedDict[int, np.ndarray] = OrderedDict()
        self.scored = 0

    def _score(self, pred: np.ndarray, truth: np.ndarray, distance: int) -> None:
        pred = resize_labels(pred, truth.shape)  # output_resolution "1/8": upsample to the truth
        try:
            self.confusion.update(pred, truth, distance)
        except ValueError as exc:  # metrics.MetricInputError: e.g. labelIds instead of trainIds
            raise BagImageError(f"ground truth on {self.topic}: {exc}; expected mono8 trainIds "
                                "(0..18, 255 = ignore)") from None
        self.scored += 1

    def prediction(self, stamp_ns: int, pred: np.ndarray, distance: int) -> None:
        truth = self.pending_labels.pop(stamp_ns, None)
        if truth is None:
            _bounded_put(self.pending_preds, stamp_ns, (pred, distance))
        else:
            self._score(pred, truth, distance)

    def truth(self, stamp_ns: int, truth: np.ndarray) -> None:
        waiting = self.pending_preds.pop(stamp_ns, None)
        if waiting is None:
            _bounded_put(self.pending_labels, stamp_ns, truth)
        else:
            self._score(waiting[0], truth, waiting[1])


def _labels_topic(reader: BagReader, requested: str | None) -> str | None:
    if requested is not None:
        return reader.topic(requested, types=(IMAGE,)).name
    found = [t for t in reader.topics if t.name == DEFAULT_LABELS_TOPIC and t.msgtype == IMAGE]
    return found[0].name if found else None


def segment_bag(bag: str | Path, out: str | Path, make_segmenter: Callable[[], Any],
                options: SegmentOptions = SegmentOptions()) -> SegmentResult:
    """Segment the image topic of `bag` frame by frame in bag order; write a rosbag2 at `out`.

    `make_segmenter()` is called once the bag and outputs are checked; it returns an object with
    the stream.VideoSegmenter step() contract. Outputs are staged and moved into place together
    only when everything succeeded.
    """
    bag, out = Path(bag), Path(out)
    if out.resolve() == bag.resolve():
        raise BagError(f"output {out} is the input bag; expected another path")
    writer = BagWriter(out, storage=options.storage, overwrite=options.overwrite, commit_on_exit=False,
                       label="OUT")
    report_stage = overlay_stage = None
    if options.report is not None:
        report_stage = StagedPath(options.report, is_dir=False, overwrite=options.overwrite,
                                  label="--report")
    if options.overlay is not None:
        overlay_stage = StagedPath(options.overlay, is_dir=False, overwrite=options.overwrite,
                                   label="--overlay")
    staged = [s for s in (report_stage, overlay_stage) if s is not None]
    try:
        with BagReader(bag) as reader:
            labels_topic = _labels_topic(reader, options.labels_topic)
            image = reader.image_topic(options.topic, exclude=(labels_topic,) if labels_topic else ())
            if image.name == labels_topic:
                raise TopicError(f"image topic {image.name} is also the labels topic; expected "
                                 "two different topics")
            if image.count == 0:
                raise TopicError(f"image topic {image.name} in {reader.path} has no messages")
            segmenter = make_segmenter()
            sink = None
            if overlay_stage is not None:
                sink = make_overlay_sink(overlay_stage.final, overlay_stage.prepare(),
                                         alpha=options.overlay_alpha, total_frames=image.count,
                                         strip_frames=options.overlay_frames)
            with writer:
                stats = _run(reader, writer, segmenter, image.name, image.count, labels_topic,
                             sink, options)
            source = Path(options.report_source) if options.report_source else reader.path
            report = report_from_stats(source, writer.path, stats)
            if sink is not None:
                sink.finish()
        if report_stage is not None:
            write_report_json(report, report_stage.prepare())
        for item in staged:
            item.commit()
        writer.commit()
    except BaseException:
        writer.discard()
        for item in staged:
            item.discard()
        raise
    return SegmentResult(out, report, options.report, options.overlay, stats)


def report_from_stats(bag: Path, output: Path, stats: SegmentStats) -> dict[str, Any]:
    """The report of a run (bag.report.build_report) from its measurements."""
    accuracy = None
    if stats.confusion is not None and stats.labelled:
        accuracy = accuracy_section(stats.confusion.summary(),
                                    labels_topic=stats.labels_topic or "",
                                    labelled_frames=stats.scored,
                                    unmatched_labels=stats.labelled - stats.scored)
    return build_report(bag=bag, output=output, topic=stats.topic, frames=stats.frames,
                        keyframes=stats.keyframes, keyframe_interval=stats.keyframe_interval,
                        model_name=stats.model_name, backend=stats.backend, log=stats.log,
                        wall_s=stats.wall_s, accuracy=accuracy)


def _run(reader: BagReader, writer: BagWriter, segmenter: Any, topic: str, total: int,
         labels_topic: str | None, sink: OverlaySink | None, options: SegmentOptions
         ) -> SegmentStats:
    typestore = writer.typestore
    ns = options.output_ns.rstrip("/")
    class_topic, color_topic, info_topic = f"{ns}/class_mask", f"{ns}/color_mask", f"{ns}/info"
    writer.add_topic(class_topic, IMAGE)
    writer.add_topic(color_topic, IMAGE)
    writer.add_topic(info_topic, SEGMENTATION_INFO)
    model_name = str(getattr(segmenter, "model_name", ""))
    backend = str(getattr(segmenter, "backend_name", ""))
    scorer = _Scorer(int(getattr(segmenter, "num_classes", 19)), labels_topic) if labels_topic else None
    log, frames_done, keyframes, labelled = TimingLog(), 0, 0, 0
    topics = [topic] + ([labels_topic] if labels_topic else [])
    progress = tqdm(total=total, unit="frame", desc=f"segment {topic}",
                    disable=None if options.progress else True)
    decoded: deque[tuple[Any, int, np.ndarray]] = deque()  # frames handed to the segmenter, in order
    decode_s = 0.0  # time spent reading and decoding, also while the segmenter pulls the next frame

    def frames() -> Iterator[tuple[np.ndarray, int]]:
        nonlocal labelled, decode_s
        for item in reader.messages(topics, start=options.start_ns, stop=options.end_ns):
            read_started = time.perf_counter()
            stamp_ns = stamp_to_ns(item.msg.header.stamp)
            if item.topic == labels_topic:
                labelled += 1
                assert scorer is not None
                scorer.truth(stamp_ns, _decode_labels(item.msg, item.topic, item.timestamp,
                                                      options.max_image_pixels))
                decode_s += time.perf_counter() - read_started
                continue
            rgb = _decode_frame(item.msg, item.msgtype, item.topic, item.timestamp,
                                options.max_image_pixels)
            decoded.append((item, stamp_ns, rgb))
            decode_s += time.perf_counter() - read_started
            yield rgb, stamp_ns

    pipelined = options.pipelined and callable(getattr(segmenter, "segment", None))
    results = (segmenter.segment(frames()) if pipelined
               else (segmenter.step(rgb, stamp_ns) for rgb, stamp_ns in frames()))
    started = time.perf_counter()
    with progress, contextlib.closing(results):  # on any error, segment()'s worker thread ends here
        while True:
            step_started, decode_before = time.perf_counter(), decode_s
            try:
                result = next(results)
            except StopIteration:
                break
            except ValueError as exc:  # stream.SegmentationError: bad frame or non-finite output
                stamp_ns = decoded[0][1] if decoded else "?"  # the oldest frame still waiting
                raise SegmenterError(
                    f"segmentation failed on the frame at {stamp_ns} ns: {exc}") from None
            # the segmenter's wall time for this frame, without the reading and decoding it pulled
            log.add(result.timings_ms.get("total", 0.0),
                    time.perf_counter() - step_started - (decode_s - decode_before), result.is_keyframe)
            item, stamp_ns, rgb = decoded.popleft()
            header = item.msg.header
            writer.write(class_topic, item.timestamp,
                         _image_msg(typestore, header, result.labels, "mono8"))
            writer.write(color_topic, item.timestamp,
                         _image_msg(typestore, header, labels_to_color(result.labels), "rgb8"))
            writer.write(info_topic, item.timestamp, make_segmentation_info(
                typestore, header, result, model_name=model_name, backend=backend))
            if scorer is not None:
                scorer.prediction(stamp_ns, result.labels, int(result.frames_since_keyframe))
            if sink is not None:
                sink.add(frames_done, rgb, result.labels, stamp_ns, result.is_keyframe)
            frames_done += 1
            keyframes += int(result.is_keyframe)
            progress.update(1)
            if options.on_frame is not None:
                options.on_frame(frames_done)
    return SegmentStats(topic=topic, labels_topic=labels_topic, model_name=model_name,
                        backend=backend,
                        keyframe_interval=getattr(segmenter, "keyframe_interval", None), log=log,
                        confusion=scorer.confusion if scorer is not None else None, frames=frames_done,
                        keyframes=keyframes, labelled=labelled,
                        scored=scorer.scored if scorer is not None else 0,
                        wall_s=time.perf_counter() - started)


def _image_msg(typestore: Any, header: Any, pixels: np.ndarray, encoding: str) -> Any:
    return make_image(typestore, header, encode_image(pixels, encoding))

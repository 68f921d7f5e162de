"""Convert a Cityscapes-layout image sequence or a video file to a rosbag2 of camera images."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, NamedTuple

import cv2
import numpy as np
from tqdm import tqdm

from gsvnet_ros.codec import encode_image
from gsvnet_ros.labels import label_ids_to_train_ids

from .errors import SourceError
from .typestore import CAMERA_INFO, IMAGE, make_camera_info, make_header, make_image
from .writer import BagWriter

__all__ = ["ConvertOptions", "ConvertSummary", "SourceFrame", "find_sequence_frames", "convert"]

START_STAMP_NS = 1_700_000_000 * 1_000_000_000  # a fixed, realistic epoch (2023-11-14)
# Stamp gap inserted between snippets: longer than any sensible max-gap rule (stream default 0.5 s),
# so a consumer resets its temporal state where the recording is discontinuous.
SNIPPET_GAP_NS = 2_000_000_000
CITYSCAPES_FPS = 17.0
_FRAME_RE = re.compile(r"^(?P<city>.+)_(?P<seq>\d{6})_(?P<frame>\d{6})_leftImg8bit\.png$")
_IMAGE_DIRS = ("leftImg8bit_sequence", "leftImg8bit")
LABEL_MODES = ("dense", "sparse", "none")


@dataclass(frozen=True)
class ConvertOptions:
    """Options of `gsvnet-bag convert` (see the CLI help for each)."""

    storage: str = "sqlite3"
    fps: float | None = None  # None: 17 for image sequences, the container's rate for videos
    frame_id: str = "camera"
    topic: str = "/camera/image_raw"
    camera_info_topic: str | None = None  # None: <namespace of topic>/camera_info
    labels_topic: str | None = None  # None: <namespace of topic>/labels
    encoding: str = "rgb8"
    limit: int | None = None
    labels: str = "dense"  # dense | sparse | none
    split: str = "val"
    overwrite: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        if self.encoding not in ("rgb8", "bgr8"):
            raise ValueError(f"encoding {self.encoding!r}: expected rgb8 or bgr8")
        if self.labels not in LABEL_MODES:
            raise ValueError(f"labels {self.labels!r}: expected one of {', '.join(LABEL_MODES)}")
        if self.fps is not None and not self.fps > 0:
            raise ValueError(f"fps {self.fps}: expected a number > 0")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit {self.limit}: expected an integer >= 1")
        if not self.topic.startswith("/"):
            raise ValueError(
                f"topic {self.topic!r}: expected an absolute name such as /camera/image_raw")

    def sibling(self, name: str) -> str:
        """A topic next to the image topic: /camera/image_raw -> /camera/<name>."""
        namespace = self.topic.rsplit("/", 1)[0]
        return f"{namespace}/{name}"


class SourceFrame(NamedTuple):
    """One frame of a sequence on disk: image file, optional labelIds file, snippet and frame index."""

    image: Path
    labels: Path | None
    snippet: str
    frame: int


class ConvertSummary(NamedTuple):
    """What convert() wrote."""

    path: Path
    frames: int
    labelled_frames: int
    snippets: int
    duration_ns: int


def _label_file(image: Path, mode: str) -> Path | None:
    """labelIds file for a frame in .../<leftImg8bit_sequence|leftImg8bit>/<split>/<city>/ layout."""
    if mode == "none" or len(image.parents) < 4 or image.parents[2].name not in _IMAGE_DIRS:
        return None
    root, split, city = image.parents[3], image.parents[1].name, image.parent.name
    stem = image.name[: -len("_leftImg8bit.png")]
    candidates = []
    if mode == "dense":
        candidates.append(root / "gtFine_sequence" / split / city / f"{stem}_gtFine_labelIds.png")
    candidates.append(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png")
    return next((c for c in candidates if c.is_file()), None)


def _sequence_dirs(src: Path, split: str) -> list[Path]:
    """Folders that hold *_leftImg8bit.png frames: src itself, its city folders, or root/<dir>/split."""
    if any(src.glob("*_leftImg8bit.png")):
        return [src]
    for name in _IMAGE_DIRS:
        split_dir = src / name / split
        if split_dir.is_dir():
            return sorted(p for p in split_dir.iterdir() if p.is_dir())
        if (src / name).is_dir():
            splits = sorted(p.name for p in (src / name).iterdir() if p.is_dir())
            raise SourceError(f"no split '{split}' in {src / name}; splits are: "
                              f"{', '.join(splits) or '(none)'} (choose one with --split)")
    return sorted(p for p in src.iterdir() if p.is_dir() and any(p.glob("*_leftImg8bit.png")))


def find_sequence_frames(src: str | Path, *, split: str = "val", labels: str = "dense"
                         ) -> list[SourceFrame]:
    """All frames under a sequence folder or dataset root, sorted by (city, snippet, frame)."""
    src = Path(src)
    frames = []
    for folder in _sequence_dirs(src, split):
        for image in folder.glob("*_leftImg8bit.png"):
            match = _FRAME_RE.match(image.name)
            if match is None:
                raise SourceError(f"frame name {image.name} does not follow "
                                  "<city>_<seq:06d>_<frame:06d>_leftImg8bit.png")
            snippet = f"{match['city']}_{match['seq']}"
            frames.append(SourceFrame(image, _label_file(image, labels), snippet, int(match["frame"])))
    if not frames:
        raise SourceError(
            f"no *_leftImg8bit.png frames in {src}; expected a Cityscapes sequence folder, a dataset "
            f"root with leftImg8bit_sequence/{split}/<city>/, or a video file")
    return sorted(frames, key=lambda f: (f.snippet, f.frame))


def _read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise SourceError(f"cannot read image {path}; expected a readable PNG")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _read_train_ids(path: Path, shape: tuple[int, int]) -> np.ndarray:
    label_ids = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if label_ids is None or label_ids.ndim != 2 or label_ids.dtype != np.uint8:
        raise SourceError(f"cannot read labels {path}; expected a single-channel 8-bit labelIds PNG")
    if label_ids.shape != shape:
        raise SourceError(f"labels {path} are {label_ids.shape[1]}x{label_ids.shape[0]}; expected the "
                          f"image size {shape[1]}x{shape[0]}")
    return label_ids_to_train_ids(label_ids)


class _Timed(NamedTuple):
    stamp_ns: int
    rgb: np.ndarray
    train_ids: np.ndarray | None


def _sequence_stream(frames: list[SourceFrame], fps: float) -> Iterator[_Timed]:
    """Stamps from frame numbers at 1/fps; each new snippet starts SNIPPET_GAP_NS after the last."""
    period_ns = round(1e9 / fps)
    snippet, first_frame, snippet_start, stamp = None, 0, START_STAMP_NS, START_STAMP_NS
    for frame in frames:
        if frame.snippet != snippet:
            if snippet is not None:
                snippet_start = stamp + SNIPPET_GAP_NS
            snippet, first_frame = frame.snippet, frame.frame
        stamp = snippet_start + (frame.frame - first_frame) * period_ns
        rgb = _read_rgb(frame.image)
        labels = _read_train_ids(frame.labels, rgb.shape[:2]) if frame.labels else None
        yield _Timed(stamp, rgb, labels)


def _video_stream(capture: cv2.VideoCapture, fps: float, limit: int | None) -> Iterator[_Timed]:
    period_ns = round(1e9 / fps)
    index = 0
    while limit is None or index < limit:
        ok, bgr = capture.read()
        if not ok:
            break
        yield _Timed(START_STAMP_NS + index * period_ns, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), None)
        index += 1


def convert(src: str | Path, out: str | Path, options: ConvertOptions = ConvertOptions()
            ) -> ConvertSummary:
    """Write `src` (sequence folder, dataset root or video file) as a rosbag2 at `out`."""
    src, out = Path(src), Path(out)
    if not src.exists():
        raise SourceError(f"source {src} does not exist; expected a sequence folder or a video file")
    if src.resolve() == out.resolve():
        raise SourceError(f"output {out} is the source itself; expected another path")
    capture = None
    if src.is_file():
        capture = cv2.VideoCapture(str(src))
        if not capture.isOpened():
            raise SourceError(
                f"cannot open {src} as a video; expected a video file or a sequence folder")
        fps = options.fps or capture.get(cv2.CAP_PROP_FPS) or CITYSCAPES_FPS
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
        total = min(count, options.limit) if count and options.limit else (count or options.limit)
        stream, snippets, with_labels = _video_stream(capture, fps, options.limit), 1, False
    else:
        frames = find_sequence_frames(src, split=options.split, labels=options.labels)
        frames = frames[: options.limit] if options.limit else frames
        fps = options.fps or CITYSCAPES_FPS
        total, snippets = len(frames), len({f.snippet for f in frames})
        stream = _sequence_stream(frames, fps)
        with_labels = any(f.labels is not None for f in frames)
    try:
        return _write(stream, out, options, total, snippets, with_labels)
    finally:
        if capture is not None:
            capture.release()


def _write(stream: Iterator[_Timed], out: Path, options: ConvertOptions, total: int | None,
           snippets: int, with_labels: bool) -> ConvertSummary:
    info_topic = options.camera_info_topic or options.sibling("camera_info")
    labels_topic = options.labels_topic or options.sibling("labels")
    frames = labelled = 0
    first = last = None
    with BagWriter(out, storage=options.storage, overwrite=options.overwrite, label="OUT") as bag:
        typestore = bag.typestore
        bag.add_topic(options.topic, IMAGE)
        bag.add_topic(info_topic, CAMERA_INFO)
        if with_labels:
            bag.add_topic(labels_topic, IMAGE)
        for item in tqdm(stream, total=total, unit="frame", desc=f"convert -> {out.name}",
                         disable=None if options.progress else True):
            header = make_header(typestore, item.stamp_ns, options.frame_id)
            height, width = item.rgb.shape[:2]
            bag.write(options.topic, item.stamp_ns,
                      make_image(typestore, header, encode_image(item.rgb, options.encoding)))
            bag.write(info_topic, item.stamp_ns, make_camera_info(typestore, header, width, height))
            if item.train_ids is not None:
                bag.write(labels_topic, item.stamp_ns,
                          make_image(typestore, header, encode_image(item.train_ids, "mono8")))
                labelled += 1
            frames += 1
            first = item.stamp_ns if first is None else first
            last = item.stamp_ns
        if frames == 0:
            raise SourceError("the source holds no readable frames; expected at least one")
    return ConvertSummary(out, frames, labelled, snippets, (last or 0) - (first or 0))

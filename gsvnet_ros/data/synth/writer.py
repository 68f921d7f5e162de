"""Writes synthetic sequences in the Cityscapes layout (frames, gtFine, dense labels, optional flow)."""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from gsvnet_ros.data.synth.render import build_scene, render_frame

__all__ = [
    "SynthConfigError",
    "SPLIT_SEED_BASE",
    "CITY",
    "SynthJob",
    "SplitSummary",
    "sequence_seed",
    "annotated_frame",
    "snippet_paths",
    "generate_sequence",
    "generate_split",
    "write_png",
]

SPLIT_SEED_BASE = {"train": 0, "val": 100_000, "test": 200_000}  # disjoint seed ranges per split
SEEDS_PER_SPLIT = 100_000
CITY = "synth"  # one synthetic "city" per split; Cityscapes city names have no underscore
_PNG_RGB = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, 2]  # Huffman only
if hasattr(cv2, "IMWRITE_PNG_FILTER"):  # Paeth + Huffman: smallest files for the time (OpenCV >= 4.10)
    _PNG_RGB += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_PAETH]


class SynthConfigError(ValueError):
    """A generator option is out of range (split, size, frame count, sequence index)."""


@dataclass(frozen=True)
class SynthJob:
    """What to generate: `sequences` snippets of `frames` frames at width x height for a split."""

    root: str
    split: str
    sequences: int
    frames: int = 30
    width: int = 1024
    height: int = 512
    seed_offset: int = 0
    flow: bool = False
    skip_existing: bool = False

    def __post_init__(self) -> None:
        if self.split not in SPLIT_SEED_BASE:
            raise SynthConfigError(f"split {self.split!r} is unknown; expected one of "
                                   f"{sorted(SPLIT_SEED_BASE)}")
        if self.width % 32 or self.height % 32 or self.width < 64 or self.height < 64:
            raise SynthConfigError(f"size {self.width}x{self.height} must be at least 64x64 and a "
                                   "multiple of 32 in both directions (e.g. 1024x512)")
        if self.frames < 2:
            raise SynthConfigError(f"frames must be >= 2 (30 as in Cityscapes), got {self.frames}")
        if self.sequences < 0 or self.seed_offset < 0:
            raise SynthConfigError("sequences and seed offset must be >= 0, got "
                                   f"{self.sequences} and {self.seed_offset}")
        if self.seed_offset + self.sequences > SEEDS_PER_SPLIT:
            raise SynthConfigError(f"sequence indices must stay below {SEEDS_PER_SPLIT} so that "
                                   "splits never share a seed")


@dataclass(frozen=True)
class SplitSummary:
    """How much was written and how fast."""

    sequences: int
    frames: int
    seconds: float

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("inf")


def sequence_seed(split: str, index: int) -> int:
    """Seed of sequence `index` of a split: base(split) + index (train 0.., val 100000.., test 200000..)."""
    if split not in SPLIT_SEED_BASE:
        raise SynthConfigError(f"split {split!r} is unknown; expected one of {sorted(SPLIT_SEED_BASE)}")
    return SPLIT_SEED_BASE[split] + index


def annotated_frame(frames: int) -> int:
    """The frame with a gtFine label: 19 (the 20th, as in Cityscapes), or the last of a short clip."""
    return min(19, frames - 1)


def snippet_paths(root: str | Path, split: str, seq: int, frame: int, city: str = CITY
                  ) -> dict[str, Path]:
    """Paths of one frame: 'image', 'dense_label', 'gtfine_label', 'flow' (CONTRACTS.md layout)."""
    stem = f"{city}_{seq:06d}_{frame:06d}"
    r = Path(root)
    return {
        "image": r / "leftImg8bit_sequence" / split / city / f"{stem}_leftImg8bit.png",
        "dense_label": r / "gtFine_sequence" / split / city / f"{stem}_gtFine_labelIds.png",
        "gtfine_label": r / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png",
        "flow": r / "flow_sequence" / split / city / f"{stem}_flow.npy",
    }


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_png(path: Path, image: np.ndarray) -> None:
    """Encode (RGB (H,W,3) or single-channel) to PNG under a temporary name, then rename."""
    if image.ndim == 3:
        ok, buf = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), _PNG_RGB)
    else:
        ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise OSError(f"PNG encoding failed for {path}")
    _atomic_write(path, buf.tobytes())


def _write_npy(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        np.save(fh, array)
    os.replace(tmp, path)


def generate_sequence(job: SynthJob, index: int) -> int:
    """Render and write sequence `index` (seed from the split's range); returns frames written.

    Every frame gets an image and a dense labelIds map; the annotated frame (19) also gets the
    gtFine label. With `job.flow`, frame t gets the exact backward flow to frame t-1, float16
    (H, W, 2): frame t at (x, y) shows the point frame t-1 shows at (x + dx, y + dy). Frame 0's
    flow refers to the camera and agents one time step earlier (a frame -1 that is not written).
    """
    seq = job.seed_offset + index
    last = snippet_paths(job.root, job.split, seq, job.frames - 1)
    if job.skip_existing and last["image"].exists() and last["dense_label"].exists() and (
            not job.flow or last["flow"].exists()):
        return 0
    scene = build_scene(sequence_seed(job.split, seq), job.width, job.height, job.frames)
    keyed = annotated_frame(job.frames)
    for frame in range(job.frames):
        out = render_frame(scene, frame, with_flow=job.flow)
        paths = snippet_paths(job.root, job.split, seq, frame)
        write_png(paths["image"], out.image)
        write_png(paths["dense_label"], out.label)
        if frame == keyed:
            write_png(paths["gtfine_label"], out.label)
        if job.flow and out.flow is not None:
            _write_npy(paths["flow"], out.flow.astype(np.float16))
    return job.frames


def _worker(args: tuple[SynthJob, int]) -> int:
    cv2.setNumThreads(1)  # one sequence per process; OpenCV's own threads would only contend
    return generate_sequence(*args)


def _run(job: SynthJob, workers: int) -> Iterator[int]:
    tasks = [(job, i) for i in range(job.sequences)]
    if workers <= 1:
        for t in tasks:
            yield generate_sequence(*t)
        return
    with mp.get_context("spawn").Pool(workers) as pool:
        yield from pool.imap_unordered(_worker, tasks)


def _update_manifest(job: SynthJob) -> None:
    """Record the generator settings beside the data: synth_manifest_{split}.json (merged)."""
    path = Path(job.root) / f"synth_manifest_{job.split}.json"
    info = {**asdict(job), "seed_base": SPLIT_SEED_BASE[job.split], "city": CITY,
            "annotated_frame": annotated_frame(job.frames)}
    info.pop("root")
    info.pop("skip_existing")
    start, end = job.seed_offset, job.seed_offset + job.sequences
    if path.exists():
        old = json.loads(path.read_text())
        if (old.get("width"), old.get("height"), old.get("frames")) == (job.width, job.height,
                                                                         job.frames):
            start, end = min(start, old["sequence_range"][0]), max(end, old["sequence_range"][1])
    info["sequence_range"] = [start, end]
    _atomic_write(path, (json.dumps(info, indent=2) + "\n").encode())


def generate_split(job: SynthJob, workers: int = 1, progress: bool = True) -> SplitSummary:
    """Generate every sequence of a job (in `workers` processes) with a tqdm progress bar."""
    from tqdm import tqdm  # imported here: the renderer itself has no tqdm dependency

    start = time.perf_counter()
    written = 0
    with tqdm(total=job.sequences * job.frames, unit="frame", disable=not progress,
              desc=f"synth {job.split}") as bar:
        for n in _run(job, max(1, workers)):
            written += n
            bar.update(job.frames)
    seconds = time.perf_counter() - start
    _update_manifest(job)
    return SplitSummary(job.sequences, written, seconds)

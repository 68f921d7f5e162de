"""`gsvnet-bag batch`: segment many recordings on Ray, one model per worker actor.

The driver (this process) finds the recordings, skips those the output folder's manifest says are
up to date, and hands out tasks to a pool of worker actors: convert a video or sequence folder to
a rosbag2, segment a recording (or one time chunk of a long one), merge a recording's chunks.
Each actor builds the segmenter once and reads its inputs from storage that every node sees;
only task descriptions, small results and progress counts travel through Ray. A task whose worker
dies is retried (on whichever worker is free next; the dead actor is restarted) a bounded number
of times; a recording that fails fails alone, with its one-line error in `batch_report.json`.
Ctrl-C / SIGTERM ask the workers to stop at their next frame: finished outputs stay, unfinished
ones are removed.

Ray is imported here only, and only when a batch runs: `pip install .[batch]` installs it.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from gsvnet_ros.codec import DEFAULT_MAX_IMAGE_PIXELS

from .errors import BagError, BatchError
from .manifest import FINGERPRINT_MODES, Manifest, input_fingerprint, settings_hash
from .recordings import Recording, find_recordings
from .writer import STORAGES

__all__ = ["BatchOptions", "BatchResult", "run_batch", "format_batch_summary", "RAY_MISSING",
           "BATCH_REPORT", "BATCH_SUMMARY", "STAGING_DIR", "EXIT_OK", "EXIT_SOME_FAILED"]

RAY_MISSING = ("gsvnet-bag batch runs on Ray, which is not installed; install it with: "
               "python3 -m pip install 'ray>=2.9' (or, in a source checkout: pip install '.[batch]')")
BATCH_REPORT = "batch_report.json"
BATCH_SUMMARY = "batch_summary.txt"
STAGING_DIR = ".gsvnet-batch"  # converted inputs and chunk outputs while a recording is under way
EXIT_OK, EXIT_SOME_FAILED = 0, 1
# A worker reports its frame count (and learns whether to stop) at most this often.
REPORT_PERIOD_S = 0.25
# How long an interrupted batch waits for its workers to stop at a frame boundary and clean up.
STOP_GRACE_S = 60.0
READY_TIMEOUT_S = 600.0  # workers must have built their model by then


@dataclass(frozen=True)
class BatchOptions:
    """Settings of `gsvnet-bag batch` (see the CLI help for each)."""

    out_dir: Path
    config: Path | None = None
    keyframe_interval: int | None = None
    device: str | None = None
    backend: str | None = None
    topic: str | None = None
    labels_topic: str | None = None
    output_ns: str = "/segmentation_node"
    storage: str = "sqlite3"
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    split: str = "val"  # for dataset roots given as sequence inputs
    chunk_seconds: float = 60.0  # 0: never split a recording
    workers: int | None = None  # None: the cluster's CPUs // threads
    threads: int = 1  # per worker
    gpus_per_worker: float = 0.0
    ray_address: str | None = None  # None: $RAY_ADDRESS, else a new local instance
    retries: int = 2  # extra attempts of a task whose worker died
    fingerprint: str = "stat"  # stat (size + mtime) | sha256
    progress: bool = True

    def __post_init__(self) -> None:
        if self.storage not in STORAGES:
            raise ValueError(f"storage {self.storage!r}: expected one of {', '.join(STORAGES)}")
        if not self.chunk_seconds >= 0:
            raise ValueError(f"--chunk-seconds {self.chunk_seconds}: expected a number >= 0 "
                             "(0 = never split a recording)")
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"--workers {self.workers}: expected an integer >= 1")
        if self.threads < 1:
            raise ValueError(f"--threads {self.threads}: expected an integer >= 1")
        if not self.gpus_per_worker >= 0:
            raise ValueError(f"--gpus-per-worker {self.gpus_per_worker}: expected a number >= 0")
        if self.retries < 0:
            raise ValueError(f"--retries {self.retries}: expected an integer >= 0")
        if self.fingerprint not in FINGERPRINT_MODES:
            raise ValueError(f"fingerprint {self.fingerprint!r}: expected one of "
                             f"{', '.join(FINGERPRINT_MODES)}")
        # The per-recording options must be valid before anything starts.
        from .segment import SegmentOptions

        SegmentOptions(**self.segment_settings())

    def overrides(self) -> dict[str, dict[str, Any]]:
        """Config overrides: the command-line flags, and the threads of each worker."""
        runtime: dict[str, Any] = {"threads": self.threads}
        if self.device is not None:
            runtime["device"] = self.device
        if self.backend is not None:
            runtime["backend"] = self.backend
        out: dict[str, dict[str, Any]] = {"runtime": runtime}
        if self.keyframe_interval is not None:
            out["stream"] = {"keyframe_interval": self.keyframe_interval}
        return out

    def segment_settings(self) -> dict[str, Any]:
        """The SegmentOptions fields every recording shares."""
        return {"topic": self.topic, "labels_topic": self.labels_topic,
                "output_ns": self.output_ns, "storage": self.storage,
                "max_image_pixels": self.max_image_pixels}


@dataclass
class BatchResult:
    """What run_batch() did: the batch report (also in OUT/batch_report.json) and the exit code."""

    report: dict[str, Any]
    exit_code: int
    summary: str


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    from gsvnet_ros.codec import ImageDecodeError
    from gsvnet_ros.config import ConfigError

    if isinstance(exc, (BagError, ImageDecodeError, ConfigError, OSError)) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --------------------------------------------------------------------------- worker side (actors)

class _Stopped(KeyboardInterrupt):
    """The driver asked the workers to stop (Ctrl-C / SIGTERM): abort at this frame, clean up."""


class _Progress:
    """A tiny actor: frames done per running task, the worker pid running it, the stop flag."""

    def __init__(self) -> None:
        self.frames: dict[str, int] = {}
        self.pids: dict[str, int] = {}
        self.stopping = False

    def report(self, key: str, frames: int, pid: int) -> bool:
        self.frames[key] = frames
        self.pids[key] = pid
        return self.stopping

    def snapshot(self) -> tuple[dict[str, int], dict[str, int]]:
        return dict(self.frames), dict(self.pids)

    def forget(self, keys: list[str]) -> None:
        for key in keys:
            self.frames.pop(key, None)
            self.pids.pop(key, None)

    def stop(self) -> None:
        self.stopping = True


class BatchWorker:
    """A worker actor: builds the segmenter once, then runs task after task.

    Every task returns a small dict with "status" ("ok", "failed" with a one-line "error", or
    "interrupted"); only the death of the process itself reaches the driver as a Ray error.
    """

    def __init__(self, config: str | None, overrides: Mapping[str, Mapping[str, Any]]) -> None:
        self.progress: Any = None  # the driver's _Progress actor, passed with every task
        self.error: str | None = None
        self.backend = self.stream_cfg = None
        try:
            from .segment import build_segmenter

            segmenter = build_segmenter(config, overrides=overrides)
            self.backend, self.stream_cfg = segmenter.backend, segmenter.cfg
        except Exception as exc:  # noqa: BLE001 - reported by ready(), the batch stops
            self.error = _one_line(exc)

    def ready(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "host": socket.gethostname(), "error": self.error}

    def _reporter(self, key: str) -> Callable[[int], None]:
        import ray

        last = [0.0]

        def on_frame(frames: int) -> None:
            now = time.monotonic()
            if now - last[0] >= REPORT_PERIOD_S:
                last[0] = now
                if ray.get(self.progress.report.remote(key, frames, os.getpid())):
                    raise _Stopped()
        return on_frame

    def run(self, task: dict[str, Any], progress: Any) -> dict[str, Any]:
        started = time.perf_counter()
        self.progress = progress
        try:
            out = getattr(self, f"_{task['kind']}")(task)
            out["status"] = "ok"
        except KeyboardInterrupt:  # _Stopped, or SIGINT reaching the worker process itself
            out = {"status": "interrupted"}
        except Exception as exc:  # noqa: BLE001 - a failed recording, reported in one line
            out = {"status": "failed", "error": _one_line(exc)}
        out.update(pid=os.getpid(), host=socket.gethostname(),
                   task_s=time.perf_counter() - started)
        return out

    def _convert(self, task: dict[str, Any]) -> dict[str, Any]:
        from .convert import ConvertOptions, convert

        self._reporter(task["key"])(0)  # tell the driver which process runs it
        summary = convert(task["source"], task["output"],
                          ConvertOptions(split=task["split"], overwrite=True, progress=False))
        return {"frames": 0, "converted_frames": summary.frames}

    def _segment(self, task: dict[str, Any]) -> dict[str, Any]:
        from gsvnet_ros.stream import VideoSegmenter

        from .segment import SegmentOptions, segment_bag

        segmenter = VideoSegmenter(self.backend, self.stream_cfg)
        if task["reset"]:
            segmenter.reset()  # a later chunk: its first frame is a keyframe, reason "reset"
        options = SegmentOptions(**task["settings"], report=task["report"], overwrite=True, pipelined=False,
                                 progress=False, start_ns=task["start_ns"], end_ns=task["end_ns"],
                                 on_frame=self._reporter(task["key"]),
                                 report_source=task["report_source"])
        result = segment_bag(task["input"], task["output"], lambda: segmenter, options)
        return {"frames": result.stats.frames, "stats": result.stats if task["chunk"] else None,
                "report": None if task["chunk"] else result.report}

    def _merge(self, task: dict[str, Any]) -> dict[str, Any]:
        from .chunks import merge_chunks

        report = merge_chunks(task["input"], task["chunks"], task["output"], task["stats"],
                              task["windows"], report=task["report"],
                              storage=task["settings"]["storage"], overwrite=True,
                              report_source=task["report_source"])
        return {"frames": 0, "report": report}


# --------------------------------------------------------------------------- driver side

@dataclass
class _Rec:
    """A recording's progress through the batch."""

    recording: Recording
    fingerprint: str = ""
    status: str = "pending"  # pending | running | done | skipped | failed | interrupted
    error: str | None = None
    input_bag: Path | None = None
    windows: list = field(default_factory=list)
    chunk_stats: dict = field(default_factory=dict)
    in_flight: int = 0
    attempts: int = 0  # task submissions, retries included
    retried: int = 0  # of them after a worker died
    report: dict | None = None
    expected_frames: int = 0
    workers: set = field(default_factory=set)


@dataclass
class _Task:
    rec: _Rec
    kind: str  # convert | segment | merge
    index: int = 0
    attempt: int = 0

    @property
    def key(self) -> str:
        return f"{self.rec.recording.name}/{self.kind}/{self.index}/{self.attempt}"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        try:
            path.unlink()
        except OSError:
            pass


def _expected_frames(bag: Path, topic: str | None, labels_topic: str | None) -> int:
    """Image messages the bag's metadata.yaml lists (for the progress bar's total only)."""
    from .reader import BagReader
    from .segment import DEFAULT_LABELS_TOPIC
    from .typestore import IMAGE_TYPES

    try:
        info = BagReader(bag).metadata
        topics = [t["topic_metadata"] for t in info.get("topics_with_message_count", [])]
        counts = {t["topic_metadata"]["name"]: int(t["message_count"])
                  for t in info.get("topics_with_message_count", [])}
    except (BagError, KeyError, TypeError, ValueError):
        return 0
    if topic is not None:
        return counts.get(topic, 0)
    skip = labels_topic or DEFAULT_LABELS_TOPIC
    return sum(counts[t["name"]] for t in topics if t["type"] in IMAGE_TYPES and t["name"] != skip)


def _settings(options: BatchOptions, cfg: Any) -> dict[str, Any]:
    """Everything that shapes a recording's outputs (threads, caches and paths of Ray do not)."""
    import gsvnet_ros

    config = dataclasses.asdict(cfg)
    for key in ("threads", "onnx_cache_dir", "onnx_cache_max_mb", "onnx_max_sizes"):
        config["runtime"].pop(key, None)
    weights = {}
    for key in ("keyframe_weights", "propagation_weights"):
        path = getattr(cfg.runtime, key)
        if path:
            try:
                stat = Path(path).stat()
                weights[key] = [stat.st_size, stat.st_mtime_ns]
            except OSError:
                weights[key] = None
    return {"format": 1, "package": gsvnet_ros.__version__, "config": config, "weights": weights,
            "segment": options.segment_settings(), "convert": {"split": options.split},
            "chunk_seconds": options.chunk_seconds}


class _Batch:
    """One run of the driver (see run_batch)."""

    def __init__(self, recordings: list[Recording], options: BatchOptions, settings: dict,
                 on_event: Callable[[str, dict], None] | None) -> None:
        self.options = options
        self.out = options.out_dir
        self.staging = self.out / STAGING_DIR
        self.settings = settings
        self.settings_hash = settings_hash(settings)
        self.on_event = on_event
        self.manifest = Manifest(self.out)
        self.recs = [_Rec(r) for r in recordings]
        self.queue: deque[_Task] = deque()
        self.in_flight: dict[Any, tuple[_Task, int]] = {}  # ref -> (task, worker index)
        self.idle: list[int] = []
        self.probes: dict[Any, int] = {}  # ready() ref of a restarted worker -> worker index
        self.probe_later: list[tuple[float, int]] = []  # (monotonic time, worker index)
        self.actors: list[Any] = []
        self.worker_info: list[dict] = []
        self.progress_actor = None
        self.frames_done = 0
        self.started = time.perf_counter()
        self.ready_at: float | None = None  # when every worker had built its model
        self.finished_at: float | None = None  # when the last task was handled
        self.signal_exc: BaseException | None = None  # what the SIGTERM handler raised
        self._sigterm: tuple[Any, Any] | None = None  # (our wrapper, the caller's handler)
        self.ray_info: dict[str, Any] = {}
        self.bar = None
        self.ray_started_here = False
        self._last_poll = 0.0

    # ---- paths of a recording
    def bag_out(self, rec: _Rec) -> Path:
        return self.out / rec.recording.name

    def report_out(self, rec: _Rec) -> Path:
        return self.out / f"{rec.recording.name}.report.json"

    def rec_staging(self, rec: _Rec) -> Path:
        return self.staging / rec.recording.name

    def discard(self, rec: _Rec) -> None:
        """Remove whatever an unfinished recording left: partial outputs (named as
        writer.StagedPath names them) and its staging folder. Finished outputs are not touched."""
        _remove(self.rec_staging(rec))
        bag, report = self.bag_out(rec), self.report_out(rec)
        _remove(bag.with_name(bag.name + ".partial"))
        _remove(report.with_name(f"{report.stem}.partial{report.suffix}"))

    # ---- the plan
    def triage(self) -> None:
        """Fingerprint every input; mark the up-to-date ones skipped."""
        for rec in self.recs:
            try:
                rec.fingerprint = input_fingerprint(rec.recording, mode=self.options.fingerprint,
                                                    split=self.options.split)
            except (BagError, OSError, ValueError) as exc:
                self.fail(rec, f"cannot read the input: {_one_line(exc)}")
                continue
            if self.manifest.is_complete(rec.recording.name, rec.fingerprint, self.settings_hash):
                rec.status = "skipped"
                rec.report = self._load_report(rec)

    def _load_report(self, rec: _Rec) -> dict | None:
        try:
            return json.loads(self.report_out(rec).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def pending(self) -> list[_Rec]:
        return [r for r in self.recs if r.status == "pending"]

    def start(self, rec: _Rec) -> None:
        rec.status = "running"
        if rec.recording.needs_convert:
            self.queue.append(_Task(rec, "convert"))
        else:
            rec.input_bag = rec.recording.source
            self.plan(rec, front=False)

    def plan(self, rec: _Rec, *, front: bool) -> None:
        from .chunks import plan_chunks

        assert rec.input_bag is not None
        try:
            rec.windows = plan_chunks(rec.input_bag, self.options.chunk_seconds)
        except BagError as exc:
            self.fail(rec, _one_line(exc))
            return
        rec.expected_frames = _expected_frames(rec.input_bag, self.options.topic,
                                               self.options.labels_topic)
        if self.bar is not None:
            self.bar.total = sum(r.expected_frames for r in self.recs)
            self.bar.refresh()
        tasks = [_Task(rec, "segment", i) for i in range(len(rec.windows))]
        if front:
            self.queue.extendleft(reversed(tasks))
        else:
            self.queue.extend(tasks)

    def task_payload(self, task: _Task) -> dict[str, Any]:
        rec = task.rec
        base = {"kind": task.kind, "key": task.key, "settings": self.options.segment_settings(),
                # a converted input's report names the video or sequence, not the temporary bag
                "report_source": str(rec.recording.source) if rec.recording.needs_convert
                else None}
        if task.kind == "convert":
            return {**base, "source": str(rec.recording.source),
                    "output": str(self.rec_staging(rec) / "input"), "split": self.options.split}
        chunked = len(rec.windows) > 1
        if task.kind == "segment":
            start, end = rec.windows[task.index]
            if chunked:
                output, report = self.rec_staging(rec) / f"chunk-{task.index:04d}", None
            else:
                output, report = self.bag_out(rec), self.report_out(rec)
            return {**base, "input": str(rec.input_bag), "output": str(output),
                    "report": str(report) if report else None, "start_ns": start, "end_ns": end,
                    "chunk": chunked, "reset": task.index > 0}
        indices = range(len(rec.windows))
        return {**base, "input": str(rec.input_bag),
                "chunks": [str(self.rec_staging(rec) / f"chunk-{i:04d}") for i in indices],
                "stats": [rec.chunk_stats[i] for i in indices], "windows": rec.windows,
                "output": str(self.bag_out(rec)), "report": str(self.report_out(rec))}

    # ---- outcomes
    def fail(self, rec: _Rec, error: str) -> None:
        rec.status, rec.error = "failed", error
        self.queue = deque(t for t in self.queue if t.rec is not rec)
        if rec.in_flight == 0:
            self.discard(rec)
        self.event("recording_failed", {"recording": rec.recording.name, "error": error})

    def finish(self, rec: _Rec, report: dict) -> None:
        rec.status, rec.report = "done", report
        _remove(self.rec_staging(rec))
        self.manifest.record(rec.recording, rec.fingerprint, self.settings_hash,
                             [self.bag_out(rec), self.report_out(rec)])
        self.event("recording_done", {"recording": rec.recording.name})

    def handle(self, task: _Task, worker: int, result: dict | None, crash: str | None) -> None:
        rec = task.rec
        rec.in_flight -= 1
        if rec.status != "running":  # failed meanwhile: drop the result, clean up at the end
            if rec.in_flight == 0 and rec.status == "failed":
                self.discard(rec)
            return
        if crash is not None:
            if task.attempt < self.options.retries:
                rec.retried += 1
                self.queue.appendleft(_Task(rec, task.kind, task.index, task.attempt + 1))
                self.event("task_retried", {"recording": rec.recording.name, "task": task.key,
                                            "error": crash})
            else:
                self.fail(rec, f"its worker died {task.attempt + 1} times ({task.kind} task); "
                          f"last: {crash}")
            return
        assert result is not None
        rec.workers.add(f"{result.get('host')}:{result.get('pid')}")
        self.frames_done += int(result.get("frames", 0))
        if result["status"] == "failed":
            self.fail(rec, result["error"])
        elif result["status"] == "interrupted":
            rec.status = "interrupted"
        elif task.kind == "convert":
            rec.input_bag = self.rec_staging(rec) / "input"
            self.plan(rec, front=True)
        elif task.kind == "segment" and len(rec.windows) > 1:
            rec.chunk_stats[task.index] = result["stats"]
            if len(rec.chunk_stats) == len(rec.windows):
                self.queue.appendleft(_Task(rec, "merge"))
        else:
            self.finish(rec, result["report"])

    def event(self, kind: str, info: dict) -> None:
        if self.on_event is not None:
            self.on_event(kind, info)

    # ---- Ray
    def connect(self) -> None:
        import logging

        import ray

        address = self.options.ray_address or os.environ.get("RAY_ADDRESS") or None
        handler = (signal.getsignal(signal.SIGTERM)
                   if threading.current_thread() is threading.main_thread() else None)
        try:
            if ray.is_initialized():
                pass  # a caller (a test, a notebook) runs Ray already: use it as it is
            elif address:
                ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
                self.ray_started_here = True
            else:
                os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
                cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
                    else (os.cpu_count() or 1)
                wanted = (self.options.workers or 0) * self.options.threads
                ray.init(address="local", num_cpus=max(cores, wanted), include_dashboard=False,
                         log_to_driver=False, logging_level=logging.ERROR,
                         object_store_memory=200 * 2**20)
                self.ray_started_here = True
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"the Ray cluster at {address}" if address else "a local Ray instance"
            raise BatchError(f"cannot start or reach {where}: {_one_line(exc)}") from None
        finally:
            # ray.init installs its own SIGTERM handler (sys.exit); keep the caller's, which
            # cleans up, and remember what it raised: ray.get/ray.wait turn any exception of a
            # signal handler into a plain KeyboardInterrupt.
            if handler is not None:
                wrapper = self._remembering(handler)
                signal.signal(signal.SIGTERM, wrapper)
                self._sigterm = (wrapper, handler)
        resources = ray.cluster_resources()
        self.ray_info = {"address": address or "local",
                         "cluster_cpus": resources.get("CPU", 0.0),
                         "cluster_gpus": resources.get("GPU", 0.0),
                         "nodes": len([n for n in ray.nodes() if n.get("Alive")])}

    def _remembering(self, handler: Any) -> Any:
        if not callable(handler):
            return handler

        def on_sigterm(signum: int, frame: Any) -> None:
            try:
                handler(signum, frame)
            except BaseException as exc:
                self.signal_exc = exc
                raise
        return on_sigterm

    def worker_count(self, tasks_hint: int) -> int:
        options = self.options
        if options.workers is not None:
            wanted = options.workers
        else:
            wanted = max(1, int(self.ray_info["cluster_cpus"] // options.threads))
            if options.gpus_per_worker > 0:
                wanted = min(wanted, int(self.ray_info["cluster_gpus"] // options.gpus_per_worker))
        cpus = self.ray_info["cluster_cpus"]
        if wanted * options.threads > cpus:
            raise BatchError(f"{wanted} workers x {options.threads} threads need "
                             f"{wanted * options.threads} CPUs; the Ray cluster has {cpus:g}")
        if options.gpus_per_worker > 0 and \
                wanted * options.gpus_per_worker > self.ray_info["cluster_gpus"]:
            raise BatchError(f"{wanted} workers x {options.gpus_per_worker:g} GPUs: the Ray cluster "
                             f"has {self.ray_info['cluster_gpus']:g} GPUs")
        return max(1, min(wanted, tasks_hint))

    def start_workers(self, count: int) -> None:
        import ray

        self.progress_actor = ray.remote(num_cpus=0)(_Progress).remote()
        actor_class = ray.remote(BatchWorker).options(
            num_cpus=self.options.threads, num_gpus=self.options.gpus_per_worker,
            # A dead worker process is restarted (model rebuilt) for as long as the batch runs;
            # its task is not retried by Ray but by the driver, which bounds and reports retries.
            max_restarts=-1, max_task_retries=0)
        config = str(Path(self.options.config).resolve()) if self.options.config else None
        self.actors = [actor_class.remote(config, self.options.overrides()) for _ in range(count)]
        refs = [a.ready.remote() for a in self.actors]
        deadline, waiting = time.monotonic() + READY_TIMEOUT_S, refs
        while waiting and time.monotonic() < deadline:  # short waits: Ctrl-C stays responsive
            _, waiting = ray.wait(refs, num_returns=len(refs), timeout=0.5)
        if waiting:
            gpus = self.options.gpus_per_worker
            raise BatchError(f"{len(waiting)} of {count} workers ({self.options.threads} CPUs"
                             f"{f', {gpus:g} GPUs' if gpus else ''} each) were not ready after "
                             f"{READY_TIMEOUT_S:.0f} s; the cluster may lack the resources")
        try:
            self.worker_info = ray.get(refs)
        except ray.exceptions.RayError as exc:
            raise BatchError(f"a worker could not start: {_one_line(exc)}") from None
        errors = {w["error"] for w in self.worker_info if w["error"]}
        if errors:
            raise BatchError(f"workers cannot build the segmenter: {sorted(errors)[0]}")
        self.idle = list(range(count))
        self.ready_at = time.perf_counter()
        self.event("workers_ready", {"workers": self.worker_info})

    def submit(self) -> None:
        while self.queue and self.idle:
            task = self.queue.popleft()
            worker = self.idle.pop(0)
            task.rec.in_flight += 1
            task.rec.attempts += 1
            ref = self.actors[worker].run.remote(self.task_payload(task), self.progress_actor)
            self.in_flight[ref] = (task, worker)

    def collect(self, timeout: float) -> None:
        """Handle the tasks (and restart probes) that finished within `timeout` seconds."""
        import ray

        now = time.monotonic()
        for when, worker in [p for p in self.probe_later if p[0] <= now]:
            self.probe_later.remove((when, worker))
            self.probes[self.actors[worker].ready.remote()] = worker
        refs = list(self.in_flight) + list(self.probes)
        if not refs:
            time.sleep(timeout)
            return
        ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
        for ref in ready:
            if ref in self.probes:
                self.probed(ref)
                continue
            task, worker = self.in_flight.pop(ref)
            result = crash = None
            try:
                result = ray.get(ref)
            except ray.exceptions.RayTaskError as exc:  # a bug in the worker code
                result = {"status": "failed", "error": _one_line(exc.as_instanceof_cause())}
            except ray.exceptions.RayError as exc:  # the worker process died
                crash = " ".join(str(exc).split())[:300]
            if crash is None:
                self.idle.append(worker)
            else:  # Ray restarts it (max_restarts): take it back once it has rebuilt its model
                self.probe_later.append((time.monotonic() + 0.5, worker))
            ray.get(self.progress_actor.forget.remote([task.key]))
            self.handle(task, worker, result, crash)
        if self.queue and not (self.idle or self.in_flight or self.probes or self.probe_later):
            for rec in {id(t.rec): t.rec for t in self.queue}.values():
                self.fail(rec, "no worker is left: every worker died and could not be restarted")

    def probed(self, ref: Any) -> None:
        """A restarted worker answered ready() (or is still restarting, or is gone for good)."""
        import ray

        worker = self.probes.pop(ref)
        try:
            info = ray.get(ref)
        except ray.exceptions.ActorUnavailableError:  # still restarting: ask again soon
            self.probe_later.append((time.monotonic() + 0.5, worker))
            return
        except ray.exceptions.RayError:
            return  # dead for good: the pool goes on without it
        if info.get("error"):
            return  # it cannot rebuild its model any more
        self.worker_info[worker] = info
        self.idle.append(worker)

    def poll_progress(self, force: bool = False) -> None:
        import ray

        now = time.monotonic()
        if not force and now - self._last_poll < REPORT_PERIOD_S:
            return
        self._last_poll = now
        frames, pids = ray.get(self.progress_actor.snapshot.remote())
        running = [{"recording": t.rec.recording.name, "task": t.key, "kind": t.kind,
                    "attempt": t.attempt, "frames": frames.get(t.key, 0), "pid": pids.get(t.key)}
                   for t, _ in self.in_flight.values()]
        total = self.frames_done + sum(r["frames"] for r in running)
        if self.bar is not None:
            self.bar.n = total
            counts = self.counts()
            self.bar.set_postfix_str(f"recordings {counts['done'] + counts['skipped']}/"
                                     f"{len(self.recs)} done, {counts['failed']} failed",
                                     refresh=False)
            self.bar.refresh()
        self.event("progress", {"frames": total, "running": running})

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(("done", "skipped", "failed", "interrupted", "pending", "running"), 0)
        for rec in self.recs:
            out[rec.status] += 1
        return out

    def loop(self) -> None:
        while self.queue or self.in_flight:
            self.submit()
            self.collect(timeout=0.1)
            self.poll_progress()
        self.poll_progress(force=True)
        self.finished_at = time.perf_counter()

    def stop(self) -> None:
        """After Ctrl-C / SIGTERM: ask the workers to stop, wait for them, remove what is
        unfinished. A second Ctrl-C skips the wait (the workers are killed)."""
        import ray

        self.queue.clear()
        try:
            if self.progress_actor is not None and self.in_flight:
                ray.get(self.progress_actor.stop.remote(), timeout=10)
                deadline = time.monotonic() + STOP_GRACE_S
                while self.in_flight and time.monotonic() < deadline:
                    self.collect(timeout=0.2)
        except KeyboardInterrupt:
            pass
        except ray.exceptions.RayError:
            pass
        finally:
            stuck = {w for _, w in self.in_flight.values()}
            for worker in stuck:
                ray.kill(self.actors[worker], no_restart=True)
            if stuck:
                time.sleep(1.0)  # let the killed processes go before their files are removed
            for rec in self.recs:
                if rec.status in ("running", "pending"):
                    rec.status = "interrupted"
                if rec.status == "interrupted" or (rec.status == "failed" and rec.in_flight):
                    self.discard(rec)
                    rec.in_flight = 0
            self.in_flight.clear()

    def shutdown(self) -> None:
        import ray

        if self._sigterm is not None and signal.getsignal(signal.SIGTERM) is self._sigterm[0]:
            signal.signal(signal.SIGTERM, self._sigterm[1])

        if not ray.is_initialized():
            return
        for actor in self.actors + ([self.progress_actor] if self.progress_actor else []):
            try:
                ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
        if self.ray_started_here:
            ray.shutdown()

    # ---- the report
    def report(self) -> dict[str, Any]:
        end = time.perf_counter()
        wall = end - self.started
        # Segmentation throughput: from the moment every worker was ready (Ray started, models
        # built) to the last task's result; start-up (and shutdown) are not part of it.
        startup = (self.ready_at - self.started) if self.ready_at is not None else None
        work = ((self.finished_at or end) - self.ready_at) if self.ready_at is not None else None
        rows = []
        for rec in self.recs:
            report = rec.report or {}
            acc = report.get("accuracy") or {}
            rows.append({
                "name": rec.recording.name, "input": str(rec.recording.source),
                "kind": rec.recording.kind, "status": rec.status,
                "output": str(self.bag_out(rec)) if rec.status in ("done", "skipped") else None,
                "report": str(self.report_out(rec)) if rec.status in ("done", "skipped") else None,
                "frames": report.get("frames"), "keyframes": report.get("keyframes"),
                "frames_per_s": report.get("end_to_end_fps"),
                "chunks": len(report.get("chunks") or []) or (1 if report else None),
                "attempts": rec.attempts, "retried_after_worker_death": rec.retried,
                "workers": sorted(rec.workers),
                "average_miou": acc.get("average_miou"), "minimum_miou": acc.get("minimum_miou"),
                "per_distance_miou": acc.get("per_distance_miou"),
                "error": rec.error})
        counts = self.counts()
        processed = sum(r["frames"] or 0 for r in rows if r["status"] == "done")
        return {
            "out_dir": str(self.out), "wall_s": wall, "startup_s": startup, "work_s": work,
            "ray": {**self.ray_info, "workers": len(self.actors),
                    "threads_per_worker": self.options.threads,
                    "gpus_per_worker": self.options.gpus_per_worker},
            "settings": self.settings, "settings_hash": self.settings_hash,
            "totals": {"recordings": len(rows), "done": counts["done"],
                       "skipped": counts["skipped"], "failed": counts["failed"],
                       "interrupted": counts["interrupted"], "frames_segmented": processed,
                       "frames_per_s": processed / work if work and processed else None},
            "recordings": rows,
        }


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def format_batch_summary(report: dict[str, Any]) -> str:
    """A readable table of the batch report."""
    lines = [f"{'recording':<32}{'status':>12}{'frames':>8}{'frames/s':>10}{'chunks':>7}"
             f"{'mIoU %':>8}  mIoU % by distance from keyframe / error"]
    for row in report["recordings"]:
        fps = "-" if row["frames_per_s"] is None else f"{row['frames_per_s']:.1f}"
        detail = row["error"] or " ".join(f"{d}:{_pct(v)}" for d, v in
                                          (row["per_distance_miou"] or {}).items())
        lines.append(f"{row['name'][:31]:<32}{row['status']:>12}{row['frames'] or '-':>8}{fps:>10}"
                     f"{row['chunks'] or '-':>7}{_pct(row['average_miou']):>8}  {detail}")
    t = report["totals"]
    fps = "-" if t["frames_per_s"] is None else f"{t['frames_per_s']:.1f}"
    lines.append(f"{t['recordings']} recordings: {t['done']} done, {t['skipped']} up to date "
                 f"(skipped), {t['failed']} failed, {t['interrupted']} interrupted; "
                 f"{t['frames_segmented']} frames segmented at {fps} frames/s on "
                 f"{report['ray'].get('workers', 0)} worker(s) x "
                 f"{report['ray'].get('threads_per_worker')} thread(s); {report['wall_s']:.1f} s in "
                 f"all, {_secs(report['startup_s'])} of them starting Ray and the workers")
    return "\n".join(lines)


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _write_batch_report(out: Path, report: dict[str, Any]) -> str:
    from gsvnet_ros.reporting import json_safe

    summary = format_batch_summary(report)
    _write_text(out / BATCH_REPORT, json.dumps(json_safe(report), indent=2, allow_nan=False) + "\n")
    _write_text(out / BATCH_SUMMARY, summary + "\n")
    return summary


def run_batch(inputs: Sequence[str | Path], options: BatchOptions, *,
              on_event: Callable[[str, dict], None] | None = None) -> BatchResult:
    """Segment every recording `inputs` name into options.out_dir on Ray (see the module doc).

    Raises BagError (BatchError, SourceError, ...) or ConfigError before any work when the batch
    cannot start; KeyboardInterrupt (Ctrl-C, or SIGTERM under cli.common.sigterm_as_interrupt)
    after stopping the workers and removing unfinished outputs, the batch report written.
    `on_event(kind, info)` sees "workers_ready", "progress", "task_retried", "recording_done"
    and "recording_failed" (tests use it to kill a worker mid-run).
    """
    try:
        import ray  # noqa: F401 - the optional extra: fail before any work when it is missing
    except ImportError:
        raise BatchError(RAY_MISSING) from None
    from gsvnet_ros.config import load_config

    out = Path(options.out_dir).absolute()
    options = dataclasses.replace(options, out_dir=out)
    recordings = find_recordings(inputs, exclude=[out])
    cfg = load_config(options.config, options.overrides())  # ConfigError: nothing starts
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BatchError(f"--out {out}: cannot create the directory: {exc}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise BatchError(f"--out {out}: the directory is not writable")
    batch = _Batch(recordings, options, _settings(options, cfg), on_event)
    from tqdm import tqdm

    _remove(batch.staging)  # left by a batch that was killed outright
    batch.triage()
    todo = batch.pending()
    interrupted: KeyboardInterrupt | None = None
    try:
        if todo:
            batch.connect()
            hint = sum(1 if r.recording.needs_convert else
                       len(_safe_plan(r.recording.source, options.chunk_seconds)) for r in todo)
            batch.start_workers(batch.worker_count(hint))
            batch.bar = tqdm(total=0, unit="frame", desc="batch", dynamic_ncols=True,
                             disable=None if options.progress else True)
            for rec in todo:
                batch.start(rec)
            batch.loop()
    except KeyboardInterrupt as exc:
        interrupted = exc
        batch.stop()
        if isinstance(batch.signal_exc, KeyboardInterrupt):
            interrupted = batch.signal_exc  # e.g. cli.common.Terminated: exit status 143
    except BaseException:
        batch.stop()  # nothing unfinished stays behind whatever went wrong
        raise
    finally:
        if batch.bar is not None:
            batch.bar.close()
        try:
            batch.shutdown()
        finally:
            if interrupted is not None or (batch.staging.is_dir()
                                           and not any(batch.staging.iterdir())):
                _remove(batch.staging)
    report = batch.report()
    summary = _write_batch_report(out, report)
    if interrupted is not None:
        raise interrupted
    code = EXIT_SOME_FAILED if report["totals"]["failed"] else EXIT_OK
    return BatchResult(report, code, summary)


def _safe_plan(bag: Path, chunk_s: float) -> list:
    from .chunks import plan_chunks

    try:
        return plan_chunks(bag, chunk_s)
    except BagError:
        return [(None, None)]

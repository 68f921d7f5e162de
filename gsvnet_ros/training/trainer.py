"""The training loop both modes share: progress, CSV log, validation, atomic checkpoints, resume, summary."""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Sequence

import torch
import torch.nn as nn
from tqdm import tqdm

from ..models.weights import atomic_torch_save
from ..reporting import file_sha256 as weights_sha256
from .common import (CsvLog, TrainingError, build_optimizer, build_scheduler, loop_cadence, resolve_precision,
                     restore_rng_state, rng_state, seed_everything)

__all__ = ["Trainer", "CHECKPOINT_NAME", "CHECKPOINT_FORMAT", "save_checkpoint", "read_checkpoint"]

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_FORMAT = "gsvnet_ros.train_checkpoint"
# loop keys a resumed run may change without invalidating the checkpoint
_RESUMABLE_CHANGES = {"loop.iterations", "loop.threads", "loop.log_every", "loop.val_every",
                      "loop.checkpoint_every", "loop.data_workers", "data.val_snippets"}


def accelerator_name(device: torch.device) -> str | None:
    """The GPU's name for a CUDA device (recorded in summary.json and the model card), else None."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else None


def save_checkpoint(payload: dict[str, Any], path: Path) -> None:
    """Write a training checkpoint atomically (temporary file, fsync, os.replace)."""
    atomic_torch_save(payload, path)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A training checkpoint, loaded with weights_only=True; TrainingError when unusable."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise TrainingError(f"cannot read checkpoint {path}: {type(exc).__name__}: {exc}") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise TrainingError(f"{path} is not a gsvnet_ros training checkpoint")
    return payload


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): data}


class Trainer:
    """Subclasses build model and data in `setup`, and implement train_step / validate / export."""

    mode: ClassVar[str] = ""
    metric_columns: ClassVar[tuple[str, ...]] = ()
    primary_metric: ClassVar[str] = ""

    def __init__(self, cfg: Any, run_dir: str | Path, *, data_root: str | Path, device: str = "cpu",
                 resume: bool = False, command_line: Sequence[str] | None = None, progress: bool = True,
                 on_iteration: Callable[[int], None] | None = None) -> None:
        started = time.perf_counter()
        self.cfg, self.loop = cfg, cfg.loop
        self.run_dir, self.data_root = Path(run_dir), Path(data_root)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.command_line = list(command_line or [])
        self.progress, self.on_iteration = progress, on_iteration
        self.device = torch.device(device)
        torch.set_num_threads(self.loop.threads)
        self.sampler = seed_everything(self.loop.seed)
        self.amp_dtype = resolve_precision(self.loop.precision, self.device)
        self.memory_format = torch.channels_last if self.loop.channels_last else torch.contiguous_format
        self.checkpoint_path = self.run_dir / CHECKPOINT_NAME
        if self.checkpoint_path.exists() and not resume:
            raise TrainingError(f"{self.run_dir} already holds a checkpoint; pass --resume to continue it "
                                "or choose another --out")
        self.setup()
        self.optimizer = build_optimizer(self.param_groups(), cfg.optim)
        self.scheduler = build_scheduler(self.optimizer, self.loop.iterations, cfg.optim)
        self.iteration, self.train_seconds, self.step_seconds = 0, 0.0, 0.0
        self.best: dict[str, Any] = {}
        self.last_metrics: dict[str, Any] = {}
        self.weight_files: list[Path] = []
        resumed_from = None
        if resume and self.checkpoint_path.exists():
            self._load_checkpoint()
            resumed_from = self.iteration
        self.csv = CsvLog(self.run_dir / f"train_{self.mode}.csv",
                          ["iteration", "loss", "lr", "seconds", "step_s", *self.metric_columns],
                          resume_iteration=resumed_from if resume else None)
        self.resumed_from = resumed_from
        self.setup_seconds = time.perf_counter() - started

    # ---- subclass interface -------------------------------------------------------------------
    def setup(self) -> None:
        """Build self.model and the data (called after seeding, before the optimiser)."""
        raise NotImplementedError

    def trained_modules(self) -> dict[str, nn.Module]:
        """Modules whose state the checkpoint holds, by name."""
        raise NotImplementedError

    def param_groups(self) -> Sequence[tuple[Iterable[tuple[str, nn.Parameter]], float]]:
        """(named parameters, lr factor) per group."""
        named = ((f"{n}.{k}", p) for n, m in self.trained_modules().items() for k, p in m.named_parameters())
        return [(named, 1.0)]

    def train_step(self) -> dict[str, float]:
        """One optimisation step on a freshly drawn batch; returns {'loss': ...}."""
        raise NotImplementedError

    def validate(self) -> dict[str, float]:
        """Metrics on the validation subset (values in [0, 100] for mIoU)."""
        raise NotImplementedError

    def export(self) -> list[Path]:
        """Write the release weight file(s) into run_dir; return their paths."""
        raise NotImplementedError

    def extra_summary(self) -> dict[str, Any]:
        return {}

    def identity(self) -> dict[str, Any]:
        """Inputs besides the config that a checkpoint is bound to (e.g. the frozen keyframe weights)."""
        return {}

    # ---- checkpoints ---------------------------------------------------------------------------
    def _checkpoint_payload(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT, "version": 1, "mode": self.mode, "iteration": self.iteration,
            "config": dataclasses.asdict(self.cfg),
            "modules": {name: m.state_dict() for name, m in self.trained_modules().items()},
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "rng": rng_state(self.sampler), "train_seconds": self.train_seconds,
            "step_seconds": self.step_seconds, "best": json.dumps(self.best),
            "last_metrics": json.dumps(self.last_metrics), "identity": json.dumps(self.identity()),
        }

    def save_checkpoint(self) -> None:
        save_checkpoint(self._checkpoint_payload(), self.checkpoint_path)

    def _load_checkpoint(self) -> None:
        payload = read_checkpoint(self.checkpoint_path)
        if payload.get("mode") != self.mode:
            raise TrainingError(f"{self.checkpoint_path} is a {payload.get('mode')!r} checkpoint, "
                                f"not {self.mode!r}")
        saved, current = _flatten(payload["config"]), _flatten(dataclasses.asdict(self.cfg))
        defaults = _flatten(dataclasses.asdict(type(self.cfg)()))
        for key in set(current) - set(saved):  # a key added since the checkpoint: fine at its default
            if current[key] == defaults.get(key):
                saved[key] = current[key]
        changed = sorted(k for k in set(saved) | set(current)
                         if saved.get(k) != current.get(k) and k not in _RESUMABLE_CHANGES)
        if changed:
            raise TrainingError(f"cannot resume {self.checkpoint_path}: the configuration changed in "
                                + ", ".join(f"{k} ({saved.get(k)!r} -> {current.get(k)!r})" for k in changed))
        saved_identity = json.loads(payload.get("identity", "{}"))
        if saved_identity != self.identity():
            raise TrainingError(f"cannot resume {self.checkpoint_path}: it was trained with "
                                f"{saved_identity}, this run has {self.identity()}")
        modules = self.trained_modules()
        for name, state in payload["modules"].items():
            modules[name].load_state_dict(state)
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        restore_rng_state(payload["rng"], self.sampler)
        self.iteration = int(payload["iteration"])
        self.train_seconds = float(payload["train_seconds"])
        self.step_seconds = float(payload["step_seconds"])
        self.best = json.loads(payload["best"])
        self.last_metrics = json.loads(payload["last_metrics"])

    # ---- the loop --------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Train from self.iteration to loop.iterations; returns the summary (also in summary.json)."""
        total = self.loop.iterations
        if self.iteration >= total and not self.weight_files:  # resumed a finished run: re-export
            self.weight_files = self.export()
        window_loss, window_steps, window_time = 0.0, 0, 0.0
        bar = tqdm(total=total, initial=self.iteration, desc=f"train {self.mode}", unit="it",
                   disable=not self.progress, dynamic_ncols=True)
        try:
            while self.iteration < total:
                begin = time.perf_counter()
                lr = self.optimizer.param_groups[0]["lr"]  # the rate this step uses
                stats = self.train_step()
                self.scheduler.step()
                step = time.perf_counter() - begin
                self.iteration += 1
                self.step_seconds += step
                window_loss, window_steps, window_time = window_loss + stats["loss"], window_steps + 1, \
                    window_time + step
                do_log, do_val, do_ckpt = loop_cadence(self.loop, self.iteration)
                row: dict[str, Any] = {}
                if do_val:
                    row.update(self._validate_and_export())
                self.train_seconds += time.perf_counter() - begin
                if do_log or do_val:
                    row.update(iteration=self.iteration, loss=window_loss / max(window_steps, 1),
                               lr=lr, seconds=self.train_seconds,
                               step_s=window_time / max(window_steps, 1))
                    self.csv.write(row)
                    bar.set_postfix(loss=f"{row['loss']:.3f}", lr=f"{row['lr']:.2e}",
                                    s_it=f"{row['step_s']:.2f}")
                    window_loss, window_steps, window_time = 0.0, 0, 0.0
                if do_ckpt:
                    self.save_checkpoint()
                bar.update(1)
                if self.on_iteration is not None:
                    self.on_iteration(self.iteration)
        finally:
            bar.close()
            self.release()
        return self.write_summary()

    def release(self) -> None:
        """Free what the training steps hold (e.g. data worker threads); called when run() ends."""

    def _validate_and_export(self) -> dict[str, Any]:
        metrics = self.validate()
        self.last_metrics = {"iteration": self.iteration, **metrics}
        primary = metrics.get(self.primary_metric)
        if primary is not None and (not self.best or primary > self.best.get(self.primary_metric, -1.0)):
            self.best = dict(self.last_metrics)
        self.weight_files = self.export()
        self.write_summary()
        return metrics

    def write_summary(self) -> dict[str, Any]:
        done = self.iteration
        summary = {
            "mode": self.mode, "iterations": done, "iterations_planned": self.loop.iterations,
            "wall_time_s": round(self.train_seconds, 2),
            "setup_time_s_last_start": round(self.setup_seconds, 2),
            "seconds_per_iteration": round(self.step_seconds / done, 4) if done else None,
            "best_val": self.best, "last_val": self.last_metrics,
            "command_line": self.command_line, "data_root": str(self.data_root.resolve()),
            "seed": self.loop.seed, "threads": self.loop.threads,
            "precision": str(self.amp_dtype).replace("torch.", ""), "channels_last": self.loop.channels_last,
            "device": str(self.device), "accelerator": accelerator_name(self.device),
            "torch": torch.__version__, "cpu": platform.processor() or
            platform.machine(), "cpu_count": os.cpu_count(), "resumed_from": self.resumed_from,
            "weights": [{"file": p.name, "bytes": p.stat().st_size, "sha256": weights_sha256(p)}
                        for p in self.weight_files if p.exists()],
            "config": dataclasses.asdict(self.cfg), **self.extra_summary(),
        }
        path = self.run_dir / "summary.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(summary, indent=2, default=str) + "\n")
        os.replace(tmp, path)
        return summary

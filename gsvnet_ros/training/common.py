"""Shared training plumbing: seeds and RNG state, precision, optimiser + warm-up/cosine schedule, CSV log."""
from __future__ import annotations

import contextlib
import csv
import math
import random
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn as nn

from .config import LoopConfig, OptimConfig

__all__ = ["TrainingError", "seed_everything", "rng_state", "restore_rng_state", "cpu_has_native_bf16",
           "resolve_precision", "autocast", "build_optimizer", "build_scheduler", "lr_factor", "CsvLog",
           "loop_cadence", "class_weights"]


class TrainingError(RuntimeError):
    """Training cannot start or go on (incompatible checkpoint, unusable data or weights)."""


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, NumPy and torch; return the generator that draws every training sample."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def rng_state(sampler: np.random.Generator) -> dict[str, Any]:
    """Every random state a resumed run needs to draw the same samples as an uninterrupted one."""
    legacy = np.random.get_state(legacy=False)  # MT19937 key as a list: weights_only loads no ndarrays
    key, pos = legacy["state"]["key"].tolist(), legacy["state"]["pos"]
    numpy_global = {**legacy, "state": {"key": key, "pos": pos}}
    return {"python": random.getstate(), "numpy_global": numpy_global,
            "sampler": sampler.bit_generator.state, "torch": torch.get_rng_state()}


def restore_rng_state(state: dict[str, Any], sampler: np.random.Generator) -> None:
    """Inverse of rng_state (sampler is updated in place)."""
    random.setstate(_as_tuple(state["python"]))
    legacy = state["numpy_global"]
    np.random.set_state({**legacy, "state": {"key": np.asarray(legacy["state"]["key"], np.uint32),
                                             "pos": legacy["state"]["pos"]}})
    sampler.bit_generator.state = state["sampler"]
    torch.set_rng_state(state["torch"])


def _as_tuple(value: Any) -> Any:
    """random.setstate wants tuples; a checkpoint round trip may hand back lists."""
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


def cpu_has_native_bf16() -> bool:
    """True when /proc/cpuinfo lists avx512_bf16 or amx_bf16 (bf16 convolutions faster than fp32)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """float32 or bfloat16 for autocast; 'auto' picks bf16 on CUDA and on CPUs with native bf16."""
    if precision == "fp32":
        return torch.float32
    if precision == "bf16":
        return torch.bfloat16
    native = torch.cuda.is_bf16_supported() if device.type == "cuda" else cpu_has_native_bf16()
    return torch.bfloat16 if native else torch.float32


def autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    """torch.autocast for bf16; a no-op context for fp32."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _param_groups(named: Iterable[tuple[str, nn.Parameter]], lr: float, weight_decay: float
                  ) -> list[dict[str, Any]]:
    """Weight decay on conv/linear weights only, not on BN parameters and biases (ndim <= 1)."""
    decay, no_decay = [], []
    for _, param in named:
        if param.requires_grad:
            (decay if param.ndim > 1 else no_decay).append(param)
    return [g for g in ({"params": decay, "lr": lr, "weight_decay": weight_decay},
                        {"params": no_decay, "lr": lr, "weight_decay": 0.0}) if g["params"]]


def build_optimizer(groups: Sequence[tuple[Iterable[tuple[str, nn.Parameter]], float]],
                    cfg: OptimConfig) -> torch.optim.Optimizer:
    """Optimiser over (named parameters, lr factor) groups, each split into decay / no-decay."""
    param_groups = []
    for named, factor in groups:
        param_groups += _param_groups(named, cfg.lr * factor, cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(param_groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    if cfg.optimizer == "adam":  # L2 weight decay folded into the gradient
        return torch.optim.Adam(param_groups, lr=cfg.lr)
    return torch.optim.AdamW(param_groups, lr=cfg.lr)


def lr_factor(iteration: int, total: int, cfg: OptimConfig) -> float:
    """Linear warm-up over warmup_iterations, then cosine decay from 1 to min_lr_ratio at `total`."""
    warmup = min(cfg.warmup_iterations, max(total - 1, 0))
    if iteration < warmup:
        return (iteration + 1) / warmup
    span = max(total - warmup, 1)
    progress = min((iteration - warmup) / span, 1.0)
    return cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(optimizer: torch.optim.Optimizer, total: int, cfg: OptimConfig
                    ) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-iteration LambdaLR of lr_factor (its state_dict holds the step count for resuming)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: lr_factor(it, total, cfg))


class CsvLog:
    """Append-only CSV of training rows; on resume, rows after the checkpoint's iteration are dropped."""

    def __init__(self, path: Path, columns: Sequence[str], *, resume_iteration: int | None) -> None:
        self.path, self.columns = path, list(columns)
        kept: list[dict[str, str]] = []
        if resume_iteration is not None and path.is_file():
            with path.open(newline="") as handle:
                kept = [row for row in csv.DictReader(handle) if int(row["iteration"]) <= resume_iteration]
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, self.columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(kept)

    def write(self, row: dict[str, Any]) -> None:
        with self.path.open("a", newline="") as handle:
            csv.DictWriter(handle, self.columns, extrasaction="ignore").writerow(
                {k: _fmt(v) for k, v in row.items()})

    def rows(self) -> Iterator[dict[str, str]]:
        with self.path.open(newline="") as handle:
            yield from csv.DictReader(handle)


def _fmt(value: Any) -> Any:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return "" if value is None else value


def loop_cadence(loop: LoopConfig, iteration: int) -> tuple[bool, bool, bool]:
    """(log, validate, checkpoint) after `iteration` (1-based); the last iteration does all three."""
    last = iteration == loop.iterations
    log = last or iteration % loop.log_every == 0
    validate = last or (loop.val_every > 0 and iteration % loop.val_every == 0)
    checkpoint = last or validate or iteration % loop.checkpoint_every == 0
    return log, validate, checkpoint


def class_weights(labels: Iterable[np.ndarray], num_classes: int, scheme: str) -> torch.Tensor | None:
    """Cross-entropy weights from label maps: None for 'none'; for 'sqrt_inverse' w_c = p_c^-1/2 scaled so
    that sum_c p_c w_c = 1 (classes absent from the labels get the largest weight seen)."""
    if scheme == "none":
        return None
    counts = np.zeros(256, np.int64)
    for label in labels:
        counts += np.bincount(label.ravel(), minlength=256)
    share = counts[:num_classes] / max(int(counts[:num_classes].sum()), 1)
    present = share > 0
    if not present.any():
        return None
    weights = np.zeros(num_classes)
    weights[present] = share[present] ** -0.5 / np.sqrt(share[present]).sum()
    weights[~present] = weights[present].max()
    return torch.tensor(weights, dtype=torch.float32)

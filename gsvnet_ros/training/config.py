"""Typed training configuration (config/train_*.yaml), loaded strictly: unknown keys and wrong types fail."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Optional


from ..config import ConfigError, ModelConfig, from_dict, read_yaml_mapping

__all__ = ["OptimConfig", "DataConfig", "LoopConfig", "KeyframeAugmentConfig", "ClipConfig",
           "KeyframeTrainConfig", "PropagationTrainConfig", "load_train_config", "with_overrides"]

Precision = Literal["auto", "fp32", "bf16"]
# cross-entropy class weights from the training labels: none, or w_c = share_c^-1/2 normalised so that
# the pixel-weighted mean weight is 1 (road ~0.6, motorcycle ~11 on the synthetic data)
ClassWeighting = Literal["none", "sqrt_inverse"]
LabelSource = Literal["auto", "dense", "annotated"]


def _require(ok: bool, key: str, expected: str, got: Any) -> None:
    if not ok:
        raise ConfigError(f"config key '{key}': expected {expected}, got {got!r}")


@dataclass(frozen=True)
class OptimConfig:
    """AdamW/Adam/SGD with linear warm-up then cosine decay to lr * min_lr_ratio."""

    optimizer: Literal["adamw", "adam", "sgd"] = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4  # not applied to BN parameters and biases
    momentum: float = 0.9  # SGD only (Nesterov)
    warmup_iterations: int = 100
    min_lr_ratio: float = 0.01
    grad_clip_norm: float = 0.0  # 0 = off

    def __post_init__(self) -> None:
        _require(self.lr > 0, "optim.lr", "a number > 0", self.lr)
        _require(self.weight_decay >= 0, "optim.weight_decay", "a number >= 0", self.weight_decay)
        _require(self.warmup_iterations >= 0, "optim.warmup_iterations", "an integer >= 0",
                 self.warmup_iterations)
        _require(0 <= self.min_lr_ratio <= 1, "optim.min_lr_ratio", "a number in [0, 1]", self.min_lr_ratio)
        _require(self.grad_clip_norm >= 0, "optim.grad_clip_norm", "a number >= 0", self.grad_clip_norm)


@dataclass(frozen=True)
class DataConfig:
    """Which splits and how much of them; frames are decoded once and cached in memory as uint8."""

    train_split: str = "train"
    val_split: str = "val"
    max_train_snippets: int = 0  # 0 = every snippet of the split
    val_snippets: int = 15  # validation uses the first N snippets of val_split (sorted by name)
    # dense: every frame's gtFine_sequence labels; annotated: the gtFine frame only; auto: dense if present
    labels: LabelSource = "auto"

    def __post_init__(self) -> None:
        _require(self.max_train_snippets >= 0, "data.max_train_snippets", "an integer >= 0",
                 self.max_train_snippets)
        _require(self.val_snippets >= 0, "data.val_snippets", "an integer >= 0", self.val_snippets)


@dataclass(frozen=True)
class LoopConfig:
    """Length, batch, logging/validation/checkpoint cadence, threads, seed, precision."""

    iterations: int = 1000
    batch_size: int = 8
    log_every: int = 20  # CSV row + progress bar postfix
    val_every: int = 500  # validation + release weight export (0 = only at the end)
    checkpoint_every: int = 100
    threads: int = 2
    seed: int = 0
    # bf16 autocast for the convolutions; auto = bf16 where the CPU has native bf16 (avx512_bf16 / AMX)
    precision: Precision = "auto"
    channels_last: bool = True

    def __post_init__(self) -> None:
        for key in ("iterations", "batch_size", "log_every", "checkpoint_every", "threads"):
            value = getattr(self, key)
            _require(value >= 1, f"loop.{key}", "an integer >= 1", value)
        _require(self.val_every >= 0, "loop.val_every", "an integer >= 0", self.val_every)


def _check_crop(prefix: str, height: int, width: int, multiple: int) -> None:
    for key, value in (("crop_height", height), ("crop_width", width)):
        _require(value > 0 and value % multiple == 0, f"{prefix}.{key}", f"a positive multiple of {multiple}",
                 value)


@dataclass(frozen=True)
class KeyframeAugmentConfig:
    """Random scale (relative to the full-resolution frame), crop, horizontal flip, photometric jitter."""

    scale_min: float = 0.5
    scale_max: float = 1.0
    crop_height: int = 256
    crop_width: int = 256
    flip: bool = True
    color_jitter: float = 0.2  # brightness, contrast, saturation factors uniform in [1 - j, 1 + j]; 0 = off

    def __post_init__(self) -> None:
        _require(0 < self.scale_min <= self.scale_max <= 2.0, "augment.scale_min/scale_max",
                 "0 < scale_min <= scale_max <= 2", (self.scale_min, self.scale_max))
        _require(0.0 <= self.color_jitter < 1.0, "augment.color_jitter", "a number in [0, 1)",
                 self.color_jitter)
        _check_crop("augment", self.crop_height, self.crop_width, 32)


@dataclass(frozen=True)
class KeyframeOptimConfig(OptimConfig):
    """Keyframe-net defaults (from scratch, AdamW, batch 8)."""

    lr: float = 1e-3
    warmup_iterations: int = 200


@dataclass(frozen=True)
class KeyframeLoopConfig(LoopConfig):
    """Keyframe-net defaults: bf16 autocast + channels_last (measured fastest on the CPU, TRAINING.md)."""

    iterations: int = 6000
    val_every: int = 1000
    # Threads that cut and jitter the training crops ahead of the network (keyframe.CropBatches); 0 =
    # inline, with the trainer's generator. Worth it where the network step is faster than the data
    # step (a GPU); with workers, a resumed run draws new crops instead of replaying the killed run's.
    data_workers: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(self.data_workers >= 0, "loop.data_workers", "an integer >= 0", self.data_workers)


@dataclass(frozen=True)
class PropagationOptimConfig(OptimConfig):
    """Propagation defaults (O, phi, G from scratch)."""

    lr: float = 1e-3
    warmup_iterations: int = 100


@dataclass(frozen=True)
class PropagationLoopConfig(LoopConfig):
    """Propagation defaults: fp32, no channels_last (the 1/8 nets are small; bf16 did not pay off)."""

    iterations: int = 3000
    val_every: int = 500
    precision: Precision = "fp32"
    channels_last: bool = False


@dataclass(frozen=True)
class KeyframeTrainConfig:
    """Keyframe (image) net training: per-image cross-entropy on densely labelled frames."""

    model: ModelConfig = field(default_factory=ModelConfig)  # keyframe_net, num_classes, keyframe_scale
    aux_weight: float = 1.0  # BiSeNet auxiliary heads (training only)
    class_weighting: ClassWeighting = "none"
    # Warm start: a keyframe weight file (e.g. the shipped one) to continue training from.
    init_weights: Optional[str] = None
    # Backbone warm start: only the ResNet-18 trunk, from any keyframe file (our stand-in for ImageNet
    # pretraining: a trained SwiftNet-R18 starts BiSeNet-R18's context path). With init_weights as well,
    # the whole net comes from init_weights and then its trunk is replaced by this file's (a better
    # trunk under heads that were already trained).
    init_backbone: Optional[str] = None
    augment: KeyframeAugmentConfig = field(default_factory=KeyframeAugmentConfig)
    optim: KeyframeOptimConfig = field(default_factory=KeyframeOptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loop: KeyframeLoopConfig = field(default_factory=KeyframeLoopConfig)

    def __post_init__(self) -> None:
        _require(self.aux_weight >= 0, "aux_weight", "a number >= 0", self.aux_weight)


@dataclass(frozen=True)
class ClipConfig:
    """Training clips: keyframe at t - k, k in [min_offset, max_offset], target t; crops at full res."""

    min_offset: int = 1
    max_offset: int = 4
    crop_height: int = 256  # full-resolution pixels, multiple of 32 (1/8 crop a multiple of 4)
    crop_width: int = 512
    flip: bool = True
    # labels of the crop subsampled by 1 / label_scale (block centres); logits upsampled to that size.
    # 0.5 makes the loss 4x cheaper (it was ~half of a step at 1.0) and keeps 4x finer detail than 1/8
    label_scale: Literal[1.0, 0.5, 0.25] = 0.5

    def __post_init__(self) -> None:
        _require(1 <= self.min_offset <= self.max_offset, "clips.min_offset/max_offset",
                 "1 <= min_offset <= max_offset", (self.min_offset, self.max_offset))
        _check_crop("clips", self.crop_height, self.crop_width, 32)


@dataclass(frozen=True)
class PropagationTrainConfig:
    """Propagation training (flow net O, intra net phi, guiding net G) with the keyframe net frozen."""

    # kernel_size, learnable_kernels, fusion, edge, use_intra are used; keyframe_net, num_classes and
    # keyframe_scale are taken from the keyframe weight file (its metadata), whatever is written here.
    model: ModelConfig = field(default_factory=ModelConfig)
    clips: ClipConfig = field(default_factory=ClipConfig)
    distill_weight: float = 0.0  # KL(teacher || student) on the target frame at 1/8 (authors' code: 10)
    distill_temperature: float = 1.0
    grad_steps: int = 0  # back-propagate through the last N steps only (authors' code: 2); 0 = all
    flow_lr_factor: float = 1.0  # lr multiplier of the flow net O
    class_weighting: ClassWeighting = "none"
    val_interval: int = 5  # keyframe interval l of the validation protocol (average and minimum mIoU)
    # Warm start: a propagation weight file (O, phi, G) trained with another keyframe net or earlier;
    # its switches (kernel size, use_intra, ...) must match this run's.
    init_weights: Optional[str] = None
    optim: PropagationOptimConfig = field(default_factory=PropagationOptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loop: PropagationLoopConfig = field(default_factory=PropagationLoopConfig)

    def __post_init__(self) -> None:
        _require(self.distill_weight >= 0, "distill_weight", "a number >= 0", self.distill_weight)
        _require(self.distill_temperature > 0, "distill_temperature", "a number > 0",
                 self.distill_temperature)
        _require(self.grad_steps >= 0, "grad_steps", "an integer >= 0", self.grad_steps)
        _require(self.flow_lr_factor >= 0, "flow_lr_factor", "a number >= 0", self.flow_lr_factor)
        _require(self.val_interval >= 1, "val_interval", "an integer >= 1", self.val_interval)


def load_train_config(cls: type, path: str | Path | None = None,
                      overrides: Mapping[str, Any] | None = None) -> Any:
    """Load `cls` (KeyframeTrainConfig or PropagationTrainConfig) from YAML, then apply nested overrides."""
    data = {} if path is None else read_yaml_mapping(path, "training config file")
    return from_dict(cls, _merge(data, overrides or {}))


def _merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def with_overrides(cfg: Any, overrides: Mapping[str, Any]) -> Any:
    """A copy of a (nested, frozen) config with `overrides` applied and validated again."""
    return from_dict(type(cfg), _merge(dataclasses.asdict(cfg), overrides))

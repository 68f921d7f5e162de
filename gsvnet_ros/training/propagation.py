"""Propagation training: flow net O, intra net phi and guiding net G end to end, keyframe net N frozen.

A clip is (keyframe t - k, frames t - k + 1 .. t); S_{t-k} = N(I_{t-k}) comes from the cache, then k
steps S_j = GSV(warp(S_{j-1}, O(I_j, I_{j-1})), I_j) (paper Eq. 1-2) and the loss is the cross-entropy
of the last output, upsampled bilinearly from 1/8 to the label crop (taken at clips.label_scale of
full resolution), plus an optional distillation KL(N(I_t) || S_t) at 1/8. Validation follows
MODEL_SPEC.md's protocol at interval l: keyframe at frame a - i (a = the annotated frame), i = 0..l-1
steps, score frame a at full label resolution; average = pooled offsets, minimum = offset l - 1.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import ModelConfig
from ..labels import IGNORE_INDEX
from ..metrics import DistanceConfusion, as_percent
from ..models.gsvnet import build_gsvnet
from ..models.keyframe_nets import KEYFRAME_NETS
from ..models.weights import load_weights, part_state_dict, read_weights, save_weights, weights_meta
from ..reporting import file_sha256 as weights_sha256
from .clips import ClipBatch, SnippetClips, build_clips, sample_clip_batch
from .common import TrainingError, autocast, class_weights
from .config import PropagationTrainConfig
from .data import index_split, resolve_label_source
from .trainer import Trainer

__all__ = ["PropagationTrainer", "propagation_weights_name", "propagation_model_config"]


def propagation_weights_name(cfg: ModelConfig) -> str:
    """propagation_<net>[_nointra][_learned][_5x5][_dis].pt (_dis: trained on OpenCV DIS flow)"""
    suffix = ("" if cfg.use_intra else "_nointra") + ("_learned" if cfg.learnable_kernels else "") + \
        ("_5x5" if cfg.kernel_size == 5 else "") + ("_dis" if cfg.flow == "dis" else "")
    return f"propagation_{cfg.keyframe_net}{suffix}.pt"


def propagation_model_config(cfg: ModelConfig, keyframe_weights: str | Path) -> ModelConfig:
    """cfg with keyframe_net, num_classes and keyframe_scale taken from the keyframe weight file."""
    _, meta = read_weights(keyframe_weights)
    arch = meta.get("architecture")
    if meta.get("part") != "keyframe" or arch not in KEYFRAME_NETS:
        raise TrainingError(f"{keyframe_weights} is not a keyframe weight file of a known net "
                            f"(part {meta.get('part')!r}, architecture {arch!r}; expected one of "
                            f"{sorted(KEYFRAME_NETS)})")
    saved = meta.get("config") or {}
    return dataclasses.replace(cfg, keyframe_net=arch,
                               num_classes=int(meta.get("num_classes") or cfg.num_classes),
                               keyframe_scale=float(saved.get("keyframe_scale", cfg.keyframe_scale)))


class PropagationTrainer(Trainer):
    """Trains O + phi + G on cached keyframe logits; exports propagation_<net>[...].pt."""

    mode = "propagation"
    metric_columns = ("val_avg_miou", "val_min_miou", "val_key_miou")
    primary_metric = "val_min_miou"
    cfg: PropagationTrainConfig

    def __init__(self, cfg: PropagationTrainConfig, run_dir: str | Path, *, keyframe_weights: str | Path,
                 cache_dir: str | Path | None = None, **kwargs: Any) -> None:
        self.keyframe_weights = Path(keyframe_weights)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else Path(run_dir) / "cache"
        super().__init__(cfg, run_dir, **kwargs)

    def setup(self) -> None:
        cfg = self.cfg
        self.model_cfg = propagation_model_config(cfg.model, self.keyframe_weights)
        self.model = build_gsvnet(self.model_cfg).to(self.device)
        load_weights(self.model, self.keyframe_weights, part="keyframe")
        self.model.keyframe_net.eval().requires_grad_(False)  # frozen, BN statistics too
        if cfg.init_weights:
            # Learned kernels (Table A5) may start from a fixed-kernel file: their one-hot
            # initialisation is exactly the fixed ideal-delay kernels that file was trained with.
            keep = ("gsv.shifts.kernels",) if cfg.model.learnable_kernels else ()
            load_weights(self.model, cfg.init_weights, part="propagation", keep_missing=keep)
        self.keyframe_sha = weights_sha256(self.keyframe_weights)
        clips = cfg.clips
        train = index_split(self.data_root, cfg.data.train_split)
        if cfg.data.max_train_snippets:
            train = train[:cfg.data.max_train_snippets]
        self.label_source = resolve_label_source(train, cfg.data.labels)
        teacher = cfg.distill_weight > 0
        cache = dict(weights_sha=self.keyframe_sha, cache_dir=self.cache_dir, device=self.device,
                     progress=self.progress)
        self.train_clips = build_clips(self.model, train, self.label_source, min_offset=clips.min_offset,
                                       max_offset=clips.max_offset, teacher=teacher,
                                       desc="keyframe logits (train)", **cache)
        weights = class_weights((lab for c in self.train_clips for lab in c.labels.values()),
                                self.model_cfg.num_classes, cfg.class_weighting)
        self.class_weights = None if weights is None else weights.to(self.device)
        val = index_split(self.data_root, cfg.data.val_split)[:cfg.data.val_snippets] \
            if cfg.data.val_snippets else []
        # validation: keyframes at a - (l - 1) .. a before the annotated frame a
        self.val_clips = build_clips(self.model, val, "annotated", min_offset=0,
                                     max_offset=cfg.val_interval - 1, teacher=False,
                                     desc="keyframe logits (val)", **cache) if val else []
        self.model.flow_net.to(memory_format=self.memory_format)
        self.model.gsv.to(memory_format=self.memory_format)

    def trained_modules(self) -> dict[str, nn.Module]:
        return dict(self.model.propagation_modules())

    def param_groups(self) -> Sequence[tuple[Any, float]]:
        return [(self.model.flow_net.named_parameters(), self.cfg.flow_lr_factor),
                (self.model.gsv.named_parameters(), 1.0)]

    def _propagate(self, batch: ClipBatch) -> torch.Tensor:
        """k propagation steps from the cached keyframe logits; early steps without gradient when
        grad_steps > 0 (the authors back-propagate through the last two only)."""
        fmt = self.memory_format
        frames = [f.to(self.device).contiguous(memory_format=fmt) for f in batch.frames_1_8]
        logits = batch.key_logits.to(self.device).contiguous(memory_format=fmt)
        k, grad_steps = batch.offset, self.cfg.grad_steps
        for j in range(1, k + 1):
            track = grad_steps == 0 or j > k - grad_steps
            with torch.set_grad_enabled(track), autocast(self.device, self.amp_dtype):
                logits = self.model.propagate_forward(frames[j], frames[j - 1], logits)
        return logits.float()

    def train_step(self) -> dict[str, float]:
        cfg, clips = self.cfg, self.cfg.clips
        teacher = cfg.distill_weight > 0
        batch = sample_clip_batch(self.train_clips, self.loop.batch_size,
                                  (clips.min_offset, clips.max_offset), (clips.crop_height, clips.crop_width),
                                  clips.flip, teacher, self.sampler, clips.label_scale)
        self.model.train()
        self.model.keyframe_net.eval()
        logits = self._propagate(batch)
        labels = batch.labels.to(self.device)
        up = F.interpolate(logits, size=labels.shape[-2:], mode="bilinear", align_corners=False)
        loss = F.cross_entropy(up, labels, weight=self.class_weights, ignore_index=IGNORE_INDEX)
        if teacher:
            loss = loss + cfg.distill_weight * _distillation(logits, batch.teacher.to(self.device),
                                                             cfg.distill_temperature)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.optim.grad_clip_norm > 0:
            nn.utils.clip_grad_norm_([p for g in self.optimizer.param_groups for p in g["params"]],
                                     cfg.optim.grad_clip_norm)
        self.optimizer.step()
        return {"loss": float(loss.detach())}

    @torch.inference_mode()
    def validate(self) -> dict[str, float]:
        if not self.val_clips:
            return {}
        self.model.eval()
        interval, num_classes = self.cfg.val_interval, self.model_cfg.num_classes
        scores = DistanceConfusion(num_classes)
        for clip in self.val_clips:
            anchor = clip.targets[0]
            label = clip.labels[anchor]
            for offset in range(min(interval, anchor + 1)):
                logits = self._chain(clip, anchor - offset, anchor)
                pred = F.interpolate(logits, size=label.shape, mode="bilinear", align_corners=False).argmax(1)
                scores.update(pred[0].cpu().numpy(), label, offset)
        self.model.train()
        self.model.keyframe_net.eval()
        summary = scores.summary()
        per_distance = summary["per_distance_miou"]
        return {"val_avg_miou": as_percent(summary["average_miou"]),
                "val_min_miou": as_percent(summary["minimum_miou"]),
                "val_key_miou": as_percent(per_distance.get(0)),
                "val_per_distance_miou": {str(d): as_percent(v) for d, v in per_distance.items()},
                "val_per_class_iou": [None if v is None else round(100.0 * v, 2)
                                      for v in summary["per_class_iou"]]}

    def _chain(self, clip: SnippetClips, key: int, target: int) -> torch.Tensor:
        """Full-frame logits at 1/8 of `target`, keyframe at `key` (fp32, as the CPU stream runs)."""
        frames = clip.frames(key, target + 1).to(self.device)
        logits = clip.logits(key)[None].float().to(self.device)
        for step in range(1, target - key + 1):
            logits = self.model.propagate_forward(frames[step][None], frames[step - 1][None], logits)
        return logits

    def export(self) -> list[Path]:
        path = self.run_dir / propagation_weights_name(self.model_cfg)
        meta = weights_meta(self.model, "propagation", trained_iterations=self.iteration,
                            keyframe_weights=self.keyframe_weights.name,
                            keyframe_weights_sha256=self.keyframe_sha,
                            **{k: self.last_metrics.get(k) for k in self.metric_columns})
        save_weights(part_state_dict(self.model, "propagation"), path, meta=meta)
        return [path]

    def identity(self) -> dict[str, Any]:
        return {"keyframe_weights_sha256": self.keyframe_sha}

    def extra_summary(self) -> dict[str, Any]:
        return {"keyframe_weights": str(self.keyframe_weights.resolve()),
                "keyframe_weights_sha256": self.keyframe_sha,
                "model_config": dataclasses.asdict(self.model_cfg), "label_source": self.label_source,
                "class_weights": None if self.class_weights is None else
                [round(float(w), 4) for w in self.class_weights],
                "train_snippets": len(self.train_clips), "val_snippets": len(self.val_clips),
                "cache_dir": str(self.cache_dir)}


def _distillation(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * mean over pixels of KL(softmax(teacher / T) || softmax(student / T)) (Hinton et al.)."""
    log_p_teacher = F.log_softmax(teacher / temperature, dim=1)
    log_p_student = F.log_softmax(student / temperature, dim=1)
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(dim=1)
    return temperature ** 2 * kl.mean()

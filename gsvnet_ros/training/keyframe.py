"""Keyframe (image) net training: cross-entropy on randomly scaled, cropped, flipped labelled frames."""
from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..labels import IGNORE_INDEX
from ..metrics import confusion_matrix, iou_per_class, mean_iou
from ..models.gsvnet import build_gsvnet
from ..models.preprocess import normalize
from ..models.weights import load_resnet_trunk, load_weights, part_state_dict, save_weights, weights_meta
from .common import autocast, class_weights
from .config import KeyframeTrainConfig
from ..data.cityscapes import read_rgb
from .data import (FrameStore, index_split, keyframe_batch, load_keyframe_samples, read_train_ids,
                   resolve_label_source)
from .trainer import Trainer

__all__ = ["KeyframeTrainer", "CropBatches", "keyframe_weights_name", "to_tensor"]


def keyframe_weights_name(keyframe_net: str) -> str:
    return f"keyframe_{keyframe_net}.pt"


def to_tensor(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """(B, H, W, 3) or (H, W, 3) uint8 RGB -> (B, 3, H, W) float in [0, 1]."""
    batch = torch.from_numpy(np.ascontiguousarray(images))
    if batch.dim() == 3:
        batch = batch[None]
    return batch.to(device).permute(0, 3, 1, 2).float().div_(255.0)


def augmented_batch(store: FrameStore, keys: list, augment: Any, batch_size: int,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """keyframe_batch() with the settings of a KeyframeAugmentConfig."""
    return keyframe_batch(store, keys, batch_size, (augment.scale_min, augment.scale_max),
                          (augment.crop_height, augment.crop_width), augment.flip, rng, augment.color_jitter)


class CropBatches:
    """keyframe_batch() draws prepared ahead of the network by a pool of threads (cv2 and the large
    numpy operations release the GIL; threads share the in-memory frames, which worker processes
    would have to fork or copy). Batch k of a source is drawn with its own generator, seeded by
    (seed, start iteration, k), so a run with workers is reproducible whatever the thread timing."""

    def __init__(self, store: FrameStore, keys: list, augment: Any, batch_size: int, seed: int,
                 start_iteration: int, workers: int) -> None:
        self.store, self.keys, self.augment, self.batch_size = store, keys, augment, batch_size
        self.seed, self.start_iteration = seed, start_iteration
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="crops")
        self.pending: deque[Future] = deque(self.pool.submit(self.draw, k) for k in range(2 * workers))
        self.submitted = 2 * workers

    def draw(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.seed, self.start_iteration, k])
        return augmented_batch(self.store, self.keys, self.augment, self.batch_size, rng)

    def __next__(self) -> tuple[np.ndarray, np.ndarray]:
        batch = self.pending.popleft().result()
        self.pending.append(self.pool.submit(self.draw, self.submitted))
        self.submitted += 1
        return batch

    def close(self) -> None:
        for future in self.pending:
            future.cancel()
        self.pool.shutdown(wait=True)


class KeyframeTrainer(Trainer):
    """Trains GSVNet.keyframe_net from scratch; validates per frame through keyframe_forward (scale 0.75,
    logits resized to 1/8, then bilinearly to full resolution and argmax), as the stream does."""

    mode = "keyframe"
    metric_columns = ("val_miou",)
    primary_metric = "val_miou"
    cfg: KeyframeTrainConfig

    def setup(self) -> None:
        cfg = self.cfg
        self.model = build_gsvnet(cfg.model).to(self.device)
        if cfg.init_weights:
            load_weights(self.model, cfg.init_weights, part="keyframe")
        if cfg.init_backbone:  # after init_weights: the trunk is replaced, the heads kept
            load_resnet_trunk(self.model.keyframe_net, cfg.init_backbone)
        self.net: nn.Module = self.model.keyframe_net.to(memory_format=self.memory_format)
        train = index_split(self.data_root, cfg.data.train_split)
        if cfg.data.max_train_snippets:
            train = train[:cfg.data.max_train_snippets]
        self.label_source = resolve_label_source(train, cfg.data.labels)
        self.store: FrameStore = load_keyframe_samples(train, self.label_source, self.progress)
        self.keys = sorted(self.store.labels)
        self.batches: CropBatches | None = None  # loop.data_workers' pool, started on the first step
        weights = class_weights(self.store.labels.values(), cfg.model.num_classes, cfg.class_weighting)
        self.class_weights = None if weights is None else weights.to(self.device)
        self.num_train_snippets = len(train)
        val = index_split(self.data_root, cfg.data.val_split)[:cfg.data.val_snippets] \
            if cfg.data.val_snippets else []
        self.val_frames = [(read_rgb(s.frame_paths[s.annotated_index]), read_train_ids(s.annotated_label))
                           for s in val]

    def trained_modules(self) -> dict[str, nn.Module]:
        return {"keyframe_net": self.net}

    def next_batch(self) -> tuple[np.ndarray, np.ndarray]:
        """(images, labels) uint8: drawn here with the trainer's generator, or by loop.data_workers."""
        if not self.loop.data_workers:
            return augmented_batch(self.store, self.keys, self.cfg.augment, self.loop.batch_size,
                                   self.sampler)
        if self.batches is None:
            self.batches = CropBatches(self.store, self.keys, self.cfg.augment, self.loop.batch_size,
                                       self.loop.seed, self.iteration, self.loop.data_workers)
        return next(self.batches)

    def release(self) -> None:
        if self.batches is not None:
            self.batches.close()
            self.batches = None

    def train_step(self) -> dict[str, float]:
        images, labels = self.next_batch()
        x = normalize(to_tensor(images, self.device)).contiguous(memory_format=self.memory_format)
        target = torch.from_numpy(labels).to(self.device).long()
        self.net.train()
        with autocast(self.device, self.amp_dtype):
            main, aux = self.net.forward_train(x)
        loss = self._cross_entropy(main, target)
        for logits in aux:
            loss = loss + self.cfg.aux_weight * self._cross_entropy(logits, target)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.optim.grad_clip_norm > 0:
            nn.utils.clip_grad_norm_(self.net.parameters(), self.cfg.optim.grad_clip_norm)
        self.optimizer.step()
        return {"loss": float(loss.detach())}

    def _cross_entropy(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(logits.float(), size=target.shape[-2:], mode="bilinear", align_corners=False)
        return F.cross_entropy(up, target, weight=self.class_weights, ignore_index=IGNORE_INDEX)

    @torch.inference_mode()
    def validate(self) -> dict[str, float]:
        if not self.val_frames:
            return {}
        self.net.eval()
        num_classes = self.cfg.model.num_classes
        cm = np.zeros((num_classes, num_classes), np.int64)
        for image, label in self.val_frames:
            logits_1_8 = self.model.keyframe_forward(to_tensor(image, self.device))
            pred = F.interpolate(logits_1_8, size=label.shape, mode="bilinear", align_corners=False).argmax(1)
            cm += confusion_matrix(pred[0].cpu().numpy(), label, num_classes)
        self.net.train()
        per_class = [None if np.isnan(v) else round(100.0 * float(v), 2) for v in iou_per_class(cm)]
        return {"val_miou": 100.0 * mean_iou(cm), "val_per_class_iou": per_class}

    def export(self) -> list[Path]:
        path = self.run_dir / keyframe_weights_name(self.cfg.model.keyframe_net)
        meta = weights_meta(self.model, "keyframe", trained_iterations=self.iteration,
                            val_miou=self.last_metrics.get("val_miou"), label_source=self.label_source,
                            train_snippets=self.num_train_snippets)
        save_weights(part_state_dict(self.model, "keyframe"), path, meta=meta)  # stored contiguous, fp16
        return [path]

    def extra_summary(self) -> dict[str, Any]:
        weights = None if self.class_weights is None else [round(float(w), 4) for w in self.class_weights]
        return {"class_weights": weights, "label_source": self.label_source,
                "train_snippets": self.num_train_snippets,
                "train_frames": len(self.keys), "val_snippets": len(self.val_frames)}

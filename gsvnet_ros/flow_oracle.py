"""Where propagation loses accuracy: the trained flow net O against the generator's exact flow.

For each snippet with stored backward flow (`gsvnet-synth generate --flow`), the keyframe is frame
a - d (a = the annotated frame), and its 1/8 logits are carried d steps to frame a four ways:

- ``gsvnet``: O's flow, warp, then the guided spatially-varying conv (paper Eq. 1-2), as the stream;
- ``flow_net_warp``: O's flow and the warp alone (no correction);
- ``true_flow_warp``: the exact flow, area-averaged to 1/8 and divided by 8, and the warp alone;
- ``true_flow_gsv``: the exact flow, warp, then the trained correction;
- ``label_warp_full_res``: no network at all: the keyframe's ground-truth labels warped at full
  resolution with the exact flow (nearest, edges replicated; pixels that carry the keyframe's "ignore"
  label are not scored): what warping alone can keep on this data.

mIoU per distance (MODEL_SPEC.md's scoring at full label resolution) says how much of the drop is the
flow and how much the correction: if ``true_flow_warp`` keeps close to the keyframe's mIoU, a better
flow net is the way forward; if not, it is the 1/8 resolution or occlusions.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .data import cityscapes
from .labels import IGNORE_INDEX, label_ids_to_train_ids
from .metrics import DistanceConfusion
from .models.gsvnet import GSVNet
from .models.preprocess import downsample_1_8, normalize
from .models.warp import backward_warp, base_grid

__all__ = ["VARIANTS", "ROWS", "flow_to_1_8", "carry_logits", "warp_labels", "flow_oracle"]

VARIANTS = ("gsvnet", "flow_net_warp", "true_flow_warp", "true_flow_gsv")
ROWS = (*VARIANTS, "label_warp_full_res")


def flow_to_1_8(flow: np.ndarray) -> torch.Tensor:
    """(H, W, 2) backward flow in full-resolution pixels -> (1, 2, H/8, W/8) in pixels of the 1/8 grid."""
    full = torch.from_numpy(np.ascontiguousarray(flow, np.float32)).permute(2, 0, 1)[None]
    return downsample_1_8(full) / 8.0


def warp_labels(labels: np.ndarray, flows: Sequence[np.ndarray]) -> np.ndarray:
    """(H, W) uint8 trainIds carried through full-resolution backward flows (each frame t -> t-1, in
    order): nearest sampling, positions outside the frame clamped to its edge."""
    out = torch.from_numpy(np.ascontiguousarray(labels)).float()[None, None]
    height, width = labels.shape
    for flow in flows:
        base, scale = base_grid(height, width, out.device, out.dtype)
        step = torch.from_numpy(np.ascontiguousarray(flow, np.float32))[None]
        out = F.grid_sample(out, base + step * scale, mode="nearest", padding_mode="border",
                            align_corners=True)
    return out[0, 0].round().to(torch.uint8).numpy()


def _frame_tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float().div_(255.0)


@torch.inference_mode()
def carry_logits(model: GSVNet, variant: str, key_logits: torch.Tensor,
                 frames_1_8: Sequence[torch.Tensor], true_flows_1_8: Sequence[torch.Tensor]) -> torch.Tensor:
    """Logits at 1/8 of the last frame: `key_logits` of frames_1_8[0] carried len(frames) - 1 steps.

    true_flows_1_8[i] is the backward flow from frames_1_8[i + 1] to frames_1_8[i].
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {VARIANTS}")
    logits = key_logits
    for step in range(1, len(frames_1_8)):
        current, previous = normalize(frames_1_8[step]), normalize(frames_1_8[step - 1])
        flow = true_flows_1_8[step - 1] if variant.startswith("true_flow") else model.flow(current, previous)
        logits = backward_warp(logits, flow)
        if variant in ("gsvnet", "true_flow_gsv"):
            logits = model.gsv(logits, current)
    return logits


def flow_oracle(model: GSVNet, root: str | Path, split: str, max_distance: int = 4,
                snippets: int = 0, progress: Callable[[str], None] | None = None
                ) -> dict[str, dict[str, float | None]]:
    """{row: {distance: mIoU in %}} (rows: ROWS) over the annotated frame of every snippet of `split`."""
    items = cityscapes.list_snippets(root, split)[:snippets or None]
    if not items:
        raise FileNotFoundError(f"no annotated snippets under {root} (split {split!r})")
    scores = {row: DistanceConfusion(model.num_classes) for row in ROWS}
    model.eval()
    for number, item in enumerate(items, 1):
        anchor = item.frame
        label = label_ids_to_train_ids(cityscapes.read_label_ids(cityscapes.label_path(root, split, item)))
        first = anchor - max_distance
        rgb = [cityscapes.read_rgb(cityscapes.frame_path(root, split, item, n))
               for n in range(first, anchor + 1)]
        full_flows = [cityscapes.read_flow(cityscapes.flow_path(root, split, item, n))
                      for n in range(first + 1, anchor + 1)]
        flows = [flow_to_1_8(flow) for flow in full_flows]
        frames = [_frame_tensor(x) for x in rgb]
        frames_1_8 = [downsample_1_8(x) for x in frames]
        for distance in range(max_distance + 1):
            start = max_distance - distance
            with torch.inference_mode():
                key_logits = model.keyframe_forward(frames[start])
            for variant in VARIANTS:
                logits = carry_logits(model, variant, key_logits, frames_1_8[start:], flows[start:])
                pred = F.interpolate(logits, size=label.shape, mode="bilinear", align_corners=False).argmax(1)
                scores[variant].update(pred[0].numpy(), label, distance)
            key_label = label_ids_to_train_ids(cityscapes.read_label_ids(
                cityscapes.label_path(root, split, item, anchor - distance, "gtFine_sequence")))
            carried = warp_labels(key_label, full_flows[start:])
            scored = np.where(carried == IGNORE_INDEX, IGNORE_INDEX, label)  # pixels the keyframe labelled
            scores["label_warp_full_res"].update(carried, scored, distance)
        if progress:
            progress(f"{number}/{len(items)} {item.city}_{item.seq:06d}")
    return {row: {str(d): _pct(conf.summary()["per_distance_miou"].get(d))
                  for d in range(max_distance + 1)} for row, conf in scores.items()}


def _pct(value: float | None) -> float | None:
    return None if value is None else round(100.0 * float(value), 1)

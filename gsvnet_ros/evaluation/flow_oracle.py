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

from ..data import cityscapes
from ..labels import IGNORE_INDEX
from ..metrics import DistanceConfusion, as_percent
from ..models.gsvnet import GSVNet
from ..models.preprocess import downsample_1_8, normalize
from ..models.warp import backward_warp, base_grid
from ..training.keyframe import to_tensor

__all__ = ["VARIANTS", "ROWS", "flow_to_1_8", "carry_logits", "warp_labels", "flow_oracle"]

# row -> (which flow, whether the trained correction runs after the warp)
VARIANTS = {"gsvnet": ("flow_net", True), "flow_net_warp": ("flow_net", False),
            "true_flow_warp": ("exact", False), "true_flow_gsv": ("exact", True)}
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


@torch.inference_mode()
def carry_logits(model: GSVNet, key_logits: torch.Tensor, normed_frames_1_8: Sequence[torch.Tensor],
                 flows_1_8: Sequence[torch.Tensor], correct: bool) -> torch.Tensor:
    """Logits at 1/8 of the last frame: `key_logits` of normed_frames_1_8[0] warped step by step with
    flows_1_8[i] (backward, frame i + 1 -> i), each warp followed by the trained correction if `correct`."""
    logits = key_logits
    for step, flow in enumerate(flows_1_8, 1):
        logits = backward_warp(logits, flow, model.cfg.warp_padding)
        if correct:
            logits = model.gsv(logits, normed_frames_1_8[step])
    return logits


@torch.inference_mode()
def flow_oracle(model: GSVNet, root: str | Path, split: str, max_distance: int = 4, snippets: int = 0,
                progress: Callable[[str], None] | None = None) -> dict[str, dict[str, float | None]]:
    """{row: {distance: mIoU in %}} (rows: ROWS) over the annotated frame of every snippet of `split`,
    on the model's device."""
    items = cityscapes.list_snippets(root, split)[:snippets or None]
    if not items:
        raise FileNotFoundError(f"no annotated snippets under {root} (split {split!r})")
    device = next(model.parameters()).device
    scores = {row: DistanceConfusion(model.num_classes) for row in ROWS}
    model.eval()
    for number, item in enumerate(items, 1):
        anchor = item.frame
        label = cityscapes.read_train_ids(cityscapes.label_path(root, split, item))
        numbers = range(anchor - max_distance, anchor + 1)
        frames = [to_tensor(cityscapes.read_rgb(cityscapes.frame_path(root, split, item, n)), device)
                  for n in numbers]
        normed = [normalize(downsample_1_8(frame)) for frame in frames]
        exact_full = [cityscapes.read_flow(cityscapes.flow_path(root, split, item, n)) for n in numbers[1:]]
        flows = {"exact": [flow_to_1_8(flow).to(device) for flow in exact_full],  # step i: frame i+1 -> i
                 "flow_net": [model.flow(normed[i + 1], normed[i]) for i in range(max_distance)]}
        for distance in range(max_distance + 1):
            start = max_distance - distance
            key_logits = model.keyframe_forward(frames[start])
            for row, (source, correct) in VARIANTS.items():
                logits = carry_logits(model, key_logits, normed[start:], flows[source][start:], correct)
                pred = F.interpolate(logits, size=label.shape, mode="bilinear", align_corners=False).argmax(1)
                scores[row].update(pred[0].cpu().numpy(), label, distance)
            key_label = cityscapes.read_train_ids(
                cityscapes.label_path(root, split, item, numbers[start], "gtFine_sequence"))
            carried = warp_labels(key_label, exact_full[start:])
            scored = np.where(carried == IGNORE_INDEX, IGNORE_INDEX, label)  # pixels the keyframe labelled
            scores["label_warp_full_res"].update(carried, scored, distance)
        if progress:
            progress(f"{number}/{len(items)} {item.city}_{item.seq:06d}")
    return {row: {str(d): _rounded(as_percent(conf.summary()["per_distance_miou"].get(d)))
                  for d in range(max_distance + 1)} for row, conf in scores.items()}


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)

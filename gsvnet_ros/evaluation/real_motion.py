"""Propagation on real motion: the flow net against OpenCV's DIS flow on real video (measure only).

Three real recordings (`../shared/realdata/real-motion/`), too few to train or tune on:

- a KITTI 2015 frame pair with ground-truth flow: end-point error (EPE) and the outlier rate
  (KITTI's Fl: EPE > 3 px and > 5 % of the true motion) over the valid non-occluded pixels;
- 10 labelled CamVid frames at 15 Hz: the labels of frame t - k carried to frame t through the flows
  of the k steps between (full resolution, nearest, edges replicated), mIoU over CamVid's 11 classes,
  next to not moving them at all;
- a dashcam clip: photometric error of warping frame t - 1 onto frame t (mean absolute difference
  of 8-bit grey levels), next to no warp.

Every flow is estimated where the stream estimates it, on the 1/8 grid (the frame area-resized to
1/8 with sides rounded to multiples of 4, as the flow net needs), and brought back to full
resolution bilinearly, scaled to full-resolution pixels. DIS also runs at full resolution on the
KITTI pair, to show what estimating at 1/8 costs by itself.

All flows are backward in the stream's sense: `flow(a, b)` gives, for every pixel x of a, the
displacement d with a(x) ~ b(x + d) (paper Eq. 1 warps b onto a with it).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

import cv2
import numpy as np
import torch

from ..data.errors import DatasetLayoutError
from .flow_oracle import warp_labels
from ..labels import IGNORE_INDEX
from ..metrics import DistanceConfusion, as_percent
from ..models.dis_flow import make_dis
from ..models.gsvnet import GSVNet
from ..models.preprocess import normalize

__all__ = ["FlowFn", "grid_1_8", "learned_flow", "dis_flow", "zero_flow", "read_kitti_flow",
           "kitti_errors", "camvid_propagation", "dashcam_photometric", "measure_real_motion",
           "synthetic_flow_epe"]

# (frame a, frame b) uint8 RGB (H, W, 3) -> (H, W, 2) float32 flow in full-resolution pixels
FlowFn = Callable[[np.ndarray, np.ndarray], np.ndarray]

CAMVID_CLASSES = 11


def grid_1_8(height: int, width: int) -> tuple[int, int]:
    """The 1/8 grid of a frame: H/8 and W/8 rounded to the nearest multiple of 4 (at least 4)."""
    return tuple(max(4, int(round(side / 32.0)) * 4) for side in (height, width))  # type: ignore


def _to_grid(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return cv2.resize(rgb, (size[1], size[0]), interpolation=cv2.INTER_AREA)


def _to_full(flow: np.ndarray, height: int, width: int) -> np.ndarray:
    """(h, w, 2) flow in grid pixels -> (H, W, 2) in full-resolution pixels, bilinear."""
    h, w = flow.shape[:2]
    full = cv2.resize(flow, (width, height), interpolation=cv2.INTER_LINEAR)
    full[..., 0] *= width / w
    full[..., 1] *= height / h
    return full


def zero_flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Not moving at all."""
    return np.zeros((*a.shape[:2], 2), np.float32)


def learned_flow(model: GSVNet) -> FlowFn:
    """The trained flow net O on the 1/8 grid (paper Sec. 3.3), as the stream runs it."""
    device = next(model.parameters()).device

    @torch.inference_mode()
    def flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        size = grid_1_8(*a.shape[:2])
        pair = [normalize(torch.from_numpy(_to_grid(x, size)).to(device).permute(2, 0, 1)[None]
                          .float().div_(255.0)) for x in (a, b)]
        grid_flow = model.flow(pair[0], pair[1])[0].permute(1, 2, 0).float().cpu().numpy()
        return _to_full(np.ascontiguousarray(grid_flow), *a.shape[:2])
    return flow


def dis_flow(preset: str = "fast", at_1_8: bool = True, finest_scale: int | None = None) -> FlowFn:
    """OpenCV's DIS optical flow on grey levels, on the 1/8 grid or at full resolution, down to
    pyramid level `finest_scale` (None: the preset's)."""
    def flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        height, width = a.shape[:2]
        if at_1_8:
            size = grid_1_8(height, width)
            a, b = _to_grid(a, size), _to_grid(b, size)
        grey = [cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) for x in (a, b)]
        # A new DIS object per pair: one object reused across sizes changes its results
        # (models/dis_flow.py).
        out = make_dis(preset, finest_scale).calc(grey[0], grey[1], None)  # a(x) ~ b(x + out(x))
        return _to_full(out, height, width) if at_1_8 else out
    return flow


def _read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetLayoutError(f"cannot read the image {path}", path)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_kitti_flow(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """KITTI's 16-bit flow PNG -> ((H, W, 2) float32 flow in pixels, (H, W) bool valid).

    Channels (R, G, B) = (u, v, valid); u, v = (value - 2**15) / 64."""
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None or raw.ndim != 3 or raw.dtype != np.uint16:
        raise DatasetLayoutError(f"{path}: expected a 16-bit 3-channel KITTI flow PNG", path)
    rgb = raw[..., ::-1].astype(np.float32)  # OpenCV reads BGR
    return (rgb[..., :2] - 2.0 ** 15) / 64.0, rgb[..., 2] > 0


def kitti_errors(flow: np.ndarray, truth: np.ndarray, valid: np.ndarray) -> dict[str, float]:
    """EPE (px) and outlier rate (%, EPE > 3 px and > 5 % of |truth|) over the valid pixels."""
    epe = np.linalg.norm(flow - truth, axis=-1)[valid]
    magnitude = np.linalg.norm(truth, axis=-1)[valid]
    outliers = (epe > 3.0) & (epe > 0.05 * magnitude)
    return {"epe_px": round(float(epe.mean()), 2), "outliers_pct": round(100.0 * float(outliers.mean()), 1),
            "true_median_px": round(float(np.median(magnitude)), 2)}


def _kitti(folder: Path, methods: dict[str, FlowFn]) -> dict[str, dict[str, float]]:
    first, second = (_read_rgb(folder / f"kitti_000010_{n}.png") for n in (10, 11))
    truth, valid = read_kitti_flow(folder / "kitti_noc_000010_10.png")
    return {name: kitti_errors(fn(first, second), truth, valid) for name, fn in methods.items()}


def camvid_propagation(frames: list[np.ndarray], labels: list[np.ndarray], flow: FlowFn,
                       max_k: int = 4) -> dict[str, float | None]:
    """mIoU (%) over CamVid's 11 classes of the labels of frame t - k carried to frame t, k = 1..max_k,
    over every t with t - k >= 0. Labels: class ids 0..10, void = IGNORE_INDEX; carried void pixels
    are not scored."""
    steps = [flow(frames[t], frames[t - 1]) for t in range(1, len(frames))]  # steps[t-1]: t -> t-1
    scores = DistanceConfusion(CAMVID_CLASSES)
    for t in range(1, len(frames)):
        for k in range(1, min(max_k, t) + 1):
            carried = warp_labels(labels[t - k], steps[t - k:t])
            scored = np.where(carried == IGNORE_INDEX, IGNORE_INDEX, labels[t])
            scores.update(carried, scored, k)
    per_k = scores.summary()["per_distance_miou"]
    return {str(k): _rounded(as_percent(per_k.get(k))) for k in range(1, max_k + 1)}


def _camvid(folder: Path, methods: dict[str, FlowFn], max_k: int) -> dict[str, dict[str, float | None]]:
    images = sorted((folder / "val").glob("*.png"))
    if len(images) < 2:
        raise DatasetLayoutError(f"expected CamVid frames in {folder / 'val'}", folder)
    frames = [_read_rgb(p) for p in images]
    labels = []
    for p in images:
        label = cv2.imread(str(folder / "valannot" / p.name), cv2.IMREAD_UNCHANGED)
        if label is None or label.ndim != 2:
            raise DatasetLayoutError(f"expected a one-channel label map {folder / 'valannot' / p.name}",
                                     folder)
        labels.append(np.where(label >= CAMVID_CLASSES, IGNORE_INDEX, label).astype(np.uint8))
    return {name: camvid_propagation(frames, labels, fn, max_k) for name, fn in methods.items()}


def _video_frames(path: Path, limit: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    try:
        while len(frames) < limit:
            ok, bgr = capture.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    finally:
        capture.release()
    if len(frames) < 2:
        raise DatasetLayoutError(f"{path}: OpenCV decoded {len(frames)} frame(s); expected a video", path)
    return frames


def _backward_warp_image(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """out(x) = image(x + flow(x)), bilinear, edges replicated."""
    height, width = flow.shape[:2]
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return cv2.remap(image, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def dashcam_photometric(frames: Iterable[np.ndarray], flow: FlowFn) -> float:
    """Mean absolute grey-level difference (0..255) between frame t and frame t - 1 warped onto it."""
    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).astype(np.float32) for f in frames]
    rgb = list(frames)
    errors = [np.abs(_backward_warp_image(grey[t - 1], flow(rgb[t], rgb[t - 1])) - grey[t]).mean()
              for t in range(1, len(grey))]
    return round(float(np.mean(errors)), 2)


def synthetic_flow_epe(root: str | Path, split: str, methods: dict[str, FlowFn], pairs: int = 0
                       ) -> dict[str, float]:
    """Mean end-point error (full-resolution px) of each method against the generator's exact
    backward flow (`gsvnet-synth generate --flow`) over consecutive frame pairs of `split`: where
    settings are chosen (the train range), never on the real files."""
    from ..data import cityscapes

    sums = {name: 0.0 for name in methods}
    count = 0
    for item in cityscapes.list_snippets(root, split, "gtFine_sequence"):
        path = cityscapes.flow_path(root, split, item)
        if item.frame < 1 or not path.is_file():
            continue
        truth = cityscapes.read_flow(path)
        current = cityscapes.read_rgb(cityscapes.frame_path(root, split, item))
        previous = cityscapes.read_rgb(cityscapes.frame_path(root, split, item, item.frame - 1))
        for name, fn in methods.items():
            sums[name] += float(np.linalg.norm(fn(current, previous) - truth, axis=-1).mean())
        count += 1
        if pairs and count >= pairs:
            break
    if not count:
        raise DatasetLayoutError(f"no frame pairs with exact flow under {root} (split {split!r}); "
                                 "expected `gsvnet-synth generate --flow` output", Path(root))
    return {name: round(total / count, 3) for name, total in sums.items()}


def measure_real_motion(root: str | Path, methods: dict[str, FlowFn], *, max_k: int = 4,
                        video_frames: int = 38, kitti_extra: dict[str, FlowFn] | None = None,
                        progress: Callable[[str], None] | None = None) -> dict[str, dict]:
    """Every figure for every flow method: {'kitti': ..., 'camvid': ..., 'dashcam': ...}."""
    root = Path(root)
    say = progress or (lambda _line: None)
    say("KITTI pair")
    kitti = _kitti(root / "kitti-flow-pair" / "static", {**methods, **(kitti_extra or {})})
    say("CamVid sequence")
    camvid = _camvid(root / "camvid-sequence" / "CamVid", methods, max_k)
    say("dashcam clip")
    frames = _video_frames(root / "dashcam-video" / "test_video.mp4", video_frames)
    dashcam = {name: dashcam_photometric(frames, fn) for name, fn in methods.items()}
    return {"kitti": kitti, "camvid": camvid, "dashcam": {"frames": len(frames), "mae": dashcam}}


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)

"""VideoSegmenter: the only holder of temporal state; keyframe policy, propagation, output stage."""
from __future__ import annotations

import contextlib
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Optional

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .backends.base import Ahead, Backend, torch_threads
from .config import GSVNetConfig, StreamConfig
from .keyframe_policy import (FrameChange, calibration_for, check_budget, colour_histogram, effective_distance,
                              histogram_correlation, mean_confidence, threshold_for_budget)
from .models.preprocess import downsample_1_8
from .output_stage import FACTOR, LabelUpsampler, compiled_kernel_available

__all__ = [
    "SegmentationError",
    "InputError",
    "NonFiniteOutputError",
    "SegmentationResult",
    "VideoSegmenter",
    "SIZE_MULTIPLE",
]

SIZE_MULTIPLE = 32  # the guiding net downsamples ×4 from 1/8 (MODEL_SPEC.md, data flow)


class SegmentationError(ValueError):
    """Base class of the errors `VideoSegmenter.step` raises."""


class InputError(SegmentationError):
    """The frame given to `step()` is not an (H, W, 3) uint8 RGB array."""


class NonFiniteOutputError(SegmentationError):
    """The networks produced NaN or infinite logits (broken weights); the stream state was reset."""


@dataclass(frozen=True)
class SegmentationResult:
    """Labels of one frame and how they were made."""

    labels: np.ndarray  # (H, W) or (ceil(H/8), ceil(W/8)) uint8 trainIds
    is_keyframe: bool
    keyframe_reason: str  # "" on non-keyframes
    frames_since_keyframe: int
    frame_index: int
    stamp_ns: int
    timings_ms: dict[str, float] = field(default_factory=dict)
    confidence: Optional[np.ndarray] = None  # same shape as labels, float32 in [0, 1]
    # Adaptive policy: what the decision was made on (confidence drop since the keyframe, effective
    # distance, correlation with the frame before); None under the fixed policy and at forced keyframes.
    change: Optional[FrameChange] = None


@dataclass
class _StreamState:
    """What must survive between frames; everything at 1/8 resolution (MODEL_SPEC.md)."""

    size: tuple[int, int]
    prev_frame_1_8: torch.Tensor
    prev_logits_1_8: torch.Tensor
    frames_since_keyframe: int
    last_stamp_ns: int
    # adaptive policy: mean top softmax probability of the keyframe's and of the last frame's logits,
    # and the last frame's colour histogram (scene cuts)
    keyframe_confidence: Optional[float] = None
    prev_confidence: Optional[float] = None
    prev_histogram: Optional[np.ndarray] = None


@dataclass
class _Prepared:
    """A frame after the host work that needs no stream state (segment() does it a frame ahead)."""

    size: tuple[int, int]
    stamp_ns: int
    frame_1_8: torch.Tensor
    finish: Callable[[], torch.Tensor]  # makes the full-resolution frame (keyframes): use full_frame()
    histogram: Optional[np.ndarray]  # adaptive policy only
    host_ms: float = 0.0
    ahead: Optional[Ahead] = None  # segment(): Backend.ahead against the frame `ahead_from`
    ahead_from: Optional[torch.Tensor] = None
    full: Optional[torch.Tensor] = None  # full_frame(), once made

    def full_frame(self) -> torch.Tensor:
        """The full-resolution frame, made once (on an accelerator `finish` scales in place)."""
        if self.full is None:
            self.full = self.finish()
        return self.full


@dataclass
class _Decided:
    """A frame after its network step: what the output stage needs to make its result."""

    prepared: _Prepared
    logits: torch.Tensor
    reason: str
    frames_since_keyframe: int
    frame_index: int
    change: Optional[FrameChange]
    preprocess_ms: float
    network_ms: float


def _all_finite(tensor: torch.Tensor) -> bool:
    """No NaN or infinity in `tensor`: numpy on the host (0.01 ms for 19x64x128 logits against 0.15 ms
    for torch.isfinite, which wakes its thread pool), torch on an accelerator."""
    if tensor.device.type == "cpu":
        return bool(np.isfinite(tensor.detach().numpy()).all())
    return bool(torch.isfinite(tensor).all())


def _check_frame(frame: np.ndarray) -> None:
    if not isinstance(frame, np.ndarray):
        raise InputError(f"frame must be a numpy array (H, W, 3) uint8 RGB, got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise InputError(f"frame must be uint8 RGB, got dtype {frame.dtype}")
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise InputError(f"frame must have shape (H, W, 3) RGB, got {frame.shape}")
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise InputError(f"frame is empty: shape {frame.shape}; expected H >= 1 and W >= 1")


class VideoSegmenter:
    """Segments a video stream frame by frame with GSVNet (keyframe every l frames, propagation between).

    One instance per camera stream; several instances may share one `Backend`.
    """

    def __init__(self, backend: Backend, stream_cfg: StreamConfig | None = None) -> None:
        self.backend = backend
        self.cfg = stream_cfg or StreamConfig()
        self._interval = self.cfg.keyframe_interval
        self._policy = self.cfg.keyframe_policy
        self._budget = float(self.cfg.keyframe_budget)
        self._calibration = calibration_for(backend.model_name)
        self._upsampler = LabelUpsampler()
        self._state: Optional[_StreamState] = None
        self._frame_index = 0
        self._pending_reason = "first"

    @classmethod
    def from_config(cls, cfg: GSVNetConfig) -> "VideoSegmenter":
        """Build the backend described by `cfg` (weights loaded once) and a stream on it."""
        from .backends import build_backend

        return cls(build_backend(cfg), cfg.stream)

    @property
    def keyframe_interval(self) -> int:
        return self._interval

    @keyframe_interval.setter
    def keyframe_interval(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"keyframe_interval must be an integer >= 1, got {value!r}")
        self._interval = value

    @property
    def keyframe_policy(self) -> str:
        return self._policy

    @keyframe_policy.setter
    def keyframe_policy(self, value: str) -> None:
        if value not in ("fixed", "adaptive"):
            raise ValueError(f"keyframe_policy must be 'fixed' or 'adaptive', got {value!r}")
        self._policy = value

    @property
    def keyframe_budget(self) -> float:
        """Adaptive policy: target mean keyframe interval (frames)."""
        return self._budget

    @keyframe_budget.setter
    def keyframe_budget(self, value: float) -> None:
        problem = check_budget(value)
        if problem:
            raise ValueError(problem)
        self._budget = float(value)

    @property
    def change_threshold(self) -> float:
        """Adaptive policy: effective distance from the keyframe (frames, FrameChange) that triggers the
        next one: stream.change_threshold, or the keyframe net's calibrated threshold for the budget."""
        if self.cfg.change_threshold is not None:
            return float(self.cfg.change_threshold)
        return threshold_for_budget(self._budget, self._calibration.thresholds)

    @property
    def _glue_threads(self) -> Optional[int]:
        """Torch threads for the stream's own tensor work (`Backend.glue_threads`; None: as configured)."""
        return getattr(self.backend, "glue_threads", None)  # a duck-typed backend may lack it

    @property
    def last_logits_1_8(self) -> Optional[torch.Tensor]:
        """The logits (1, C, h, w) of the last frame segmented, at 1/8; None after a reset."""
        return None if self._state is None else self._state.prev_logits_1_8

    @property
    def model_name(self) -> str:
        return self.backend.model_name

    @property
    def backend_name(self) -> str:
        return self.backend.name

    @property
    def num_classes(self) -> int:
        return self.backend.num_classes

    def reset(self) -> None:
        """Forget the temporal state: the next frame is a keyframe (reason "reset")."""
        self._state = None
        self._frame_index = 0
        self._pending_reason = "reset"

    def _keyframe_reason(self, size: tuple[int, int], stamp_ns: int, force_reason: Optional[str]) -> str:
        state = self._state
        if state is None:
            return self._pending_reason
        if force_reason:
            return force_reason
        reason = self._continuity_reason(size, stamp_ns, state.size, state.last_stamp_ns)
        if reason:
            return reason
        if self._policy == "fixed" and state.frames_since_keyframe + 1 >= self._interval:
            return "interval"
        return ""

    def _continuity_reason(self, size: tuple[int, int], stamp_ns: int, prev_size: tuple[int, int],
                           prev_stamp_ns: int) -> str:
        """Why a frame cannot follow the one before (size, stamp order, gap); "" when it can."""
        if size != prev_size:
            return "size_change"
        if stamp_ns < prev_stamp_ns:
            return "stamp_backwards"
        if stamp_ns - prev_stamp_ns > self.cfg.max_gap_s * 1e9:
            return "gap"
        return ""

    def _keyframe_due_after(self, prepared: Optional[_Prepared]) -> bool:
        """segment()'s forecast, made before `prepared` runs: whether the frame after it is a keyframe by
        the count alone (fixed: the interval; adaptive: max_keyframe_interval). `prepared` None: the
        next frame follows the state directly. A forecast only saves work: a wrong one changes no result."""
        state = self._state
        limit = self._interval if self._policy == "fixed" else self.cfg.max_keyframe_interval
        if state is None:
            return prepared is None or limit <= 1  # the first frame after a reset, or the one after it
        if prepared is None:
            since = state.frames_since_keyframe
        else:  # frames since the keyframe at `prepared`, unless the adaptive policy makes it one
            keyframe = (self._keyframe_reason(prepared.size, prepared.stamp_ns, None)
                        or state.frames_since_keyframe + 1 >= limit)
            since = 0 if keyframe else state.frames_since_keyframe + 1
        return since + 1 >= limit

    def _adaptive_reason(self, change: FrameChange) -> str:
        """The adaptive policy's decision for a frame no other rule made a keyframe."""
        state = self._state
        assert state is not None
        if change.correlation_with_previous < self.cfg.scene_change_correlation:
            return "scene_change"
        if change.effective_distance >= self.change_threshold:
            return "change"
        if state.frames_since_keyframe + 1 >= self.cfg.max_keyframe_interval:
            return "max_interval"
        return ""

    def step(self, frame_rgb: np.ndarray, stamp_ns: int, *, force_reason: Optional[str] = None
             ) -> SegmentationResult:
        """Segment one (H, W, 3) uint8 RGB frame taken at `stamp_ns` nanoseconds."""
        _check_frame(frame_rgb)
        with torch_threads(self._glue_threads):
            return self._finish(self._run_networks(self._prepare_frame(frame_rgb, stamp_ns), force_reason))

    def segment(self, frames: Iterable[tuple[np.ndarray, int]]) -> Iterator[SegmentationResult]:
        """Segment a stream of (frame, stamp_ns) pairs: the same results as `step()` on each in turn, with
        the host work of the next frame (checks, 1/8 preprocessing, `Backend.ahead`) and the output stage of
        the last one run on a second thread while this one runs the networks. For offline streams,
        where the next frame is already there; it raises at the first frame step() would refuse (after
        yielding every result before it). One stream at a time per segmenter; no step() meanwhile. A
        frame array must stay unchanged until its result is yielded (a keyframe's full frame is read
        then): a reader that refills one buffer must hand over copies. The backend runs in its
        `pipelined()` mode meanwhile (ONNX Runtime: the non-keyframe graphs on `runtime.onnx_segment_threads`).
        """
        frames = iter(frames)
        glue = self._glue_threads
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gsvnet-host",
                                  initializer=lambda: torch.set_num_threads(glue) if glue else None)
        finishing: Optional[Future] = None  # the output stage of the frame before, on the host thread
        pipelined = getattr(self.backend, "pipelined", contextlib.nullcontext)  # a duck-typed backend may lack it
        with pipelined():
            try:
                item = next(frames, None)
                upcoming = None if item is None else pool.submit(self._prepare_checked, *item, None,
                                                                 self._keyframe_due_after(None))
                while upcoming is not None:
                    try:
                        prepared = upcoming.result()  # step()'s InputError for a bad frame
                        item = next(frames, None)
                        upcoming = None if item is None else pool.submit(
                            self._prepare_checked, *item, prepared, self._keyframe_due_after(prepared))
                        with torch_threads(glue):
                            decided = self._run_networks(prepared, None)
                    except Exception:
                        if finishing is not None:  # every result before the failing frame, then its error
                            yield finishing.result()
                        raise
                    if finishing is not None:
                        yield finishing.result()
                    finishing = pool.submit(self._finish, decided)
                if finishing is not None:
                    yield finishing.result()
            finally:
                pool.shutdown(wait=True, cancel_futures=True)

    def _prepare_checked(self, frame_rgb: np.ndarray, stamp_ns: int, previous: Optional[_Prepared],
                         keyframe_due: bool) -> _Prepared:
        """segment()'s host stage: `_prepare_frame`, then for a frame forecast to be a keyframe (by the
        count, `keyframe_due`, or because it cannot follow `previous`) its full-resolution frame, else what
        the backend can compute of the non-keyframe step before the previous logits are known
        (`Backend.ahead`: the host flow back to the frame before; with ONNX Runtime also phi's graph)."""
        _check_frame(frame_rgb)
        prepared = self._prepare_frame(frame_rgb, stamp_ns)
        if keyframe_due or (previous is not None and self._continuity_reason(
                prepared.size, prepared.stamp_ns, previous.size, previous.stamp_ns)):
            started = time.perf_counter()
            with torch.inference_mode():
                prepared.full_frame()
            prepared.host_ms += 1e3 * (time.perf_counter() - started)
        elif previous is not None:
            started = time.perf_counter()
            ahead = getattr(self.backend, "ahead", None)  # a duck-typed backend may lack it
            with torch.inference_mode():
                prepared.ahead = ahead(prepared.frame_1_8, previous.frame_1_8, overlap=False) if ahead else None
            prepared.ahead_from = previous.frame_1_8
            prepared.host_ms += 1e3 * (time.perf_counter() - started)
        return prepared

    def _prepare_frame(self, frame_rgb: np.ndarray, stamp_ns: int) -> _Prepared:
        """The host work that needs no stream state: the 1/8 frame (and the full one, on demand), and the
        colour histogram under the adaptive policy."""
        started = time.perf_counter()
        with torch.inference_mode():
            finish, frame_1_8 = self._prepare(frame_rgb, self.backend.device)
            histogram = colour_histogram(frame_1_8) if self._policy == "adaptive" else None
        return _Prepared(frame_rgb.shape[:2], int(stamp_ns), frame_1_8, finish, histogram,
                         host_ms=1e3 * (time.perf_counter() - started))

    def _run_networks(self, prepared: _Prepared, force_reason: Optional[str]) -> _Decided:
        """The keyframe decision, the network step and the new stream state, for a prepared frame."""
        t_start = time.perf_counter()
        height, width = prepared.size
        stamp_ns = prepared.stamp_ns
        reason = self._keyframe_reason((height, width), stamp_ns, force_reason)
        adaptive = self._policy == "adaptive"
        change, histogram, mean_top = None, prepared.histogram, None
        with torch.inference_mode():
            if adaptive:
                if histogram is None:  # the policy changed since the frame was prepared
                    histogram = colour_histogram(prepared.frame_1_8)
                state = self._state
                if state is not None and not reason:
                    key_top, prev_top = state.keyframe_confidence, state.prev_confidence
                    if key_top is None or prev_top is None or state.prev_histogram is None:
                        reason = "policy_change"  # switched from fixed: no keyframe to compare with
                    else:
                        distance = effective_distance(state.frames_since_keyframe + 1, key_top, prev_top,
                                                      self._calibration.k)
                        change = FrameChange(key_top - prev_top, distance,
                                             histogram_correlation(histogram, state.prev_histogram))
                        reason = self._adaptive_reason(change)
            frame = prepared.full_frame() if reason else None
            t_pre = self._sync_time(prepared.frame_1_8)
            if reason:
                logits = self.backend.keyframe(frame)
                prepared.full = None  # not kept until the output stage is done
            else:
                state = self._state
                assert state is not None
                ahead = {}
                if prepared.ahead is not None and prepared.ahead_from is state.prev_frame_1_8:
                    ahead["ahead"] = prepared.ahead  # computed on the host thread (segment())
                logits = self.backend.propagate(prepared.frame_1_8, state.prev_frame_1_8,
                                                state.prev_logits_1_8, **ahead)
            if not _all_finite(logits):
                self._state = None
                self._pending_reason = "reset"
                raise NonFiniteOutputError(
                    "the networks produced NaN or infinite logits on this frame (check the weight "
                    "files); expected finite values. The stream was reset.")
            t_net = self._sync_time(logits)
            if adaptive:
                mean_top = mean_confidence(logits[0], -(-height // FACTOR), -(-width // FACTOR))

        previous = self._state
        since = 0 if reason else previous.frames_since_keyframe + 1  # type: ignore[union-attr]
        keyframe_confidence = mean_top if reason or previous is None else previous.keyframe_confidence
        self._state = _StreamState((height, width), prepared.frame_1_8, logits, since, stamp_ns,
                                   keyframe_confidence=keyframe_confidence, prev_confidence=mean_top,
                                   prev_histogram=histogram)
        decided = _Decided(prepared, logits, reason, since, self._frame_index, change,
                           preprocess_ms=prepared.host_ms + 1e3 * (t_pre - t_start),
                           network_ms=1e3 * (t_net - t_pre))
        self._frame_index += 1
        return decided

    def _finish(self, decided: _Decided) -> SegmentationResult:
        """The output stage: labels (and confidence) at the requested resolution, and the result."""
        t_start = time.perf_counter()
        height, width = decided.prepared.size
        with torch.inference_mode():
            labels, confidence = self._output(decided.logits[0], height, width)
        output_ms = 1e3 * (time.perf_counter() - t_start)
        return SegmentationResult(
            change=decided.change,
            labels=labels, confidence=confidence, is_keyframe=bool(decided.reason),
            keyframe_reason=decided.reason, frames_since_keyframe=decided.frames_since_keyframe,
            frame_index=decided.frame_index, stamp_ns=decided.prepared.stamp_ns,
            timings_ms={"preprocess": decided.preprocess_ms, "network": decided.network_ms,
                        "output": output_ms,
                        "total": decided.preprocess_ms + decided.network_ms + output_ms})

    @staticmethod
    def _sync_time(tensor: torch.Tensor) -> float:
        """perf_counter after the device finished the work that produced `tensor`."""
        if tensor.is_cuda:
            torch.cuda.synchronize(tensor.device)
        return time.perf_counter()

    @classmethod
    def prepare(cls, frame_rgb: np.ndarray, device: torch.device, full: bool
                ) -> tuple[Optional[torch.Tensor], torch.Tensor]:
        """(H, W, 3) uint8 -> (full frame or None, frame at 1/8), float RGB in [0, 1], (1, 3, h, w)."""
        finish, frame_1_8 = cls._prepare(frame_rgb, device)
        return (finish() if full else None), frame_1_8

    @staticmethod
    def _prepare(frame_rgb: np.ndarray, device: torch.device
                 ) -> tuple[Callable[[], torch.Tensor], torch.Tensor]:
        """(H, W, 3) uint8 -> (a function giving the full frame, the frame at 1/8).

        The frame is padded by edge replication up to a multiple of 32 and area-averaged to 1/8; the
        full-resolution frame is only finished for keyframes (a non-keyframe needs the 1/8 frame
        alone). On the host, the compiled kernel `preprocess_kernel.block_means_1_8` reduces the uint8
        frame (0.1 ms at 1024x512); without numba, OpenCV's area resize of the float frame by the integer
        factor 8 gives the same 8x8 block means as `downsample_1_8` (0.5 ms); on an accelerator the frame
        is uploaded as uint8 (4x fewer bytes than float) and reduced there.
        """
        height, width = frame_rgb.shape[:2]
        pad_h, pad_w = -height % SIZE_MULTIPLE, -width % SIZE_MULTIPLE
        if device.type == "cpu":  # host memory: no upload
            padded = frame_rgb if not (pad_h or pad_w) else cv2.copyMakeBorder(
                frame_rgb, 0, pad_h, 0, pad_w, cv2.BORDER_REPLICATE)
            if compiled_kernel_available():  # the uint8 frame straight to 1/8; a float copy for keyframes only
                from .preprocess_kernel import block_means_1_8  # imports numba

                frame_1_8 = torch.from_numpy(block_means_1_8(padded))[None]
                return (lambda: torch.from_numpy(padded.astype(np.float32)).permute(2, 0, 1)[None].div_(255.0)
                        ), frame_1_8
            as_float = padded.astype(np.float32)  # 0..255, converted once for both outputs
            small = cv2.resize(as_float, ((width + pad_w) // FACTOR, (height + pad_h) // FACTOR),
                               interpolation=cv2.INTER_AREA)
            frame_1_8 = torch.from_numpy(small).permute(2, 0, 1)[None].div_(255.0).contiguous()
            return (lambda: torch.from_numpy(as_float).permute(2, 0, 1)[None].div_(255.0)), frame_1_8
        tensor = torch.from_numpy(np.ascontiguousarray(frame_rgb)).to(device, non_blocking=True)
        tensor = tensor.permute(2, 0, 1)[None].float()  # 0..255
        if pad_h or pad_w:
            tensor = F.pad(tensor, (0, pad_w, 0, pad_h), mode="replicate")
        frame_1_8 = downsample_1_8(tensor).div_(255.0)
        return (lambda: tensor.div_(255.0)), frame_1_8

    def _output(self, logits_1_8: torch.Tensor, height: int, width: int
                ) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """Labels (and optionally confidence) at the requested resolution, one device->host copy each."""
        if self.cfg.output_resolution == "1/8":
            h8, w8 = -(-height // FACTOR), -(-width // FACTOR)
            labels = logits_1_8.argmax(0).to(torch.uint8)[:h8, :w8]
            confidence = None
            if self.cfg.confidence:
                confidence = logits_1_8.softmax(0).amax(0)[:h8, :w8]
        else:
            labels = self._upsampler(logits_1_8)[:height, :width]
            confidence = None
            if self.cfg.confidence:
                # Max softmax probability at 1/8, upsampled bilinearly (cheap proxy at full size).
                prob = logits_1_8.softmax(0).amax(0)[None, None]
                confidence = F.interpolate(prob, scale_factor=FACTOR, mode="bilinear",
                                           align_corners=False)[0, 0, :height, :width]
        labels_np = labels.cpu().numpy()
        conf_np = None if confidence is None else confidence.float().cpu().numpy()
        return labels_np, conf_np

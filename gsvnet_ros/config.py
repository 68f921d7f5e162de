"""Typed configuration: dataclasses loaded from YAML; unknown keys and wrong types are errors."""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Optional

import yaml

__all__ = [
    "ConfigError",
    "ModelConfig",
    "RuntimeConfig",
    "StreamConfig",
    "GSVNetConfig",
    "from_dict",
    "load_config",
]

KeyframeNet = Literal["swiftnet_r18", "bisenet_r18"]
# Stated ranges of the integer keys (inclusive); the ROS node's parameters use the same ones.
KEYFRAME_INTERVAL_RANGE = (1, 1000)
KEYFRAME_BUDGET_RANGE = (1.0, 1000.0)
NUM_CLASSES_RANGE = (1, 255)  # label maps are uint8 and 255 is the ignore label
DIS_FINEST_SCALE_RANGE = (0, 4)
THREADS_RANGE = (0, 1024)
ONNX_CACHE_MAX_MB_RANGE = (0, 1 << 20)  # up to 1 TiB of cached graphs
ONNX_MAX_SIZES_RANGE = (1, 64)
MAX_GAP_S_RANGE = (0.001, 3600.0)
# A config file larger than this is not read (the shipped ones are about 1 KiB).
_MAX_CONFIG_BYTES = 1 << 20


class ConfigError(ValueError):
    """A configuration key is unknown, missing, or has a value of the wrong type or range."""


@dataclass(frozen=True)
class ModelConfig:
    """Architecture switches of GSVNet (MODEL_SPEC.md)."""

    keyframe_net: KeyframeNet = "swiftnet_r18"
    num_classes: int = 19
    keyframe_scale: float = 0.75
    # Ideal-delay kernels: 3 (3x3, D=9) or 5 (5x5, D=17); learnable = Table A5's "learned kernels".
    kernel_size: Literal[3, 5] = 3
    learnable_kernels: bool = False
    # "paper": D shifted copies + intra (K=D+1=10); "code": + an all-zero map (K=11).
    fusion: Literal["paper", "code"] = "code"
    # Edge map E: the paper's sigmoid of the Laplacian response, or the code's binarisation.
    edge: Literal["binary", "sigmoid"] = "binary"
    # Table 4 ablation: without the intra-frame net phi the guide sees only the edge map.
    use_intra: bool = True
    # What the warp (Eq. 1) samples outside the frame: "border" (the nearest edge logits, as a
    # camera moving forward sees the edge go on) or "zeros" (all-zero logits, whose argmax is class 0,
    # road: what the shipped nets were trained with; no difference on val-60, README).
    warp_padding: Literal["zeros", "border"] = "border"
    # Backward flow at 1/8: the flow net O (paper Sec. 3.3) or OpenCV's DIS on the host CPU
    # (models/dis_flow.py), with its preset.
    flow: Literal["learned", "dis"] = "learned"
    dis_preset: Literal["ultrafast", "fast", "medium"] = "fast"
    # Finest pyramid level DIS estimates at (0 = the 1/8 grid itself; the presets use 1-2, i.e. a
    # 1/32-1/64 frame). Chosen on the synthetic train range against exact flow: end-point error
    # 0.43 grid px at 0 against 0.91 at the fast preset's 2 (README, "Propagation on real motion").
    dis_finest_scale: int = 0

    def __post_init__(self) -> None:
        _check_range(self.num_classes, NUM_CLASSES_RANGE, "model.num_classes")
        _check_range(self.dis_finest_scale, DIS_FINEST_SCALE_RANGE, "model.dis_finest_scale")
        _check(0.1 <= self.keyframe_scale <= 1.0, "model.keyframe_scale", "a number in [0.1, 1.0]",
               self.keyframe_scale)


@dataclass(frozen=True)
class RuntimeConfig:
    """Where and how the networks run."""

    device: str = "auto"  # auto | cpu | cuda | cuda:N
    backend: Literal["auto", "torch", "onnxruntime"] = "auto"
    half: bool = False  # fp16 on CUDA only
    channels_last: bool = False  # CUDA only
    threads: int = 0  # 0 = library default
    keyframe_weights: Optional[str] = None
    propagation_weights: Optional[str] = None
    onnx_cache_dir: Optional[str] = None  # default: ~/.cache/gsvnet_ros/onnx
    onnx_cache_max_mb: int = 1024  # least recently used graphs evicted beyond this; 0 = no limit
    # onnxruntime backend: int8 = statically quantized graphs (backends/onnx_quantize.py)
    onnx_precision: Literal["fp32", "int8"] = "fp32"
    # the propagation graph's precision when it differs from onnx_precision (null = the same)
    onnx_propagation_precision: Optional[Literal["fp32", "int8"]] = None
    # intra-op threads of the flow, intra and propagation graphs (0 = `threads`; 2 beat 1 on the 2-core dev
    # machine, README "Non-keyframe speed on a CPU")
    onnx_propagation_threads: int = 0
    # the same graphs' intra-op threads inside VideoSegmenter.segment(), whose own two threads already run
    # the next frame's host work beside this frame's networks (0 = onnx_propagation_threads)
    onnx_segment_threads: int = 0
    # onnxruntime backend: frame sizes whose keyframe + propagation sessions stay in memory (the
    # least recently used size is closed first; graphs have static shapes, one pair per size).
    onnx_max_sizes: int = 4
    # Load a propagation file trained beside another keyframe file than the one configured
    # (a warning instead of an error; models/weights.check_lineage).
    allow_mismatched_weights: bool = False

    def __post_init__(self) -> None:
        ok = self.device in ("auto", "cpu", "cuda") or (
            self.device.startswith("cuda:") and self.device[5:].isdigit() and len(self.device) <= 9)
        _check(ok, "runtime.device", "'auto', 'cpu', 'cuda' or 'cuda:N'", self.device)
        _check_range(self.threads, THREADS_RANGE, "runtime.threads", " (0 = library default)")
        _check_range(self.onnx_propagation_threads, THREADS_RANGE, "runtime.onnx_propagation_threads",
                     " (0 = runtime.threads)")
        _check_range(self.onnx_segment_threads, THREADS_RANGE, "runtime.onnx_segment_threads",
                     " (0 = runtime.onnx_propagation_threads)")
        _check_range(self.onnx_cache_max_mb, ONNX_CACHE_MAX_MB_RANGE, "runtime.onnx_cache_max_mb",
                     " (0 = no limit)")
        _check_range(self.onnx_max_sizes, ONNX_MAX_SIZES_RANGE, "runtime.onnx_max_sizes")
        for key in ("keyframe_weights", "propagation_weights", "onnx_cache_dir"):
            value = getattr(self, key)
            _check(value is None or "\0" not in value, f"runtime.{key}",
                   "a path (without NUL characters) or null", value)


@dataclass(frozen=True)
class StreamConfig:
    """Keyframe policy and output options of the streaming engine."""

    keyframe_interval: int = 5  # l of the fixed policy; 1 = plain per-frame segmentation
    # fixed: a keyframe every keyframe_interval frames. adaptive: when the effective distance from the
    # last keyframe (frames, lengthened by the confidence propagation lost) reaches a threshold, at a
    # scene change, or after max_keyframe_interval (keyframe_policy.py).
    keyframe_policy: Literal["fixed", "adaptive"] = "fixed"
    keyframe_budget: float = 5.0  # adaptive: target mean keyframe interval (frames)
    max_keyframe_interval: int = 10  # adaptive: never more frames than this between keyframes
    # adaptive: a frame correlating less than this with the one before is a cut (keyframe at once)
    scene_change_correlation: float = 0.85
    # adaptive: effective distance (frames) that triggers a keyframe; null = from the budget
    change_threshold: Optional[float] = None
    max_gap_s: float = 0.5  # a larger stamp gap forces a keyframe
    output_resolution: Literal["full", "1/8"] = "full"
    confidence: bool = False

    def __post_init__(self) -> None:
        _check_range(self.keyframe_interval, KEYFRAME_INTERVAL_RANGE, "stream.keyframe_interval")
        _check_range(self.max_keyframe_interval, KEYFRAME_INTERVAL_RANGE, "stream.max_keyframe_interval")
        low, high = KEYFRAME_BUDGET_RANGE
        _check(_is_number(self.keyframe_budget) and low <= self.keyframe_budget <= high,
               "stream.keyframe_budget", f"a number of frames in [{low:g}, {high:g}]", self.keyframe_budget)
        _check(_is_number(self.scene_change_correlation) and -1 <= self.scene_change_correlation <= 1,
               "stream.scene_change_correlation", "a histogram correlation in [-1, 1]",
               self.scene_change_correlation)
        _check(self.change_threshold is None or (_is_number(self.change_threshold)
                                                 and 0 <= self.change_threshold <= 1000),
               "stream.change_threshold", "null (from the budget) or an effective distance in frames, "
               "[0, 1000]",
               self.change_threshold)
        low, high = MAX_GAP_S_RANGE
        _check(isinstance(self.max_gap_s, (int, float)) and not isinstance(self.max_gap_s, bool)
               and low <= self.max_gap_s <= high, "stream.max_gap_s",
               f"a number in [{low}, {high}] (seconds)", self.max_gap_s)


@dataclass(frozen=True)
class GSVNetConfig:
    """The whole configuration: model, runtime and stream sections."""

    model: ModelConfig = field(default_factory=ModelConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    stream: StreamConfig = field(default_factory=StreamConfig)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check(ok: bool, key: str, expected: str, got: Any) -> None:
    if not ok:
        shown = repr(got)
        raise ConfigError(f"config key '{key}': expected {expected}, got "
                          f"{shown if len(shown) <= 80 else shown[:77] + '...'}")


def _check_range(value: Any, bounds: tuple[int, int], key: str, note: str = "") -> None:
    """An int (never a bool or a float) within the inclusive bounds."""
    ok = isinstance(value, int) and not isinstance(value, bool) and bounds[0] <= value <= bounds[1]
    _check(ok, key, f"an integer in {bounds[0]}..{bounds[1]}{note}", value)


def _type_ok(value: Any, hint: Any) -> bool:
    """True when value matches a (simple) type hint; int is accepted where float is expected."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if origin is Literal:
        return any(value == a and type(value) is type(a) for a in typing.get_args(hint))
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(hint))
    if hint is type(None):
        return "null"
    return getattr(hint, "__name__", str(hint))


def from_dict(cls: type, data: Mapping[str, Any] | None, prefix: str = "") -> Any:
    """Build dataclass `cls` from a mapping, rejecting unknown keys and wrong types."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"config section '{prefix.rstrip('.') or '<root>'}': expected a mapping, "
                          f"got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields), key=repr)
    if unknown:
        raise ConfigError(f"unknown config key '{prefix}{unknown[0]}'; expected one of: "
                          + ", ".join(prefix + k for k in fields))
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        key = prefix + name
        if dataclasses.is_dataclass(hint):
            kwargs[name] = from_dict(hint, value, key + ".")
            continue
        if not _type_ok(value, hint):
            raise ConfigError(f"config key '{key}': expected {_describe(hint)}, got {value!r}")
        if hint is float:
            value = float(value)
        kwargs[name] = value
    return cls(**kwargs)


def read_yaml_mapping(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """The top-level mapping of a YAML file; ConfigError naming the file when missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} not found: {path} (expected a YAML file)")
    try:
        size = path.stat().st_size
        if size > _MAX_CONFIG_BYTES:
            raise ConfigError(f"{what} {path} is {size} bytes; expected a YAML file of at most "
                              f"{_MAX_CONFIG_BYTES} bytes")
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} {path} is not UTF-8 text ({exc.reason} at byte {exc.start}); "
                          "expected a UTF-8 YAML file") from None
    except OSError as exc:
        raise ConfigError(f"{what} {path} cannot be read: {exc}") from None
    try:
        loaded = yaml.safe_load(text) or {}
    except (yaml.YAMLError, RecursionError) as exc:
        reason = " ".join(str(exc).split()) if isinstance(exc, yaml.YAMLError) else "nested too deeply"
        raise ConfigError(f"{what} {path} is not valid YAML: {reason}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{what} {path}: expected a mapping at the top level")
    return loaded


def load_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None
                ) -> GSVNetConfig:
    """Load a GSVNetConfig from YAML (defaults when path is None), then apply nested overrides."""
    data: dict[str, Any] = {} if path is None else read_yaml_mapping(path)
    for section, values in (overrides or {}).items():
        merged = dict(data.get(section) or {})
        merged.update(values)
        data[section] = merged
    cfg = from_dict(GSVNetConfig, data)
    if path is not None:
        cfg = _resolve_weight_paths(cfg, Path(path).parent)
    return cfg


def _resolve_weight_paths(cfg: GSVNetConfig, base: Path) -> GSVNetConfig:
    """Relative weight paths in a YAML file are relative to that file's folder.

    So `../models/x.pt` works from a source checkout and from an installed share/gsvnet_ros/config.
    """
    changes = {}
    for key in ("keyframe_weights", "propagation_weights"):
        value = getattr(cfg.runtime, key)
        if value and not Path(value).is_absolute():
            changes[key] = str((base / value).resolve())
    if not changes:
        return cfg
    return dataclasses.replace(cfg, runtime=dataclasses.replace(cfg.runtime, **changes))

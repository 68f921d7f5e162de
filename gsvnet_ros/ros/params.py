"""Every parameter of the segmentation node in one table: default, description, limits, read-only.

Precedence: built-in defaults < `config_file` (a gsvnet_ros.config YAML) < ROS parameters (params
file, launch arguments, command line). A string parameter left empty takes the config file's value.
The table itself is plain Python; only `descriptor()` touches rcl_interfaces.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, Mapping, Optional

from gsvnet_ros.codec import DEFAULT_MAX_IMAGE_PIXELS
from gsvnet_ros.config import GSVNetConfig, StreamConfig, load_config

__all__ = ["ParamSpec", "PARAMETERS", "SPECS", "RUNTIME_REBUILD", "descriptor", "defaults_from",
           "validate", "build_config", "stream_config", "warmup_size"]

_MASK_TO_STREAM = {"input": "full", "network": "1/8"}
_STREAM_TO_MASK = {v: k for k, v in _MASK_TO_STREAM.items()}
_DEVICE_RE = re.compile(r"^(|auto|cpu|cuda|cuda:\d+)$")
_SIZE_RE = re.compile(r"^([1-9]\d{0,4})x([1-9]\d{0,4})$")  # WIDTHxHEIGHT, each 1..99999


@dataclass(frozen=True)
class ParamSpec:
    """One ROS parameter: name, built-in default, what it does and what values it takes."""

    name: str
    default: Any
    description: str
    read_only: bool = False
    int_range: Optional[tuple[int, int]] = None
    float_range: Optional[tuple[float, float]] = None
    choices: tuple[str, ...] = ()
    config_key: Optional[tuple[str, str]] = None  # (section, key) in GSVNetConfig it overrides

    @property
    def constraints(self) -> str:
        if self.choices:
            return "one of: " + ", ".join(repr(c) for c in self.choices)
        if self.int_range:
            return f"integer in [{self.int_range[0]}, {self.int_range[1]}]"
        if self.float_range:
            return f"number in [{self.float_range[0]}, {self.float_range[1]}]"
        return ""


PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("config_file", "", "gsvnet_ros.config YAML with the model/runtime/stream sections; "
              "empty = built-in defaults. The parameters below override the keys they name.",
              read_only=True),
    ParamSpec("keyframe_weights", "", "Weights of the keyframe (image) network; empty = config "
              "file's, or random initialisation.", read_only=True,
              config_key=("runtime", "keyframe_weights")),
    ParamSpec("propagation_weights", "", "Weights of the propagation network (flow + guide); "
              "empty = config file's, or random initialisation.", read_only=True,
              config_key=("runtime", "propagation_weights")),
    ParamSpec("keyframe_net", "swiftnet_r18", "Keyframe network architecture.", read_only=True,
              choices=("", "swiftnet_r18", "bisenet_r18"), config_key=("model", "keyframe_net")),
    ParamSpec("device", "auto", "Inference device: auto, cpu, cuda or cuda:N.", read_only=True,
              config_key=("runtime", "device")),
    ParamSpec("backend", "auto", "Inference backend.", read_only=True,
              choices=("", "auto", "torch", "onnxruntime"), config_key=("runtime", "backend")),
    ParamSpec("onnx_precision", "fp32", "onnxruntime backend: fp32, or int8 for the statically "
              "quantized keyframe and propagation graphs (faster on CPUs with VNNI; see the README's "
              "accuracy figures).",
              read_only=True, choices=("", "fp32", "int8"), config_key=("runtime", "onnx_precision")),
    ParamSpec("onnx_propagation_precision", "", "onnxruntime backend: the propagation graph's precision "
              "when it differs from onnx_precision (fp32 or int8; empty = the config file's, which "
              "defaults to onnx_precision).",
              read_only=True, choices=("", "fp32", "int8"),
              config_key=("runtime", "onnx_propagation_precision")),
    ParamSpec("keyframe_interval", 5, "l: run the image network every l frames, propagate in "
              "between (1 = every frame is a keyframe).", int_range=(1, 1000),
              config_key=("stream", "keyframe_interval")),
    ParamSpec("keyframe_policy", "fixed", "fixed: a keyframe every keyframe_interval frames; adaptive: "
              "when the frames since the last keyframe, lengthened by the confidence propagation has "
              "lost, reach a threshold (from keyframe_budget), at a scene cut, or after "
              "max_keyframe_interval frames.",
              choices=("fixed", "adaptive"), config_key=("stream", "keyframe_policy")),
    ParamSpec("keyframe_budget", 5.0, "adaptive policy: target mean keyframe interval (frames); "
              "the threshold follows from it (calibrated per keyframe net on the synthetic train split).",
              float_range=(1.0, 1000.0), config_key=("stream", "keyframe_budget")),
    ParamSpec("max_keyframe_interval", 10, "adaptive policy: never more frames than this between "
              "keyframes. Changing it restarts every stream with a keyframe.", int_range=(1, 1000),
              config_key=("stream", "max_keyframe_interval")),
    ParamSpec("keyframe_scale", 0.75, "Input scale of the keyframe network (fixed by the weights).",
              read_only=True, float_range=(0.1, 1.0), config_key=("model", "keyframe_scale")),
    ParamSpec("max_gap_s", 0.5, "A stamp gap longer than this forces a keyframe (seconds).",
              float_range=(0.001, 3600.0), config_key=("stream", "max_gap_s")),
    ParamSpec("mask_resolution", "input", "Class mask size: 'input' (the image's) or 'network' "
              "(1/8 of it). Changing it restarts every stream with a keyframe.",
              choices=("input", "network"), config_key=("stream", "output_resolution")),
    ParamSpec("publish_color_mask", True, "Publish ~/color_mask (computed only while subscribed)."),
    ParamSpec("publish_overlay", True, "Publish ~/overlay (computed only while subscribed)."),
    ParamSpec("overlay_alpha", 0.5, "Weight of the colour mask in ~/overlay.",
              float_range=(0.0, 1.0)),
    ParamSpec("input_reliability", "best_effort", "QoS reliability of the image subscriptions "
              "(best_effort also receives from reliable publishers).", read_only=True,
              choices=("best_effort", "reliable")),
    ParamSpec("input_depth", 1, "QoS history depth of the image subscriptions.", read_only=True,
              int_range=(1, 100)),
    ParamSpec("max_image_pixels", DEFAULT_MAX_IMAGE_PIXELS, "Largest image accepted (width x "
              "height), checked from a raw image's declared size or a JPEG/PNG header before "
              "decoding; larger ones are dropped and counted (default 4096 x 4096: a 4K camera "
              "fits).",
              read_only=True, int_range=(1, 1 << 30)),
    ParamSpec("subscribe_compressed", False, "Also subscribe to image/compressed "
              "(sensor_msgs/CompressedImage, jpeg or png).", read_only=True),
    ParamSpec("enabled", True, "Process incoming images (also set by the ~/enable service)."),
    ParamSpec("diagnostics_period_s", 1.0, "Period of the /diagnostics status (seconds).",
              read_only=True, float_range=(0.1, 60.0)),
    ParamSpec("error_log_throttle_s", 5.0, "At most one log line per kind of bad input in this "
              "many seconds (counts are always kept in /diagnostics).", read_only=True,
              float_range=(0.0, 3600.0)),
    ParamSpec("max_streams", 8, "Cameras (header frame_ids) with their own temporal state; the "
              "least recently seen one is forgotten beyond this.", read_only=True,
              int_range=(1, 64)),
    ParamSpec("stats_window", 100, "Frames in the rolling window of the latency and rate "
              "statistics.", read_only=True, int_range=(10, 100000)),
    ParamSpec("warmup_size", "", "WIDTHxHEIGHT of a synthetic frame the worker segments twice (a "
              "keyframe, then a non-keyframe) before the first image, so that the first image does not "
              "pay the graphs' export, the int8 quantization and the compiled kernels' loading; empty: "
              "no warm-up. Images arriving meanwhile wait in the one-frame slot.", read_only=True),
)
SPECS: dict[str, ParamSpec] = {p.name: p for p in PARAMETERS}
# Changing one of these rebuilds the per-camera streams (the next frame of each is a keyframe).
RUNTIME_REBUILD = frozenset({"max_gap_s", "mask_resolution", "max_keyframe_interval"})


def descriptor(spec: ParamSpec) -> Any:
    """rcl_interfaces/ParameterDescriptor of a table row (ranges as one-element lists)."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

    desc = ParameterDescriptor(description=spec.description, read_only=spec.read_only,
                               additional_constraints=spec.constraints)
    if spec.int_range is not None:
        desc.integer_range = [IntegerRange(from_value=spec.int_range[0],
                                           to_value=spec.int_range[1], step=1)]
    if spec.float_range is not None:
        desc.floating_point_range = [FloatingPointRange(from_value=float(spec.float_range[0]),
                                                        to_value=float(spec.float_range[1]),
                                                        step=0.0)]
    return desc


def _config_value(spec: ParamSpec, cfg: GSVNetConfig) -> Any:
    assert spec.config_key is not None
    value = getattr(getattr(cfg, spec.config_key[0]), spec.config_key[1])
    if spec.name == "mask_resolution":
        return _STREAM_TO_MASK[value]
    if value is None:
        return ""
    return type(spec.default)(value)


def defaults_from(cfg: GSVNetConfig) -> dict[str, Any]:
    """Each parameter's default: the config file's value where it names one, else the table's."""
    return {s.name: _config_value(s, cfg) if s.config_key else s.default for s in PARAMETERS}


def validate(name: str, value: Any) -> Optional[str]:
    """Why `value` is not acceptable for parameter `name` (None when it is)."""
    spec = SPECS.get(name)
    if spec is None:
        return None  # not ours (use_sim_time, qos_overrides.*): other callbacks judge it
    if isinstance(spec.default, bool):
        if not isinstance(value, bool):
            return f"{name} must be a bool, got {value!r}"
        return None
    if spec.choices and value not in spec.choices:
        return f"{name} must be {spec.constraints}, got {value!r}"
    if name == "device" and not _DEVICE_RE.match(str(value)):
        return f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {value!r}"
    if name == "keyframe_interval" and (isinstance(value, bool) or not isinstance(value, int)
                                        or value < 1):
        return f"keyframe_interval must be an integer >= 1, got {value!r}"
    if name == "keyframe_budget" and not (isinstance(value, float) and 1.0 <= value <= 1000.0):
        return f"keyframe_budget must be a number of frames in [1, 1000], got {value!r}"
    if name == "max_keyframe_interval" and (isinstance(value, bool) or not isinstance(value, int)
                                            or value < 1):
        return f"max_keyframe_interval must be an integer >= 1, got {value!r}"
    if name == "overlay_alpha" and not (isinstance(value, float) and 0.0 <= value <= 1.0):
        return f"overlay_alpha must be a number in [0, 1], got {value!r}"
    if name == "max_gap_s" and not (isinstance(value, float) and value > 0.0):
        return f"max_gap_s must be a number > 0, got {value!r}"
    if name == "warmup_size" and value != "" and not _SIZE_RE.match(str(value)):
        return f"warmup_size must be empty or WIDTHxHEIGHT such as '1024x512', got {value!r}"
    return None


def warmup_size(value: str) -> Optional[tuple[int, int]]:
    """(width, height) of a valid, non-empty warmup_size; None when empty."""
    match = _SIZE_RE.match(value)
    return (int(match.group(1)), int(match.group(2))) if match else None


def build_config(config_file: str, values: Mapping[str, Any]) -> GSVNetConfig:
    """The config file's GSVNetConfig with the ROS parameters applied (ConfigError if invalid).

    Empty strings keep the config file's value; everything goes through `load_config`'s checks.
    """
    overrides: dict[str, dict[str, Any]] = {}
    for spec in PARAMETERS:
        if spec.config_key is None or spec.name not in values:
            continue
        value = values[spec.name]
        if isinstance(value, str) and value == "":
            continue
        if spec.name == "mask_resolution":
            value = _MASK_TO_STREAM[value]
        overrides.setdefault(spec.config_key[0], {})[spec.config_key[1]] = value
    return load_config(config_file or None, overrides)


def stream_config(cfg: GSVNetConfig, values: Mapping[str, Any]) -> StreamConfig:
    """cfg.stream with the run-time stream parameters (policy, interval, budget, gap, mask
    resolution) applied."""
    return replace(cfg.stream, keyframe_interval=values["keyframe_interval"],
                   keyframe_policy=values["keyframe_policy"], keyframe_budget=values["keyframe_budget"],
                   max_keyframe_interval=values["max_keyframe_interval"], max_gap_s=values["max_gap_s"],
                   output_resolution=_MASK_TO_STREAM[values["mask_resolution"]])

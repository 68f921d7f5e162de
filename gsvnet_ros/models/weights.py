"""Weight files: fp16 state dict + metadata, atomic writes, weights_only=True reads, named errors."""
from __future__ import annotations

import dataclasses
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Collection, Mapping

import torch
import torch.nn as nn

from .keyframe_nets import KEYFRAME_NETS

__all__ = ["WeightsError", "WeightsNotFoundError", "WeightsCorruptError", "WeightsMismatchError", "PARTS",
           "FORMAT", "FORMAT_VERSION", "part_state_dict", "weights_meta", "save_weights", "read_weights",
           "load_weights", "load_resnet_trunk", "check_lineage", "check_flow"]

FORMAT = "gsvnet_ros.weights"
FORMAT_VERSION = 1
PARTS = ("keyframe", "propagation")
_SHOW = 5  # keys listed per kind in a mismatch message
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_log = logging.getLogger(__name__)


class WeightsError(Exception):
    """A weight file cannot be used: missing, corrupted, or made for another model."""


class WeightsNotFoundError(WeightsError, FileNotFoundError):
    """The weight file does not exist."""


class WeightsCorruptError(WeightsError):
    """The file is truncated, corrupted, or not a gsvnet_ros weight file."""


class WeightsMismatchError(WeightsError):
    """The file holds weights for another architecture, part, or number of classes."""


def _check_part(part: str) -> None:
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}")


def _part_modules(model: nn.Module, part: str) -> dict[str, nn.Module]:
    """prefix -> sub-module held by a file of `part`; a bare image net is its own keyframe part."""
    _check_part(part)
    if part == "keyframe":
        return {"": getattr(model, "keyframe_net", model)}
    if not (hasattr(model, "flow_net") and hasattr(model, "gsv")):
        raise ValueError(f"{type(model).__name__} has no flow_net/gsv: cannot hold propagation weights")
    return {"flow_net.": model.flow_net, "gsv.": model.gsv}


def part_state_dict(model: nn.Module, part: str) -> dict[str, torch.Tensor]:
    """State dict a `part` file holds: keyframe -> keyframe_net's keys; propagation -> flow_net.*, gsv.*."""
    return {prefix + key: value for prefix, sub in _part_modules(model, part).items()
            for key, value in sub.state_dict().items()}


def weights_meta(model: nn.Module, part: str, **extra: Any) -> dict[str, Any]:
    """Metadata for a file of `part`: architecture, num_classes, the ModelConfig switches, extras."""
    _check_part(part)
    cfg = getattr(model, "cfg", None)
    config = dataclasses.asdict(cfg) if cfg is not None else {}
    if part == "keyframe":
        net = getattr(model, "keyframe_net", model)
        names = [name for name, factory in KEYFRAME_NETS.items() if factory is type(net)]
        arch = names[0] if names else type(net).__name__
        num_classes = getattr(net, "num_classes", config.get("num_classes"))
    else:
        arch, num_classes = "gsvnet_propagation", config.get("num_classes")
    return {"architecture": arch, "part": part, "num_classes": num_classes, "config": config, **extra}


def _check_meta(value: Any, where: str = "meta") -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where}: keys must be str, got {key!r}")
            _check_meta(item, f"{where}.{key}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_meta(item, f"{where}[{i}]")
    elif not (value is None or isinstance(value, (str, int, float, bool))):
        raise TypeError(f"{where}: only str/int/float/bool/None, lists and dicts can be stored, "
                        f"got {type(value).__name__}")


def save_weights(module_or_state: nn.Module | Mapping[str, torch.Tensor], path: str | os.PathLike, *,
                 half: bool = True, meta: Mapping[str, Any]) -> Path:
    """Write a state dict (floating tensors as fp16 when `half`) and `meta` atomically (temp + os.replace)."""
    state = module_or_state.state_dict() if isinstance(module_or_state, nn.Module) else module_or_state
    _check_meta(dict(meta))
    tensors = {}
    for key, value in state.items():
        value = value.detach().cpu()
        if half and value.is_floating_point():
            value = value.half()
        tensors[key] = value.contiguous().clone()
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "meta": dict(meta), "state_dict": tensors}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_torch_save(payload, path)
    return path


def atomic_torch_save(payload: Any, path: Path) -> None:
    """torch.save to a temporary file beside `path`, fsync, then os.replace: complete or absent."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_weights(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state_dict, meta) of a weight file, loaded with torch.load(weights_only=True) on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(f"weights file not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, bad pickle, unsupported global, ...
        raise WeightsCorruptError(f"corrupted or not a gsvnet_ros weight file: {path} "
                                  f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
                                  ) from None
    problem = _header_problem(payload)
    if problem:
        raise WeightsCorruptError(f"corrupted or not a gsvnet_ros weight file: {path} ({problem})")
    version = payload.get("format_version", 0)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise WeightsCorruptError(f"weight file {path} has format_version {_show(version)}; expected an "
                                  f"integer in 0..{FORMAT_VERSION}")
    if version > FORMAT_VERSION:
        raise WeightsCorruptError(f"weight file {path} has format version {version}; "
                                  f"this gsvnet_ros reads up to {FORMAT_VERSION}")
    # Caught here rather than as NaN logits later: ONNX Runtime's GridSample turns a NaN flow into
    # zeros, so a broken flow net would otherwise go unnoticed on that backend.
    broken = {key for key, value in payload["state_dict"].items()
              if value.is_floating_point() and not bool(torch.isfinite(value).all())}
    if broken:
        raise WeightsCorruptError(f"weight file {path} holds NaN or infinite values in {len(broken)} "
                                  f"tensors [{_first(broken)}]; expected finite weights (a diverged run?)")
    return payload["state_dict"], payload["meta"]


def _header_problem(payload: Any) -> str:
    """What is wrong with the top level of a loaded weight file ('' when nothing)."""
    if not isinstance(payload, dict):
        return f"a {type(payload).__name__}, not a '{FORMAT}' mapping with a state_dict"
    if "format" not in payload:
        return f"no format field: no '{FORMAT}' header with a state_dict; a plain torch checkpoint?"
    if payload["format"] != FORMAT:
        return f"format is {_show(payload['format'])}; expected {FORMAT!r}"
    if not isinstance(payload.get("meta"), dict):
        return f"meta is {_show(payload.get('meta'))}; expected a mapping"
    state = payload.get("state_dict")
    if not isinstance(state, dict):
        return f"state_dict is {_show(state)}; expected a mapping of names to tensors"
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            return (f"state_dict entry {_show(key)} is a {type(value).__name__}; expected a tensor "
                    "under a string name")
    return ""


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _first(keys: set[str]) -> str:
    shown = sorted(keys)[:_SHOW]
    more = f" (+{len(keys) - _SHOW} more)" if len(keys) > _SHOW else ""
    return ", ".join(shown) + more


def load_weights(module: nn.Module, path: str | os.PathLike, *, part: str,
                 keep_missing: Collection[str] = ()) -> dict[str, Any]:
    """Load a `part` file ("keyframe" or "propagation") into a GSVNet (or a bare image net for keyframe).

    Tensors are cast back to the module's dtypes. Keys in `keep_missing` may be absent from the file:
    those tensors keep the module's current values (a warm start that adds a parameter). Returns the
    file's metadata.
    """
    modules = _part_modules(module, part)
    state, meta = read_weights(path)
    what = f"weights file {Path(path)} (architecture {meta.get('architecture', '?')!r}, part " \
           f"{meta.get('part', '?')!r})"
    if meta.get("part", part) != part:
        raise WeightsMismatchError(f"{what} holds {meta['part']!r} weights, but {part!r} weights "
                                   f"were asked for")
    target = part_state_dict(module, part)
    state = {**{key: target[key] for key in keep_missing if key in target and key not in state}, **state}
    missing, unexpected = set(target) - set(state), set(state) - set(target)
    if missing or unexpected:
        raise WeightsMismatchError(
            f"{what} does not match this {part} model ({type(next(iter(modules.values()))).__name__}): "
            f"{len(missing)} missing keys [{_first(missing)}], {len(unexpected)} unexpected keys "
            f"[{_first(unexpected)}]")
    for key, value in target.items():
        if tuple(state[key].shape) != tuple(value.shape):
            raise WeightsMismatchError(f"{what}: shape mismatch for '{key}': file has "
                                       f"{tuple(state[key].shape)}, model expects {tuple(value.shape)}")
    for prefix, sub in modules.items():
        sub_state = {key[len(prefix):]: state[key].to(target[key].dtype)
                     for key in target if key.startswith(prefix)}
        sub.load_state_dict(sub_state, strict=True)
    return meta



def _trunk_of(image_net: nn.Module) -> tuple[str, nn.Module]:
    """(attribute name, module) of the ResNet-18 trunk of an image net (SwiftNet: backbone, BiSeNet:
    context_path)."""
    from .resnet import ResNet18

    for name, child in image_net.named_children():
        if isinstance(child, ResNet18):
            return name, child
    raise ValueError(f"{type(image_net).__name__} has no ResNet18 trunk")


def load_resnet_trunk(image_net: nn.Module, path: str | os.PathLike) -> str:
    """Initialise only the ResNet-18 trunk of `image_net` (a bare keyframe net) from any keyframe file.

    The ImageNet-pretraining step of the paper's recipe, done with our own weights: a SwiftNet-R18 file
    can start a BiSeNet-R18 context path and vice versa (same torchvision-style names under another
    prefix). Returns the prefix the trunk was read from.
    """
    state, meta = read_weights(path)
    _, trunk = _trunk_of(image_net)
    names = list(trunk.state_dict())
    prefixes = sorted({key[:-len(names[0])] for key in state if key.endswith(names[0])})
    for prefix in prefixes:
        if all(prefix + name in state and tuple(state[prefix + name].shape) == tuple(value.shape)
               for name, value in trunk.state_dict().items()):
            trunk.load_state_dict({name: state[prefix + name].to(value.dtype)
                                   for name, value in trunk.state_dict().items()}, strict=True)
            return prefix
    raise WeightsMismatchError(f"weights file {Path(path)} (architecture {meta.get('architecture', '?')!r}) "
                               f"holds no ResNet-18 trunk ({len(names)} tensors such as '{names[0]}' under "
                               f"one prefix) to initialise {type(image_net).__name__} from")


def check_lineage(keyframe_path: str | os.PathLike, propagation_path: str | os.PathLike,
                  propagation_meta: Mapping[str, Any], *, allow_mismatch: bool = False) -> bool:
    """Is the propagation file's keyframe net the configured keyframe file? True when it is.

    A propagation file records the keyframe file it was trained beside (meta `keyframe_weights`,
    its name, and `keyframe_weights_sha256`); the flow and guide nets learned that net's logits,
    so another keyframe file gives quietly worse masks. A different sha256 is a
    WeightsMismatchError naming both files, or with `allow_mismatch` (config key
    runtime.allow_mismatched_weights) a logged warning and False. A file without the record
    (written before it existed, or by hand) cannot be checked: True.
    """
    recorded = propagation_meta.get("keyframe_weights_sha256")
    if recorded is None:
        return True
    if not isinstance(recorded, str) or not _SHA256.match(recorded):
        raise WeightsCorruptError(f"weight file {Path(propagation_path)}: meta keyframe_weights_sha256 is "
                                  f"{_show(recorded)}; expected a 64-digit lower-case hex sha256")
    from ..reporting import file_sha256  # late import: reporting is not needed to read weights

    actual = file_sha256(keyframe_path)
    if actual == recorded:
        return True
    name = propagation_meta.get("keyframe_weights")
    trained = f"{name if isinstance(name, str) else '?'} (sha256 {recorded[:12]}...)"
    message = (f"propagation weights {Path(propagation_path)} were trained beside keyframe weights "
               f"{trained}, but the keyframe weights are {Path(keyframe_path)} (sha256 {actual[:12]}...)")
    if not allow_mismatch:
        raise WeightsMismatchError(f"{message}; expected the keyframe file they were trained with, "
                                   "or runtime.allow_mismatched_weights: true to use them anyway")
    _log.warning("%s; loading them anyway (runtime.allow_mismatched_weights: true): expect worse "
                 "masks between keyframes", message)
    return False


def check_flow(propagation_path: str | os.PathLike, propagation_meta: Mapping[str, Any], flow: str,
               *, allow_mismatch: bool = False) -> bool:
    """Was the propagation file trained with the configured flow (model.flow)? True when it was.

    phi and G learn to correct one flow's errors (the flow net's, or DIS's): the other flow gives
    quietly worse masks. Files written before model.flow existed record none: trained with the net.
    A mismatch is a WeightsMismatchError, or with `allow_mismatch` a logged warning and False.
    """
    config = propagation_meta.get("config")
    trained = config.get("flow", "learned") if isinstance(config, Mapping) else "learned"
    if trained == flow:
        return True
    message = (f"propagation weights {Path(propagation_path)} were trained with model.flow: "
               f"{_show(trained)}, but the config says model.flow: {flow}")
    if not allow_mismatch:
        raise WeightsMismatchError(f"{message}; expected the flow they were trained with, or "
                                   "runtime.allow_mismatched_weights: true to use them anyway")
    _log.warning("%s; loading them anyway (runtime.allow_mismatched_weights: true)", message)
    return False


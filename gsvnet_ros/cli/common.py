"""Small helpers shared by the command-line wrappers: size parsing, config loading, error exit,
SIGTERM handled like SIGINT."""
from __future__ import annotations

import argparse
import contextlib
import functools
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

from ..config import ConfigError, GSVNetConfig, load_config

__all__ = ["parse_size", "config_from_args", "add_config_arguments", "fail", "Terminated",
           "SIGINT_STATUS", "SIGTERM_STATUS", "sigterm_as_interrupt", "interrupted", "interruptible",
           "prepare_dir", "add_flow_net_arguments", "flow_net_config_from_args"]

# Exit statuses of an interrupted command: 128 + the signal number, as a shell reports it.
SIGINT_STATUS = 128 + signal.SIGINT  # 130
SIGTERM_STATUS = 128 + signal.SIGTERM  # 143


def parse_size(text: str) -> tuple[int, int]:
    """'1024x512' -> (width, height)."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 1024x512 (WIDTHxHEIGHT), got {text!r}")
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return width, height


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """--config, --device, --backend, --threads, --keyframe-net, --onnx-precision: every runner's options."""
    parser.add_argument("--config", help="model/runtime YAML (see config/model.yaml)")
    parser.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--backend", choices=("auto", "torch", "onnxruntime"))
    parser.add_argument("--threads", type=int, help="CPU threads for the networks")
    parser.add_argument("--keyframe-net", choices=("swiftnet_r18", "bisenet_r18"))
    parser.add_argument("--onnx-precision", choices=("fp32", "int8"),
                        help="onnxruntime backend: fp32 or int8 (statically quantized keyframe graph)")


def config_from_args(args: argparse.Namespace, extra: Mapping[str, Mapping[str, Any]] | None = None
                     ) -> GSVNetConfig:
    """Load --config and apply the command-line overrides that were given."""
    overrides: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (extra or {}).items()}
    runtime = overrides.setdefault("runtime", {})
    for key in ("device", "backend", "threads", "onnx_precision"):
        if getattr(args, key, None) is not None:
            runtime[key] = getattr(args, key)
    if getattr(args, "keyframe_net", None):
        overrides.setdefault("model", {})["keyframe_net"] = args.keyframe_net
    return load_config(getattr(args, "config", None), overrides)


def add_flow_net_arguments(parser: argparse.ArgumentParser) -> None:
    """The config options, plus the propagation file whose trained flow net O a flow command measures."""
    add_config_arguments(parser)
    parser.add_argument("--propagation-weights",
                        help="propagation file trained with model.flow: learned, whose flow net is "
                             "measured (default: the config's, when the config's flow is learned)")


def flow_net_config_from_args(args: argparse.Namespace) -> GSVNetConfig:
    """The config with the trained flow net: model.flow learned and a flow-net propagation file.

    A config whose flow is DIS (the shipped ones) carries a propagation file trained on DIS flow,
    whose flow net was never trained: measuring it would be measuring a warm start, so that needs
    --propagation-weights naming a learned-flow file."""
    overrides: dict[str, dict[str, Any]] = {"model": {"flow": "learned"}}
    if getattr(args, "propagation_weights", None):
        # absolute: a relative path in the overrides would be taken relative to the YAML's folder
        overrides["runtime"] = {"propagation_weights": str(Path(args.propagation_weights).resolve())}
    else:
        configured = load_config(getattr(args, "config", None)).model.flow
        if configured != "learned":
            raise ConfigError(f"--config {args.config} uses model.flow: {configured}, whose propagation "
                              "file has no trained flow net; expected --propagation-weights naming a "
                              "model.flow: learned file, e.g. models/propagation_swiftnet_r18.pt")
    return config_from_args(args, overrides)


def prepare_dir(path: Any, setting: str) -> Optional[str]:
    """Create output folder `path` (and its parents) before any work is done.

    Returns None when it is a writable directory, else a one-line reason that names the setting,
    e.g. "--out /x/y: cannot create the directory: [Errno 20] Not a directory: '/x/y'".
    """
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        return f"{setting} {path}: cannot create the directory: {exc}"
    if not os.access(path, os.W_OK | os.X_OK):
        return f"{setting} {path}: the directory is not writable"
    return None


def fail(message: str, code: int = 2) -> int:
    """Print a one-line error to stderr and return the exit code."""
    print(f"error: {message}", file=sys.stderr)
    return code


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like the KeyboardInterrupt of SIGINT (see below)."""


def _raise_terminated(signum: int, frame: Any) -> None:
    # Further SIGTERMs are ignored while this one unwinds, so the cleanup it triggers (removing
    # OUT.partial, staged files) is not itself interrupted; SIGKILL still ends a stuck process.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated("SIGTERM")


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM raises Terminated (a KeyboardInterrupt) in the main thread.

    So `kill`, systemd and `ros2 launch` stop a long-running command the way Ctrl-C does: every
    `except BaseException`/`finally` cleanup runs and nothing partial is left. The previous handler
    is restored on exit. Outside the main thread (where Python cannot install handlers) a no-op.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def interrupted(prog: str, exc: BaseException, note: str = "") -> int:
    """One line on stderr for an interrupted command; its exit status (130 SIGINT, 143 SIGTERM)."""
    terminated = isinstance(exc, Terminated)
    name = "SIGTERM" if terminated else "SIGINT"
    print(f"{prog}: interrupted ({name})" + (f"; {note}" if note else ""), file=sys.stderr)
    return SIGTERM_STATUS if terminated else SIGINT_STATUS


def interruptible(prog: str, note: str = "") -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Decorate a CLI main(argv): SIGTERM as SIGINT while it runs, both ending it with one line on
    stderr and status 130 (SIGINT) or 143 (SIGTERM) instead of a traceback."""
    def wrap(main: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(main)
        def run(argv: Optional[Sequence[str]] = None) -> int:
            with sigterm_as_interrupt():
                try:
                    return main(argv)
                except KeyboardInterrupt as exc:
                    return interrupted(prog, exc, note)
        return run
    return wrap

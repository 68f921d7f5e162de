"""rclpy.context.Context and the module-level init/shutdown/ok functions (RCLPY_SURFACE §1)."""
from __future__ import annotations

import threading
from typing import Any, Callable, List, Optional

from . import _graph


class RCLError(RuntimeError):
    """rclpy._rclpy_pybind11.RCLError."""


def parse_ros_args(args: Optional[List[str]]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Parameters (-p name:=value) and remaps (-r from:=to) after --ros-args."""
    import yaml

    params: dict[str, Any] = {}
    remaps: list[tuple[str, str]] = []
    in_ros = False
    items = list(args or [])
    i = 0
    while i < len(items):
        arg = items[i]
        if arg == "--ros-args":
            in_ros = True
        elif arg == "--":
            in_ros = False
        elif in_ros and arg in ("-p", "--param", "-r", "--remap") and i + 1 < len(items):
            name, _, value = items[i + 1].partition(":=")
            if arg in ("-p", "--param"):
                params[name] = yaml.safe_load(value)
            else:
                remaps.append((name, value))
            i += 1
        i += 1
    return params, remaps


class Context:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._initialized = False
        self._ok = False
        self._callbacks: list[Callable[[], None]] = []
        self.global_params: dict[str, Any] = {}
        self.global_remaps: list[tuple[str, str]] = []

    def init(self, args: Optional[List[str]] = None, *, initialize_logging: bool = True,
             domain_id: Optional[int] = None) -> None:
        with self._lock:
            if self._initialized:
                raise RuntimeError("Context.init() must only be called once")
            self._initialized = True
            self._ok = True
        self.global_params, self.global_remaps = parse_ros_args(args)

    def ok(self) -> bool:
        return self._ok

    def shutdown(self) -> None:
        with self._lock:
            if not self._initialized:
                raise RuntimeError("Context must be initialized before it can be shutdown")
            if not self._ok:
                raise RCLError("failed to shutdown")
            self._ok = False
        for cb in self._callbacks:
            cb()
        _graph.current().notify()

    def try_shutdown(self) -> None:
        if self._ok:
            self.shutdown()

    def on_shutdown(self, callback: Callable[[], None]) -> None:
        self._callbacks.append(callback)

    def __enter__(self) -> "Context":
        self.init()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.try_shutdown()


_default_context = Context()
_global_executor: Any = None


def get_default_context() -> Context:
    return _default_context


def reset() -> None:
    """A fresh default context (used by the test fixture)."""
    global _default_context, _global_executor
    _default_context = Context()
    _global_executor = None


def init(*, args: Optional[List[str]] = None, context: Optional[Context] = None,
         domain_id: Optional[int] = None, signal_handler_options: Any = None) -> None:
    (context or _default_context).init(args, domain_id=domain_id)


def shutdown(*, context: Optional[Context] = None,
             uninstall_handlers: Optional[bool] = None) -> None:
    global _global_executor
    (context or _default_context).shutdown()
    if context is None:
        _global_executor = None


def try_shutdown(*, context: Optional[Context] = None) -> None:
    """A no-op on a shut-down context; replaces the default context so init() works again."""
    global _default_context, _global_executor
    if context is None:
        _default_context.try_shutdown()
        if not _default_context.ok():
            _default_context = Context()
            _global_executor = None
    else:
        context.try_shutdown()


def ok(*, context: Optional[Context] = None) -> bool:
    return (context or _default_context).ok()


def get_global_executor() -> Any:
    global _global_executor
    if _global_executor is None:
        from ._executors import SingleThreadedExecutor
        _global_executor = SingleThreadedExecutor()
    return _global_executor


def spin(node: Any, executor: Any = None) -> None:
    executor = get_global_executor() if executor is None else executor
    try:
        executor.add_node(node)
        while executor.context.ok():
            executor.spin_once()
    finally:
        executor.remove_node(node)


def spin_once(node: Any, *, executor: Any = None, timeout_sec: Optional[float] = None) -> None:
    executor = get_global_executor() if executor is None else executor
    try:
        executor.add_node(node)
        executor.spin_once(timeout_sec=timeout_sec)
    finally:
        executor.remove_node(node)


def spin_until_future_complete(node: Any, future: Any, executor: Any = None,
                               timeout_sec: Optional[float] = None) -> None:
    executor = get_global_executor() if executor is None else executor
    try:
        executor.add_node(node)
        executor.spin_until_future_complete(future, timeout_sec)
    finally:
        executor.remove_node(node)


def create_node(node_name: str, **kwargs: Any) -> Any:
    from ._node import Node
    return Node(node_name, **kwargs)

"""rclpy.executors of the stand-in: Single- and MultiThreadedExecutor honouring callback groups."""
from __future__ import annotations

import concurrent.futures
import os
import time
from typing import Any, Optional

from . import _context, _graph


class ExternalShutdownException(Exception):
    """The context was shut down while an executor was waiting (rclpy.executors)."""


class ShutdownException(Exception):
    pass


class Executor:
    def __init__(self, *, context: Any = None) -> None:
        self._context = _context.get_default_context() if context is None else context
        self._nodes: list[Any] = []
        self._is_shutdown = False
        self._rotation = 0

    @property
    def context(self) -> Any:
        return self._context

    def add_node(self, node: Any) -> bool:
        if node in self._nodes:
            return False
        self._nodes.append(node)
        node.executor = self
        _graph.current().notify()
        return True

    def remove_node(self, node: Any) -> None:
        if node in self._nodes:
            self._nodes.remove(node)

    def get_nodes(self) -> list[Any]:
        return list(self._nodes)

    def wake(self) -> None:
        _graph.current().notify()

    def shutdown(self, timeout_sec: Optional[float] = None) -> bool:
        self._is_shutdown = True
        self.wake()
        return True

    def spin(self) -> None:
        while self._context.ok() and not self._is_shutdown:
            self.spin_once()

    def spin_until_future_complete(self, future: Any, timeout_sec: Optional[float] = None) -> None:
        deadline = None if timeout_sec is None or timeout_sec < 0 else \
            time.monotonic() + timeout_sec
        while self._context.ok() and not future.done() and not self._is_shutdown:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return
            self.spin_once(timeout_sec=remaining if remaining is not None else 0.1)

    # ---- work discovery -----------------------------------------------------------------------
    def _ready(self) -> list[tuple[str, Any]]:
        work: list[tuple[str, Any]] = []
        for node in list(self._nodes):
            if node.destroyed:
                continue
            for kind, entities in (("timer", node._timers), ("sub", node._subscriptions),
                                   ("srv", node._services)):
                for e in list(entities):
                    if e.ready() and e.callback_group.can_execute(e):
                        work.append((kind, e))
        if work:
            self._rotation = (self._rotation + 1) % len(work)
            work = work[self._rotation:] + work[:self._rotation]
        return work

    def _next_timer_s(self) -> Optional[float]:
        waits = [t.time_until_next_call() for n in self._nodes if not n.destroyed
                 for t in n._timers]
        waits = [w for w in waits if w is not None]
        return min(waits) / 1e9 if waits else None

    def _wait(self, timeout_sec: Optional[float]) -> list[tuple[str, Any]]:
        """Ready work, or [] after the timeout or when the context was shut down."""
        graph = _graph.current()
        deadline = None if timeout_sec is None or timeout_sec < 0 else \
            time.monotonic() + timeout_sec
        with graph.changed:
            while True:
                work = self._ready()
                if work or not self._context.ok() or self._is_shutdown:
                    return work
                waits = [w for w in (self._next_timer_s(), 0.05) if w is not None]
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return []
                    waits.append(remaining)
                graph.changed.wait(max(0.0, min(waits)))

    @staticmethod
    def _take(kind: str, entity: Any) -> Any:
        if kind == "sub":
            return entity.take()
        if kind == "srv":
            return entity.take()
        entity.mark_called()
        return ()

    @staticmethod
    def _run(kind: str, entity: Any, data: Any) -> None:
        if kind == "timer":
            entity.callback()
        elif kind == "sub":
            entity.callback(data)
        else:
            request, future = data
            response = entity.callback(request, entity.srv_type.Response())
            if not isinstance(response, entity.srv_type.Response):
                raise TypeError()
            from ._msgs import round_trip
            future.set_result(round_trip(response))


class SingleThreadedExecutor(Executor):
    def spin_once(self, timeout_sec: Optional[float] = None) -> None:
        work = self._wait(timeout_sec)
        if not self._context.ok():
            raise ExternalShutdownException()
        for kind, entity in work:
            if not entity.callback_group.beginning_execution(entity):
                continue
            try:
                data = self._take(kind, entity)
                if data is not None:
                    self._run(kind, entity, data)
            finally:
                entity.callback_group.ending_execution(entity)
                _graph.current().notify()
            return


class MultiThreadedExecutor(Executor):
    def __init__(self, num_threads: Optional[int] = None, *, context: Any = None) -> None:
        super().__init__(context=context)
        self._num_threads = num_threads or os.cpu_count() or 2
        self._pool = concurrent.futures.ThreadPoolExecutor(self._num_threads)
        self._futures: list[concurrent.futures.Future] = []

    def _reraise(self) -> None:
        done = [f for f in self._futures if f.done()]
        self._futures = [f for f in self._futures if not f.done()]
        for f in done:
            exc = f.exception()
            if exc is not None:
                raise exc

    def spin_once(self, timeout_sec: Optional[float] = None) -> None:
        self._reraise()
        try:
            work = self._wait(timeout_sec)
            if not self._context.ok():
                raise ExternalShutdownException()
        except ExternalShutdownException:
            return  # swallowed inside spin_once, as rclpy's MultiThreadedExecutor does
        for kind, entity in work:
            if not entity.callback_group.beginning_execution(entity):
                continue
            data = self._take(kind, entity)
            if data is None:
                entity.callback_group.ending_execution(entity)
                continue
            self._futures.append(self._pool.submit(self._run_and_release, kind, entity, data))
            return

    def _run_and_release(self, kind: str, entity: Any, data: Any) -> None:
        try:
            self._run(kind, entity, data)
        finally:
            entity.callback_group.ending_execution(entity)
            _graph.current().notify()

    def shutdown(self, timeout_sec: Optional[float] = None) -> bool:
        super().shutdown(timeout_sec)
        self._pool.shutdown(wait=True)
        return True

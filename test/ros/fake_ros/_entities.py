"""Publisher, Subscription, Service, Client, Timer and Future (RCLPY_SURFACE §1.5 and §4)."""
from __future__ import annotations

import collections
import threading
import time
from typing import Any, Callable, Optional

from . import _graph
from ._graph import make_queue


class Future:
    """rclpy.task.Future (the parts used here)."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._result: Any = None
        self._exception: Optional[BaseException] = None
        self._callbacks: list[Callable[["Future"], None]] = []

    def done(self) -> bool:
        return self._done.is_set()

    def result(self) -> Any:
        if self._exception is not None:
            raise self._exception
        return self._result

    def exception(self) -> Optional[BaseException]:
        return self._exception

    def set_result(self, result: Any) -> None:
        self._result = result
        self._finish()

    def set_exception(self, exc: BaseException) -> None:
        self._exception = exc
        self._finish()

    def add_done_callback(self, callback: Callable[["Future"], None]) -> None:
        if self.done():
            callback(self)
        else:
            self._callbacks.append(callback)

    def _finish(self) -> None:
        self._done.set()
        for cb in self._callbacks:
            cb(self)
        _graph.current().notify()


class Publisher:
    def __init__(self, msg_type: Any, topic: str, topic_name: str, qos_profile: Any,
                 callback_group: Any) -> None:
        self.msg_type = msg_type
        self.topic = topic
        self._topic_name = topic_name
        self.qos_profile = qos_profile
        self.callback_group = callback_group
        self.latched: collections.deque = collections.deque(maxlen=max(1, qos_profile.depth))
        self.destroyed = False

    @property
    def topic_name(self) -> str:
        return self._topic_name

    def publish(self, msg: Any) -> None:
        if self.destroyed:
            raise RuntimeError("cannot use Destroyable because destruction was requested")
        if not isinstance(msg, (self.msg_type, bytes)):
            raise TypeError(f"Expected {self.msg_type}, got {type(msg)}")
        _graph.current().deliver(self, msg)

    def get_subscription_count(self) -> int:
        return len(_graph.current().matched_subscriptions(self))

    def destroy(self) -> None:
        self.destroyed = True
        _graph.current().remove(self)


class Subscription:
    def __init__(self, msg_type: Any, topic: str, topic_name: str, callback: Callable,
                 qos_profile: Any, callback_group: Any, raw: bool) -> None:
        self.msg_type = msg_type
        self.topic = topic
        self._topic_name = topic_name
        self.callback = callback
        self.qos_profile = qos_profile
        self.callback_group = callback_group
        self.raw = raw
        self._queue = make_queue(qos_profile)
        self._lock = threading.Lock()
        self.received = 0
        self.destroyed = False

    @property
    def topic_name(self) -> str:
        return self._topic_name

    def enqueue(self, msg: Any) -> None:
        with self._lock:
            self.received += 1
            self._queue.append(msg)

    def ready(self) -> bool:
        return bool(self._queue)

    def take(self) -> Any:
        with self._lock:
            return self._queue.popleft() if self._queue else None

    def destroy(self) -> None:
        self.destroyed = True
        _graph.current().remove(self)


class Service:
    def __init__(self, srv_type: Any, srv_name: str, callback: Callable, qos_profile: Any,
                 callback_group: Any) -> None:
        self.srv_type = srv_type
        self.srv_name = srv_name
        self.callback = callback
        self.qos_profile = qos_profile
        self.callback_group = callback_group
        self._requests: collections.deque = collections.deque()
        self._lock = threading.Lock()
        self.destroyed = False

    def enqueue(self, request: Any, future: Future) -> None:
        with self._lock:
            self._requests.append((request, future))
        _graph.current().notify()

    def ready(self) -> bool:
        return bool(self._requests)

    def take(self) -> Any:
        with self._lock:
            return self._requests.popleft() if self._requests else None

    def destroy(self) -> None:
        self.destroyed = True
        _graph.current().remove(self)


class Client:
    def __init__(self, srv_type: Any, srv_name: str, callback_group: Any) -> None:
        self.srv_type = srv_type
        self.srv_name = srv_name
        self.callback_group = callback_group
        self.destroyed = False

    def service_is_ready(self) -> bool:
        return self.srv_name in _graph.current().services

    def wait_for_service(self, timeout_sec: Optional[float] = None) -> bool:
        deadline = None if timeout_sec is None else time.monotonic() + timeout_sec
        while not self.service_is_ready():
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def call_async(self, request: Any) -> Future:
        if not isinstance(request, self.srv_type.Request):
            raise TypeError(f"Request must be instance of '{self.srv_type.Request}'")
        future = Future()
        service = _graph.current().services.get(self.srv_name)
        if service is not None:
            service.enqueue(_wire(request), future)
        return future

    def destroy(self) -> None:
        self.destroyed = True


def _wire(msg: Any) -> Any:
    from . import _msgs
    return _msgs.round_trip(msg)


class Timer:
    def __init__(self, period_sec: float, callback: Callable[[], Any], callback_group: Any,
                 clock: Any) -> None:
        self.timer_period_ns = int(period_sec * 1e9)
        self.callback = callback
        self.callback_group = callback_group
        self.clock = clock
        self._canceled = False
        self._next = time.monotonic_ns() + self.timer_period_ns
        self.destroyed = False

    def ready(self) -> bool:
        return not self._canceled and time.monotonic_ns() >= self._next

    def time_until_next_call(self) -> Optional[int]:
        if self._canceled:
            return None
        return max(0, self._next - time.monotonic_ns())

    def mark_called(self) -> None:
        now = time.monotonic_ns()
        self._next += self.timer_period_ns
        if self._next <= now:  # missed periods are skipped, as rcl does
            self._next = now + self.timer_period_ns

    def cancel(self) -> None:
        self._canceled = True

    def is_canceled(self) -> bool:
        return self._canceled

    def reset(self) -> None:
        self._canceled = False
        self._next = time.monotonic_ns() + self.timer_period_ns

    def destroy(self) -> None:
        self.destroyed = True
        self._canceled = True

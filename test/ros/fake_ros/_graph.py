"""An in-process ROS graph: topics matched by resolved name, type and QoS; services by name.

Delivery serialises each message to CDR and back (one copy per matched subscription), so a
subscriber never shares objects with the publisher and receives `array.array` sequences.
"""
from __future__ import annotations

import collections
import threading
from typing import Any

from . import _msgs
from ._qos import DurabilityPolicy, HistoryPolicy, compatible


class Graph:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)  # notified on every delivery
        self.publishers: list[Any] = []
        self.subscriptions: list[Any] = []
        self.services: dict[str, Any] = {}
        self.published: collections.Counter[str] = collections.Counter()

    # ---- bookkeeping -------------------------------------------------------------------
    def add_publisher(self, pub: Any) -> None:
        with self.lock:
            self.publishers.append(pub)

    def add_subscription(self, sub: Any) -> None:
        with self.lock:
            self.subscriptions.append(sub)
            if sub.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL:
                for pub in self._matched_publishers(sub):
                    for msg in pub.latched:
                        sub.enqueue(_msgs.round_trip(msg))
            self.changed.notify_all()

    def remove(self, entity: Any) -> None:
        with self.lock:
            for group in (self.publishers, self.subscriptions):
                if entity in group:
                    group.remove(entity)
            for name, srv in list(self.services.items()):
                if srv is entity:
                    del self.services[name]

    def add_service(self, srv: Any) -> None:
        with self.lock:
            self.services[srv.srv_name] = srv

    # ---- matching ----------------------------------------------------------------------
    @staticmethod
    def _match(pub: Any, sub: Any) -> bool:
        return (pub.topic_name == sub.topic_name and pub.msg_type is sub.msg_type
                and compatible(pub.qos_profile, sub.qos_profile))

    def _matched_publishers(self, sub: Any) -> list[Any]:
        return [p for p in self.publishers if self._match(p, sub)]

    def matched_subscriptions(self, pub: Any) -> list[Any]:
        with self.lock:
            return [s for s in self.subscriptions if self._match(pub, s)]

    def count(self, topic_name: str, kind: str) -> int:
        with self.lock:
            group = self.publishers if kind == "pub" else self.subscriptions
            return sum(1 for e in group if e.topic_name == topic_name)

    # ---- traffic -----------------------------------------------------------------------
    def deliver(self, pub: Any, msg: Any) -> None:
        with self.lock:
            self.published[pub.topic_name] += 1
            if pub.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL:
                pub.latched.append(msg)
            subs = self.matched_subscriptions(pub)
        for sub in subs:
            sub.enqueue(_msgs.round_trip(msg))
        with self.lock:
            self.changed.notify_all()

    def notify(self) -> None:
        with self.lock:
            self.changed.notify_all()


def make_queue(qos: Any) -> collections.deque:
    """A subscription's incoming queue: KEEP_LAST(depth) drops the oldest, KEEP_ALL keeps all."""
    if qos.history == HistoryPolicy.KEEP_ALL:
        return collections.deque()
    return collections.deque(maxlen=max(1, qos.depth))


GRAPH = Graph()


def reset() -> None:
    """A fresh graph (the test fixture calls this between tests)."""
    global GRAPH
    GRAPH = Graph()


def current() -> Graph:
    return GRAPH

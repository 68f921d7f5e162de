"""rclpy.callback_groups (RCLPY_SURFACE §3): both constructors take no arguments."""
from __future__ import annotations

import threading
from typing import Any


class CallbackGroup:
    def __init__(self) -> None:
        self.entities: set[int] = set()

    def add_entity(self, entity: Any) -> None:
        self.entities.add(id(entity))

    def has_entity(self, entity: Any) -> bool:
        return id(entity) in self.entities

    def can_execute(self, entity: Any) -> bool:
        raise NotImplementedError

    def beginning_execution(self, entity: Any) -> bool:
        raise NotImplementedError

    def ending_execution(self, entity: Any) -> None:
        raise NotImplementedError


class ReentrantCallbackGroup(CallbackGroup):
    def can_execute(self, entity: Any) -> bool:
        return True

    def beginning_execution(self, entity: Any) -> bool:
        return True

    def ending_execution(self, entity: Any) -> None:
        pass


class MutuallyExclusiveCallbackGroup(CallbackGroup):
    def __init__(self) -> None:
        super().__init__()
        self._active: Any = None
        self._lock = threading.Lock()

    def can_execute(self, entity: Any) -> bool:
        with self._lock:
            return self._active is None

    def beginning_execution(self, entity: Any) -> bool:
        with self._lock:
            if self._active is None:
                self._active = entity
                return True
            return False

    def ending_execution(self, entity: Any) -> None:
        with self._lock:
            assert self._active is entity
            self._active = None

"""Loaded model versions kept warm, bounded: beyond ``capacity`` versions the least recently used goes.

Dropping a version here never breaks a caller that holds it (a function worker in the middle of a batch
keeps its own reference); it only means the next caller asking for that version loads it again.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["WarmModels"]

T = TypeVar("T")


class WarmModels(Generic[T]):
    """``get(name, version, load)``: the loaded version, loading it at most once while it stays warm."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[tuple[str, str], T] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, name: str, version: str, load: Callable[[], T]) -> T:
        key = (name, version)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        loaded = load()  # outside the lock: loading a network takes a while
        with self._lock:
            self._items.setdefault(key, loaded)  # a concurrent load of the same version: the first one stays
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
            return self._items[key]

    def versions(self) -> list[tuple[str, str]]:
        """(model, version) pairs kept, least recently used first."""
        with self._lock:
            return list(self._items)

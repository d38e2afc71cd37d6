"""Many deadlines on few event-loop timers: one timer per millisecond of deadlines.

A TimerHandle per request (its creation, a heap push, then a cancel) costs more than the
rest of a proposal's or a forwarded request's path. Items due in the same millisecond
share one timer here; an item expires up to 1 ms after its deadline, never before.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class DeadlineBuckets(Generic[K]):
    """Calls ``on_expired(item)`` for each item whose deadline passed while it was held."""

    def __init__(self, on_expired: Callable[[K], None]) -> None:
        self._buckets: dict[int, set[K]] = {}
        self._on_expired = on_expired

    def add(self, loop: asyncio.AbstractEventLoop, item: K, deadline: float) -> set[K]:
        """Expire ``item`` at ``deadline`` (loop time); the caller discards it from the
        returned set when it ends first."""
        key = math.ceil(deadline * 1000.0)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = set()
            loop.call_at(key / 1000.0, self._fire, key)
        bucket.add(item)
        return bucket

    def clear(self) -> None:
        """Forget every item (their timers then find nothing to expire)."""
        self._buckets.clear()

    def _fire(self, key: int) -> None:
        for item in self._buckets.pop(key, ()):
            self._on_expired(item)

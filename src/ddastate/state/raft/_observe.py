"""Observation: the async iterator handed out by observe_state_change / observe_membership_change.

Items are pushed by the FSM or the store (never blocking: an unbounded deque) and pulled
by ``async for``. ``push`` may be called from any thread; calls from a thread other than
the event loop's are handed over with ``loop.call_soon_threadsafe``, which keeps their
order relative to each other and to whatever that thread hands over afterwards.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Generic, TypeVar

T = TypeVar("T")


class Observation(Generic[T]):
    """An async iterator of observed items; ends on :meth:`aclose` or when its source ends."""

    def __init__(self, on_close: Callable[[Observation[T]], None] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._items: deque[T] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._ended = False
        self._on_close = on_close

    # -------------------------------------------------------------- producer side

    def push(self, item: T) -> None:
        """Queue one item (any thread; never blocks)."""
        if threading.get_ident() == self._thread:
            self._push(item)
        else:
            self._loop.call_soon_threadsafe(self._push, item)

    def _push(self, item: T) -> None:
        if self._ended:
            return
        self._items.append(item)
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def end(self) -> None:
        """End the iteration after the items already queued are consumed (any thread)."""
        if threading.get_ident() == self._thread:
            self._end()
        else:
            self._loop.call_soon_threadsafe(self._end)

    def _end(self) -> None:
        if self._ended:
            return
        self._ended = True
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    @property
    def ended(self) -> bool:
        return self._ended

    # -------------------------------------------------------------- consumer side

    def __aiter__(self) -> Observation[T]:
        return self

    async def __anext__(self) -> T:
        while True:
            if self._items:
                return self._items.popleft()
            if self._ended:
                raise StopAsyncIteration
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def pending(self) -> int:
        """Items queued and not yet consumed."""
        return len(self._items)

    async def aclose(self) -> None:
        """Stop observing; a pending ``__anext__`` ends, queued items are discarded."""
        self._items.clear()
        self._end()
        cb, self._on_close = self._on_close, None
        if cb is not None:
            cb(self)

    async def __aenter__(self) -> Observation[T]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

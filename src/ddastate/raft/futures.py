"""Awaitable futures returned by the node's operations, with hashicorp's semantics.

Every future is an :class:`asyncio.Future`: ``await f`` gives the result or raises the
operation's :class:`~ddastate.raft.errors.RaftError`. On top of that:

- :class:`IndexFuture` has ``.index``: the log index the operation was committed at
  (0 until it is done, or when it failed).
- :class:`ApplyFuture` resolves to the FSM's response. An error *returned* by the FSM is
  the response, not the future's error (as in hashicorp).
- :class:`ConfigurationFuture` resolves to a :class:`Configuration`.
- :class:`SnapshotFuture` resolves to the :class:`SnapshotMeta` of the snapshot taken;
  ``open()`` then reads it back.

``error()`` mirrors hashicorp's ``Future.Error()``: it waits and returns the error, or
None on success.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import IO, Any, Generic, TypeVar

from .configuration import Configuration
from .interfaces import SnapshotMeta

T = TypeVar("T")


class RaftFuture(asyncio.Future[T], Generic[T]):
    """Base of the node's futures; await it for the result.

    Made like any asyncio future: ``RaftFuture(loop=loop)``, or without ``loop`` inside
    a running loop. (No ``__init__`` of its own: a leader makes one per proposal, and a
    Python-level constructor chain cost more than the rest of the future's life.)
    """

    async def error(self) -> BaseException | None:
        """Wait for completion; return the error or None (hashicorp's Error())."""
        try:
            await asyncio.shield(self)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self.cancelled() and not (task is not None and task.cancelling()):
                return asyncio.CancelledError()
            raise  # the caller was cancelled (maybe together with this future)
        except BaseException as e:
            return e
        return None


class IndexFuture(RaftFuture[T], Generic[T]):
    """A future for an operation that went through the log."""

    index: int = 0  # set on the instance once the operation has its log index


class ApplyFuture(IndexFuture[Any]):
    """Resolves to the FSM's response to the applied entry (None for barriers)."""

    __slots__ = ()

    def response(self) -> Any:
        """The FSM's response; raises if not done or failed."""
        return self.result()


class CallbackApplyFuture(ApplyFuture):
    """An ApplyFuture that calls ``on_done(self)`` the moment it completes.

    ``add_done_callback`` runs its callbacks one event-loop round later, through a
    scheduled handle each; a leader answering forwarded proposals pays that per
    proposal. Here the callback runs inside ``set_result`` / ``set_exception`` /
    ``cancel``, on the node's own path: keep it short, and never block in it.
    """

    on_done: Callable[[ApplyFuture], None] | None = None

    def set_result(self, result: Any) -> None:
        super().set_result(result)
        self._done()

    def set_exception(self, exception: type | BaseException) -> None:
        super().set_exception(exception)
        self._done()

    def cancel(self, msg: Any | None = None) -> bool:
        cancelled = super().cancel(msg)
        if cancelled:
            self._done()
        return cancelled

    def _done(self) -> None:
        fn, self.on_done = self.on_done, None
        if fn is not None:
            fn(self)


class ConfigurationFuture(IndexFuture[Configuration]):
    """Resolves to the latest configuration; ``.index`` is its log index."""

    __slots__ = ()

    def configuration(self) -> Configuration:
        return self.result()


class SnapshotFuture(RaftFuture[SnapshotMeta]):
    """Resolves to the meta of the snapshot just taken."""

    __slots__ = ("_opener",)

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop | None = None,
        opener: Callable[[str], tuple[SnapshotMeta, IO[bytes]]] | None = None,
    ) -> None:
        super().__init__(loop=loop or asyncio.get_running_loop())
        self._opener = opener

    async def open(self) -> tuple[SnapshotMeta, IO[bytes]]:
        """Open the snapshot for reading (the caller closes the stream)."""
        meta = await self
        if self._opener is None:
            raise RuntimeError("snapshot future has no store to open from")
        opener = self._opener
        return await asyncio.to_thread(opener, meta.id)


def fail_quietly(fut: asyncio.Future[Any], exc: BaseException) -> None:
    """Fail ``fut`` unless done, without asyncio's "exception never retrieved" log."""
    if not fut.done():
        fut.set_exception(exc)
        fut.exception()  # mark retrieved: expected failures (shutdown, lost leadership)


def resolve(fut: asyncio.Future[Any], result: Any) -> None:
    """Resolve ``fut`` unless it is already done (e.g. cancelled by the caller)."""
    if not fut.done():
        fut.set_result(result)


__all__ = [
    "ApplyFuture",
    "CallbackApplyFuture",
    "ConfigurationFuture",
    "IndexFuture",
    "RaftFuture",
    "SnapshotFuture",
    "fail_quietly",
    "resolve",
]

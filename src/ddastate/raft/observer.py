"""Observers: subscribe to a node's events without ever blocking it (hashicorp's observer.go).

An :class:`Observer` receives :class:`Observation` objects whose ``data`` is one of:

- :class:`LeaderObservation`: the known leader changed (empty id/address = none known);
- :class:`RaftState`: this node's role changed;
- :class:`PeerObservation`: a server was added to or removed from the configuration;
- :class:`FailedHeartbeatObservation` / :class:`ResumedHeartbeatObservation`: the leader lost
  or regained contact with a follower;
- :class:`RequestVoteObservation`: a vote request arrived (the request itself is in ``request``).

``Observer(blocking=False)`` drops an observation when its queue is full (``num_dropped``).
``Observer(blocking=True)`` never drops: observations that do not fit wait in an overflow
buffer and are moved into the queue as the consumer catches up. Either way the node
only ever calls ``put_nowait``: an observer never blocks the node.

An observer is an async iterator over its observations, and an async context manager that
deregisters it on exit when it was made by ``Raft.observe()``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from .commands import RequestPreVoteRequest, RequestVoteRequest
from .configuration import Server

if TYPE_CHECKING:
    from types import TracebackType

logger = logging.getLogger(__name__)


class RaftState(Enum):
    """The role of a node (hashicorp's RaftState)."""

    FOLLOWER = "Follower"
    CANDIDATE = "Candidate"
    LEADER = "Leader"
    SHUTDOWN = "Shutdown"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class LeaderObservation:
    """The leader this node knows of; empty strings when there is none."""

    leader_addr: str
    leader_id: str


@dataclass(frozen=True, slots=True)
class PeerObservation:
    """A server joined (``removed`` False) or left (``removed`` True) the configuration."""

    removed: bool
    peer: Server


@dataclass(frozen=True, slots=True)
class FailedHeartbeatObservation:
    """The leader failed to reach ``peer_id``; ``last_contact`` is loop time (seconds)."""

    peer_id: str
    last_contact: float


@dataclass(frozen=True, slots=True)
class ResumedHeartbeatObservation:
    """The leader reaches ``peer_id`` again."""

    peer_id: str


@dataclass(frozen=True, slots=True)
class RequestVoteObservation:
    """A (pre-)vote request arrived at this node."""

    request: RequestVoteRequest | RequestPreVoteRequest


@dataclass(frozen=True, slots=True)
class Observation:
    """One event; ``raft`` is the node it came from."""

    raft: Any
    data: Any


FilterFn = Callable[[Observation], bool]

_ids = itertools.count(1)


class Observer:
    """A subscription to a node's observations (see module docs)."""

    def __init__(
        self,
        queue: asyncio.Queue[Observation] | None = None,
        blocking: bool = False,
        filter_fn: FilterFn | None = None,
        *,
        maxsize: int = 1024,
    ) -> None:
        self.queue: asyncio.Queue[Observation] = (
            queue if queue is not None else asyncio.Queue(maxsize)
        )
        self.blocking = blocking
        self.filter_fn = filter_fn
        self.id = next(_ids)
        self.num_observed = 0
        self.num_dropped = 0
        self._overflow: deque[Observation] = deque()
        self._mover: asyncio.Task[None] | None = None
        self._deregister: Callable[[Observer], None] | None = None

    def deliver(self, obs: Observation) -> None:
        """Hand one observation over without blocking (called by the node)."""
        if self.filter_fn is not None:
            try:
                if not self.filter_fn(obs):
                    return
            except Exception:
                logger.exception("observer filter raised; observation skipped")
                return
        self.num_observed += 1
        if self._overflow:
            self._overflow.append(obs)
            return
        try:
            self.queue.put_nowait(obs)
        except asyncio.QueueFull:
            if not self.blocking:
                self.num_dropped += 1
                return
            self._overflow.append(obs)
            if self._mover is None or self._mover.done():
                self._mover = asyncio.get_running_loop().create_task(self._move())

    async def _move(self) -> None:
        while self._overflow:
            await self.queue.put(self._overflow[0])
            self._overflow.popleft()

    def close(self) -> None:
        """Stop the overflow mover (the node calls this when it deregisters the observer)."""
        if self._mover is not None and not self._mover.done():
            self._mover.cancel()

    def get_num_observed(self) -> int:
        return self.num_observed

    def get_num_dropped(self) -> int:
        return self.num_dropped

    def __aiter__(self) -> Observer:
        return self

    async def __anext__(self) -> Observation:
        return await self.queue.get()

    async def __aenter__(self) -> Observer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._deregister is not None:
            self._deregister(self)
        self.close()


class LeaderChanges:
    """Async iterator of bools: True when this node becomes leader, False when it stops.

    Unbounded, so nothing is lost; ends after the node shuts down and the queue is drained.
    """

    _END = object()

    def __init__(self, unregister: Callable[[LeaderChanges], None]) -> None:
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._unregister = unregister
        self._closed = False

    def push(self, is_leader: bool) -> None:
        if not self._closed:
            self._queue.put_nowait(is_leader)

    def end(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put_nowait(self._END)

    def __aiter__(self) -> LeaderChanges:
        return self

    async def __anext__(self) -> bool:
        item = await self._queue.get()
        if item is self._END:
            self._queue.put_nowait(self._END)
            raise StopAsyncIteration
        assert isinstance(item, bool)
        return item

    async def aclose(self) -> None:
        self._unregister(self)
        self.end()

    async def __aenter__(self) -> LeaderChanges:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


__all__ = [
    "FailedHeartbeatObservation",
    "FilterFn",
    "LeaderChanges",
    "LeaderObservation",
    "Observation",
    "Observer",
    "PeerObservation",
    "RaftState",
    "RequestVoteObservation",
    "ResumedHeartbeatObservation",
]

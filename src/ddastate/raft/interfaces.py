"""The pluggable parts of a Raft node, as typing.Protocol classes.

Storage and FSM methods are synchronous: the node calls storage from a worker thread,
never on the event loop, and calls ``FSM.apply`` on the event loop (keep it quick).
Transport methods are coroutines on the node's event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Protocol, runtime_checkable

from .commands import (
    AppendEntriesRequest,
    AppendEntriesResponse,
    InstallSnapshotRequest,
    InstallSnapshotResponse,
    Request,
    RequestPreVoteRequest,
    RequestPreVoteResponse,
    RequestVoteRequest,
    RequestVoteResponse,
    Response,
    TimeoutNowRequest,
    TimeoutNowResponse,
)
from .configuration import Configuration
from .log import Log

# --------------------------------------------------------------------------- FSM


@runtime_checkable
class FSMSnapshot(Protocol):
    """A point-in-time capture of FSM state, written out off the event loop."""

    def persist(self, sink: SnapshotSink) -> None:
        """Write the state to ``sink`` and close it; on failure call ``sink.cancel()``."""

    def release(self) -> None:
        """Called when the node is done with this snapshot."""


@runtime_checkable
class FSM(Protocol):
    """The replicated state machine."""

    def apply(self, log: Log) -> Any:
        """Apply a committed COMMAND entry; the return value is the apply's response.

        Must be deterministic. An error the FSM wants to report is returned, not raised.
        """

    def snapshot(self) -> FSMSnapshot:
        """Capture state quickly; heavy work belongs in ``FSMSnapshot.persist``."""

    def restore(self, reader: IO[bytes]) -> None:
        """Discard all state and load it from a snapshot stream."""


# ----------------------------------------------------------------------- storage


class LogStore(Protocol):
    """Durable log storage. Index 0 means "no entry"; an empty store has first = last = 0."""

    def first_index(self) -> int: ...

    def last_index(self) -> int: ...

    def get_log(self, index: int) -> Log:
        """The entry at ``index``; raises LogNotFoundError if absent."""

    def store_log(self, log: Log) -> None: ...

    def store_logs(self, logs: Sequence[Log]) -> None:
        """Store entries durably, all or nothing, in one transaction."""

    def delete_range(self, min_index: int, max_index: int) -> None:
        """Delete entries with min_index <= index <= max_index."""


class StableStore(Protocol):
    """Durable storage for term and vote (keys CurrentTerm, LastVoteTerm, LastVoteCand)."""

    def set(self, key: bytes, value: bytes) -> None: ...

    def get(self, key: bytes) -> bytes:
        """The value; raises KeyNotFoundError (message "not found") if absent."""

    def set_uint64(self, key: bytes, value: int) -> None: ...

    def get_uint64(self, key: bytes) -> int:
        """The value; raises KeyNotFoundError (message "not found") if absent."""


@dataclass(slots=True)
class SnapshotMeta:
    """What a snapshot store knows about one snapshot."""

    id: str
    index: int
    term: int
    configuration: Configuration
    configuration_index: int
    size: int = 0
    version: int = 1


class SnapshotSink(Protocol):
    """Where a snapshot is written. ``close`` makes it durable and visible; ``cancel`` drops it."""

    def write(self, data: bytes) -> int: ...

    def close(self) -> None: ...

    def cancel(self) -> None: ...

    def id(self) -> str: ...


class SnapshotStore(Protocol):
    """Durable snapshot storage."""

    def create(
        self,
        version: int,
        index: int,
        term: int,
        configuration: Configuration,
        configuration_index: int,
    ) -> SnapshotSink: ...

    def list(self) -> list[SnapshotMeta]:
        """Loadable snapshots, newest first."""

    def open(self, snapshot_id: str) -> tuple[SnapshotMeta, IO[bytes]]:
        """Open one snapshot for reading; the caller closes the stream."""


# --------------------------------------------------------------------- transport


@dataclass(slots=True, eq=False)
class RPC:
    """An incoming request and the future its handler resolves with the response.

    ``reader`` carries the snapshot data of an InstallSnapshotRequest (exactly
    ``command.size`` bytes); the handler must drain it whatever it decides.
    """

    command: Request
    reader: IO[bytes] | None = None
    response: asyncio.Future[Response] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    reply: Callable[[Response | None, BaseException | None], None] | None = None
    """Optional: called by ``respond`` right away (a transport's send, without waiting for
    a done callback of ``response`` on the next loop round)."""

    def respond(self, resp: Response | None, error: BaseException | None = None) -> None:
        """Answer the request once; later calls are ignored."""
        if self.response.done():
            return
        if error is not None:
            self.response.set_exception(error)
            if self.reply is not None:
                self.response.exception()  # retrieved: the reply function reports it
        else:
            assert resp is not None
            self.response.set_result(resp)
        reply, self.reply = self.reply, None
        if reply is not None:
            reply(resp, error)


class Transport(Protocol):
    """How a node reaches its peers.

    Requests arriving from peers are delivered as RPC objects through ``consumer()``,
    in arrival order. Heartbeats (``AppendEntriesRequest.is_heartbeat()``) go to the
    handler given to ``set_heartbeat_handler`` when one is set, so they never wait
    behind disk work.

    ``can_pipeline``: the node may send a new AppendEntries to a peer before the
    previous one is answered, relying on the transport to deliver them in order.
    ``can_prevote``: the peers understand RequestPreVote.
    """

    can_pipeline: bool
    can_prevote: bool

    def local_addr(self) -> str: ...

    def consumer(self) -> asyncio.Queue[RPC]: ...

    def set_heartbeat_handler(self, handler: Callable[[RPC], None] | None) -> None: ...

    async def append_entries(
        self, server_id: str, target: str, req: AppendEntriesRequest
    ) -> AppendEntriesResponse: ...

    async def request_vote(
        self, server_id: str, target: str, req: RequestVoteRequest
    ) -> RequestVoteResponse: ...

    async def request_pre_vote(
        self, server_id: str, target: str, req: RequestPreVoteRequest
    ) -> RequestPreVoteResponse: ...

    async def install_snapshot(
        self, server_id: str, target: str, req: InstallSnapshotRequest, data: IO[bytes]
    ) -> InstallSnapshotResponse: ...

    async def timeout_now(
        self, server_id: str, target: str, req: TimeoutNowRequest
    ) -> TimeoutNowResponse: ...

    def encode_peer(self, server_id: str, addr: str) -> bytes: ...

    def decode_peer(self, buf: bytes) -> str: ...

    async def close(self) -> None: ...


RPCHandler = Callable[[RPC], Awaitable[None]]

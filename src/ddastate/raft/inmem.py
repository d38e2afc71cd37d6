"""In-memory parts: log store, stable store, transport and the network joining transports.

Stores are thread-safe (a lock per store) and never block on I/O. ``Raft`` notices the
``inline_safe`` attribute they carry and calls them directly on the event loop instead
of through its writer thread: a memory write is cheaper than any thread hand-off.

:class:`InmemNetwork` connects :class:`InmemTransport` objects by address. Each directed
link (from, to) can be cut, slowed (a fixed delay, so order is kept), made lossy (a lost
request or response makes the caller wait ``rpc_timeout`` and fail) or duplicating (the
request is delivered twice; the second answer is dropped). ``partition`` and ``heal`` cut
and restore many links at once.
"""

from __future__ import annotations

import asyncio
import io
import logging
import random
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import IO, Any, TypeVar

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
from .errors import KeyNotFoundError, LogNotFoundError, TransportShutdownError
from .interfaces import RPC
from .log import Log

logger = logging.getLogger(__name__)

# ------------------------------------------------------------------------ stores


class InmemLogStore:
    """A LogStore in a dict; thread-safe; for tests and for members without persistence."""

    inline_safe = True

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._logs: dict[int, Log] = {}
        self._first = 0
        self._last = 0

    def first_index(self) -> int:
        return self._first

    def last_index(self) -> int:
        return self._last

    def get_log(self, index: int) -> Log:
        try:
            return self._logs[index]
        except KeyError:
            raise LogNotFoundError() from None

    def store_log(self, log: Log) -> None:
        self.store_logs((log,))

    def store_logs(self, logs: Sequence[Log]) -> None:
        if not logs:
            return
        with self._lock:
            d = self._logs
            for log in logs:
                d[log.index] = log
            lo = logs[0].index
            hi = logs[-1].index
            if lo > hi:  # not in ascending order (callers normally pass a run)
                lo, hi = min(lg.index for lg in logs), max(lg.index for lg in logs)
            if self._first == 0 or lo < self._first:
                self._first = lo
            if hi > self._last:
                self._last = hi

    def delete_range(self, min_index: int, max_index: int) -> None:
        with self._lock:
            d = self._logs
            if max_index - min_index > len(d):
                for k in [k for k in d if min_index <= k <= max_index]:
                    del d[k]
            else:
                for k in range(min_index, max_index + 1):
                    d.pop(k, None)
            if not d:
                self._first = self._last = 0
                return
            if min_index <= self._first:
                self._first = max_index + 1
                while self._first not in d and self._first <= self._last:
                    self._first += 1
            if max_index >= self._last:
                self._last = min_index - 1
                while self._last not in d and self._last >= self._first:
                    self._last -= 1
            if self._first > self._last:
                self._first = self._last = 0


class InmemStableStore:
    """A StableStore in a dict; thread-safe."""

    inline_safe = True

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kv: dict[bytes, bytes] = {}
        self._ints: dict[bytes, int] = {}

    def set(self, key: bytes, value: bytes) -> None:
        with self._lock:
            self._kv[bytes(key)] = bytes(value)

    def get(self, key: bytes) -> bytes:
        try:
            return self._kv[bytes(key)]
        except KeyError:
            raise KeyNotFoundError() from None

    def set_uint64(self, key: bytes, value: int) -> None:
        with self._lock:
            self._ints[bytes(key)] = int(value)

    def get_uint64(self, key: bytes) -> int:
        try:
            return self._ints[bytes(key)]
        except KeyError:
            raise KeyNotFoundError() from None


# --------------------------------------------------------------------- network


@dataclass(slots=True)
class LinkState:
    """Faults on one directed link (requests from ``src`` to ``dst`` and their replies)."""

    cut: bool = False
    delay: float = 0.0
    loss: float = 0.0
    duplicate: float = 0.0

    def healthy(self) -> bool:
        return not self.cut and self.delay == 0.0 and self.loss == 0.0 and self.duplicate == 0.0


class InmemNetwork:
    """Joins in-memory transports by address; links can be faulted (module docs)."""

    def __init__(self, *, seed: int | None = None, rpc_timeout: float = 0.5) -> None:
        self.rng = random.Random(seed)
        self.rpc_timeout = rpc_timeout
        self._transports: dict[str, InmemTransport] = {}
        self._links: dict[tuple[str, str], LinkState] = {}
        self.faulty = False  # fast path flag: any link not healthy

    # -- membership of the network
    def transport(
        self,
        addr: str,
        *,
        can_pipeline: bool = True,
        can_prevote: bool = True,
        cls: type[InmemTransport] | None = None,
    ) -> InmemTransport:
        """Create (or replace, after a restart) the transport for ``addr``."""
        t = (cls or InmemTransport)(self, addr, can_pipeline=can_pipeline, can_prevote=can_prevote)
        self._transports[addr] = t
        return t

    def get(self, addr: str) -> InmemTransport | None:
        return self._transports.get(addr)

    def addresses(self) -> list[str]:
        return list(self._transports)

    def _detach(self, t: InmemTransport) -> None:
        if self._transports.get(t.addr) is t:
            del self._transports[t.addr]

    # -- faults
    def link(self, src: str, dst: str) -> LinkState:
        """The (mutable) fault state of the directed link src -> dst."""
        ls = self._links.get((src, dst))
        if ls is None:
            ls = self._links[(src, dst)] = LinkState()
        return ls

    def _refresh(self) -> None:
        self.faulty = any(not ls.healthy() for ls in self._links.values())

    def _set(self, src: str, dst: str, both: bool, **kw: Any) -> None:
        pairs = [(src, dst), (dst, src)] if both else [(src, dst)]
        for a, b in pairs:
            ls = self.link(a, b)
            for k, v in kw.items():
                setattr(ls, k, v)
        self._refresh()

    def disconnect(self, a: str, b: str, *, both: bool = True) -> None:
        """Cut the link between a and b (both directions unless ``both`` is False)."""
        self._set(a, b, both, cut=True)

    def connect(self, a: str, b: str, *, both: bool = True) -> None:
        self._set(a, b, both, cut=False)

    def set_delay(self, a: str, b: str, delay: float, *, both: bool = True) -> None:
        self._set(a, b, both, delay=float(delay))

    def set_loss(self, a: str, b: str, probability: float, *, both: bool = True) -> None:
        self._set(a, b, both, loss=float(probability))

    def set_duplicate(self, a: str, b: str, probability: float, *, both: bool = True) -> None:
        self._set(a, b, both, duplicate=float(probability))

    def isolate(self, addr: str) -> None:
        """Cut every link of ``addr``."""
        for other in list(self._transports):
            if other != addr:
                self.disconnect(addr, other)

    def partition(self, *groups: Iterable[str]) -> None:
        """Cut every link between members of different groups (unlisted members: own group)."""
        sets = [set(g) for g in groups]
        listed = set().union(*sets) if sets else set()
        for a in self._transports:
            if a not in listed:
                sets.append({a})
        where = {a: i for i, s in enumerate(sets) for a in s}
        everyone = list(where)
        for a in everyone:
            for b in everyone:
                if a != b and where[a] != where[b]:
                    self.link(a, b).cut = True
        self._refresh()

    def heal(self) -> None:
        """Remove every fault from every link."""
        self._links.clear()
        self.faulty = False

    # -- delivery
    def _route(self, src: str, dst: str) -> LinkState | None:
        if not self.faulty:
            return None
        return self._links.get((src, dst))


class InmemTransport:
    """A Transport over an :class:`InmemNetwork` (see module docs).

    ``inject(command)`` delivers a raw request object to this transport's consumer as if
    a peer had sent it (for bad-input tests) and returns the response future.
    """

    def __init__(
        self,
        network: InmemNetwork,
        addr: str,
        *,
        can_pipeline: bool = True,
        can_prevote: bool = True,
    ) -> None:
        self.network = network
        self.addr = addr
        self.can_pipeline = can_pipeline
        self.can_prevote = can_prevote
        self._consumer: asyncio.Queue[RPC] = asyncio.Queue()
        self._heartbeat: Callable[[RPC], None] | None = None
        self._handler: Callable[[RPC], None] | None = None
        self._closed = False
        self._loop = asyncio.get_running_loop()
        self.sent = 0

    # -- Transport protocol
    def local_addr(self) -> str:
        return self.addr

    def consumer(self) -> asyncio.Queue[RPC]:
        return self._consumer

    def set_heartbeat_handler(self, handler: Callable[[RPC], None] | None) -> None:
        self._heartbeat = handler

    async def append_entries(
        self, server_id: str, target: str, req: AppendEntriesRequest
    ) -> AppendEntriesResponse:
        return await self._call(target, req, AppendEntriesResponse)

    async def request_vote(
        self, server_id: str, target: str, req: RequestVoteRequest
    ) -> RequestVoteResponse:
        return await self._call(target, req, RequestVoteResponse)

    async def request_pre_vote(
        self, server_id: str, target: str, req: RequestPreVoteRequest
    ) -> RequestPreVoteResponse:
        return await self._call(target, req, RequestPreVoteResponse)

    async def install_snapshot(
        self, server_id: str, target: str, req: InstallSnapshotRequest, data: IO[bytes]
    ) -> InstallSnapshotResponse:
        # Copy the stream: the sender may close its reader as soon as we return.
        payload = await asyncio.to_thread(data.read)
        return await self._call(target, req, InstallSnapshotResponse, io.BytesIO(payload))

    async def timeout_now(
        self, server_id: str, target: str, req: TimeoutNowRequest
    ) -> TimeoutNowResponse:
        return await self._call(target, req, TimeoutNowResponse)

    def encode_peer(self, server_id: str, addr: str) -> bytes:
        return addr.encode()

    def decode_peer(self, buf: bytes) -> str:
        return bytes(buf).decode()

    async def close(self) -> None:
        """Stop accepting requests; pending ones fail with TransportShutdownError."""
        if self._closed:
            return
        self._closed = True
        self.network._detach(self)
        while not self._consumer.empty():
            rpc = self._consumer.get_nowait()
            rpc.respond(None, TransportShutdownError())

    @property
    def closed(self) -> bool:
        return self._closed

    # -- extras
    def set_rpc_handler(self, handler: Callable[[RPC], None] | None) -> None:
        """Deliver every request to ``handler`` directly instead of the consumer queue.

        An optional fast path (not part of the Transport protocol): it saves the node a
        queue hop and a task switch per request. Requests already queued stay queued.
        """
        self._handler = handler

    def inject(self, command: Any, reader: IO[bytes] | None = None) -> asyncio.Future[Response]:
        """Deliver ``command`` (any object, even malformed) as an incoming request."""
        rpc = RPC(command=command, reader=reader)
        self._deliver(rpc)
        return rpc.response

    def _deliver(self, rpc: RPC) -> None:
        hb = self._heartbeat
        cmd = rpc.command
        if hb is not None and type(cmd) is AppendEntriesRequest and cmd.is_heartbeat():
            hb(rpc)
            return
        h = self._handler
        if h is not None:
            h(rpc)
            return
        self._consumer.put_nowait(rpc)

    def call_then(
        self, target: str, req: Request, on_done: Callable[[Any, BaseException | None], None]
    ) -> None:
        """Send ``req`` without a coroutine; ``on_done(response, None)`` or
        ``on_done(None, error)`` runs once the response (or the failure) is in.

        An optional fast path (not part of the Transport protocol) that saves the node a
        task per request. Errors are the same as the coroutine methods'.
        """
        loop = self._loop
        net = self.network
        peer = net._transports.get(target)
        if self._closed or peer is None or peer._closed:
            error: BaseException = (
                TransportShutdownError()
                if self._closed
                else ConnectionError(f"failed to connect to peer {target!r}")
            )
            loop.call_soon(on_done, None, error)
            return
        self.sent += 1
        rpc = RPC(command=req)
        fut: asyncio.Future[Any]
        if net.faulty:
            fut = loop.create_task(self._faulty_call(peer, rpc, object))
        else:
            fut = rpc.response
            peer._deliver(rpc)
            if not fut.done():
                timer = loop.call_later(net.rpc_timeout, _expire, fut, target)
                fut.add_done_callback(lambda _f, t=timer: t.cancel())  # type: ignore[misc]

        def report(f: asyncio.Future[Any]) -> None:
            if f.cancelled():
                on_done(None, asyncio.CancelledError())
                return
            error = f.exception()
            on_done(None if error is not None else f.result(), error)

        fut.add_done_callback(report)

    _R = TypeVar("_R")

    async def _call(
        self,
        target: str,
        req: Request,
        resp_type: type[_R],
        reader: IO[bytes] | None = None,
    ) -> _R:
        if self._closed:
            raise TransportShutdownError()
        net = self.network
        peer = net._transports.get(target)
        if peer is None or peer._closed:
            raise ConnectionError(f"failed to connect to peer {target!r}")
        self.sent += 1
        rpc = RPC(command=req, reader=reader)
        fut = rpc.response
        if not net.faulty:
            peer._deliver(rpc)
            if not fut.done():
                timer = self._loop.call_later(net.rpc_timeout, _expire, fut, target)
                try:
                    await fut
                finally:
                    timer.cancel()
            resp = fut.result()
            assert isinstance(resp, resp_type)
            return resp
        return await self._faulty_call(peer, rpc, resp_type)

    async def _faulty_call(self, peer: InmemTransport, rpc: RPC, resp_type: type[_R]) -> _R:
        net = self.network
        out = net._route(self.addr, peer.addr) or LinkState()
        back = net._route(peer.addr, self.addr) or LinkState()
        if out.cut or back.cut:
            raise ConnectionError(f"link {self.addr} -> {peer.addr} is cut")
        timeout = net.rpc_timeout
        if out.loss and net.rng.random() < out.loss:
            await asyncio.sleep(timeout)
            raise TimeoutError(f"request to {peer.addr!r} lost")
        if out.delay:
            await asyncio.sleep(out.delay)
            if peer._closed or peer is not net._transports.get(peer.addr):
                raise ConnectionError(f"failed to connect to peer {peer.addr!r}")
        peer._deliver(rpc)
        if out.duplicate and net.rng.random() < out.duplicate:
            dup = RPC(command=rpc.command, reader=_copy_reader(rpc.reader))
            peer._deliver(dup)
        try:
            async with asyncio.timeout(timeout):
                resp = await asyncio.shield(rpc.response)
        except TimeoutError:
            raise TimeoutError(f"no response from {peer.addr!r}") from None
        if back.loss and net.rng.random() < back.loss:
            await asyncio.sleep(max(0.0, timeout))
            raise TimeoutError(f"response from {peer.addr!r} lost")
        if back.delay:
            await asyncio.sleep(back.delay)
        assert isinstance(resp, resp_type)
        return resp


def _expire(fut: asyncio.Future[Response], target: str) -> None:
    if not fut.done():
        fut.set_exception(TimeoutError(f"no response from {target!r}"))
        fut.exception()


def _copy_reader(reader: IO[bytes] | None) -> IO[bytes] | None:
    if reader is None:
        return None
    if isinstance(reader, io.BytesIO):
        return io.BytesIO(reader.getvalue())
    return None


class PlainInmemTransport(InmemTransport):
    """An InmemTransport without the optional fast paths (``set_rpc_handler``,
    ``call_then``): requests go through ``consumer()`` and coroutine calls, like a
    transport that implements only the Transport protocol.
    """

    set_rpc_handler = None  # type: ignore[assignment]
    call_then = None  # type: ignore[assignment]


__all__ = [
    "InmemLogStore",
    "InmemNetwork",
    "InmemStableStore",
    "InmemTransport",
    "LinkState",
    "PlainInmemTransport",
]

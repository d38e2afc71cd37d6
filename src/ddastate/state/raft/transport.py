"""RaftTransport: the consensus library's Transport over the DDA communication API.

Wire protocol (WIRE.md section 2): every Raft request is an Action in scope ``sta``.
Node-targeted requests have type ``rpc<target id>`` and Action.Id ``ae`` / ``rv`` / ``is``
/ ``tn``; leader-forwarded requests have type ``lfw`` and Action.Id ``av`` / ``rs`` / ``ap``
and reach every member. Every reply is one ActionResult whose data is the MessagePack of
``{Error, Response, Retryable}``.

Incoming node-targeted requests are decoded on arrival and handed to the node through
``consumer()`` in arrival order (AppendEntries from one leader arrive in the order the
leader sent them over one broker connection, which a pipelining leader relies on); the
node answers through the RPC's future and the reply is published from a callback, so
no request waits for the reply of another. Heartbeat-shaped AppendEntries go to the
heartbeat handler when the node set one, so they never queue behind disk work.

Incoming leader-forwarded requests are handed to the binding through ``lfw_consumer()``
(or the ``lfw_handler`` set by it). Reply rules of the reference: a member ignores its own
broadcasts (it subscribes to ``lfw`` with noLocal, so the broker does not send them back
either); a member that is not the leader stays silent; the leader answers success or
the errors "leadership transfer in progress", "leadership lost", "node is the leader"
and "aborted by restore" (retryable, ``retryable error: `` prefixed); other errors are
logged and not answered, except input the leader cannot decode or apply, which is
answered with a non-retryable error.

A payload that does not decode is answered with a non-retryable error and logged with its
first bytes in hex, as the reference does; for ``lfw`` every member answers it, leader or
not, like Go members. A request that decodes is then passed on only by the leader (the
leadership gate the binding installs); other members stay silent.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import IO, Any, TypeVar

from ddastate.com.api import (
    Action,
    ActionResult,
    ActionWithCallback,
    ComApi,
    Scope,
    Subscription,
    SubscriptionFilter,
)
from ddastate.raft.commands import (
    AppendEntriesRequest,
    AppendEntriesResponse,
    InstallSnapshotRequest,
    InstallSnapshotResponse,
    RequestPreVoteRequest,
    RequestPreVoteResponse,
    RequestVoteRequest,
    RequestVoteResponse,
    Response,
    TimeoutNowRequest,
    TimeoutNowResponse,
)
from ddastate.raft.errors import (
    AbortedByRestoreError,
    LeadershipLostError,
    LeadershipTransferInProgressError,
    NotLeaderError,
    RaftError,
    TransportShutdownError,
)
from ddastate.raft.interfaces import RPC

from . import codec
from .messages import (
    AddVoterRequest,
    AddVoterResponse,
    ApplyRequest,
    ApplyResponse,
    InstallSnapshotWithData,
    RemoveServerRequest,
    RemoveServerResponse,
    RpcReply,
)

logger = logging.getLogger(__name__)

DEFAULT_RPC_TIMEOUT = 1.0
"""Seconds; the reference's DefaultRpcTimeout (1000 ms)."""
DEFAULT_INSTALL_SNAPSHOT_TIMEOUT_SCALE = 256 * 1024
"""Bytes; the reference's DefaultInstallSnapshotTimeoutScale."""

RETRYABLE_PREFIX = "retryable error: "

OP_APPEND_ENTRIES = "ae"
OP_REQUEST_VOTE = "rv"
OP_INSTALL_SNAPSHOT = "is"
OP_TIMEOUT_NOW = "tn"
OP_ADD_VOTER = "av"
OP_REMOVE_SERVER = "rs"
OP_APPLY = "ap"
OP_PRE_VOTE = "pv"  # extension: only with the preVote option (all-Python groups)

LFW_TYPE = "lfw"
RPC_TYPE_PREFIX = "rpc"

_HEX_LIMIT = 64

T = TypeVar("T")

LfwRequest = AddVoterRequest | RemoveServerRequest | ApplyRequest
LfwResponse = AddVoterResponse | RemoveServerResponse | ApplyResponse

# Errors a leader answers (the reference's sendLfwResponse): the requester retries them.
_ANSWERED_ERRORS: tuple[type[BaseException], ...] = (
    LeadershipTransferInProgressError,
    LeadershipLostError,
    AbortedByRestoreError,
)


_NOWAIT_OPS: dict[type[Any], tuple[str, type[Any]]] = {
    AppendEntriesRequest: (OP_APPEND_ENTRIES, AppendEntriesResponse),
    RequestVoteRequest: (OP_REQUEST_VOTE, RequestVoteResponse),
    TimeoutNowRequest: (OP_TIMEOUT_NOW, TimeoutNowResponse),
    RequestPreVoteRequest: (OP_PRE_VOTE, RequestPreVoteResponse),
}


class RpcError(RaftError):
    """A peer answered a request with an error (``retryable`` as it said)."""

    def __init__(self, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class LfwRejectedError(RaftError):
    """A leader-forwarded request the leader refused for good (bad input, FSM error)."""


class LfwRPC:
    """A leader-forwarded request; its handler answers it once with ``respond``.

    ``respond`` sends the reply at once when the transport attached a reply function,
    and resolves ``response``, a future made on first use (a leader answering
    forwarded proposals through the reply function never needs one).
    """

    __slots__ = ("_future", "_outcome", "command", "reply", "source")

    def __init__(
        self,
        command: LfwRequest,
        source: str,
        reply: Callable[[LfwResponse | None, BaseException | None], None] | None = None,
    ) -> None:
        self.command = command
        self.source = source
        self.reply = reply
        self._future: asyncio.Future[LfwResponse] | None = None
        self._outcome: tuple[LfwResponse | None, BaseException | None] | None = None

    @property
    def response(self) -> asyncio.Future[LfwResponse]:
        """The answer given with ``respond`` (its error, if it was one)."""
        f = self._future
        if f is None:
            f = self._future = asyncio.get_running_loop().create_future()
            if self._outcome is not None:
                _resolve(f, *self._outcome)
        return f

    def respond(self, resp: LfwResponse | None, error: BaseException | None = None) -> None:
        """Answer once; later calls (and calls after ``response`` was cancelled) are ignored."""
        f = self._future
        if self._outcome is not None or (f is not None and f.done()):
            return
        if error is None:
            assert resp is not None
        self._outcome = (resp, error)
        if f is not None:
            _resolve(f, resp, error)
        reply, self.reply = self.reply, None
        if reply is not None:
            reply(resp, error)

    def __repr__(self) -> str:
        return f"LfwRPC(command={self.command!r}, source={self.source!r})"


def _resolve(
    f: asyncio.Future[LfwResponse], resp: LfwResponse | None, error: BaseException | None
) -> None:
    if error is not None:
        f.set_exception(error)
        f.exception()  # retrieved: the transport decides what to send
    else:
        assert resp is not None
        f.set_result(resp)


@dataclass(slots=True)
class RaftTransportConfig:
    """Transport settings (seconds and bytes); zero or negative values take the defaults."""

    timeout: float = DEFAULT_RPC_TIMEOUT
    timeout_scale: int = DEFAULT_INSTALL_SNAPSHOT_TIMEOUT_SCALE
    pipeline: bool = False
    prevote: bool = False


def _hex(data: bytes | None) -> str:
    if not data:
        return "<empty>"
    h = data[:_HEX_LIMIT].hex()
    return h + ("..." if len(data) > _HEX_LIMIT else "") + f" ({len(data)} bytes)"


class RaftTransport:
    """The Raft Transport over a ComApi (implements ``ddastate.raft.interfaces.Transport``)."""

    def __init__(
        self,
        config: RaftTransportConfig | None,
        local_addr: str,
        com: ComApi,
    ) -> None:
        cfg = config or RaftTransportConfig()
        self._timeout = cfg.timeout if cfg.timeout > 0 else DEFAULT_RPC_TIMEOUT
        self._timeout_scale = (
            cfg.timeout_scale if cfg.timeout_scale > 0 else DEFAULT_INSTALL_SNAPSHOT_TIMEOUT_SCALE
        )
        self.can_pipeline = bool(cfg.pipeline)
        self.can_prevote = bool(cfg.prevote)
        self._local = local_addr
        self._local_b = local_addr.encode()
        self._com = com
        self._consumer: asyncio.Queue[RPC] = asyncio.Queue()
        self._lfw_consumer: asyncio.Queue[LfwRPC] = asyncio.Queue()
        self._lfw_handler: Callable[[LfwRPC], None] | None = None
        self._lfw_gate: Callable[[], bool] | None = None
        self._heartbeat: Callable[[RPC], None] | None = None
        self._rpc_handler: Callable[[RPC], None] | None = None
        self._closed = False
        self._subs: list[Subscription[ActionWithCallback]] = []
        self._rpc_type = RPC_TYPE_PREFIX + local_addr
        request_cb = getattr(com, "request_action_callback", None)
        self._request_cb: Callable[..., Any] | None = request_cb if callable(request_cb) else None
        if self._request_cb is not None:
            # The node uses this (when present) instead of a task per request.
            self.call_then = self._call_then

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Subscribe to ``rpc<own id>`` and ``lfw`` (scope sta)."""
        self._subs.append(
            await self._com.subscribe_action(
                SubscriptionFilter(scope=Scope.STA, type=self._rpc_type),
                handler=self._on_rpc_action,
            )
        )
        self._subs.append(
            await self._com.subscribe_action(
                SubscriptionFilter(scope=Scope.STA, type=LFW_TYPE),
                handler=self._on_lfw_action,
                # own broadcasts are dropped on arrival: spare the broker sending them
                no_local=True,
            )
        )

    async def close(self) -> None:
        """Stop receiving; later sends raise TransportShutdownError. Idempotent."""
        if self._closed:
            return
        self._closed = True
        subs, self._subs = self._subs, []
        for s in subs:
            try:
                await s.aclose()
            except Exception:
                logger.debug("closing a transport subscription failed", exc_info=True)

    @property
    def closed(self) -> bool:
        return self._closed

    def timeout(self) -> float:
        """The rpcTimeout in seconds."""
        return self._timeout

    # ------------------------------------------------------------- Transport API

    def local_addr(self) -> str:
        return self._local

    def consumer(self) -> asyncio.Queue[RPC]:
        return self._consumer

    def lfw_consumer(self) -> asyncio.Queue[LfwRPC]:
        """Leader-forwarded requests (when no ``lfw_handler`` is set)."""
        return self._lfw_consumer

    def set_lfw_handler(
        self,
        handler: Callable[[LfwRPC], None] | None,
        gate: Callable[[], bool] | None = None,
    ) -> None:
        """Deliver lfw requests by direct call instead of the queue.

        ``gate`` (optional) is asked once the request decoded: when it returns False
        (this member is not the leader) the request is dropped silently. A request that
        does not decode is answered with the error by every member, as Go members do.
        """
        self._lfw_handler = handler
        self._lfw_gate = gate

    def set_heartbeat_handler(self, handler: Callable[[RPC], None] | None) -> None:
        self._heartbeat = handler

    def set_rpc_handler(self, handler: Callable[[RPC], None] | None) -> None:
        """Deliver non-heartbeat RPCs by direct call (in arrival order) instead of the queue."""
        self._rpc_handler = handler

    def encode_peer(self, server_id: str, addr: str) -> bytes:
        return addr.encode()

    def decode_peer(self, buf: bytes) -> str:
        return buf.decode("utf-8", "replace")

    async def append_entries(
        self, server_id: str, target: str, req: AppendEntriesRequest
    ) -> AppendEntriesResponse:
        return await self._send(
            target, OP_APPEND_ENTRIES, req, AppendEntriesResponse, self._timeout
        )

    async def request_vote(
        self, server_id: str, target: str, req: RequestVoteRequest
    ) -> RequestVoteResponse:
        return await self._send(target, OP_REQUEST_VOTE, req, RequestVoteResponse, self._timeout)

    async def request_pre_vote(
        self, server_id: str, target: str, req: RequestPreVoteRequest
    ) -> RequestPreVoteResponse:
        if not self.can_prevote:
            raise RpcError("pre-vote is not enabled on this transport")
        return await self._send(target, OP_PRE_VOTE, req, RequestPreVoteResponse, self._timeout)

    async def install_snapshot(
        self, server_id: str, target: str, req: InstallSnapshotRequest, data: IO[bytes]
    ) -> InstallSnapshotResponse:
        blob = await asyncio.to_thread(data.read)
        timeout = self._timeout * (req.size // self._timeout_scale)
        timeout = max(timeout, self._timeout)
        return await self._send(
            target,
            OP_INSTALL_SNAPSHOT,
            InstallSnapshotWithData(req=req, data=blob),
            InstallSnapshotResponse,
            timeout,
        )

    async def timeout_now(
        self, server_id: str, target: str, req: TimeoutNowRequest
    ) -> TimeoutNowResponse:
        return await self._send(target, OP_TIMEOUT_NOW, req, TimeoutNowResponse, self._timeout)

    # ---------------------------------------------------------- leader forwarding

    async def lfw_add_voter(self, req: AddVoterRequest, timeout: float) -> AddVoterResponse:
        """Forward AddVoter to whichever member leads; TimeoutError when none answers."""
        return await self._send_lfw(OP_ADD_VOTER, req, AddVoterResponse, timeout)

    async def lfw_remove_server(
        self, req: RemoveServerRequest, timeout: float
    ) -> RemoveServerResponse:
        """Forward RemoveServer to the leader; TimeoutError when none answers."""
        return await self._send_lfw(OP_REMOVE_SERVER, req, RemoveServerResponse, timeout)

    async def lfw_apply(self, req: ApplyRequest, timeout: float) -> ApplyResponse:
        """Forward Apply to the leader; TimeoutError when none answers."""
        return await self._send_lfw(OP_APPLY, req, ApplyResponse, timeout)

    # -------------------------------------------------------------------- sending

    async def _send(self, target: str, op: str, req: Any, resp_cls: type[T], timeout: float) -> T:
        return await self._request(RPC_TYPE_PREFIX + target, op, req, resp_cls, timeout)

    async def _send_lfw(self, op: str, req: Any, resp_cls: type[T], timeout: float) -> T:
        return await self._request(LFW_TYPE, op, req, resp_cls, timeout)

    async def _request(self, type_: str, op: str, req: Any, resp_cls: type[T], timeout: float) -> T:
        if self._closed:
            raise TransportShutdownError()
        params = codec.encode_msgpack(req)
        action = Action(type=type_, id=op, source=self._local, params=params)
        result = await self._com.request_action(action, Scope.STA, timeout)
        if self._closed:
            raise TransportShutdownError()
        return self._decode_reply(result, type_, op, resp_cls)

    def _decode_reply(self, result: ActionResult, type_: str, op: str, resp_cls: type[T]) -> T:
        try:
            reply = codec.decode_rpc_reply(result.data, resp_cls)
        except codec.CodecError as e:
            logger.warning(
                "reply to %s/%s from %s does not decode (%s): %s",
                type_,
                op,
                result.context,
                e,
                _hex(result.data),
            )
            raise RpcError(f"reply does not decode: {e}") from e
        if reply.error:
            raise RpcError(reply.error, bool(reply.retryable))
        if reply.response is None:
            raise RpcError(f"empty {op} reply from {result.context}")
        resp: T = reply.response
        return resp

    def _call_then(
        self, target: str, req: Any, on_done: Callable[[Any, BaseException | None], None]
    ) -> None:
        """Send a node-targeted request without waiting; ``on_done(response, None)`` or
        ``on_done(None, error)`` runs once, straight from the receive path."""
        if self._closed:
            raise TransportShutdownError()
        kind = _NOWAIT_OPS.get(type(req))
        if kind is None:
            raise RpcError(f"cannot send a {type(req).__name__} without waiting")
        op, resp_cls = kind
        if op == OP_PRE_VOTE and not self.can_prevote:
            raise RpcError("pre-vote is not enabled on this transport")
        self._request_then(RPC_TYPE_PREFIX + target, op, req, resp_cls, self._timeout, on_done)

    @property
    def can_call_back(self) -> bool:
        """True when requests can be sent with a callback (``lfw_apply_then``): the
        com binding has ``request_action_callback``."""
        return self._request_cb is not None

    def lfw_apply_then(
        self,
        req: ApplyRequest,
        timeout: float,
        on_done: Callable[[ApplyResponse | None, BaseException | None], None],
    ) -> Callable[[], None]:
        """Forward Apply without a coroutine (only where ``can_call_back``).

        ``on_done(response, None)`` or ``on_done(None, error)`` runs once, straight
        from the receive path; the error is TimeoutError when no leader answered within
        ``timeout`` seconds. Returns a function that forgets the request: ``on_done``
        is then never called.
        """
        if self._closed:
            raise TransportShutdownError()
        return self._request_then(LFW_TYPE, OP_APPLY, req, ApplyResponse, timeout, on_done)

    def _request_then(
        self,
        type_: str,
        op: str,
        req: Any,
        resp_cls: type[Any],
        timeout: float,
        on_done: Callable[[Any, BaseException | None], None],
    ) -> Callable[[], None]:
        request_cb = self._request_cb
        if request_cb is None:
            raise RpcError("the com binding cannot send requests with a callback")
        params = codec.encode_msgpack(req)
        action = Action(type=type_, id=op, source=self._local, params=params)

        def done(result: ActionResult | None, error: BaseException | None) -> None:
            if error is None and self._closed:
                error = TransportShutdownError()
            if error is not None:
                on_done(None, error)
                return
            assert result is not None
            try:
                resp = self._decode_reply(result, type_, op, resp_cls)
            except RaftError as e:
                on_done(None, e)
                return
            on_done(resp, None)

        forget: Callable[[], None] = request_cb(action, Scope.STA, timeout, done)
        return forget

    # ------------------------------------------------------------------ receiving

    def _reply(self, awc: ActionWithCallback, reply: RpcReply) -> None:
        try:
            data = codec.encode_msgpack(reply)
        except Exception:
            logger.exception("reply does not encode")
            return
        self._send_reply(awc, data)

    def _send_reply(self, awc: ActionWithCallback, data: bytes) -> None:
        try:
            awc.send(ActionResult(context=self._local, data=data))
        except Exception as e:
            logger.debug("sending a reply to %s failed: %s", awc.action.source, e)

    def _on_rpc_action(self, awc: ActionWithCallback) -> None:
        if self._closed:
            return
        action: Action = awc.action
        op = action.id
        params = action.params
        reply = partial(self._rpc_reply, awc)
        try:
            if op == OP_APPEND_ENTRIES:
                ae = codec.decode_msgpack(params, AppendEntriesRequest)
                rpc = RPC(ae, reply=reply)
                if self._heartbeat is not None and ae.is_heartbeat():
                    self._call(self._heartbeat, rpc)
                    return
            elif op == OP_REQUEST_VOTE:
                rpc = RPC(codec.decode_msgpack(params, RequestVoteRequest), reply=reply)
            elif op == OP_INSTALL_SNAPSHOT:
                isd = codec.decode_msgpack(params, InstallSnapshotWithData)
                if isd.req is None:
                    raise codec.CodecError("InstallSnapshot request without Req")
                rpc = RPC(isd.req, reader=io.BytesIO(isd.data or b""), reply=reply)
            elif op == OP_TIMEOUT_NOW:
                rpc = RPC(codec.decode_msgpack(params, TimeoutNowRequest), reply=reply)
            elif op == OP_PRE_VOTE and self.can_prevote:
                rpc = RPC(codec.decode_msgpack(params, RequestPreVoteRequest), reply=reply)
            else:
                logger.warning(
                    "unknown rpc operation %r from %s dropped: %s", op, action.source, _hex(params)
                )
                return
        except codec.CodecError as e:
            logger.warning(
                "rpc %r from %s does not decode (%s): %s", op, action.source, e, _hex(params)
            )
            self._reply(awc, RpcReply(error=str(e), response=None, retryable=False))
            return
        h = self._rpc_handler
        if h is not None:
            self._call(h, rpc)
        else:
            self._consumer.put_nowait(rpc)

    @staticmethod
    def _call(handler: Callable[[RPC], None], rpc: RPC) -> None:
        try:
            handler(rpc)
        except Exception as e:
            logger.exception("the node failed to take a request")
            rpc.respond(None, RaftError(f"request could not be processed: {e}"))

    def _rpc_reply(
        self, awc: ActionWithCallback, resp: Response | None, exc: BaseException | None
    ) -> None:
        if self._closed:
            return
        if exc is not None:
            self._reply(awc, RpcReply(error=str(exc), response=None, retryable=False))
        else:
            self._reply(awc, RpcReply(error="", response=resp, retryable=False))

    def _on_lfw_action(self, awc: ActionWithCallback) -> None:
        if self._closed:
            return
        action: Action = awc.action
        if action.source == self._local:
            return  # own broadcast: tried locally before it was forwarded
        op = action.id
        params = action.params
        try:
            cmd: LfwRequest
            if op == OP_APPLY:
                cmd = codec.decode_msgpack(params, ApplyRequest)
            elif op == OP_ADD_VOTER:
                cmd = codec.decode_msgpack(params, AddVoterRequest)
            elif op == OP_REMOVE_SERVER:
                cmd = codec.decode_msgpack(params, RemoveServerRequest)
            else:
                logger.warning(
                    "unknown lfw operation %r from %s dropped: %s", op, action.source, _hex(params)
                )
                return
        except codec.CodecError as e:
            logger.warning(
                "lfw %r from %s does not decode (%s): %s", op, action.source, e, _hex(params)
            )
            self._reply(awc, RpcReply(error=str(e), response=None, retryable=False))
            return
        gate = self._lfw_gate
        if gate is not None and not gate():
            return  # not the leader: stay silent
        rpc = LfwRPC(cmd, action.source, reply=partial(self._lfw_reply, awc))
        handler = self._lfw_handler
        if handler is not None:
            handler(rpc)
        else:
            self._lfw_consumer.put_nowait(rpc)

    def _lfw_reply(
        self, awc: ActionWithCallback, resp: LfwResponse | None, exc: BaseException | None
    ) -> None:
        if self._closed:
            return
        if exc is None:
            if type(resp) is ApplyResponse and resp.response is None:
                try:
                    data = codec.encode_apply_reply(resp.index)
                except codec.CodecError:
                    logger.exception("reply does not encode")
                    return
                self._send_reply(awc, data)
            else:
                self._reply(awc, RpcReply(error="", response=resp, retryable=False))
            return
        if isinstance(exc, NotLeaderError):
            return  # silent: another member may be the leader
        if isinstance(exc, _ANSWERED_ERRORS):
            self._reply(
                awc, RpcReply(error=RETRYABLE_PREFIX + str(exc), response=None, retryable=True)
            )
            return
        if isinstance(exc, LfwRejectedError):
            self._reply(awc, RpcReply(error=str(exc), response=None, retryable=False))
            return
        logger.info("leader-forwarded request not answered: %s", exc)

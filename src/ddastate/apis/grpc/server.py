"""The sidecar's gRPC server: StateService (dda.state.v1) and AdminService (ddastate.admin.v1).

Errors are mapped to gRPC status codes so that clients can decide what to do:

* INVALID_ARGUMENT: an empty key, an unknown operation, a value longer than the
  configured maximum (``apis.grpc.maxValueSize``);
* UNAVAILABLE: retryable failures (no leader yet, leadership lost, a deadline passed
  while the group elected a leader), a state service that is not open (starting up or
  shutting down): try again, or try another member; and, as the reference sidecar
  answers, a state service disabled in this sidecar's configuration (the message says so);
* INTERNAL: anything else, logged with its traceback on the sidecar.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc

from ddastate.apis.grpc.address import GrpcAddress, parse_address
from ddastate.apis.grpc.gen.dda.state.v1 import state_pb2, state_pb2_grpc
from ddastate.apis.grpc.gen.ddastate.admin.v1 import admin_pb2, admin_pb2_grpc
from ddastate.apis.grpc.status import StatusInfo, StatusSource
from ddastate.raft import errors as raft_errors
from ddastate.state.api import Input, InputOp, MembershipChange, StateApi
from ddastate.state.raft.binding import BindingNotOpenError, StateBindingError

logger = logging.getLogger(__name__)

DEFAULT_MAX_VALUE_SIZE = 1024 * 1024
"""Default largest value a ProposeInput may carry (1 MiB)."""

DEFAULT_PROPOSE_TIMEOUT = 20.0
"""Seconds a ProposeInput without a client deadline may take (the reference's lfwTimeout)."""

_DEADLINE_MARGIN = 0.05
"""Seconds before a client's deadline at which a ProposeInput gives up with UNAVAILABLE."""

_RETRYABLE: tuple[type[BaseException], ...] = (
    TimeoutError,
    raft_errors.NotLeaderError,
    raft_errors.LeadershipLostError,
    raft_errors.LeadershipTransferInProgressError,
    raft_errors.EnqueueTimeoutError,
    raft_errors.AbortedByRestoreError,
    raft_errors.RaftShutdownError,
    raft_errors.TransportShutdownError,
)

_OPS: dict[int, InputOp] = {
    state_pb2.INPUT_OPERATION_UNSPECIFIED: InputOp.UNDEFINED,
    state_pb2.INPUT_OPERATION_SET: InputOp.SET,
    state_pb2.INPUT_OPERATION_DELETE: InputOp.DELETE,
}
_PB_OPS: dict[InputOp, int] = {v: k for k, v in _OPS.items()}


class GrpcServeError(Exception):
    """The gRPC server could not listen at its address (in use, no permission, bad path)."""


def status_for_error(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The gRPC status code and message for an error raised by a state binding."""
    if isinstance(exc, BindingNotOpenError):
        return grpc.StatusCode.UNAVAILABLE, f"state service is not open: {exc}"
    if isinstance(exc, _RETRYABLE):
        text = str(exc) or "timed out"
        return grpc.StatusCode.UNAVAILABLE, f"retryable: {text}"
    if isinstance(exc, StateBindingError | ValueError):
        # an input refused by the replicated state machine (or its leader)
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    return grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}"


def input_to_pb(inp: Input) -> state_pb2.Input:
    """Convert a state Input to its protobuf message."""
    return state_pb2.Input(
        op=_PB_OPS.get(inp.op, state_pb2.INPUT_OPERATION_UNSPECIFIED),  # type: ignore[arg-type]
        key=inp.key,
        value=inp.value or b"",
    )


async def _aiter_of(obj: Any) -> AsyncIterator[Any]:
    """Accept both ``await b.observe_x()`` and ``b.observe_x()`` returning an iterator."""
    if inspect.isawaitable(obj):
        obj = await obj
    return obj  # type: ignore[no-any-return]


async def _aclose(it: Any) -> None:
    close = getattr(it, "aclose", None)
    if close is not None:
        try:
            await close()
        except Exception:  # pragma: no cover - closing must not mask the RPC's end
            logger.debug("closing an observer failed", exc_info=True)


class StateServicer(state_pb2_grpc.StateServiceServicer):
    """StateService backed by a StateApi (a RaftBinding in the sidecar).

    ``state`` is None when the state service is disabled in the configuration.
    """

    def __init__(
        self,
        state: StateApi | None,
        *,
        max_value_size: int = DEFAULT_MAX_VALUE_SIZE,
        propose_timeout: float = DEFAULT_PROPOSE_TIMEOUT,
    ) -> None:
        self._state = state
        self._max_value_size = max_value_size
        self._propose_timeout = propose_timeout

    def set_state(self, state: StateApi | None) -> None:
        """Attach the state binding (the sidecar creates it after claiming its address)."""
        self._state = state

    async def _require_state(self, context: grpc.aio.ServicerContext) -> StateApi:
        if self._state is None:
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                "state service is disabled in this sidecar's configuration"
                " (services.state.disabled)",
            )
        assert self._state is not None
        return self._state

    def _validate(self, request: state_pb2.Input) -> Input:
        op_number = int(request.op)
        op = _OPS.get(op_number)
        if op is None:
            raise ValueError(
                f"unknown input operation {op_number} (expected 1 = SET or 2 = DELETE)"
            )
        if op is InputOp.UNDEFINED:
            raise ValueError("input operation is unspecified (expected 1 = SET or 2 = DELETE)")
        if not request.key:
            raise ValueError("input key must not be empty")
        value = bytes(request.value)
        if len(value) > self._max_value_size:
            raise ValueError(
                f"input value is {len(value)} bytes, more than the maximum of "
                f"{self._max_value_size} bytes (apis.grpc.maxValueSize)"
            )
        return Input(op, request.key, value if op is InputOp.SET else None)

    async def ProposeInput(  # noqa: N802 - gRPC method name
        self, request: state_pb2.Input, context: grpc.aio.ServicerContext
    ) -> state_pb2.Ack:
        state = await self._require_state(context)
        try:
            inp = self._validate(request)
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        remaining = context.time_remaining()
        if remaining is None:
            timeout = self._propose_timeout
        else:
            # end a little before the client's deadline so that UNAVAILABLE reaches it
            timeout = max(0.0, min(remaining - _DEADLINE_MARGIN, remaining * 0.9))
        try:
            await state.propose_input(inp, timeout=timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            code, message = status_for_error(exc)
            if code is grpc.StatusCode.INTERNAL:
                logger.exception("ProposeInput failed")
            await context.abort(code, message)
        return state_pb2.Ack()

    async def ObserveStateChange(  # noqa: N802 - gRPC method name
        self, request: state_pb2.ObserveStateChangeParams, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[state_pb2.Input]:
        state = await self._require_state(context)
        try:
            changes = await _aiter_of(state.observe_state_change())
        except Exception as exc:
            code, message = status_for_error(exc)
            await context.abort(code, message)
        try:
            async for change in changes:
                yield input_to_pb(change)
        finally:
            await _aclose(changes)

    async def ObserveMembershipChange(  # noqa: N802 - gRPC method name
        self, request: state_pb2.ObserveMembershipChangeParams, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[state_pb2.MembershipChange]:
        state = await self._require_state(context)
        try:
            changes = await _aiter_of(state.observe_membership_change())
        except Exception as exc:
            code, message = status_for_error(exc)
            await context.abort(code, message)
        try:
            async for change in changes:
                mc: MembershipChange = change
                yield state_pb2.MembershipChange(id=mc.id, joined=mc.joined)
        finally:
            await _aclose(changes)


def status_to_pb(info: StatusInfo) -> admin_pb2.StatusResponse:
    """Convert a StatusInfo to its protobuf message."""
    return admin_pb2.StatusResponse(
        id=info.id,
        name=info.name,
        cluster=info.cluster,
        state_enabled=info.state_enabled,
        role=info.role,
        leader_id=info.leader_id,
        term=info.term,
        commit_index=info.commit_index,
        applied_index=info.applied_index,
        last_log_index=info.last_log_index,
        members=[
            admin_pb2.Member(id=m.id, suffrage=m.suffrage, leader=m.leader) for m in info.members
        ],
        com_protocol=info.com_protocol,
        version=info.version,
    )


class AdminServicer(admin_pb2_grpc.AdminServiceServicer):
    """AdminService: reports this member's status from a StatusSource."""

    def __init__(self, source: StatusSource) -> None:
        self._source = source

    async def Status(  # noqa: N802 - gRPC method name
        self, request: admin_pb2.StatusRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.StatusResponse:
        try:
            info = await self._source()
        except Exception as exc:
            logger.exception("Status failed")
            await context.abort(grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}")
        return status_to_pb(info)


class GrpcServer:
    """A grpc.aio server with StateService and AdminService at one address.

    ``bind()`` claims the address (so a port in use fails before anything else is
    started), ``start()`` begins serving, ``stop()`` ends it. Also an async context
    manager doing all three.
    """

    def __init__(
        self,
        address: str,
        *,
        state: StateApi | None,
        status: StatusSource,
        max_value_size: int = DEFAULT_MAX_VALUE_SIZE,
        propose_timeout: float = DEFAULT_PROPOSE_TIMEOUT,
        keepalive: float | None = None,
        cert: str = "",
        key: str = "",
    ) -> None:
        self._address = parse_address(address)
        self._bound: GrpcAddress | None = None
        receive_limit = max(4 * 1024 * 1024, max_value_size + 1024 * 1024)
        options: list[tuple[str, Any]] = [
            ("grpc.max_receive_message_length", receive_limit),
            ("grpc.so_reuseport", 0),
        ]
        if keepalive is not None and keepalive > 0:
            options.append(("grpc.keepalive_time_ms", int(keepalive * 1000)))
        self._server = grpc.aio.server(options=options)
        self.state_servicer = StateServicer(
            state, max_value_size=max_value_size, propose_timeout=propose_timeout
        )
        state_pb2_grpc.add_StateServiceServicer_to_server(  # type: ignore[no-untyped-call]
            self.state_servicer, self._server
        )
        admin_pb2_grpc.add_AdminServiceServicer_to_server(  # type: ignore[no-untyped-call]
            AdminServicer(status), self._server
        )
        self._cert = cert
        self._key = key
        self._started = False

    @property
    def address(self) -> GrpcAddress:
        """The bound address (with the real port when port 0 was asked for)."""
        return self._bound or self._address

    def bind(self) -> GrpcAddress:
        """Claim the address; raises GrpcServeError when that is not possible."""
        target = self._address.bind_target
        if self._address.unix:
            _prepare_unix_socket(self._address.path)
        try:
            if self._cert or self._key:
                credentials = grpc.ssl_server_credentials(
                    [(Path(self._key).read_bytes(), Path(self._cert).read_bytes())]
                )
                port = self._server.add_secure_port(target, credentials)
            else:
                port = self._server.add_insecure_port(target)
        except OSError as exc:
            raise GrpcServeError(f"cannot read TLS certificate or key: {exc}") from None
        except RuntimeError as exc:
            raise GrpcServeError(
                f"cannot listen on {self._address.text}: address in use or not available ({exc})"
            ) from None
        if not self._address.unix and port == 0:
            raise GrpcServeError(
                f"cannot listen on {self._address.text}: address in use or not available"
            )
        self._bound = self._address if self._address.unix else self._address.with_port(port)
        return self._bound

    async def start(self) -> None:
        """Begin serving (binds first if bind() was not called)."""
        if self._bound is None:
            self.bind()
        await self._server.start()
        self._started = True

    async def stop(self, grace: float | None = 1.0) -> None:
        """Stop serving; calls still running get ``grace`` seconds to finish."""
        await self._server.stop(grace)
        self._started = False
        if self._address.unix:
            _remove_socket(self._address.path)

    async def __aenter__(self) -> GrpcServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def _remove_socket(path: str) -> None:
    Path(path).unlink(missing_ok=True)


def _prepare_unix_socket(path: str) -> None:
    """Remove a stale socket file left by a dead sidecar; refuse to replace other files."""
    p = Path(path)
    if not p.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
        return
    if not p.is_socket():
        raise GrpcServeError(f"cannot listen on unix:{path}: a file that is not a socket is there")
    import socket

    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        p.unlink(missing_ok=True)  # nobody listens: stale
        return
    finally:
        probe.close()
    raise GrpcServeError(f"cannot listen on unix:{path}: another process is serving there")

"""A small asyncio client for a ddastate (or reference DDA) sidecar, used by the CLI."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import grpc

from ddastate.apis.grpc.address import parse_address
from ddastate.apis.grpc.gen.dda.state.v1 import state_pb2, state_pb2_grpc
from ddastate.apis.grpc.gen.ddastate.admin.v1 import admin_pb2, admin_pb2_grpc
from ddastate.apis.grpc.status import MemberInfo, StatusInfo
from ddastate.state.api import Input, InputOp, MembershipChange

_OPS = {
    state_pb2.INPUT_OPERATION_UNSPECIFIED: InputOp.UNDEFINED,
    state_pb2.INPUT_OPERATION_SET: InputOp.SET,
    state_pb2.INPUT_OPERATION_DELETE: InputOp.DELETE,
}


class StateClient:
    """StateService and AdminService calls on one channel; an async context manager."""

    def __init__(self, address: str, *, ca_file: str = "") -> None:
        self.address = address
        target = parse_address(address).dial_target
        if ca_file:
            with open(ca_file, "rb") as f:
                creds = grpc.ssl_channel_credentials(root_certificates=f.read())
            self._channel = grpc.aio.secure_channel(target, creds)
        else:
            self._channel = grpc.aio.insecure_channel(target)
        self._state: Any = state_pb2_grpc.StateServiceStub(self._channel)  # type: ignore[no-untyped-call]
        self._admin: Any = admin_pb2_grpc.AdminServiceStub(self._channel)  # type: ignore[no-untyped-call]

    async def __aenter__(self) -> StateClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the channel."""
        await self._channel.close()

    async def propose(self, inp: Input, deadline: float | None = None) -> None:
        """ProposeInput; raises grpc.aio.AioRpcError on failure."""
        op = {
            InputOp.SET: state_pb2.INPUT_OPERATION_SET,
            InputOp.DELETE: state_pb2.INPUT_OPERATION_DELETE,
        }.get(inp.op, state_pb2.INPUT_OPERATION_UNSPECIFIED)
        msg = state_pb2.Input(op=op, key=inp.key, value=inp.value or b"")
        await self._state.ProposeInput(msg, timeout=deadline)

    async def put(self, key: str, value: bytes, deadline: float | None = None) -> None:
        """Propose a SET."""
        await self.propose(Input(InputOp.SET, key, value), deadline)

    async def delete(self, key: str, deadline: float | None = None) -> None:
        """Propose a DELETE."""
        await self.propose(Input(InputOp.DELETE, key), deadline)

    async def state_changes(self) -> AsyncGenerator[Input, None]:
        """ObserveStateChange: current state as SETs, then every change, until cancelled."""
        call = self._state.ObserveStateChange(state_pb2.ObserveStateChangeParams())
        try:
            async for msg in call:
                op = _OPS.get(msg.op, InputOp.UNDEFINED)
                yield Input(op, msg.key, bytes(msg.value) if op is InputOp.SET else None)
        finally:
            call.cancel()

    async def membership_changes(self) -> AsyncGenerator[MembershipChange, None]:
        """ObserveMembershipChange: current members as joined, then joins and leaves."""
        call = self._state.ObserveMembershipChange(state_pb2.ObserveMembershipChangeParams())
        try:
            async for msg in call:
                yield MembershipChange(msg.id, bool(msg.joined))
        finally:
            call.cancel()

    async def status(self, deadline: float | None = None) -> StatusInfo:
        """AdminService.Status (ddastate sidecars only; UNIMPLEMENTED on the reference)."""
        r = await self._admin.Status(admin_pb2.StatusRequest(), timeout=deadline)
        return StatusInfo(
            id=r.id,
            name=r.name,
            cluster=r.cluster,
            state_enabled=r.state_enabled,
            role=r.role,
            leader_id=r.leader_id,
            term=r.term,
            commit_index=r.commit_index,
            applied_index=r.applied_index,
            last_log_index=r.last_log_index,
            members=tuple(MemberInfo(m.id, m.suffrage, m.leader) for m in r.members),
            com_protocol=r.com_protocol,
            version=r.version,
        )

"""Messages of the DDA Raft binding that are not Raft RPCs (WIRE.md section 2).

Go field names are given in brackets; ``ddastate.state.raft.codec`` maps these
dataclasses to and from the reference's MessagePack form. Durations (``timeout``) are
signed integer nanoseconds, as Go's ``time.Duration``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ddastate.raft.commands import InstallSnapshotRequest


@dataclass(slots=True)
class AddVoterRequest:
    """Leader-forwarded request ``av`` {ServerAddress, ServerId, Timeout}."""

    server_id: str = ""
    server_address: str = ""
    timeout: int = 0


@dataclass(slots=True)
class AddVoterResponse:
    """Reply payload of ``av`` {Index}."""

    index: int = 0


@dataclass(slots=True)
class RemoveServerRequest:
    """Leader-forwarded request ``rs`` {ServerId, Timeout}."""

    server_id: str = ""
    timeout: int = 0


@dataclass(slots=True)
class RemoveServerResponse:
    """Reply payload of ``rs`` {Index}."""

    index: int = 0


@dataclass(slots=True)
class ApplyRequest:
    """Leader-forwarded request ``ap`` {Command, Timeout}; Command is an encoded Input."""

    command: bytes | None = None
    timeout: int = 0


@dataclass(slots=True)
class ApplyResponse:
    """Reply payload of ``ap`` {Index, Response}.

    ``response`` must stay None when talking to Go members (they cannot decode a
    non-nil Go error there); report failures through ``RpcReply.error`` instead.
    """

    index: int = 0
    response: str | None = None


@dataclass(slots=True)
class RpcReply:
    """The envelope of every RPC reply {Error, Response, Retryable}.

    ``response`` is the typed payload (a raft.commands response or one of the
    responses above) or None; ``error`` is "" on success.
    """

    error: str = ""
    response: Any = None
    retryable: bool = False


@dataclass(slots=True)
class InstallSnapshotWithData:
    """Params of the ``is`` action {Data, Req}: the request and the whole snapshot."""

    req: InstallSnapshotRequest | None = None
    data: bytes | None = None


@dataclass(slots=True)
class FsmSnapshot:
    """The FSM snapshot document {State: {key: value}}."""

    state: dict[str, bytes] = field(default_factory=dict)


__all__ = [
    "AddVoterRequest",
    "AddVoterResponse",
    "ApplyRequest",
    "ApplyResponse",
    "FsmSnapshot",
    "InstallSnapshotWithData",
    "RemoveServerRequest",
    "RemoveServerResponse",
    "RpcReply",
]

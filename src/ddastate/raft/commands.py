"""The RPC messages between members, with hashicorp/raft v1.7's fields.

The RPC header (``protocol_version``, ``id``, ``addr``) is flattened into every message,
as the Go encoder does. Byte fields hold raw bytes (server ids and addresses as UTF-8).
"""

from __future__ import annotations

from dataclasses import dataclass

from .log import Log

PROTOCOL_VERSION = 3
SNAPSHOT_VERSION = 1


@dataclass(slots=True)
class AppendEntriesRequest:
    term: int = 0
    leader: bytes | None = None
    prev_log_entry: int = 0
    prev_log_term: int = 0
    entries: list[Log] | None = None
    leader_commit_index: int = 0
    protocol_version: int = PROTOCOL_VERSION
    id: bytes | None = None
    addr: bytes | None = None

    def is_heartbeat(self) -> bool:
        """True for the shape the transport may answer on its fast path (WIRE.md 2)."""
        return (
            self.term != 0
            and bool(self.addr)
            and self.prev_log_entry == 0
            and self.prev_log_term == 0
            and not self.entries
            and self.leader_commit_index == 0
        )


@dataclass(slots=True)
class AppendEntriesResponse:
    term: int = 0
    last_log: int = 0
    success: bool = False
    no_retry_backoff: bool = False
    protocol_version: int = PROTOCOL_VERSION
    id: bytes | None = None
    addr: bytes | None = None


@dataclass(slots=True)
class RequestVoteRequest:
    term: int = 0
    candidate: bytes | None = None
    last_log_index: int = 0
    last_log_term: int = 0
    leadership_transfer: bool = False
    protocol_version: int = PROTOCOL_VERSION
    id: bytes | None = None
    addr: bytes | None = None


@dataclass(slots=True)
class RequestVoteResponse:
    term: int = 0
    peers: bytes | None = None
    granted: bool = False
    protocol_version: int = PROTOCOL_VERSION
    id: bytes | None = None
    addr: bytes | None = None


@dataclass(slots=True)
class RequestPreVoteRequest:
    """Pre-vote (hashicorp v1.7 ``RequestPreVoteRequest``); never sent to Go members."""

    term: int = 0
    last_log_index: int = 0
    last_log_term: int = 0
    protocol_version: int = PROTOCOL_VERSION
    id: bytes | None = None
    addr: bytes | None = None


@dataclass(slots=True)
class RequestPreVoteResponse:
    term: int = 0
    granted: bool = False
    protocol_version: int = PROTOCOL_VERSION
    id: bytes | None = None
    addr: bytes | None = None


@dataclass(slots=True)
class InstallSnapshotRequest:
    snapshot_version: int = SNAPSHOT_VERSION
    term: int = 0
    leader: bytes | None = None
    last_log_index: int = 0
    last_log_term: int = 0
    peers: bytes | None = None
    configuration: bytes | None = None
    configuration_index: int = 0
    size: int = 0
    protocol_version: int = PROTOCOL_VERSION
    id: bytes | None = None
    addr: bytes | None = None


@dataclass(slots=True)
class InstallSnapshotResponse:
    term: int = 0
    success: bool = False
    protocol_version: int = PROTOCOL_VERSION
    id: bytes | None = None
    addr: bytes | None = None


@dataclass(slots=True)
class TimeoutNowRequest:
    protocol_version: int = PROTOCOL_VERSION
    id: bytes | None = None
    addr: bytes | None = None


@dataclass(slots=True)
class TimeoutNowResponse:
    protocol_version: int = PROTOCOL_VERSION
    id: bytes | None = None
    addr: bytes | None = None


Request = (
    AppendEntriesRequest
    | RequestVoteRequest
    | RequestPreVoteRequest
    | InstallSnapshotRequest
    | TimeoutNowRequest
)
Response = (
    AppendEntriesResponse
    | RequestVoteResponse
    | RequestPreVoteResponse
    | InstallSnapshotResponse
    | TimeoutNowResponse
)

__all__ = [
    "PROTOCOL_VERSION",
    "SNAPSHOT_VERSION",
    "AppendEntriesRequest",
    "AppendEntriesResponse",
    "InstallSnapshotRequest",
    "InstallSnapshotResponse",
    "Request",
    "RequestPreVoteRequest",
    "RequestPreVoteResponse",
    "RequestVoteRequest",
    "RequestVoteResponse",
    "Response",
    "TimeoutNowRequest",
    "TimeoutNowResponse",
]

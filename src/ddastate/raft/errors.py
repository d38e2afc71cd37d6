"""Errors of the consensus library, with hashicorp/raft's names and messages.

Each class has a Pythonic name and an alias with hashicorp's (``ErrNotLeader`` ...).
``str(error)`` is hashicorp's message, which also travels over the wire in
leader-forwarding replies.
"""

from __future__ import annotations


class RaftError(Exception):
    """Base class of every error raised by ddastate.raft."""

    message = "raft error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.message)


class NotLeaderError(RaftError):
    message = "node is not the leader"


class LeadershipLostError(RaftError):
    message = "leadership lost while committing log"


class AbortedByRestoreError(RaftError):
    message = "snapshot restored while committing log"


class RaftShutdownError(RaftError):
    message = "raft is already shutdown"


class EnqueueTimeoutError(RaftError):
    message = "timed out enqueuing operation"


class NothingNewToSnapshotError(RaftError):
    message = "nothing new to snapshot"


class UnsupportedProtocolError(RaftError):
    message = "operation not supported with current protocol version"


class PipelineReplicationNotSupportedError(RaftError):
    message = "pipeline replication not supported"


class TransportShutdownError(RaftError):
    message = "transport shutdown"


class PipelineShutdownError(RaftError):
    message = "append pipeline closed"


class KnownPeerError(RaftError):
    message = "peer already known"


class UnknownPeerError(RaftError):
    message = "peer is unknown"


class LeadershipTransferInProgressError(RaftError):
    message = "leadership transfer in progress"


class NotVoterError(RaftError):
    message = "node is not a voter"


class CantBootstrapError(RaftError):
    message = "bootstrap only works on new clusters"


class LogNotFoundError(RaftError):
    message = "log not found"


class KeyNotFoundError(RaftError, KeyError):
    """A stable-store key is missing; the message is "not found" as hashicorp expects."""

    message = "not found"

    def __str__(self) -> str:
        return self.message


ErrNotLeader = NotLeaderError
ErrLeadershipLost = LeadershipLostError
ErrAbortedByRestore = AbortedByRestoreError
ErrRaftShutdown = RaftShutdownError
ErrEnqueueTimeout = EnqueueTimeoutError
ErrNothingNewToSnapshot = NothingNewToSnapshotError
ErrUnsupportedProtocol = UnsupportedProtocolError
ErrPipelineReplicationNotSupported = PipelineReplicationNotSupportedError
ErrTransportShutdown = TransportShutdownError
ErrPipelineShutdown = PipelineShutdownError
ErrKnownPeer = KnownPeerError
ErrUnknownPeer = UnknownPeerError
ErrLeadershipTransferInProgress = LeadershipTransferInProgressError
ErrNotVoter = NotVoterError
ErrCantBootstrap = CantBootstrapError
ErrLogNotFound = LogNotFoundError
ErrKeyNotFound = KeyNotFoundError

"""ddastate.state.raft: the state synchronization binding over the Raft consensus library.

``RaftBinding`` is the public API (``ddastate.state.new("raft")`` returns one);
``RaftFsm`` the replicated dictionary, ``RaftTransport`` the Raft transport over the
communication API with leader forwarding, ``RaftStore`` the durable log, stable and
snapshot stores, and ``codec`` the Go-compatible MessagePack encoding.
"""

from __future__ import annotations

from .binding import BindingNotOpenError, BindingOptions, RaftBinding, StateBindingError
from .fsm import FsmError, RaftFsm, RaftFsmSnapshot
from .transport import (
    DEFAULT_INSTALL_SNAPSHOT_TIMEOUT_SCALE,
    DEFAULT_RPC_TIMEOUT,
    LfwRejectedError,
    LfwRPC,
    RaftTransport,
    RaftTransportConfig,
    RpcError,
)

__all__ = [
    "DEFAULT_INSTALL_SNAPSHOT_TIMEOUT_SCALE",
    "DEFAULT_RPC_TIMEOUT",
    "BindingNotOpenError",
    "BindingOptions",
    "FsmError",
    "LfwRPC",
    "LfwRejectedError",
    "RaftBinding",
    "RaftFsm",
    "RaftFsmSnapshot",
    "RaftTransport",
    "RaftTransportConfig",
    "RpcError",
    "StateBindingError",
]

"""ddastate.state: the state synchronization service (API and binding factory)."""

from __future__ import annotations

from .api import Input, InputOp, MembershipChange, State, StateApi

PROTOCOLS = ("raft",)
"""Consensus protocols :func:`new` knows."""


class UnsupportedProtocolError(ValueError):
    """``new`` was asked for a consensus protocol it does not know."""


def new(protocol: str) -> StateApi:
    """A new, unopened state synchronization binding for ``protocol`` ("raft").

    Raises UnsupportedProtocolError for any other protocol.
    """
    if protocol == "raft":
        from .raft.binding import RaftBinding

        return RaftBinding()
    raise UnsupportedProtocolError(
        f"consensus protocol {protocol!r}: not supported (supported: {', '.join(PROTOCOLS)})"
    )


__all__ = [
    "PROTOCOLS",
    "Input",
    "InputOp",
    "MembershipChange",
    "State",
    "StateApi",
    "UnsupportedProtocolError",
    "new",
]

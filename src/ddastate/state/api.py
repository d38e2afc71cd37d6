"""The state synchronization API: inputs, membership changes and the StateApi protocol."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ddastate.com.api import ComApi
    from ddastate.config import Config

State = dict[str, bytes]
"""The replicated state: a dictionary of string keys to byte values."""


class InputOp(IntEnum):
    """The operation of an Input (the reference's numbering)."""

    UNDEFINED = 0
    SET = 1
    DELETE = 2


@dataclass(frozen=True, slots=True)
class Input:
    """A proposed or observed change of one key."""

    op: InputOp
    key: str
    value: bytes | None = None


@dataclass(frozen=True, slots=True)
class MembershipChange:
    """A member (by identity id) joined or left the state group."""

    id: str
    joined: bool


class StateApi(Protocol):
    """What every state synchronization binding offers."""

    async def open(self, cfg: Config, com: ComApi) -> None:
        """Join or bootstrap the group; returns once this member is part of it."""

    async def close(self) -> None:
        """Leave the group; storage is kept. A second call does nothing."""

    async def propose_input(self, input: Input, timeout: float | None = None) -> None:
        """Propose a change; returns once it is committed and applied on the leader."""

    async def observe_state_change(self) -> AsyncIterator[Input]:
        """Synthetic SETs for the current state, then every committed change in order."""

    async def observe_membership_change(self) -> AsyncIterator[MembershipChange]:
        """Current members as joined, then every join and leave."""

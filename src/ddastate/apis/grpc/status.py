"""What the admin service reports: a plain snapshot of one member's view of its group."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class MemberInfo:
    """One server of the Raft configuration."""

    id: str
    suffrage: str = "voter"
    leader: bool = False


@dataclass(frozen=True, slots=True)
class StatusInfo:
    """This member's role, term, indexes and the members it knows of."""

    id: str
    name: str = ""
    cluster: str = ""
    state_enabled: bool = True
    role: str = ""
    leader_id: str = ""
    term: int = 0
    commit_index: int = 0
    applied_index: int = 0
    last_log_index: int = 0
    members: tuple[MemberInfo, ...] = field(default_factory=tuple)
    com_protocol: str = ""
    version: str = ""


StatusSource = Callable[[], Awaitable[StatusInfo]]
"""An async callable that returns the current StatusInfo."""

"""Majority arithmetic over the voters of a configuration."""

from __future__ import annotations

from collections.abc import Iterable


def quorum_size(voters: int) -> int:
    """Votes needed out of ``voters``: a strict majority."""
    return voters // 2 + 1


def committed_index(matches: list[int]) -> int:
    """The highest index replicated on a majority, given each voter's match index."""
    if not matches:
        return 0
    if len(matches) == 1:
        return matches[0]
    s = sorted(matches, reverse=True)
    return s[len(s) // 2]


def has_quorum(granted: Iterable[str], voters: Iterable[str]) -> bool:
    """True when the ids in ``granted`` are a majority of ``voters``."""
    vs = set(voters)
    if not vs:
        return False
    return len(vs.intersection(granted)) >= quorum_size(len(vs))


__all__ = ["committed_index", "has_quorum", "quorum_size"]

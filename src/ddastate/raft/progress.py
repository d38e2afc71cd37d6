"""What a leader knows about replication to one peer."""

from __future__ import annotations

from collections import deque

from .commands import AppendEntriesRequest, InstallSnapshotRequest

FAILURE_WAIT = 0.01
"""Base of the retry backoff after a failed request (hashicorp's failureWait)."""


def backoff(failures: int, limit: float) -> float:
    """Delay before retrying after ``failures`` consecutive failures.

    10 ms for up to two failures, then doubling, never above ``limit``.
    """
    if failures <= 0:
        return 0.0
    power = min(failures, 12)
    wait = FAILURE_WAIT
    while power > 2:
        wait *= 2
        power -= 1
    return min(wait, limit)


class Progress:
    """Replication state of one follower (or nonvoter) as seen by the leader.

    ``next``: the next index to send; ``match``: highest index known replicated.
    ``inflight``: AppendEntries sent and not answered, oldest first. At most one
    is in flight unless ``pipelining`` (set after a success when the transport can
    pipeline, cleared by any failure or rejection, as hashicorp does).
    """

    __slots__ = (
        "addr",
        "commit_sent",
        "failures",
        "heartbeat_failed",
        "id",
        "inflight",
        "last_contact",
        "last_send",
        "match",
        "next",
        "pipelining",
        "retry_at",
        "snapshot_inflight",
    )

    def __init__(self, peer_id: str, addr: str, next_index: int, now: float) -> None:
        self.id = peer_id
        self.addr = addr
        self.next = next_index
        self.match = 0
        self.inflight: deque[AppendEntriesRequest] = deque()
        self.pipelining = False
        self.failures = 0
        self.retry_at = 0.0
        self.last_contact = now
        self.commit_sent = 0
        self.last_send = now
        self.snapshot_inflight: InstallSnapshotRequest | None = None
        self.heartbeat_failed = False

    def take_inflight(self, req: AppendEntriesRequest) -> bool:
        """Forget ``req`` from the in-flight window; False if it was not there."""
        inflight = self.inflight
        if inflight and inflight[0] is req:
            inflight.popleft()
            return True
        for i, r in enumerate(inflight):
            if r is req:
                del inflight[i]
                return True
        return False

    def reset_to_probe(self) -> None:
        """Stop pipelining and forget everything in flight."""
        self.inflight.clear()
        self.pipelining = False
        self.commit_sent = 0  # what was in flight may never have arrived


__all__ = ["Progress", "backoff"]

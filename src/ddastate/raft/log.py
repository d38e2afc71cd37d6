"""Log entries, shaped like hashicorp/raft's ``Log``."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum


class LogType(IntEnum):
    """The kind of a log entry; the numbers are hashicorp/raft's and go over the wire."""

    COMMAND = 0
    NOOP = 1
    ADD_PEER_DEPRECATED = 2
    REMOVE_PEER_DEPRECATED = 3
    BARRIER = 4
    CONFIGURATION = 5


@dataclass(slots=True)
class Log:
    """One entry of the replicated log.

    ``appended_at`` is the leader's wall-clock time when it appended the entry, in
    nanoseconds since the Unix epoch, or ``None`` for Go's zero time. It is
    informational only: the consensus core never reads it.

    An entry does not change once it is in a log. ``encoded`` is where a wire codec may
    keep the entry's encoding, so that a leader encodes each entry once for every
    follower's AppendEntries and its own log store (not compared, not shown, not an
    argument of the constructor).
    """

    index: int
    term: int
    type: LogType = LogType.COMMAND
    data: bytes | None = None
    extensions: bytes | None = None
    appended_at: int | None = None
    encoded: bytes | None = field(default=None, init=False, repr=False, compare=False)

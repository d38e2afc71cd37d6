"""Value types exchanged between the deterministic core and its driver.

The core (:mod:`ddastate.raft.core`) takes inputs through method calls and hands back
everything that must happen next as one :class:`Ready` batch. These are the types of
that batch and of the core's construction inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from .commands import Request, Response
from .configuration import Configuration
from .log import Log


class Role(Enum):
    """The role of one member (hashicorp's RaftState without Shutdown)."""

    FOLLOWER = "Follower"
    CANDIDATE = "Candidate"
    LEADER = "Leader"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class HardState:
    """What must be durable before anything of the same Ready leaves the member.

    Stored by hashicorp under the stable-store keys ``CurrentTerm``, ``LastVoteTerm``
    and ``LastVoteCand`` (the candidate's encoded peer bytes, empty for none).
    """

    current_term: int = 0
    last_vote_term: int = 0
    last_vote_cand: bytes = b""


@dataclass(frozen=True, slots=True)
class SoftState:
    """Volatile state reported when it changes: role, term and the known leader."""

    role: Role
    term: int
    leader_id: str
    leader_addr: str


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    """The newest snapshot a member has: what the core needs to know of it."""

    index: int
    term: int
    configuration: Configuration
    configuration_index: int


@dataclass(slots=True)
class CoreConfig:
    """Settings of the core; durations are seconds of the driver's monotonic clock.

    Attributes:
        local_id, local_addr: this member's server id and address.
        heartbeat_timeout: a follower without leader contact for a random time in
            [T, 2T) becomes a candidate; a leader sends heartbeats every T/10.
        election_timeout: a candidate without a result in a random time in [T, 2T)
            starts a new election; also the leadership-transfer time limit.
        commit_timeout: an idle follower learns a new commit index within this time.
        leader_lease_timeout: a leader without contact from a quorum this long steps down.
        max_append_entries: entries per AppendEntries message.
        pipeline: the transport delivers requests to a peer in order, so up to
            ``pipeline_window`` AppendEntries may be in flight per follower.
        pipeline_window: AppendEntries in flight per follower when pipelining.
        pre_vote: run a pre-vote round before a real election.
        trailing_logs: entries kept behind the last log index when compacting.
        shutdown_on_remove: report ``removed`` when this member leaves the configuration.
    """

    local_id: str
    local_addr: str = ""
    heartbeat_timeout: float = 1.0
    election_timeout: float = 1.0
    commit_timeout: float = 0.05
    leader_lease_timeout: float = 0.5
    max_append_entries: int = 64
    pipeline: bool = True
    pipeline_window: int = 128
    pre_vote: bool = False
    trailing_logs: int = 10240
    shutdown_on_remove: bool = True

    def __post_init__(self) -> None:
        if not self.local_addr:
            self.local_addr = self.local_id


@dataclass(slots=True)
class Message:
    """A request the driver must send to peer ``to_id`` at ``to_addr``.

    The driver passes the very same request object back to ``RaftCore.on_response``
    or ``RaftCore.on_failure`` (exactly one of them, at most once; duplicates and
    late answers are tolerated and ignored when stale).
    For an InstallSnapshotRequest the driver opens its newest snapshot, fills in
    ``size`` (and may substitute the fields of a newer snapshot than the core named)
    and streams the data.
    """

    to_id: str
    to_addr: str
    request: Request


@dataclass(slots=True)
class Reply:
    """A response to the incoming request that was stepped with ``token``."""

    token: object
    response: Response


class ChangeKind(Enum):
    """The four membership calls of hashicorp's API."""

    ADD_VOTER = "add_voter"
    ADD_NONVOTER = "add_nonvoter"
    REMOVE_SERVER = "remove_server"
    DEMOTE_VOTER = "demote_voter"


@dataclass(frozen=True, slots=True)
class ConfigurationChange:
    """A membership change request; ``prev_index`` 0 means "whatever is latest"."""

    kind: ChangeKind
    server_id: str
    server_addr: str = ""
    prev_index: int = 0


@dataclass(slots=True)
class SnapshotInstall:
    """A follower must install the snapshot streamed with the request of ``token``.

    The driver drains the stream into its snapshot store, checks the size, restores
    the FSM, and then calls ``RaftCore.on_snapshot_installed(token, ok)``. While an
    install is pending the driver must not step other requests (queue them).
    """

    token: object
    request: Request


@dataclass(slots=True)
class Ready:
    """Everything the driver must do after a batch of inputs, in this order:

    1. persist ``hard_state`` (if not None);
    2. in the log store: delete ``compact_to`` prefix (indexes <= it), delete from
       ``truncate_from`` on (indexes >= it), then append ``entries``;
    3. send ``messages`` and ``replies``. Rule: nothing may leave before ``hard_state``
       of this and every earlier Ready is durable. Replies (and all messages that are
       not AppendEntries requests) also wait until the log writes of this and earlier
       Readies are durable. Exceptions that may go out early: AppendEntries requests
       (a leader sends them while its own write is in flight: it counts itself only
       after ``on_persisted``), replies to heartbeat-shaped AppendEntries, and vote /
       pre-vote replies with ``granted=False``.
    4. after the writes of step 2 are durable, call
       ``core.on_persisted(entries[-1].index, entries[-1].term)`` (when entries were given);
    5. apply ``committed`` in order (they are durable locally and committed);
    6. handle the notifications (soft state, lost leadership, results, snapshots).
    """

    hard_state: HardState | None = None
    compact_to: int = 0
    truncate_from: int = 0
    entries: list[Log] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    replies: list[Reply] = field(default_factory=list)
    committed: list[Log] = field(default_factory=list)
    soft_state: SoftState | None = None
    leadership_lost_from: int = 0
    """If nonzero: leadership was lost; every proposal with an index >= this that is
    still pending fails with LeadershipLostError (lower ones commit normally)."""
    truncated_from: int = 0
    """If nonzero: entries from this index were removed from the log (a pending
    proposal there fails with LeadershipLostError)."""
    configuration_results: list[tuple[object, int | BaseException]] = field(default_factory=list)
    """Outcome of queued configuration changes: the log index, or an error."""
    verify_results: list[tuple[object, bool]] = field(default_factory=list)
    """verify_leader outcomes: True when a quorum confirmed us in this term."""
    transfer_results: list[tuple[object, BaseException | None]] = field(default_factory=list)
    """leadership transfer outcomes: None on success (we lost leadership), or an error."""
    snapshot_installs: list[SnapshotInstall] = field(default_factory=list)
    snapshot_installed: SnapshotInfo | None = None
    """A snapshot was installed from the leader: the core's new snapshot base."""
    removed: bool = False
    """This member was removed from the committed configuration (ShutdownOnRemove)."""
    configuration_changed: bool = False
    """The latest or committed configuration changed."""
    restored_from: int = 0
    """If nonzero: a user snapshot was restored; pending proposals with an index >= this
    fail with AbortedByRestoreError."""

    def empty(self) -> bool:
        """True if there is nothing to do."""
        return not (
            self.hard_state is not None
            or self.compact_to
            or self.truncate_from
            or self.entries
            or self.messages
            or self.replies
            or self.committed
            or self.soft_state is not None
            or self.leadership_lost_from
            or self.truncated_from
            or self.configuration_results
            or self.verify_results
            or self.transfer_results
            or self.snapshot_installs
            or self.snapshot_installed is not None
            or self.removed
            or self.configuration_changed
            or self.restored_from
        )


__all__ = [
    "ChangeKind",
    "ConfigurationChange",
    "CoreConfig",
    "HardState",
    "Message",
    "Ready",
    "Reply",
    "Role",
    "SnapshotInfo",
    "SnapshotInstall",
    "SoftState",
]

"""The deterministic Raft core of one member.

:class:`RaftCore` owns the Raft state of one member and changes it only in response
to method calls. It performs no I/O, reads no clock (time is the ``now`` the driver
passes, monotonic seconds) and draws randomness only from the ``random.Random`` it is
given. Everything that must happen next is collected into a :class:`~.ready.Ready`
that the driver takes with :meth:`RaftCore.ready` (see that class for the order of
duties: persist before send, apply only after durable).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence

from .commands import Request, Response
from .configuration import Configuration
from .log import Log, LogType
from .ready import (
    ConfigurationChange,
    CoreConfig,
    HardState,
    Ready,
    Role,
    SnapshotInfo,
)

logger = logging.getLogger(__name__)


class RaftCore:
    """Raft state machine of one member (see module docstring)."""

    def __init__(
        self,
        config: CoreConfig,
        rng: random.Random,
        now: float,
        hard_state: HardState | None = None,
        snapshot: SnapshotInfo | None = None,
        entries: Sequence[Log] = (),
    ) -> None:
        """Start as a follower from what the driver loaded from durable storage.

        ``entries`` are the log store's entries in index order (all of them; they may
        begin at or before ``snapshot.index + 1``). The log store must keep holding
        exactly the core's log: the driver mirrors every truncation, compaction and
        append the Readies ask for.
        """
        raise NotImplementedError

    # ------------------------------------------------------------ read-only state
    @property
    def role(self) -> Role:
        raise NotImplementedError

    @property
    def term(self) -> int:
        raise NotImplementedError

    @property
    def leader_id(self) -> str:
        raise NotImplementedError

    @property
    def leader_addr(self) -> str:
        raise NotImplementedError

    @property
    def commit_index(self) -> int:
        raise NotImplementedError

    @property
    def last_index(self) -> int:
        raise NotImplementedError

    @property
    def last_term(self) -> int:
        raise NotImplementedError

    @property
    def first_index(self) -> int:
        raise NotImplementedError

    @property
    def latest_configuration(self) -> Configuration:
        raise NotImplementedError

    @property
    def latest_configuration_index(self) -> int:
        raise NotImplementedError

    @property
    def committed_configuration(self) -> Configuration:
        raise NotImplementedError

    @property
    def committed_configuration_index(self) -> int:
        raise NotImplementedError

    @property
    def snapshot(self) -> SnapshotInfo | None:
        raise NotImplementedError

    @property
    def transfer_in_progress(self) -> bool:
        raise NotImplementedError

    # ------------------------------------------------------------------- inputs
    def tick(self, now: float) -> None:
        """Advance time to ``now`` (monotonic seconds, never decreasing)."""

    def next_deadline(self) -> float:
        """The time at which :meth:`tick` has something to do next."""
        raise NotImplementedError

    def step(self, request: Request, token: object, now: float) -> None:
        """Handle an incoming request; its reply will appear in ``Ready.replies``."""

    def on_response(self, to_id: str, request: Request, response: Response, now: float) -> None:
        """The answer to a request the core asked to send (the same request object)."""

    def on_failure(self, to_id: str, request: Request, now: float) -> None:
        """A request the core asked to send could not be delivered or timed out."""

    def on_persisted(self, index: int, term: int) -> None:
        """The log up to ``index`` (entry of ``term``) is durable."""

    def propose(
        self, data: bytes | None, type: LogType = LogType.COMMAND, appended_at: int | None = None
    ) -> int:
        """Append one entry as leader; returns its index.

        Raises NotLeaderError or LeadershipTransferInProgressError.
        """
        raise NotImplementedError

    def propose_batch(
        self,
        items: Sequence[tuple[LogType, bytes | None]],
        appended_at: int | None = None,
    ) -> int:
        """Append several entries at once (group commit); returns the first index."""
        raise NotImplementedError

    def change_configuration(self, change: ConfigurationChange, token: object) -> int | None:
        """Start a membership change; returns its log index, or None when queued."""
        raise NotImplementedError

    def verify_leader(self, token: object, now: float) -> None:
        """Confirm leadership with a quorum; the answer comes in ``Ready.verify_results``."""

    def transfer_leadership(self, token: object, now: float, target_id: str | None = None) -> None:
        """Hand leadership to ``target_id`` (or the most up-to-date voter)."""

    def on_snapshot_taken(self, info: SnapshotInfo) -> None:
        """The driver persisted a snapshot of the FSM at ``info.index``: compact."""

    def on_snapshot_installed(self, token: object, ok: bool) -> None:
        """The snapshot of a pending install was stored and restored (or failed)."""

    def snapshot_point(self, index: int) -> SnapshotInfo:
        """Term and configuration for a snapshot of the FSM at applied ``index``."""
        raise NotImplementedError

    def has_ready(self) -> bool:
        """True if :meth:`ready` would return a non-empty batch."""
        raise NotImplementedError

    def ready(self) -> Ready:
        """Take the batch of things to do accumulated since the last call."""
        raise NotImplementedError

"""State of the Raft core: construction, read-only views, log and configuration bookkeeping,
role changes and the helpers every part of the core uses."""

from __future__ import annotations

import logging
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from .commands import InstallSnapshotRequest, Request, Response, TimeoutNowRequest
from .configuration import Configuration, ConfigurationError, ServerSuffrage, decode_configuration
from .errors import LeadershipLostError
from .log import Log, LogType
from .progress import Progress
from .ready import (
    ConfigurationChange,
    CoreConfig,
    HardState,
    Message,
    Reply,
    Role,
    SnapshotInfo,
    SnapshotInstall,
    SoftState,
)

logger = logging.getLogger(__name__)

_VALID_TYPES = frozenset(int(t) for t in LogType)
_EMPTY = Configuration()
_FOREVER = float("inf")


@dataclass(slots=True)
class _Verify:
    token: object
    seq: int
    acks: set[str] = field(default_factory=set)


@dataclass(slots=True)
class _Transfer:
    token: object
    target: str
    deadline: float
    timeout_now: TimeoutNowRequest | None = None


def _text(b: bytes | None) -> str:
    if not b:
        return ""
    return b.decode("utf-8", errors="replace")


class CoreState:
    """State and bookkeeping shared by every part of the core (see :class:`~.core.RaftCore`)."""

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
        self.cfg = config
        self._rng = rng
        self._now = now
        self._id = config.local_id
        self._addr = config.local_addr
        self._addr_b = config.local_addr.encode()
        self._id_b = config.local_id.encode()
        hs = hard_state or HardState()
        self._term = hs.current_term
        self._vote_term = hs.last_vote_term
        self._vote_cand = hs.last_vote_cand
        self._role = Role.FOLLOWER
        self._leader_id = ""
        self._leader_addr = ""

        # log: in-memory tail mirroring the log store
        self._snap = snapshot
        self._snap_index = snapshot.index if snapshot else 0
        self._snap_term = snapshot.term if snapshot else 0
        ents = list(entries)
        for k in range(1, len(ents)):
            if ents[k].index != ents[k - 1].index + 1:
                raise ValueError("log entries given to the core are not contiguous")
        self._compact_to = 0
        self._truncate_from = 0
        if ents and snapshot is not None:
            if ents[0].index > self._snap_index + 1:
                raise ValueError("log entries leave a gap after the snapshot")
            if ents[-1].index < self._snap_index:
                # all covered by the snapshot: have the store drop them
                self._compact_to = ents[-1].index
                ents = []
            elif ents[0].index <= self._snap_index:
                t = ents[self._snap_index - ents[0].index].term
                if t != self._snap_term:
                    # the log disagrees with the snapshot (an install was interrupted
                    # before the log was cleared): discard it, Raft figure 13 rule 7
                    logger.warning(
                        "log conflicts with snapshot at %d; discarding it", self._snap_index
                    )
                    self._truncate_from = ents[0].index
                    ents = []
        self._entries: list[Log] = ents
        self._first = ents[0].index if ents else self._snap_index + 1
        self._commit = self._snap_index
        self._persisted = self.last_index
        self._emitted = self._snap_index
        self._unstable_from = self.last_index + 1

        # configurations
        self._committed_cfg = snapshot.configuration if snapshot else _EMPTY
        self._committed_cfg_index = snapshot.configuration_index if snapshot else 0
        self._pending_cfgs: list[tuple[int, Configuration]] = []
        for e in ents:
            if e.type == LogType.CONFIGURATION and e.index > self._committed_cfg_index:
                try:
                    c = decode_configuration(e.data)
                except ConfigurationError as err:
                    logger.error("configuration entry %d does not decode: %s", e.index, err)
                    continue
                self._pending_cfgs.append((e.index, c))
        self._move_committed_configs()
        self._infer_committed_configs()

        # timers and election state
        self._last_contact = now
        self._election_deadline = now + self._rand(config.heartbeat_timeout)
        self._votes: set[str] = set()
        self._prevote = False
        self._heartbeat_next = _FOREVER
        self._lease_next = _FOREVER

        # leader state
        self._progress: dict[str, Progress] = {}
        self._noop_index = 0
        self._queued_changes: deque[tuple[ConfigurationChange, object]] = deque()
        self._verifies: list[_Verify] = []
        self._send_seq = 0
        self._sent_seq: dict[int, int] = {}
        self._transfer: _Transfer | None = None

        # follower snapshot install
        self._install: tuple[object, InstallSnapshotRequest, Configuration] | None = None

        # pending outputs
        self._hs_dirty = False
        self._voters_of: Configuration | None = None
        self._restored_from = 0
        self._voters: list[str] = []
        self._messages: list[Message] = []
        self._replies: list[Reply] = []
        self._soft = self._soft_state()
        self._lost_from = 0
        self._truncated_from = 0
        self._cfg_results: list[tuple[object, int | BaseException]] = []
        self._verify_results: list[tuple[object, bool]] = []
        self._transfer_results: list[tuple[object, BaseException | None]] = []
        self._installs: list[SnapshotInstall] = []
        self._installed: SnapshotInfo | None = None
        self._removed = False
        self._cfg_changed = False
        self._need_flush = False

    @property
    def role(self) -> Role:
        return self._role

    @property
    def term(self) -> int:
        return self._term

    @property
    def leader_id(self) -> str:
        return self._leader_id

    @property
    def leader_addr(self) -> str:
        return self._leader_addr

    @property
    def commit_index(self) -> int:
        return self._commit

    @property
    def last_index(self) -> int:
        return self._first + len(self._entries) - 1 if self._entries else self._snap_index

    @property
    def last_term(self) -> int:
        return self._entries[-1].term if self._entries else self._snap_term

    @property
    def first_index(self) -> int:
        """Index of the first entry held in the log (last_index + 1 when empty)."""
        return self._first

    @property
    def persisted_index(self) -> int:
        return self._persisted

    @property
    def latest_configuration(self) -> Configuration:
        return self._pending_cfgs[-1][1] if self._pending_cfgs else self._committed_cfg

    @property
    def latest_configuration_index(self) -> int:
        return self._pending_cfgs[-1][0] if self._pending_cfgs else self._committed_cfg_index

    @property
    def committed_configuration(self) -> Configuration:
        return self._committed_cfg

    @property
    def committed_configuration_index(self) -> int:
        return self._committed_cfg_index

    @property
    def snapshot(self) -> SnapshotInfo | None:
        return self._snap

    @property
    def transfer_in_progress(self) -> bool:
        return self._transfer is not None

    @property
    def hard_state(self) -> HardState:
        return HardState(self._term, self._vote_term, self._vote_cand)

    def match_index(self, peer_id: str) -> int:
        """The leader's view of a peer's replicated index (0 when unknown)."""
        if peer_id == self._id:
            return self._persisted
        pr = self._progress.get(peer_id)
        return pr.match if pr else 0

    def last_contact(self, peer_id: str) -> float | None:
        """When the leader last heard from ``peer_id`` (None when not leader)."""
        pr = self._progress.get(peer_id)
        return pr.last_contact if pr else None

    def entry(self, index: int) -> Log | None:
        """The log entry at ``index`` if held in memory."""
        i = index - self._first
        if 0 <= i < len(self._entries):
            return self._entries[i]
        return None

    def term_at(self, index: int) -> int | None:
        """The term of the entry at ``index``; None when not known (compacted/absent)."""
        if index == 0:
            return 0
        i = index - self._first
        if 0 <= i < len(self._entries):
            return self._entries[i].term
        if index == self._snap_index:
            return self._snap_term
        return None

    def _rand(self, base: float) -> float:
        return base + self._rng.random() * base

    def _soft_state(self) -> SoftState:
        return SoftState(self._role, self._term, self._leader_id, self._leader_addr)

    def _soft_changed(self) -> bool:
        s = self._soft
        return (
            self._role is not s.role
            or self._term != s.term
            or self._leader_id != s.leader_id
            or self._leader_addr != s.leader_addr
        )

    def _is_voter(self, server_id: str) -> bool:
        cfg = self.latest_configuration
        for s in cfg.servers:
            if s.id == server_id:
                return s.suffrage == ServerSuffrage.VOTER
        return False

    def _voter_ids(self) -> list[str]:
        cfg = self.latest_configuration
        if cfg is not self._voters_of:
            self._voters_of = cfg
            self._voters = [s.id for s in cfg.servers if s.suffrage == ServerSuffrage.VOTER]
        return self._voters

    def _header(self, msg: Request | Response) -> None:
        msg.id = self._id_b
        msg.addr = self._addr_b

    def _send(self, to_id: str, to_addr: str, req: Request) -> None:
        self._messages.append(Message(to_id, to_addr, req))

    def _reply(self, token: object, resp: Response) -> None:
        resp.id = self._id_b
        resp.addr = self._addr_b
        self._replies.append(Reply(token, resp))

    def _set_term(self, term: int) -> None:
        if term != self._term:
            self._term = term
            self._hs_dirty = True

    def _infer_committed_configs(self) -> None:
        """A configuration entry followed by another one is committed (a leader appends
        a change only once the previous one committed; hashicorp infers the same)."""
        pend = self._pending_cfgs
        if len(pend) >= 2:
            self._committed_cfg_index, self._committed_cfg = pend[-2]
            del pend[:-1]
            self._cfg_changed = True

    def _move_committed_configs(self) -> None:
        pend = self._pending_cfgs
        n = 0
        while n < len(pend) and pend[n][0] <= self._commit:
            n += 1
        if n:
            self._committed_cfg_index, self._committed_cfg = pend[n - 1]
            del pend[:n]
            self._cfg_changed = True

    def _become_follower(self, term: int, leader_id: str = "", leader_addr: str = "") -> None:
        was_leader = self._role is Role.LEADER
        if term > self._term:
            self._set_term(term)
        self._role = Role.FOLLOWER
        self._leader_id = leader_id
        self._leader_addr = leader_addr
        self._votes = set()
        self._prevote = False
        # A newer term alone does not reset the election timer (only a granted vote or
        # leader contact does), else a candidate that cannot win keeps the one that
        # can from ever timing out.
        self._heartbeat_next = _FOREVER
        self._lease_next = _FOREVER
        if was_leader:
            self._election_deadline = self._now + self._rand(self.cfg.heartbeat_timeout)
            self._on_leadership_lost()

    def _on_leadership_lost(self) -> None:
        self._lost_from = self._commit + 1
        self._progress.clear()
        while self._queued_changes:
            _, token = self._queued_changes.popleft()
            self._cfg_results.append((token, LeadershipLostError()))
        for v in self._verifies:
            self._verify_results.append((v.token, False))
        self._verifies.clear()
        self._sent_seq.clear()
        if self._transfer is not None:
            # hashicorp: losing leadership during a transfer is the expected success
            self._transfer_results.append((self._transfer.token, None))
            self._transfer = None

    def _sync_progress(self) -> None:
        """Start or stop replication to peers after the latest configuration changed."""
        if self._role is not Role.LEADER:
            return
        cfg = self.latest_configuration
        ids = set()
        for s in cfg.servers:
            if s.id == self._id:
                continue
            ids.add(s.id)
            pr = self._progress.get(s.id)
            if pr is None:
                # start with the newest entry (the configuration that added it), so the
                # new member is probed at once
                nxt = max(self.last_index, 1)
                self._progress[s.id] = Progress(s.id, s.address, nxt, self._now)
            else:
                pr.addr = s.address
        for pid in list(self._progress):
            if pid not in ids:
                del self._progress[pid]
        self._need_flush = True

    def _append(self, new: list[Log]) -> None:
        """Leader append: assign index and term to ``new`` and add them."""
        idx = self.last_index
        term = self._term
        cfg_changed = False
        for e in new:
            idx += 1
            e.index = idx
            e.term = term
            if e.type == LogType.CONFIGURATION:
                self._pending_cfgs.append((idx, decode_configuration(e.data)))
                cfg_changed = True
        if not self._entries:
            self._first = new[0].index
        self._entries.extend(new)
        self._need_flush = True
        if cfg_changed:
            self._cfg_changed = True
            self._sync_progress()

    def _truncate(self, index: int) -> None:
        """Remove entries from ``index`` on (never committed ones)."""
        assert index > self._commit
        k = index - self._first
        if k < 0:
            k = 0
        del self._entries[k:]
        if not self._entries:
            self._first = index if index > self._snap_index else self._snap_index + 1
        if index < self._unstable_from:
            self._truncate_from = (
                index if not self._truncate_from else min(self._truncate_from, index)
            )
            self._unstable_from = index
        if self._persisted >= index:
            self._persisted = index - 1
        self._truncated_from = (
            index if not self._truncated_from else min(self._truncated_from, index)
        )
        if self._pending_cfgs and self._pending_cfgs[-1][0] >= index:
            self._pending_cfgs = [p for p in self._pending_cfgs if p[0] < index]
            self._cfg_changed = True

    def _compact(self, upto: int) -> None:
        """Drop entries up to ``upto`` (already covered by a snapshot)."""
        if upto < self._first:
            return
        k = upto - self._first + 1
        if k >= len(self._entries):
            self._entries = []
            self._first = upto + 1
        else:
            del self._entries[:k]
            self._first = upto + 1
        self._compact_to = max(self._compact_to, upto)

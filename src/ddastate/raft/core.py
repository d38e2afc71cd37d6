"""The deterministic Raft core of one member.

:class:`RaftCore` owns the Raft state of one member and changes it only in response
to method calls. It performs no I/O, reads no clock (time is the ``now`` the driver
passes, monotonic seconds) and draws randomness only from the ``random.Random`` it is
given. Everything that must happen next is collected into a :class:`~.ready.Ready`
that the driver takes with :meth:`RaftCore.ready` (see that class for the order of
duties: persist before send, apply only after durable).

Behaviour follows hashicorp/raft v1.7 where a Go peer can observe it (vote rules,
heartbeat shape, rejection hints, NoRetryBackoff, no-op on election, one membership
change at a time taking effect when appended).
"""

from __future__ import annotations

import logging
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from .commands import (
    AppendEntriesRequest,
    AppendEntriesResponse,
    InstallSnapshotRequest,
    InstallSnapshotResponse,
    Request,
    RequestPreVoteRequest,
    RequestPreVoteResponse,
    RequestVoteRequest,
    RequestVoteResponse,
    Response,
    TimeoutNowRequest,
    TimeoutNowResponse,
)
from .configuration import (
    Configuration,
    ConfigurationError,
    ServerSuffrage,
    decode_configuration,
    encode_configuration,
)
from .errors import (
    LeadershipLostError,
    LeadershipTransferInProgressError,
    NothingNewToSnapshotError,
    NotLeaderError,
    RaftError,
)
from .log import Log, LogType
from .membership import next_configuration
from .progress import Progress, backoff
from .quorum import committed_index, quorum_size
from .ready import (
    ConfigurationChange,
    CoreConfig,
    HardState,
    Message,
    Ready,
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

    # ------------------------------------------------------------ read-only state
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

    # ------------------------------------------------------------------ helpers
    def _rand(self, base: float) -> float:
        return base + self._rng.random() * base

    def _soft_state(self) -> SoftState:
        return SoftState(self._role, self._term, self._leader_id, self._leader_addr)

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

    # ------------------------------------------------------------------- roles
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

    def _can_campaign(self) -> bool:
        """A voter of the latest configuration may campaign; so may a voter of the
        committed one while a newer configuration is uncommitted (Raft thesis 4.2.2:
        it may still be needed to commit that change; it does not count its own vote).
        """
        if self._is_voter(self._id):
            return True
        return bool(self._pending_cfgs) and self._committed_cfg.is_voter(self._id)

    def _campaign(self, transfer: bool = False) -> None:
        if not self._can_campaign():
            logger.debug("%s: not a voter, not campaigning", self._id)
            self._election_deadline = self._now + self._rand(self.cfg.heartbeat_timeout)
            return
        self._role = Role.CANDIDATE
        self._leader_id = ""
        self._leader_addr = ""
        self._votes = {self._id}
        self._election_deadline = self._now + self._rand(self.cfg.election_timeout)
        last_idx, last_term = self.last_index, self.last_term
        if self.cfg.pre_vote and not transfer:
            self._prevote = True
            for s in self.latest_configuration.servers:
                if s.id == self._id or s.suffrage != ServerSuffrage.VOTER:
                    continue
                req = RequestPreVoteRequest(
                    term=self._term + 1, last_log_index=last_idx, last_log_term=last_term
                )
                self._header(req)
                self._send(s.id, s.address, req)
            self._check_prevote_won()
            return
        self._start_election(transfer)

    def _start_election(self, transfer: bool) -> None:
        self._prevote = False
        self._set_term(self._term + 1)
        self._vote_term = self._term
        self._vote_cand = self._addr_b
        self._hs_dirty = True
        self._votes = {self._id}
        self._election_deadline = self._now + self._rand(self.cfg.election_timeout)
        logger.debug("%s: campaigning in term %d", self._id, self._term)
        last_idx, last_term = self.last_index, self.last_term
        for s in self.latest_configuration.servers:
            if s.id == self._id or s.suffrage != ServerSuffrage.VOTER:
                continue
            req = RequestVoteRequest(
                term=self._term,
                candidate=self._addr_b,
                last_log_index=last_idx,
                last_log_term=last_term,
                leadership_transfer=transfer,
            )
            self._header(req)
            self._send(s.id, s.address, req)
        self._check_won()

    def _check_prevote_won(self) -> None:
        voters = self._voter_ids()
        if len(self._votes.intersection(voters)) >= quorum_size(len(voters)):
            self._start_election(False)

    def _check_won(self) -> None:
        voters = self._voter_ids()
        if len(self._votes.intersection(voters)) >= quorum_size(len(voters)):
            self._become_leader()

    def _become_leader(self) -> None:
        logger.debug("%s: leader in term %d", self._id, self._term)
        self._role = Role.LEADER
        self._leader_id = self._id
        self._leader_addr = self._addr
        self._votes = set()
        self._prevote = False
        self._progress = {}
        nxt = self.last_index + 1
        for s in self.latest_configuration.servers:
            if s.id != self._id:
                self._progress[s.id] = Progress(s.id, s.address, nxt, self._now)
        self._heartbeat_next = self._now
        self._lease_next = self._now + self.cfg.leader_lease_timeout
        self._append([Log(index=0, term=0, type=LogType.NOOP)])
        self._noop_index = self.last_index

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

    # --------------------------------------------------------------------- log
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
        # a leader alone counts itself only once persisted: nothing to do here

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

    # ------------------------------------------------------------------- timers
    def tick(self, now: float) -> None:
        """Advance time to ``now`` (monotonic seconds, never decreasing)."""
        if now > self._now:
            self._now = now
        now = self._now
        role = self._role
        if role is Role.LEADER:
            if now >= self._heartbeat_next:
                self._send_heartbeats()
            if now >= self._lease_next:
                self._check_lease()
                if self._role is not Role.LEADER:
                    return
            tr = self._transfer
            if tr is not None and now >= tr.deadline:
                self._transfer = None
                self._transfer_results.append((tr.token, RaftError("leadership transfer timeout")))
            self._need_flush = True
            return
        if self._install is not None:
            self._last_contact = now
        if now < self._election_deadline:
            return
        if role is Role.FOLLOWER:
            if now - self._last_contact < self.cfg.heartbeat_timeout:
                self._election_deadline = now + self._rand(self.cfg.heartbeat_timeout)
                return
            if self._leader_id:
                logger.debug("%s: heartbeat timeout, leader %s lost", self._id, self._leader_id)
            self._leader_id = ""
            self._leader_addr = ""
            self._campaign()
        else:
            self._campaign()

    def next_deadline(self) -> float:
        """The time at which :meth:`tick` has something to do next."""
        if self._role is Role.LEADER:
            d = min(self._heartbeat_next, self._lease_next)
            if self._transfer is not None:
                d = min(d, self._transfer.deadline)
            ct = self.cfg.commit_timeout
            for pr in self._progress.values():
                if pr.snapshot_inflight is not None:
                    continue
                if pr.retry_at > self._now:
                    d = min(d, pr.retry_at)
                elif pr.commit_sent < self._commit and not pr.inflight:
                    d = min(d, pr.last_send + ct)
            return d
        return self._election_deadline

    def _send_heartbeats(self) -> None:
        self._heartbeat_next = self._now + self.cfg.heartbeat_timeout / 10
        for pr in self._progress.values():
            req = AppendEntriesRequest(term=self._term, leader=self._addr_b)
            self._header(req)
            self._send(pr.id, pr.addr, req)

    def _check_lease(self) -> None:
        lease = self.cfg.leader_lease_timeout
        self._lease_next = self._now + lease
        voters = self._voter_ids()
        contacted = 0
        for vid in voters:
            if vid == self._id:
                contacted += 1
                continue
            pr = self._progress.get(vid)
            if pr is not None and self._now - pr.last_contact <= lease:
                contacted += 1
        if voters and contacted < quorum_size(len(voters)):
            logger.warning("%s: failed to contact quorum of nodes, stepping down", self._id)
            self._become_follower(self._term)

    # -------------------------------------------------------------- incoming RPCs
    def step(self, request: Request, token: object, now: float) -> None:
        """Handle an incoming request; its reply will appear in ``Ready.replies``.

        Every request gets exactly one Reply, except an accepted InstallSnapshot (it
        goes through ``Ready.snapshot_installs`` first) and a request of unknown type
        (dropped with a log line; the driver answers it with an error).
        """
        if now > self._now:
            self._now = now
        try:
            if isinstance(request, AppendEntriesRequest):
                self._step_append(request, token)
            elif isinstance(request, RequestVoteRequest):
                self._step_vote(request, token)
            elif isinstance(request, RequestPreVoteRequest):
                self._step_prevote(request, token)
            elif isinstance(request, InstallSnapshotRequest):
                self._step_install(request, token)
            elif isinstance(request, TimeoutNowRequest):
                self._step_timeout_now(request, token)
            else:
                logger.warning("dropping request of unknown type %s", type(request).__name__)
        except (TypeError, AttributeError, ValueError) as e:  # malformed fields
            logger.warning("dropping malformed %s: %s", type(request).__name__, e)

    def _ae_reject(self, token: object, no_backoff: bool) -> None:
        self._reply(
            token,
            AppendEntriesResponse(
                term=self._term,
                last_log=self.last_index,
                success=False,
                no_retry_backoff=no_backoff,
            ),
        )

    def _valid_append(self, req: AppendEntriesRequest) -> str | None:
        if req.term < 0 or req.prev_log_entry < 0 or req.prev_log_term < 0:
            return "negative term or index"
        if req.leader_commit_index < 0:
            return "negative commit index"
        if req.prev_log_term > req.term:
            return "previous log term above the request term"
        ents = req.entries
        if ents:
            expect = req.prev_log_entry + 1
            t = req.prev_log_term
            for e in ents:
                if e.index != expect:
                    return f"entry index {e.index} where {expect} was expected"
                if e.term < t or e.term > req.term:
                    return f"entry {e.index} has term {e.term} out of order"
                if e.type not in _VALID_TYPES:
                    return f"entry {e.index} has unknown type {e.type}"
                if e.type == LogType.CONFIGURATION:
                    try:
                        decode_configuration(e.data)
                    except ConfigurationError as err:
                        return f"configuration entry {e.index} does not decode: {err}"
                t = e.term
                expect += 1
        return None

    def _step_append(self, req: AppendEntriesRequest, token: object) -> None:
        if req.term < self._term:
            self._ae_reject(token, False)
            return
        bad = self._valid_append(req)
        if bad is not None:
            logger.warning("dropping bad AppendEntries from %s: %s", _text(req.id), bad)
            self._ae_reject(token, False)
            return
        leader_id = _text(req.id)
        if req.term > self._term or self._role is not Role.FOLLOWER:
            if self._role is Role.LEADER and req.term == self._term:
                logger.error("%s: second leader %s in term %d", self._id, leader_id, req.term)
                self._ae_reject(token, False)
                return
            self._become_follower(req.term)
        self._leader_id = leader_id
        self._leader_addr = _text(req.leader) or _text(req.addr)
        self._last_contact = self._now

        prev = req.prev_log_entry
        last = self.last_index
        if prev > last:
            self._ae_reject(token, True)
            return
        if prev > self._commit and prev > self._snap_index:
            t = self.term_at(prev)
            if t != req.prev_log_term:
                self._ae_reject(token, True)
                return
        ents = req.entries
        if ents:
            # find the first entry not already in the log
            k = 0
            n = len(ents)
            while k < n:
                e = ents[k]
                idx = e.index
                if idx > last:
                    break
                if idx <= self._commit or idx < self._first:
                    k += 1
                    continue
                if self._entries[idx - self._first].term != e.term:
                    self._truncate(idx)
                    break
                k += 1
            if k < n:
                new = ents[k:] if k else ents
                if not self._entries:
                    self._first = new[0].index
                self._entries.extend(new)
                for e in new:
                    if e.type == LogType.CONFIGURATION:
                        self._pending_cfgs.append((e.index, decode_configuration(e.data)))
                        self._cfg_changed = True
                        self._infer_committed_configs()
        new_last = prev + (len(ents) if ents else 0)
        if req.leader_commit_index > self._commit:
            c = min(req.leader_commit_index, new_last)
            if c > self._commit:
                self._commit = c
                if self._pending_cfgs:
                    self._move_committed_configs()
        self._reply(
            token, AppendEntriesResponse(term=self._term, last_log=self.last_index, success=True)
        )

    def _known_leader_blocks(self, cand_id: str, cand_addr: str, transfer: bool) -> bool:
        if transfer:
            return False
        if self._role is Role.LEADER:
            return cand_id != self._id
        return bool(self._leader_id) and self._leader_id != cand_id

    def _log_ok(self, last_index: int, last_term: int) -> bool:
        my_term = self.last_term
        if my_term > last_term:
            return False
        return not (my_term == last_term and self.last_index > last_index)

    def _step_vote(self, req: RequestVoteRequest, token: object) -> None:
        cand_id = _text(req.id)
        cand = req.addr or req.candidate or b""
        resp = RequestVoteResponse(term=self._term, granted=False)
        cfg = self.latest_configuration
        if cfg.servers and cfg.get(cand_id) is None:
            logger.warning(
                "%s: rejecting vote request since node is not in configuration: %s",
                self._id,
                cand_id,
            )
            self._reply(token, resp)
            return
        if self._known_leader_blocks(cand_id, _text(cand), req.leadership_transfer):
            logger.debug("%s: rejecting vote request since we have a leader", self._id)
            self._reply(token, resp)
            return
        if req.term < self._term:
            self._reply(token, resp)
            return
        if req.term > self._term:
            self._become_follower(req.term)
            resp.term = req.term
        if cfg.servers and not cfg.is_voter(cand_id):
            logger.warning("%s: rejecting vote request since node is not a voter", self._id)
            self._reply(token, resp)
            return
        if self._vote_term == req.term and self._vote_cand:
            resp.granted = self._vote_cand == cand
            self._reply(token, resp)
            return
        if not self._log_ok(req.last_log_index, req.last_log_term):
            self._reply(token, resp)
            return
        self._vote_term = req.term
        self._vote_cand = cand
        self._hs_dirty = True
        resp.granted = True
        self._last_contact = self._now
        self._election_deadline = self._now + self._rand(self.cfg.heartbeat_timeout)
        self._reply(token, resp)

    def _step_prevote(self, req: RequestPreVoteRequest, token: object) -> None:
        cand_id = _text(req.id)
        resp = RequestPreVoteResponse(term=self._term, granted=False)
        cfg = self.latest_configuration
        if cfg.servers and not cfg.is_voter(cand_id):
            self._reply(token, resp)
            return
        if self._known_leader_blocks(cand_id, _text(req.addr), False):
            self._reply(token, resp)
            return
        if req.term < self._term:
            self._reply(token, resp)
            return
        resp.granted = self._log_ok(req.last_log_index, req.last_log_term)
        self._reply(token, resp)

    def _step_timeout_now(self, req: TimeoutNowRequest, token: object) -> None:
        logger.info("%s: received TimeoutNow from %s, campaigning", self._id, _text(req.id))
        if self._role is not Role.LEADER:
            self._become_follower(self._term)
            self._campaign(transfer=True)
        self._reply(token, TimeoutNowResponse())

    def _step_install(self, req: InstallSnapshotRequest, token: object) -> None:
        resp = InstallSnapshotResponse(term=self._term, success=False)
        if req.term < self._term:
            self._reply(token, resp)
            return
        if (
            req.last_log_index <= 0
            or req.last_log_term <= 0
            or req.last_log_term > req.term
            or req.size < 0
            or req.configuration_index < 0
            or req.configuration_index > req.last_log_index
        ):
            logger.warning("rejecting InstallSnapshot from %s: bad fields", _text(req.id))
            self._reply(token, resp)
            return
        try:
            conf = decode_configuration(req.configuration)
        except ConfigurationError as e:
            logger.warning("rejecting InstallSnapshot from %s: %s", _text(req.id), e)
            self._reply(token, resp)
            return
        if req.term > self._term or self._role is not Role.FOLLOWER:
            if self._role is Role.LEADER and req.term == self._term:
                self._reply(token, resp)
                return
            self._become_follower(req.term)
            resp.term = self._term
        self._leader_id = _text(req.id)
        self._leader_addr = _text(req.leader) or _text(req.addr)
        self._last_contact = self._now
        if self._install is not None:
            logger.warning("InstallSnapshot while another is pending; rejecting")
            self._reply(token, resp)
            return
        if req.last_log_index <= self._commit:
            # we already have everything it covers (committed entries never differ)
            resp.success = self.term_at(req.last_log_index) in (None, req.last_log_term)
            if not resp.success:
                logger.error(
                    "InstallSnapshot conflicts with committed entry %d", req.last_log_index
                )
            self._reply(token, resp)
            return
        self._install = (token, req, conf)
        self._installs.append(SnapshotInstall(token, req))

    def on_snapshot_installed(self, token: object, ok: bool) -> None:
        """The snapshot of a pending install was stored and restored (or failed)."""
        inst = self._install
        if inst is None or inst[0] is not token:
            logger.warning("on_snapshot_installed for an unknown install")
            return
        self._install = None
        _, req, conf = inst
        if not ok:
            self._reply(token, InstallSnapshotResponse(term=self._term, success=False))
            return
        idx, term = req.last_log_index, req.last_log_term
        info = SnapshotInfo(idx, term, conf, req.configuration_index)
        if self.term_at(idx) == term and idx <= self.last_index:
            # our log agrees at the snapshot index: keep the suffix
            self._snap, self._snap_index, self._snap_term = info, idx, term
            self._compact(min(idx, self.last_index - self.cfg.trailing_logs))
            self._pending_cfgs = [p for p in self._pending_cfgs if p[0] > idx]
        else:
            # Raft figure 13 rule 7: discard the whole log
            if self._entries:
                first = self._first
                self._truncate_from = (
                    first if not self._truncate_from else min(self._truncate_from, first)
                )
                self._truncated_from = (
                    first if not self._truncated_from else min(self._truncated_from, first)
                )
            self._entries = []
            self._snap, self._snap_index, self._snap_term = info, idx, term
            self._first = idx + 1
            self._unstable_from = idx + 1
            self._persisted = idx
            self._pending_cfgs = []
        if idx > self._persisted:
            self._persisted = idx
        if idx > self._commit:
            self._commit = idx
        if idx > self._emitted:
            self._emitted = idx
        if req.configuration_index >= self._committed_cfg_index:
            self._committed_cfg = conf
            self._committed_cfg_index = req.configuration_index
        self._cfg_changed = True
        self._installed = info
        self._reply(token, InstallSnapshotResponse(term=self._term, success=True))

    # --------------------------------------------------------- responses to us
    def on_response(self, to_id: str, request: Request, response: Response, now: float) -> None:
        """The answer to a request the core asked to send (the same request object)."""
        if now > self._now:
            self._now = now
        try:
            rterm = response.term if not isinstance(response, TimeoutNowResponse) else 0
            if rterm > self._term:
                logger.debug("%s: peer %s has newer term %d", self._id, to_id, rterm)
                self._become_follower(rterm)
                return
            if isinstance(request, AppendEntriesRequest) and isinstance(
                response, AppendEntriesResponse
            ):
                self._on_append_response(to_id, request, response)
            elif isinstance(request, RequestVoteRequest) and isinstance(
                response, RequestVoteResponse
            ):
                if (
                    self._role is Role.CANDIDATE
                    and not self._prevote
                    and request.term == self._term
                    and response.granted
                ):
                    self._votes.add(to_id)
                    self._check_won()
            elif isinstance(request, RequestPreVoteRequest) and isinstance(
                response, RequestPreVoteResponse
            ):
                if (
                    self._role is Role.CANDIDATE
                    and self._prevote
                    and request.term == self._term + 1
                    and response.granted
                ):
                    self._votes.add(to_id)
                    self._check_prevote_won()
            elif isinstance(request, InstallSnapshotRequest) and isinstance(
                response, InstallSnapshotResponse
            ):
                self._on_install_response(to_id, request, response)
            elif isinstance(request, TimeoutNowRequest):
                pass
            else:
                logger.warning("response %s does not match request", type(response).__name__)
        except (TypeError, AttributeError, ValueError) as e:
            logger.warning("dropping malformed %s: %s", type(response).__name__, e)

    def _on_append_response(
        self, to_id: str, req: AppendEntriesRequest, resp: AppendEntriesResponse
    ) -> None:
        if self._role is not Role.LEADER or req.term != self._term:
            return
        pr = self._progress.get(to_id)
        if pr is None:
            return
        pr.last_contact = self._now
        if pr.heartbeat_failed:
            pr.heartbeat_failed = False
        if self._sent_seq:
            seq = self._sent_seq.pop(id(req), 0)
            if seq and self._verifies:
                self._verify_ack(to_id, seq)
        was_inflight = pr.take_inflight(req)
        if resp.success:
            ents = req.entries
            last = req.prev_log_entry + (len(ents) if ents else 0)
            if last > pr.match:
                pr.match = last
                if pr.next <= last:
                    pr.next = last + 1
                self._maybe_commit()
            if was_inflight:
                pr.failures = 0
                if self.cfg.pipeline and not pr.pipelining:
                    pr.pipelining = True
                self._need_flush = True
            tr = self._transfer
            if tr is not None and tr.target == to_id:
                self._maybe_timeout_now()
            return
        if not was_inflight:
            return  # stale rejection of something we already gave up on
        pr.reset_to_probe()
        pr.next = max(pr.match + 1, min(req.prev_log_entry, resp.last_log + 1))
        if resp.no_retry_backoff:
            pr.failures = 0
        else:
            pr.failures += 1
            pr.retry_at = self._now + backoff(pr.failures, self.cfg.heartbeat_timeout / 2)
        self._need_flush = True

    def _on_install_response(
        self, to_id: str, req: InstallSnapshotRequest, resp: InstallSnapshotResponse
    ) -> None:
        if self._role is not Role.LEADER or req.term != self._term:
            return
        pr = self._progress.get(to_id)
        if pr is None:
            return
        pr.last_contact = self._now
        if pr.snapshot_inflight is req:
            pr.snapshot_inflight = None
        if resp.success:
            if req.last_log_index > pr.match:
                pr.match = req.last_log_index
                self._maybe_commit()
            pr.next = max(pr.next, pr.match + 1)
            pr.failures = 0
        else:
            pr.failures += 1
            pr.retry_at = self._now + backoff(pr.failures, self.cfg.heartbeat_timeout / 2)
        self._need_flush = True

    def on_failure(self, to_id: str, request: Request, now: float) -> None:
        """A request the core asked to send could not be delivered or timed out."""
        if now > self._now:
            self._now = now
        if self._role is not Role.LEADER:
            return
        pr = self._progress.get(to_id)
        if pr is None:
            return
        if isinstance(request, AppendEntriesRequest):
            if request.term != self._term:
                return
            self._sent_seq.pop(id(request), None)
            if request.is_heartbeat():
                pr.heartbeat_failed = True
                return
            if not pr.take_inflight(request):
                return
            pr.reset_to_probe()
            pr.next = pr.match + 1
            pr.failures += 1
            pr.retry_at = self._now + backoff(pr.failures, self.cfg.heartbeat_timeout / 2)
            self._need_flush = True
        elif isinstance(request, InstallSnapshotRequest):
            if pr.snapshot_inflight is request:
                pr.snapshot_inflight = None
                pr.failures += 1
                pr.retry_at = self._now + backoff(pr.failures, self.cfg.heartbeat_timeout / 2)
                self._need_flush = True
        elif isinstance(request, TimeoutNowRequest):
            tr = self._transfer
            if tr is not None and tr.timeout_now is request:
                self._transfer = None
                self._transfer_results.append(
                    (tr.token, RaftError("failed to make TimeoutNow RPC"))
                )

    # ---------------------------------------------------------------- commit
    def _maybe_commit(self) -> None:
        voters = self._voter_ids()
        if not voters:
            return
        matches = []
        for vid in voters:
            if vid == self._id:
                matches.append(self._persisted)
            else:
                pr = self._progress.get(vid)
                matches.append(pr.match if pr else 0)
        q = committed_index(matches)
        if q <= self._commit or self.term_at(q) != self._term:
            return
        old = self._commit
        self._commit = q
        self._need_flush = True
        if self._pending_cfgs and self._pending_cfgs[0][0] <= q:
            latest_idx = self.latest_configuration_index
            self._move_committed_configs()
            if latest_idx > old and latest_idx <= q and not self._committed_cfg.is_voter(self._id):
                logger.info("%s: removed from the configuration, stepping down", self._id)
                if self.cfg.shutdown_on_remove:
                    self._removed = True
                self._become_follower(self._term)
                return
        self._start_queued_changes()

    def on_persisted(self, index: int, term: int) -> None:
        """The log up to ``index`` (entry of ``term``) is durable."""
        if index <= self._persisted or index > self.last_index:
            return
        if self.term_at(index) != term:
            return
        self._persisted = index
        if self._role is Role.LEADER:
            self._maybe_commit()

    # -------------------------------------------------------------- proposals
    def _check_can_propose(self) -> None:
        if self._role is not Role.LEADER:
            raise NotLeaderError()
        if self._transfer is not None:
            raise LeadershipTransferInProgressError()

    def propose(
        self,
        data: bytes | None,
        type: LogType = LogType.COMMAND,
        appended_at: int | None = None,
    ) -> int:
        """Append one entry as leader; returns its index.

        Raises NotLeaderError or LeadershipTransferInProgressError. Use
        :meth:`change_configuration` for membership, never a CONFIGURATION entry here.
        """
        self._check_can_propose()
        if type == LogType.CONFIGURATION:
            raise RaftError("configuration entries go through change_configuration")
        idx = self.last_index + 1
        e = Log(idx, self._term, type, data, None, appended_at)
        if not self._entries:
            self._first = idx
        self._entries.append(e)
        self._need_flush = True
        return idx

    def propose_batch(
        self,
        items: Sequence[tuple[LogType, bytes | None]],
        appended_at: int | None = None,
    ) -> int:
        """Append several entries at once (group commit); returns the first index."""
        self._check_can_propose()
        first = self.last_index + 1
        if not items:
            return first
        term = self._term
        idx = first
        new = []
        for t, d in items:
            if t == LogType.CONFIGURATION:
                raise RaftError("configuration entries go through change_configuration")
            new.append(Log(idx, term, t, d, None, appended_at))
            idx += 1
        if not self._entries:
            self._first = first
        self._entries.extend(new)
        self._need_flush = True
        return first

    def _config_stable(self) -> bool:
        return not self._pending_cfgs and self._commit >= self._noop_index

    def change_configuration(self, change: ConfigurationChange, token: object) -> int | None:
        """Start a membership change; returns its log index, or None when queued.

        Queued changes (an uncommitted change exists, or the leader's no-op is not
        committed yet) report their outcome in ``Ready.configuration_results``.
        Raises NotLeaderError, LeadershipTransferInProgressError, or
        ConfigurationChangeError (stale prev_index, invalid result).
        """
        self._check_can_propose()
        if self._config_stable() and not self._queued_changes:
            return self._append_change(change)
        self._queued_changes.append((change, token))
        return None

    def _append_change(self, change: ConfigurationChange) -> int:
        new_cfg = next_configuration(
            self.latest_configuration, self.latest_configuration_index, change
        )
        self._append([Log(0, 0, LogType.CONFIGURATION, encode_configuration(new_cfg))])
        return self.last_index

    def _start_queued_changes(self) -> None:
        while self._queued_changes and self._role is Role.LEADER and self._config_stable():
            change, token = self._queued_changes.popleft()
            if self._transfer is not None:
                self._cfg_results.append((token, LeadershipTransferInProgressError()))
                continue
            try:
                idx = self._append_change(change)
            except RaftError as e:
                self._cfg_results.append((token, e))
                continue
            self._cfg_results.append((token, idx))

    # ----------------------------------------------------- verify and transfer
    def verify_leader(self, token: object, now: float) -> None:
        """Confirm leadership with a quorum; the answer comes in ``Ready.verify_results``."""
        if now > self._now:
            self._now = now
        if self._role is not Role.LEADER:
            self._verify_results.append((token, False))
            return
        self._send_seq += 1
        v = _Verify(token, self._send_seq, {self._id})
        self._verifies.append(v)
        for pr in self._progress.values():
            if not self._is_voter(pr.id):
                continue
            req = AppendEntriesRequest(term=self._term, leader=self._addr_b)
            self._header(req)
            self._sent_seq[id(req)] = self._send_seq
            self._send(pr.id, pr.addr, req)
        self._verify_ack(self._id, self._send_seq)

    def _verify_ack(self, peer: str, seq: int) -> None:
        voters = self._voter_ids()
        need = quorum_size(len(voters))
        done = []
        for v in self._verifies:
            if seq >= v.seq:
                v.acks.add(peer)
            if len(v.acks.intersection(voters)) >= need:
                done.append(v)
        for v in done:
            self._verifies.remove(v)
            self._verify_results.append((v.token, True))

    def transfer_leadership(self, token: object, now: float, target_id: str | None = None) -> None:
        """Hand leadership to ``target_id`` (or the most up-to-date voter).

        Raises NotLeaderError, LeadershipTransferInProgressError, or RaftError when
        there is no suitable target. The outcome comes in ``Ready.transfer_results``.
        """
        if now > self._now:
            self._now = now
        self._check_can_propose()
        if target_id is None:
            best: Progress | None = None
            for pr in self._progress.values():
                if self._is_voter(pr.id) and (best is None or pr.match > best.match):
                    best = pr
            if best is None:
                raise RaftError("cannot find peer")
            target_id = best.id
        if target_id == self._id:
            raise RaftError("cannot transfer leadership to itself")
        if target_id not in self._progress or not self._is_voter(target_id):
            raise RaftError(f"cannot transfer leadership to {target_id}: not a voter")
        self._transfer = _Transfer(token, target_id, self._now + self.cfg.election_timeout)
        self._need_flush = True
        self._maybe_timeout_now()

    def _maybe_timeout_now(self) -> None:
        tr = self._transfer
        if tr is None or tr.timeout_now is not None:
            return
        pr = self._progress.get(tr.target)
        if pr is None:
            self._transfer = None
            self._transfer_results.append((tr.token, RaftError("transfer target was removed")))
            return
        if pr.match >= self.last_index:
            req = TimeoutNowRequest()
            self._header(req)
            tr.timeout_now = req
            self._send(pr.id, pr.addr, req)

    # ------------------------------------------------------------- snapshots
    def snapshot_point(self, index: int) -> SnapshotInfo:
        """Term and configuration for a snapshot of the FSM at applied ``index``.

        Raises NothingNewToSnapshotError when ``index`` is not past the last snapshot,
        RaftError when ``index`` was not handed out for applying yet or the committed
        configuration is newer than ``index``.
        """
        if index <= self._snap_index:
            raise NothingNewToSnapshotError()
        if index > self._emitted:
            raise RaftError(f"index {index} has not been applied yet")
        term = self.term_at(index)
        if term is None:
            raise RaftError(f"no term known for index {index}")
        if self._committed_cfg_index > index:
            raise RaftError(
                "cannot take snapshot now, wait until the configuration entry at "
                f"{self._committed_cfg_index} has been applied (have applied {index})"
            )
        return SnapshotInfo(index, term, self._committed_cfg, self._committed_cfg_index)

    def on_snapshot_taken(self, info: SnapshotInfo) -> None:
        """The driver persisted a snapshot of the FSM at ``info.index``: compact.

        Keeps ``trailing_logs`` entries behind the last log index (hashicorp's rule).
        """
        if info.index <= self._snap_index:
            return
        if info.index > self._emitted:
            logger.error("snapshot at %d is ahead of what was applied", info.index)
            return
        self._snap, self._snap_index, self._snap_term = info, info.index, info.term
        upto = min(info.index, self.last_index - self.cfg.trailing_logs)
        self._compact(upto)

    def user_snapshot_point(self, meta_index: int) -> SnapshotInfo:
        """Where a user-supplied snapshot (hashicorp ``Restore``) goes: leader only.

        The index is past everything in the log (and past ``meta_index``) so that a hole
        is left and every follower gets the snapshot by InstallSnapshot; the term is
        the current one and the configuration the latest (committed) one. Between this
        call and :meth:`on_user_snapshot_restored` the driver must not feed the core any
        other input. Raises NotLeaderError, LeadershipTransferInProgressError, or
        RaftError while a configuration change is uncommitted.
        """
        self._check_can_propose()
        if self._pending_cfgs:
            raise RaftError(
                "cannot restore snapshot now, wait until the configuration entry at "
                f"{self.latest_configuration_index} has been applied "
                f"(have applied {self._committed_cfg_index})"
            )
        idx = max(self.last_index, meta_index) + 1
        return SnapshotInfo(idx, self._term, self._committed_cfg, self._committed_cfg_index)

    def on_user_snapshot_restored(self, info: SnapshotInfo) -> None:
        """The driver stored the user snapshot as ``info`` and restored the FSM from it.

        The whole log is dropped (``Ready.truncate_from``); proposals not yet handed
        out for applying are aborted (``Ready.restored_from``); followers catch up by
        InstallSnapshot. hashicorp's Restore then applies a no-op and waits for it.
        """
        idx = info.index
        if idx <= self.last_index or idx <= self._snap_index:
            logger.error("user snapshot index %d is not past the log; ignored", idx)
            return
        self._restored_from = self._emitted + 1
        if self._entries:
            first = self._first
            self._truncate_from = (
                first if not self._truncate_from else min(self._truncate_from, first)
            )
        self._entries = []
        self._snap, self._snap_index, self._snap_term = info, idx, info.term
        self._first = idx + 1
        self._unstable_from = idx + 1
        self._persisted = self._commit = self._emitted = idx
        self._pending_cfgs = []
        self._committed_cfg = info.configuration
        self._committed_cfg_index = info.configuration_index
        for pr in self._progress.values():
            pr.reset_to_probe()
            pr.next = min(pr.next, idx)
        self._need_flush = True

    # ---------------------------------------------------------------- output
    def _flush(self) -> None:
        """Leader: send whatever each follower needs now."""
        self._need_flush = False
        if self._role is not Role.LEADER:
            return
        now = self._now
        last = self.last_index
        commit = self._commit
        max_ae = self.cfg.max_append_entries
        window = self.cfg.pipeline_window
        ct = self.cfg.commit_timeout
        first = self._first
        entries = self._entries
        for pr in self._progress.values():
            if pr.snapshot_inflight is not None or now < pr.retry_at:
                continue
            w = window if pr.pipelining else 1
            inflight = pr.inflight
            while len(inflight) < w:
                nxt = pr.next
                if nxt <= last:
                    prev = nxt - 1
                    prev_term = self.term_at(prev)
                    if prev_term is None or nxt < first:
                        self._send_snapshot(pr)
                        break
                    hi = min(last, nxt + max_ae - 1)
                    req = AppendEntriesRequest(
                        term=self._term,
                        leader=self._addr_b,
                        prev_log_entry=prev,
                        prev_log_term=prev_term,
                        entries=entries[nxt - first : hi - first + 1],
                        leader_commit_index=commit,
                        id=self._id_b,
                        addr=self._addr_b,
                    )
                    pr.next = hi + 1
                elif pr.commit_sent < commit and (not inflight and now >= pr.last_send + ct):
                    prev = nxt - 1
                    prev_term = self.term_at(prev)
                    if prev_term is None:
                        self._send_snapshot(pr)
                        break
                    req = AppendEntriesRequest(
                        term=self._term,
                        leader=self._addr_b,
                        prev_log_entry=prev,
                        prev_log_term=prev_term,
                        entries=None,
                        leader_commit_index=commit,
                        id=self._id_b,
                        addr=self._addr_b,
                    )
                else:
                    break
                pr.commit_sent = commit
                pr.last_send = now
                inflight.append(req)
                self._messages.append(Message(pr.id, pr.addr, req))

    def _send_snapshot(self, pr: Progress) -> None:
        snap = self._snap
        if snap is None:
            logger.error("%s: peer %s needs entries that are gone and no snapshot", self._id, pr.id)
            return
        req = InstallSnapshotRequest(
            term=self._term,
            leader=self._addr_b,
            last_log_index=snap.index,
            last_log_term=snap.term,
            configuration=encode_configuration(snap.configuration),
            configuration_index=snap.configuration_index,
            size=0,
        )
        self._header(req)
        pr.snapshot_inflight = req
        pr.reset_to_probe()
        self._send(pr.id, pr.addr, req)

    def _soft_changed(self) -> bool:
        s = self._soft
        return (
            self._role is not s.role
            or self._term != s.term
            or self._leader_id != s.leader_id
            or self._leader_addr != s.leader_addr
        )

    def has_ready(self) -> bool:
        """True if :meth:`ready` would return a non-empty batch (cheap)."""
        if (
            self._need_flush
            or self._messages
            or self._replies
            or self._hs_dirty
            or self._unstable_from <= self.last_index
        ):
            return True
        e = self._emitted
        if e < self._commit and e < self._persisted:
            return True
        return bool(
            self._soft_changed()
            or self._truncate_from
            or self._compact_to
            or self._lost_from
            or self._truncated_from
            or self._cfg_results
            or self._verify_results
            or self._transfer_results
            or self._installs
            or self._installed is not None
            or self._removed
            or self._cfg_changed
            or self._restored_from
        )

    def ready(self) -> Ready:
        """Take the batch of things to do accumulated since the last call."""
        if self._need_flush:
            self._flush()
        hs = None
        if self._hs_dirty:
            hs = HardState(self._term, self._vote_term, self._vote_cand)
            self._hs_dirty = False
        last = self.last_index
        entries: list[Log]
        if self._unstable_from <= last:
            entries = self._entries[self._unstable_from - self._first :]
            self._unstable_from = last + 1
        else:
            entries = []
        messages = self._messages
        if messages:
            self._messages = []
        else:
            messages = []
        replies = self._replies
        if replies:
            self._replies = []
        else:
            replies = []
        upto = self._commit if self._commit < self._persisted else self._persisted
        committed: list[Log]
        if self._emitted < upto:
            first = self._first
            committed = self._entries[self._emitted + 1 - first : upto + 1 - first]
            self._emitted = upto
        else:
            committed = []
        soft = None
        if self._soft_changed():
            soft = self._soft = self._soft_state()
        r = Ready(
            hs,
            self._compact_to,
            self._truncate_from,
            entries,
            messages,
            replies,
            committed,
            soft,
            self._lost_from,
            self._truncated_from,
            self._cfg_results or [],
            self._verify_results or [],
            self._transfer_results or [],
            self._installs or [],
            self._installed,
            self._removed,
            self._cfg_changed,
        )
        if self._compact_to or self._truncate_from or self._lost_from or self._truncated_from:
            self._compact_to = self._truncate_from = self._lost_from = self._truncated_from = 0
        if self._cfg_results:
            self._cfg_results = []
        if self._verify_results:
            self._verify_results = []
        if self._transfer_results:
            self._transfer_results = []
        if self._installs:
            self._installs = []
        self._installed = None
        self._removed = False
        self._cfg_changed = False
        if self._restored_from:
            r.restored_from = self._restored_from
            self._restored_from = 0
        return r

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
from .core_snapshot import Snapshots
from .errors import RaftError
from .log import Log
from .ready import HardState, Ready, Role

logger = logging.getLogger(__name__)


class RaftCore(Snapshots):
    """Raft state machine of one member (see module docstring).

    The parts live in one module each: ``core_state`` (state and bookkeeping),
    ``core_election``, ``core_leader`` (proposals, membership, verify, transfer),
    ``core_replication`` and ``core_snapshot``; this class adds time, the input
    dispatch and the Ready hand-off.
    """

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

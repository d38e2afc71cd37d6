"""Log replication: AppendEntries on both sides, pipelining, heartbeats, commit counting."""

from __future__ import annotations

import logging

from .commands import (
    AppendEntriesRequest,
    AppendEntriesResponse,
    InstallSnapshotRequest,
    Request,
    TimeoutNowRequest,
)
from .configuration import ConfigurationError, decode_configuration, encode_configuration
from .core_leader import LeaderOps
from .core_state import _VALID_TYPES, _text
from .errors import RaftError
from .log import LogType
from .progress import Progress, backoff
from .quorum import committed_index
from .ready import Message, Role

logger = logging.getLogger(__name__)


class Replication(LeaderOps):
    """Replication of the log and the commit rule."""

    def _send_heartbeats(self) -> None:
        self._heartbeat_next = self._now + self.cfg.heartbeat_timeout / 10
        for pr in self._progress.values():
            req = AppendEntriesRequest(term=self._term, leader=self._addr_b)
            self._header(req)
            self._send(pr.id, pr.addr, req)

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

    def _drop_contradicting(
        self, req: AppendEntriesRequest, token: object, index: int, ours: int, theirs: int
    ) -> None:
        """A request that gives a committed entry another term comes from no real leader
        (every later leader holds the committed entries): refused before anything is
        written, so that it can neither truncate nor append after them."""
        logger.warning(
            "dropping AppendEntries from %s: committed entry %d has term %d, not %d",
            _text(req.id),
            index,
            ours,
            theirs,
        )
        self._ae_reject(token, False)

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
        t = self.term_at(prev)
        if prev > self._commit and prev > self._snap_index:
            if t != req.prev_log_term:
                self._ae_reject(token, True)
                return
        elif t is not None and t != req.prev_log_term:
            self._drop_contradicting(req, token, prev, t, req.prev_log_term)
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
                    if idx >= self._first:
                        t = self._entries[idx - self._first].term
                        if t != e.term:
                            self._drop_contradicting(req, token, idx, t, e.term)
                            return
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
        if resp.last_log < pr.match:
            # The follower has fewer entries than it once acknowledged: it lost its log
            # (restarted on empty stores), or this rejection overtook a later success.
            # Either way, probing from its hint is safe; the commit index never goes back.
            pr.match = resp.last_log
        pr.next = max(1, pr.match + 1, min(req.prev_log_entry, resp.last_log + 1))
        if resp.no_retry_backoff:
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

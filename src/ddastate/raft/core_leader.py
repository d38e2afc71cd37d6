"""Leader operations: proposals (group commit), membership changes, verify, transfer."""

from __future__ import annotations

from collections.abc import Sequence

from .commands import AppendEntriesRequest, TimeoutNowRequest
from .configuration import encode_configuration
from .core_election import Elections
from .core_state import _Transfer, _Verify
from .errors import LeadershipTransferInProgressError, NotLeaderError, RaftError
from .log import Log, LogType
from .membership import next_configuration
from .progress import Progress
from .quorum import quorum_size
from .ready import ConfigurationChange, Role


class LeaderOps(Elections):
    """What a leader is asked to do by its driver."""

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

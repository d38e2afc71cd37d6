"""Snapshots: InstallSnapshot on both sides, local snapshots and compaction, user restore."""

from __future__ import annotations

import logging

from .commands import InstallSnapshotRequest, InstallSnapshotResponse
from .configuration import ConfigurationError, decode_configuration
from .core_replication import Replication
from .core_state import _text
from .errors import NothingNewToSnapshotError, RaftError
from .progress import backoff
from .ready import Role, SnapshotInfo, SnapshotInstall

logger = logging.getLogger(__name__)


class Snapshots(Replication):
    """Snapshot handling of the core."""

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

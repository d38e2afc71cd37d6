"""Elections: campaigning (with pre-vote), votes, TimeoutNow, becoming leader, the lease."""

from __future__ import annotations

import logging

from .commands import (
    RequestPreVoteRequest,
    RequestPreVoteResponse,
    RequestVoteRequest,
    RequestVoteResponse,
    TimeoutNowRequest,
    TimeoutNowResponse,
)
from .configuration import ServerSuffrage
from .core_state import CoreState, _text
from .log import Log, LogType
from .progress import Progress
from .quorum import quorum_size
from .ready import Role

logger = logging.getLogger(__name__)


class Elections(CoreState):
    """Election rules of the core (hashicorp's vote rules, WIRE.md section 5)."""

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

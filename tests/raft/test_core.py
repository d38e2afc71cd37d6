"""Unit tests of the deterministic Raft core: elections, replication, commit rules."""

from __future__ import annotations

import os
import random
from collections import deque
from typing import Any

import pytest

from ddastate.raft.commands import (
    AppendEntriesRequest,
    AppendEntriesResponse,
    Request,
    RequestVoteRequest,
    RequestVoteResponse,
    TimeoutNowRequest,
)
from ddastate.raft.configuration import (
    Configuration,
    Server,
    ServerSuffrage,
    encode_configuration,
)
from ddastate.raft.core import RaftCore
from ddastate.raft.errors import NotLeaderError
from ddastate.raft.log import Log, LogType
from ddastate.raft.ready import CoreConfig, HardState, Ready, Role, SnapshotInfo

T = 1.0  # heartbeat and election timeout in these tests


def conf(*ids: str, nonvoters: tuple[str, ...] = ()) -> Configuration:
    servers = [Server(i, i, ServerSuffrage.VOTER) for i in ids]
    servers += [Server(i, i, ServerSuffrage.NONVOTER) for i in nonvoters]
    return Configuration(tuple(servers))


def boot_entries(c: Configuration) -> list[Log]:
    return [Log(1, 1, LogType.CONFIGURATION, encode_configuration(c))]


class Net:
    """Cores wired together synchronously; persistence completes at once.

    ``drain()`` runs every Ready, "persists" it on a dict disk, and delivers messages
    until nothing moves. Links in ``cut`` fail requests (``on_failure``).
    """

    def __init__(
        self,
        ids: list[str],
        *,
        voters: list[str] | None = None,
        nonvoters: tuple[str, ...] = (),
        seed: int = 1,
        env_seed: bool = True,
        **cfg: Any,
    ) -> None:
        # CORE_TEST_SEED varies the members' timers to shake out timing assumptions
        self.env_seed = os.environ.get("CORE_TEST_SEED", "") if env_seed else ""
        self.now = 0.0
        self.cfg = cfg
        self.seed = seed
        self.cut: set[tuple[str, str]] = set()
        self.hold: set[str] = set()  # members whose outgoing messages are parked
        self.parked: list[tuple[str, Any]] = []
        self.queue: deque[tuple[str, Any]] = deque()
        self.disk: dict[str, dict[str, Any]] = {}
        self.cores: dict[str, RaftCore] = {}
        self.applied: dict[str, list[Log]] = {}
        self.readies: dict[str, list[Ready]] = {}
        self.install_ok = True
        self.trace: list[tuple[str, str, Any, bool]] | None = None
        c = conf(*(voters if voters is not None else ids), nonvoters=nonvoters)
        for i in ids:
            self.disk[i] = {"hs": HardState(1, 0, b""), "log": boot_entries(c), "snap": None}
            self.start(i)

    def config(self, i: str) -> CoreConfig:
        base: dict[str, Any] = dict(
            heartbeat_timeout=T, election_timeout=T, commit_timeout=0.05, leader_lease_timeout=0.5
        )
        base.update(self.cfg)
        return CoreConfig(local_id=i, **base)

    def start(self, i: str) -> RaftCore:
        d = self.disk[i]
        core = RaftCore(
            self.config(i),
            random.Random(f"{self.seed}/{i}/{self.env_seed}"),
            self.now,
            hard_state=d["hs"],
            snapshot=d["snap"],
            entries=list(d["log"]),
        )
        self.cores[i] = core
        self.applied[i] = []
        self.readies[i] = []
        return core

    def __getitem__(self, i: str) -> RaftCore:
        return self.cores[i]

    def leader(self) -> str | None:
        ls = [i for i, c in self.cores.items() if c.role is Role.LEADER]
        return ls[0] if len(ls) == 1 else None

    # ------------------------------------------------------------- plumbing
    def _persist(self, i: str, rd: Ready) -> None:
        d = self.disk[i]
        if rd.hard_state is not None:
            d["hs"] = rd.hard_state
        log: list[Log] = d["log"]
        if rd.compact_to:
            log[:] = [e for e in log if e.index > rd.compact_to]
        if rd.truncate_from:
            log[:] = [e for e in log if e.index < rd.truncate_from]
        log.extend(rd.entries)

    def process(self, i: str) -> None:
        core = self.cores[i]
        while core.has_ready():
            rd = core.ready()
            self.readies[i].append(rd)
            self._persist(i, rd)
            if rd.entries:
                core.on_persisted(rd.entries[-1].index, rd.entries[-1].term)
            self.applied[i].extend(rd.committed)
            for inst in rd.snapshot_installs:
                core.on_snapshot_installed(inst.token, self.install_ok)
            if rd.snapshot_installed is not None:
                self.disk[i]["snap"] = rd.snapshot_installed
            for m in rd.messages:
                self.queue.append(("req", (i, m.to_id, m.request)))
            for r in rd.replies:
                self.queue.append(("resp", (i, r.token, r.response)))

    def drain(self, limit: int = 100000) -> None:
        for i in list(self.cores):
            self.process(i)
        n = 0
        while self.queue and n < limit:
            n += 1
            kind, item = self.queue.popleft()
            if kind == "req":
                frm, to, req = item
                if frm in self.hold:
                    self.parked.append((kind, item))
                    continue
                if (frm, to) in self.cut or to not in self.cores:
                    if self.trace is not None:
                        self.trace.append((frm, to, req, False))
                    if frm in self.cores:
                        self.cores[frm].on_failure(to, req, self.now)
                        self.process(frm)
                    continue
                if self.trace is not None:
                    self.trace.append((frm, to, req, True))
                self.cores[to].step(req, (frm, req), self.now)
                self.process(to)
            else:
                frm, token, resp = item
                sender, req = token
                if (frm, sender) in self.cut or sender not in self.cores:
                    if self.trace is not None:
                        self.trace.append((frm, sender, resp, False))
                    if sender in self.cores:
                        self.cores[sender].on_failure(frm, req, self.now)
                        self.process(sender)
                    continue
                if self.trace is not None:
                    self.trace.append((frm, sender, resp, True))
                self.cores[sender].on_response(frm, req, resp, self.now)
                self.process(sender)
            for i in list(self.cores):
                self.process(i)

    def tick(self, dt: float, only: list[str] | None = None) -> None:
        self.now += dt
        for i, c in self.cores.items():
            if only is None or i in only:
                c.tick(self.now)
        self.drain()

    def campaign(self, i: str) -> None:
        self.cores[i]._campaign()  # force an election now (test hook)
        self.drain()

    def elect(self, i: str) -> None:
        # members reachable from i act as if their leader went silent (test hook)
        for j, c in self.cores.items():
            if (i, j) not in self.cut and c.role is not Role.LEADER:
                c._leader_id = ""
        self.campaign(i)
        assert self.cores[i].role is Role.LEADER, f"{i} did not win"

    def partition(self, *groups: list[str]) -> None:
        self.cut = set()
        for a in groups:
            for b in groups:
                if a is b:
                    continue
                for x in a:
                    for y in b:
                        self.cut.add((x, y))

    def heal(self) -> None:
        self.cut = set()

    def snapshot(self, i: str) -> SnapshotInfo:
        """Take a snapshot on ``i`` at its applied index and compact."""
        core = self.cores[i]
        info = core.snapshot_point(self.applied[i][-1].index)
        self.disk[i]["snap"] = info
        core.on_snapshot_taken(info)
        self.process(i)
        return info

    def crash_restart(self, i: str) -> RaftCore:
        """Restart ``i`` from its disk (everything was persisted at once here)."""
        return self.start(i)

    def step_to(self, i: str, req: Request) -> Ready:
        """Step one request into ``i`` by hand and return its Ready (not persisted)."""
        core = self.cores[i]
        core.step(req, "tok", self.now)
        return core.ready()


def hdr(req: Any, frm: str) -> Any:
    req.id = frm.encode()
    req.addr = frm.encode()
    return req


def noop_and_data(logs: list[Log]) -> list[bytes | None]:
    return [e.data for e in logs if e.type == LogType.COMMAND]


# ================================================================= elections
def test_single_member_elects_itself_after_timeout_and_commits() -> None:
    net = Net(["a"])
    assert net["a"].role is Role.FOLLOWER
    net.tick(0.5)
    assert net["a"].role is Role.FOLLOWER  # before [T, 2T)
    net.tick(2.0)
    assert net["a"].role is Role.LEADER
    assert net["a"].term == 2
    idx = net["a"].propose(b"x")
    net.drain()
    assert net["a"].commit_index == idx
    assert noop_and_data(net.applied["a"]) == [b"x"]
    assert net.disk["a"]["hs"] == HardState(2, 2, b"a")


def test_three_members_elect_exactly_one_leader_via_timeouts() -> None:
    for seed in range(20):
        net = Net(["a", "b", "c"], seed=seed)
        for _ in range(40):
            net.tick(0.1)
        leaders = [i for i, c in net.cores.items() if c.role is Role.LEADER]
        assert len(leaders) == 1, seed
        term = net[leaders[0]].term
        assert all(c.term == term for c in net.cores.values())
        assert all(c.leader_id == leaders[0] for c in net.cores.values())


def test_vote_persisted_before_reply() -> None:
    net = Net(["a", "b", "c"])
    req = hdr(RequestVoteRequest(term=2, candidate=b"b", last_log_index=1, last_log_term=1), "b")
    rd = net.step_to("a", req)
    assert rd.hard_state == HardState(2, 2, b"b")
    assert isinstance(rd.replies[0].response, RequestVoteResponse)
    assert rd.replies[0].response.granted


def test_split_vote_then_resolution() -> None:
    net = Net(["a", "b", "c", "d"])
    # a and b campaign in the same term; c votes a, d votes b
    net.partition(["a", "c"], ["b", "d"])
    net.campaign("a")
    net.campaign("b")
    assert net["a"].role is Role.CANDIDATE and net["b"].role is Role.CANDIDATE
    assert net["a"].term == net["b"].term == 2
    net.heal()
    for _ in range(60):
        net.tick(0.1)
        if net.leader():
            break
    ld = net.leader()
    assert ld is not None and net[ld].term >= 3


def test_vote_rules() -> None:
    net = Net(["a", "b", "c"], nonvoters=("n",))
    net.elect("a")
    # b knows a live leader: refuses c, even with a higher term
    rv = hdr(RequestVoteRequest(term=5, candidate=b"c", last_log_index=9, last_log_term=2), "c")
    rd = net.step_to("b", rv)
    assert not rd.replies[0].response.granted
    assert net["b"].term == 2  # not even the term moved
    # ... unless it is a leadership transfer
    rv.leadership_transfer = True
    rd = net.step_to("b", rv)
    assert rd.replies[0].response.granted and net["b"].term == 5


def test_vote_rejected_for_unknown_or_nonvoter_candidate_and_stale_log() -> None:
    net = Net(["a", "b", "c"], nonvoters=("n",))
    core = net["a"]
    rd = net.step_to("a", hdr(RequestVoteRequest(term=3, last_log_index=5, last_log_term=1), "x"))
    assert not rd.replies[0].response.granted  # not in configuration
    rd = net.step_to("a", hdr(RequestVoteRequest(term=3, last_log_index=5, last_log_term=1), "n"))
    assert not rd.replies[0].response.granted  # a nonvoter
    assert core.term == 3  # hashicorp: steps to the newer term, rejects
    # log behind: a has (1, term 1); candidate with nothing
    rd = net.step_to("a", hdr(RequestVoteRequest(term=4, last_log_index=0, last_log_term=0), "b"))
    assert not rd.replies[0].response.granted
    # up to date: granted, and a duplicate request from the same candidate too
    req = hdr(RequestVoteRequest(term=4, last_log_index=1, last_log_term=1), "c")
    assert net.step_to("a", req).replies[0].response.granted
    assert net.step_to("a", req).replies[0].response.granted
    # but not another candidate in the same term
    req2 = hdr(RequestVoteRequest(term=4, last_log_index=1, last_log_term=1), "b")
    assert not net.step_to("a", req2).replies[0].response.granted


def test_vote_survives_restart() -> None:
    net = Net(["a", "b", "c"])
    req = hdr(RequestVoteRequest(term=4, last_log_index=1, last_log_term=1), "c")
    net["a"].step(req, ("c", req), net.now)
    net.process("a")  # persists the vote
    net.queue.clear()
    net.crash_restart("a")
    assert net["a"].term == 4
    req2 = hdr(RequestVoteRequest(term=4, last_log_index=1, last_log_term=1), "b")
    assert not net.step_to("a", req2).replies[0].response.granted


def test_nonvoter_never_campaigns() -> None:
    net = Net(["a", "n"], voters=["a"], nonvoters=("n",))
    for _ in range(50):
        net.tick(0.2)
    assert net["n"].role is Role.FOLLOWER
    assert net["a"].role is Role.LEADER


def test_stale_leader_steps_down_on_higher_term() -> None:
    net = Net(["a", "b", "c"])
    net.elect("a")
    net.partition(["a"], ["b", "c"])
    net.elect("b")
    assert net["a"].role is Role.LEADER  # has not heard yet
    assert net["b"].term > net["a"].term
    idx = net["a"].propose(b"lost")
    net.heal()
    net.tick(0.2)  # heartbeats of a get answered with a higher term
    assert net["a"].role is Role.FOLLOWER
    assert net["a"].term == net["b"].term
    lost = [r for r in net.readies["a"] if r.leadership_lost_from]
    assert lost and lost[-1].leadership_lost_from <= idx
    # the old leader's uncommitted entry was replaced by the new leader's log
    net.tick(0.2)
    e = net["a"].entry(idx)
    assert e is None or e.data != b"lost"


def test_old_term_append_rejected_with_current_term() -> None:
    net = Net(["a", "b", "c"])
    net.elect("a")
    net.elect("b")
    rd = net.step_to("c", hdr(AppendEntriesRequest(term=2, leader=b"a"), "a"))
    resp = rd.replies[0].response
    assert isinstance(resp, AppendEntriesResponse)
    assert not resp.success and resp.term == net["c"].term


# ============================================================== replication
def test_replication_and_commit_in_three() -> None:
    net = Net(["a", "b", "c"])
    net.elect("a")
    first = net["a"].propose(b"1")
    net["a"].propose(b"2")
    net.drain()
    for i in "abc":
        assert net[i].last_index == first + 1
    assert net["a"].commit_index == first + 1
    net.tick(0.1)  # commit reaches idle followers within CommitTimeout
    for i in "abc":
        assert noop_and_data(net.applied[i]) == [b"1", b"2"]


def test_group_commit_one_append_one_message_per_follower() -> None:
    net = Net(["a", "b", "c"], max_append_entries=64)
    net.elect("a")
    net.tick(0.2)
    core = net["a"]
    n0 = len(net.readies["a"])
    for k in range(50):
        core.propose(str(k).encode())
    rd = core.ready()
    assert len(rd.entries) == 50
    aes = [m for m in rd.messages if isinstance(m.request, AppendEntriesRequest)]
    assert sorted(m.to_id for m in aes) == ["b", "c"]
    assert all(len(m.request.entries or []) == 50 for m in aes)
    assert len(net.readies["a"]) == n0


def test_batches_bounded_by_max_append_entries() -> None:
    net = Net(["a", "b"], max_append_entries=4, pipeline=True, pipeline_window=3)
    net.elect("a")
    net.tick(0.2)
    core = net["a"]
    for k in range(20):
        core.propose(str(k).encode())
    rd = core.ready()
    aes = [m.request for m in rd.messages if isinstance(m.request, AppendEntriesRequest)]
    # pipelining: window of 3 messages of at most 4 entries each
    assert [len(r.entries or []) for r in aes] == [4, 4, 4]
    assert [r.prev_log_entry for r in aes] == [
        aes[0].prev_log_entry,
        aes[0].prev_log_entry + 4,
        aes[0].prev_log_entry + 8,
    ]


def test_pipeline_falls_back_to_one_at_a_time_after_failure() -> None:
    net = Net(["a", "b"], max_append_entries=2, pipeline=True, pipeline_window=4)
    net.elect("a")
    net.tick(0.2)
    core = net["a"]
    for k in range(10):
        core.propose(str(k).encode())
    rd = core.ready()
    aes = [m.request for m in rd.messages if isinstance(m.request, AppendEntriesRequest)]
    assert len(aes) == 4
    core.on_failure("b", aes[0], net.now)
    assert core.ready().messages == []  # backing off, and nothing else in flight counts
    net.now += 0.05
    core.tick(net.now)
    rd = core.ready()
    aes2 = [m.request for m in rd.messages if isinstance(m.request, AppendEntriesRequest)]
    aes2 = [r for r in aes2 if not r.is_heartbeat()]
    assert len(aes2) == 1  # one at a time until a success
    resp = AppendEntriesResponse(term=core.term, last_log=aes2[0].prev_log_entry + 2, success=True)
    core.on_response("b", aes2[0], resp, net.now)
    rd = core.ready()
    aes3 = [m.request for m in rd.messages if isinstance(m.request, AppendEntriesRequest)]
    assert len([r for r in aes3 if not r.is_heartbeat()]) == 4  # pipelining again


def test_without_pipeline_one_request_in_flight() -> None:
    net = Net(["a", "b"], max_append_entries=2, pipeline=False)
    net.elect("a")
    net.tick(0.2)
    core = net["a"]
    for k in range(10):
        core.propose(str(k).encode())
    rd = core.ready()
    aes = [m.request for m in rd.messages if isinstance(m.request, AppendEntriesRequest)]
    assert len(aes) == 1


def test_heartbeat_shape_and_no_match_advance() -> None:
    net = Net(["a", "b", "c"])
    net.elect("a")
    net.partition(["a"], ["b", "c"])
    core = net["a"]
    core.propose(b"x")
    net.drain()
    assert core.match_index("b") == 1 or core.match_index("b") < core.last_index
    net.now += 0.11
    core.tick(net.now)
    rd = core.ready()
    hbs = [m.request for m in rd.messages if isinstance(m.request, AppendEntriesRequest)]
    hbs = [r for r in hbs if r.is_heartbeat()]
    assert len(hbs) == 2
    hb = hbs[0]
    assert hb.prev_log_entry == 0 and hb.leader_commit_index == 0 and not hb.entries
    before = core.match_index("b")
    core.on_response(
        "b", hb, AppendEntriesResponse(term=core.term, last_log=99, success=True), net.now
    )
    assert core.match_index("b") == before


def test_rejection_hint_and_no_retry_backoff() -> None:
    net = Net(["a", "b"])
    ae = hdr(AppendEntriesRequest(term=3, leader=b"a", prev_log_entry=7, prev_log_term=2), "a")
    resp = net.step_to("b", ae).replies[0].response
    assert isinstance(resp, AppendEntriesResponse)
    assert not resp.success and resp.last_log == 1 and resp.no_retry_backoff
    # term mismatch at an existing index
    ae = hdr(AppendEntriesRequest(term=3, leader=b"a", prev_log_entry=1, prev_log_term=2), "a")
    resp = net.step_to("b", ae).replies[0].response
    assert not resp.success and resp.no_retry_backoff


def test_conflicting_follower_log_is_repaired() -> None:
    net = Net(["a", "b", "c"])
    net.elect("a")
    net.partition(["a"], ["b", "c"])
    for k in range(5):
        net["a"].propose(f"old{k}".encode())
    net.drain()  # a has 5 uncommitted entries of its term
    net.elect("b")
    for k in range(3):
        net["b"].propose(f"new{k}".encode())
    net.drain()
    net.heal()
    for _ in range(5):
        net.tick(0.1)
    logs = {i: [(e.index, e.term, e.data) for e in net.disk[i]["log"]] for i in "abc"}
    assert logs["a"] == logs["b"] == logs["c"]
    assert not any(d and d.startswith(b"old") for _, _, d in logs["a"])
    truncs = [r.truncated_from for r in net.readies["a"] if r.truncated_from]
    assert truncs


def test_old_term_entries_commit_only_through_a_current_term_entry() -> None:
    # Raft figure 8: a leader must not count replicas of an older-term entry
    net = Net(["a", "b", "c"])
    net.elect("a")  # term 2, noop at 2
    net.partition(["a"], ["b", "c"])
    net["a"].propose(b"t2")  # index 3, only on a
    net.drain()
    net.partition(["a", "b"], ["c"])
    # b becomes leader with a's vote? b's log is shorter: make a campaign in term 3 instead
    net.hold = {"a"}
    net.campaign("a")
    net.hold = set()
    rvs = [item for _, item in net.parked if isinstance(item[2], RequestVoteRequest)]
    net.parked.clear()
    net.queue.clear()
    core = net["a"]
    assert core.role is Role.CANDIDATE and rvs
    # grant by hand: b votes for a in term 3
    for _frm, to, rv in rvs:
        core.on_response(to, rv, RequestVoteResponse(term=3, granted=True), net.now)
    assert core.role is Role.LEADER and core.term == 3
    rd = core.ready()
    # the new leader sends its no-op (term 3) after the term-2 entry
    ae = next(m.request for m in rd.messages if m.to_id == "b")
    assert isinstance(ae, AppendEntriesRequest)
    # acknowledge only up to the old term-2 entry: no commit may follow
    part = AppendEntriesRequest(
        term=3,
        prev_log_entry=2,
        prev_log_term=2,
        entries=[core.entry(3)],  # type: ignore[list-item]
    )
    core.on_persisted(core.last_index, core.last_term)
    core.on_response("b", part, AppendEntriesResponse(term=3, last_log=3, success=True), net.now)
    assert core.commit_index < 3
    core.on_response("b", ae, AppendEntriesResponse(term=3, last_log=4, success=True), net.now)
    assert core.commit_index == core.last_index == 4


def test_leader_counts_itself_only_after_persisted() -> None:
    net = Net(["a", "b", "c"])
    net.elect("a")
    net.tick(0.2)
    core = net["a"]
    idx = core.propose(b"x")
    rd = core.ready()  # the AE may leave before the leader's own write is durable
    assert rd.entries and rd.entries[-1].index == idx
    assert core.persisted_index < idx
    ae = next(m.request for m in rd.messages if m.to_id == "b")
    assert isinstance(ae, AppendEntriesRequest) and ae.entries
    resp = AppendEntriesResponse(term=core.term, last_log=idx, success=True)
    core.on_response("b", ae, resp, net.now)
    assert core.commit_index < idx  # b alone is 1 of 3
    core.on_persisted(idx, core.term)
    assert core.commit_index == idx  # b and the leader itself


def test_committed_entries_wait_for_local_durability() -> None:
    net = Net(["a"])
    net.tick(2.5)
    core = net["a"]
    idx = core.propose(b"x")
    rd = core.ready()
    assert rd.committed == []  # not durable yet: not committed, not applied
    core.on_persisted(idx, core.term)
    rd = core.ready()
    assert [e.data for e in rd.committed] == [b"x"]


def test_propose_on_follower_raises() -> None:
    net = Net(["a", "b", "c"])
    with pytest.raises(NotLeaderError):
        net["a"].propose(b"x")


# ================================================================ bad input
def test_malformed_append_entries_are_rejected_without_state_change() -> None:
    net = Net(["a", "b"])
    net.elect("a")
    core = net["b"]
    before = [(e.index, e.term) for e in net.disk["b"]["log"]]
    term = core.term
    bad = [
        AppendEntriesRequest(term=term, prev_log_entry=-1),
        AppendEntriesRequest(
            term=term, prev_log_entry=2, prev_log_term=2, entries=[Log(9, term, LogType.COMMAND)]
        ),
        AppendEntriesRequest(
            term=term,
            prev_log_entry=2,
            prev_log_term=2,
            entries=[Log(3, term, 77)],  # type: ignore[arg-type]
        ),
        AppendEntriesRequest(
            term=term,
            prev_log_entry=2,
            prev_log_term=2,
            entries=[Log(3, term, LogType.CONFIGURATION, b"\xc1garbage")],
        ),
        AppendEntriesRequest(
            term=term, prev_log_entry=2, prev_log_term=2, entries=[Log(3, term + 5)]
        ),
        AppendEntriesRequest(
            term=term,
            prev_log_entry=2,
            prev_log_term=2,
            entries=["nope"],  # type: ignore[list-item]
        ),
    ]
    for req in bad:
        core.step(hdr(req, "a"), "t", net.now)
        rd = core.ready()
        if rd.replies:
            assert not rd.replies[0].response.success  # type: ignore[union-attr]
        assert not rd.entries
    assert [(e.index, e.term) for e in net.disk["b"]["log"]] == before
    assert core.last_index == 2


def test_unknown_request_type_is_dropped() -> None:
    net = Net(["a"])
    net["a"].step("junk", "t", 0.0)  # type: ignore[arg-type]
    assert net["a"].ready().replies == []


def test_absurd_indexes_do_not_corrupt() -> None:
    net = Net(["a", "b"])
    net.elect("a")
    core = net["b"]
    huge = 2**63
    core.step(
        hdr(
            AppendEntriesRequest(
                term=core.term, prev_log_entry=huge, prev_log_term=1, leader_commit_index=huge
            ),
            "a",
        ),
        "t",
        0,
    )
    rd = core.ready()
    assert not rd.replies[0].response.success  # type: ignore[union-attr]
    core.step(
        hdr(
            AppendEntriesRequest(
                term=core.term, prev_log_entry=2, prev_log_term=2, leader_commit_index=huge
            ),
            "a",
        ),
        "t",
        0,
    )
    core.ready()
    assert core.commit_index == 2  # capped at the last entry the leader vouched for


def test_timeout_now_makes_target_campaign_with_transfer_flag() -> None:
    net = Net(["a", "b", "c"])
    net.elect("a")
    rd = net.step_to("b", hdr(TimeoutNowRequest(), "a"))
    rvs = [m.request for m in rd.messages if isinstance(m.request, RequestVoteRequest)]
    assert rvs and all(r.leadership_transfer for r in rvs)
    assert rd.hard_state is not None and rd.hard_state.current_term == 3


def test_snapshot_info_round_trip_on_restart() -> None:
    net = Net(["a"])
    net.tick(2.5)
    core = net["a"]
    for k in range(5):
        core.propose(str(k).encode())
    net.drain()
    info = core.snapshot_point(core.commit_index)
    assert isinstance(info, SnapshotInfo) and info.index == core.commit_index


def test_newer_term_alone_does_not_reset_election_timer() -> None:
    # A candidate that cannot win (stale log) must not keep the member that can win
    # from timing out: only a granted vote or leader contact resets the timer.
    net = Net(["a", "b", "c"])
    net.elect("a")
    net.tick(0.1)
    core = net["b"]
    core._leader_id = ""  # its leader went silent
    deadline = core.next_deadline()
    stale = hdr(RequestVoteRequest(term=9, last_log_index=0, last_log_term=0), "c")
    rd = net.step_to("b", stale)
    assert not rd.replies[0].response.granted  # type: ignore[union-attr]
    assert core.term == 9
    assert core.next_deadline() == deadline
    ok = hdr(RequestVoteRequest(term=10, last_log_index=9, last_log_term=9), "c")
    assert net.step_to("b", ok).replies[0].response.granted  # type: ignore[union-attr]
    assert core.next_deadline() != deadline

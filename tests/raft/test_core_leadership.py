"""Leadership transfer, pre-vote, leader lease and verify_leader in the core."""

from __future__ import annotations

import pytest
from test_core import Net

from ddastate.raft.commands import (
    RequestPreVoteRequest,
    RequestVoteRequest,
    TimeoutNowRequest,
)
from ddastate.raft.errors import LeadershipTransferInProgressError, NotLeaderError, RaftError
from ddastate.raft.ready import Role


def settle(net: Net, rounds: int = 3) -> None:
    for _ in range(rounds):
        net.tick(0.1)


def transfer_results(net: Net, i: str) -> list[tuple[object, BaseException | None]]:
    return [r for rd in net.readies[i] for r in rd.transfer_results]


def test_transfer_to_chosen_member() -> None:
    net = Net(["a", "b", "c"])
    net.elect("a")
    settle(net)
    net["a"].transfer_leadership("tok", net.now, "c")
    net.drain()
    assert net.leader() == "c"
    assert net["a"].role is Role.FOLLOWER
    assert transfer_results(net, "a") == [("tok", None)]
    rvs = [
        m.request
        for rd in net.readies["c"]
        for m in rd.messages
        if isinstance(m.request, RequestVoteRequest)
    ]
    assert rvs and all(r.leadership_transfer for r in rvs)


def test_transfer_to_most_up_to_date_and_catch_up_first() -> None:
    net = Net(["a", "b", "c"])
    net.elect("a")
    settle(net)
    net.partition(["a", "b"], ["c"])
    for k in range(5):
        net["a"].propose(str(k).encode())
    net.drain()
    net.heal()
    # c lags; b is the most up to date: it is chosen without a name
    net["a"].transfer_leadership("tok", net.now)
    net.drain()
    assert net.leader() == "b"


def test_transfer_catches_target_up_before_timeout_now() -> None:
    net = Net(["a", "b", "c"])
    net.elect("a")
    settle(net)
    net.partition(["a", "b"], ["c"])
    for k in range(5):
        net["a"].propose(str(k).encode())
    net.drain()
    core = net["a"]
    core.transfer_leadership("tok", net.now, "c")
    sent = [m.request for m in core.ready().messages]
    assert not any(isinstance(r, TimeoutNowRequest) for r in sent)
    with pytest.raises(LeadershipTransferInProgressError):
        core.propose(b"x")
    with pytest.raises(LeadershipTransferInProgressError):
        core.transfer_leadership("again", net.now, "b")
    net.heal()
    settle(net)
    assert net.leader() == "c"
    assert net["c"].last_index >= 7


def test_transfer_times_out() -> None:
    net = Net(["a", "b", "c"])
    net.elect("a")
    settle(net)
    net.partition(["a", "b"], ["c"])
    net["a"].propose(b"c never gets this")
    net.drain()
    net["a"].transfer_leadership("tok", net.now, "c")
    net.drain()
    for _ in range(12):
        net.tick(0.1)
    res = transfer_results(net, "a")
    assert len(res) == 1 and isinstance(res[0][1], RaftError)
    assert "timeout" in str(res[0][1])
    assert net["a"].role is Role.LEADER
    net["a"].propose(b"works again")


def test_transfer_fails_when_timeout_now_cannot_be_sent() -> None:
    net = Net(["a", "b", "c"])
    net.elect("a")
    settle(net)
    net.partition(["a"], ["c"])
    net["a"].transfer_leadership("tok", net.now, "c")
    net.drain()
    res = transfer_results(net, "a")
    assert len(res) == 1 and "TimeoutNow" in str(res[0][1])


def test_transfer_errors() -> None:
    net = Net(["a", "b"])
    with pytest.raises(NotLeaderError):
        net["a"].transfer_leadership("t", 0.0)
    net.elect("a")
    with pytest.raises(RaftError):
        net["a"].transfer_leadership("t", 0.0, "a")
    with pytest.raises(RaftError):
        net["a"].transfer_leadership("t", 0.0, "zz")


def test_prevote_keeps_partitioned_member_from_deposing_leader() -> None:
    net = Net(["a", "b", "c"], pre_vote=True)
    net.elect("a")
    settle(net)
    term = net["a"].term
    net.partition(["a", "b"], ["c"])
    for _ in range(60):
        net.tick(0.1)
    assert net["c"].term == term  # pre-votes failed: no term inflation
    assert net["c"].role is Role.CANDIDATE
    pre = [
        m.request
        for rd in net.readies["c"]
        for m in rd.messages
        if isinstance(m.request, RequestPreVoteRequest)
    ]
    assert pre and pre[-1].term == term + 1
    net.heal()
    for _ in range(20):
        net.tick(0.1)
    assert net.leader() == "a" and net["a"].term == term
    assert net["c"].role is Role.FOLLOWER and net["c"].leader_id == "a"


def test_without_prevote_rejoining_member_forces_new_term() -> None:
    net = Net(["a", "b", "c"], pre_vote=False)
    net.elect("a")
    settle(net)
    term = net["a"].term
    net.partition(["a", "b"], ["c"])
    for _ in range(60):
        net.tick(0.1)
    assert net["c"].term > term
    net.heal()
    for _ in range(40):
        net.tick(0.1)
    ld = net.leader()
    assert ld is not None and net[ld].term > term


def test_prevote_elects_when_leader_is_gone() -> None:
    net = Net(["a", "b", "c"], pre_vote=True)
    net.elect("a")
    settle(net)
    net.partition(["a"], ["b", "c"])
    for _ in range(60):
        net.tick(0.1)
        if net["b"].role is Role.LEADER or net["c"].role is Role.LEADER:
            break
    assert net["b"].role is Role.LEADER or net["c"].role is Role.LEADER


def test_leader_lease_steps_down_without_quorum_contact() -> None:
    net = Net(["a", "b", "c"])
    net.elect("a")
    settle(net)
    net.partition(["a"], ["b", "c"])
    net.tick(0.3)
    assert net["a"].role is Role.LEADER
    for _ in range(5):
        net.tick(0.2)
    assert net["a"].role is Role.FOLLOWER
    lost = [rd.leadership_lost_from for rd in net.readies["a"] if rd.leadership_lost_from]
    assert lost


def test_leader_lease_holds_with_quorum() -> None:
    net = Net(["a", "b", "c"])
    net.elect("a")
    net.partition(["a", "b"], ["c"])
    for _ in range(30):
        net.tick(0.1)
    assert net["a"].role is Role.LEADER


def test_verify_leader() -> None:
    net = Net(["a", "b", "c"])
    net.elect("a")
    settle(net)
    net["a"].verify_leader("v1", net.now)
    net.drain()
    res = [r for rd in net.readies["a"] for r in rd.verify_results]
    assert res == [("v1", True)]
    assert not net["a"]._sent_seq  # nothing kept once every answer came back
    # cut off: the verification does not complete, and fails when leadership goes
    net.partition(["a"], ["b", "c"])
    net["a"].verify_leader("v2", net.now)
    net.drain()
    assert [r for rd in net.readies["a"] for r in rd.verify_results] == [("v1", True)]
    for _ in range(5):
        net.tick(0.2)
    res = [r for rd in net.readies["a"] for r in rd.verify_results]
    assert res == [("v1", True), ("v2", False)]
    net["b"].verify_leader("v3", net.now)
    assert net["b"].ready().verify_results == [("v3", False)]

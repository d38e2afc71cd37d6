"""Membership changes in the deterministic core."""

from __future__ import annotations

import pytest
from test_core import Net

from ddastate.raft.configuration import ServerSuffrage
from ddastate.raft.errors import LeadershipLostError, NotLeaderError
from ddastate.raft.membership import ConfigurationChangeError
from ddastate.raft.ready import ChangeKind, ConfigurationChange, Role


def change(kind: ChangeKind, sid: str, prev: int = 0) -> ConfigurationChange:
    return ConfigurationChange(kind, sid, sid, prev)


def settle(net: Net, rounds: int = 5) -> None:
    for _ in range(rounds):
        net.tick(0.1)


def suffrages(net: Net, member: str) -> dict[str, ServerSuffrage]:
    return {s.id: s.suffrage for s in net[member].latest_configuration.servers}


def test_add_voter_replicates_and_counts() -> None:
    net = Net(["a", "b", "c", "d"], voters=["a", "b", "c"])
    net.elect("a")
    settle(net)
    idx = net["a"].change_configuration(change(ChangeKind.ADD_VOTER, "d"), "tok")
    assert idx is not None
    # effective when appended, on the leader at once
    assert suffrages(net, "a")["d"] == ServerSuffrage.VOTER
    settle(net)
    assert net["a"].committed_configuration_index == idx
    assert net["d"].last_index == net["a"].last_index
    assert suffrages(net, "d")["d"] == ServerSuffrage.VOTER
    # now 4 voters: with two unreachable nothing commits
    net.partition(["a", "b"], ["c", "d"])
    i2 = net["a"].propose(b"x")
    net.drain()
    assert net["a"].commit_index < i2


def test_add_nonvoter_replicates_but_never_counts() -> None:
    net = Net(["a", "b", "n"], voters=["a", "b"])
    net.elect("a")
    settle(net)
    net["a"].change_configuration(change(ChangeKind.ADD_NONVOTER, "n"), "tok")
    settle(net)
    assert suffrages(net, "a")["n"] == ServerSuffrage.NONVOTER
    assert net["n"].last_index == net["a"].last_index
    net.partition(["a", "n"], ["b"])
    i = net["a"].propose(b"x")
    net.drain()
    assert net["n"].last_index >= i
    assert net["a"].commit_index < i  # the nonvoter's copy does not count


def test_remove_server_and_demote_voter() -> None:
    net = Net(["a", "b", "c"])
    net.elect("a")
    settle(net)
    net["a"].change_configuration(change(ChangeKind.DEMOTE_VOTER, "c"), "t1")
    settle(net)
    assert suffrages(net, "a")["c"] == ServerSuffrage.NONVOTER
    net["a"].change_configuration(change(ChangeKind.REMOVE_SERVER, "c"), "t2")
    settle(net)
    assert "c" not in suffrages(net, "a")
    assert "c" not in suffrages(net, "b")
    # a removed member's vote requests are refused
    net.cores["c"]._leader_id = ""
    net.campaign("c")
    assert net["a"].role is Role.LEADER


def test_prev_index_mismatch_is_rejected() -> None:
    net = Net(["a", "b", "c", "d"], voters=["a", "b", "c"])
    net.elect("a")
    settle(net)
    latest = net["a"].latest_configuration_index
    with pytest.raises(ConfigurationChangeError, match="configuration changed since"):
        net["a"].change_configuration(change(ChangeKind.ADD_VOTER, "d", latest + 5), "t")
    assert net["a"].change_configuration(change(ChangeKind.ADD_VOTER, "d", latest), "t")


def test_change_waits_for_noop_and_one_at_a_time() -> None:
    from ddastate.raft.commands import RequestVoteRequest, RequestVoteResponse

    net = Net(["a", "b", "c", "d", "e"], voters=["a", "b", "c"])
    core = net["a"]
    core._campaign()
    rd = core.ready()
    for m in rd.messages:
        if isinstance(m.request, RequestVoteRequest):
            core.on_response(m.to_id, m.request, RequestVoteResponse(term=2, granted=True), 0)
    assert core.role is Role.LEADER
    # the no-op is not committed yet: the change is queued
    assert core.change_configuration(change(ChangeKind.ADD_VOTER, "d"), "t1") is None
    assert core.change_configuration(change(ChangeKind.ADD_VOTER, "e"), "t2") is None
    net.drain()  # the no-op (and the first change, in turn) commit
    settle(net)
    results = [r for rd in net.readies["a"] for r in rd.configuration_results]
    assert [t for t, _ in results] == ["t1", "t2"]
    i1, i2 = results[0][1], results[1][1]
    assert isinstance(i1, int) and isinstance(i2, int) and i1 < i2
    # one at a time: the second was appended only after the first committed
    assert core.commit_index >= i2
    assert suffrages(net, "a")["e"] == ServerSuffrage.VOTER
    assert core.committed_configuration_index == core.latest_configuration_index == i2


def test_queued_change_fails_when_leadership_is_lost() -> None:
    net = Net(["a", "b", "c", "d"], voters=["a", "b", "c"])
    net.elect("a")
    settle(net)
    net.partition(["a"], ["b", "c", "d"])
    core = net["a"]
    core.change_configuration(change(ChangeKind.ADD_NONVOTER, "d"), "t1")
    assert core.change_configuration(change(ChangeKind.REMOVE_SERVER, "c"), "t2") is None
    net.elect("b")
    net.heal()
    settle(net)
    results = dict(r for rd in net.readies["a"] for r in rd.configuration_results)
    assert isinstance(results["t2"], LeadershipLostError)
    assert core.role is Role.FOLLOWER


def test_invalid_change_is_refused() -> None:
    net = Net(["a"])
    net.tick(2.5)
    settle(net)
    with pytest.raises(ConfigurationChangeError, match="no voters"):
        net["a"].change_configuration(change(ChangeKind.DEMOTE_VOTER, "a"), "t")
    with pytest.raises(ConfigurationChangeError):
        net["a"].change_configuration(ConfigurationChange(ChangeKind.ADD_VOTER, "x", ""), "t")
    with pytest.raises(NotLeaderError):
        Net(["p", "q"])["p"].change_configuration(change(ChangeKind.ADD_VOTER, "z"), "t")


def test_removed_leader_steps_down_and_reports_removed() -> None:
    net = Net(["a", "b", "c"])
    net.elect("a")
    settle(net)
    net["a"].change_configuration(change(ChangeKind.REMOVE_SERVER, "a"), "t")
    settle(net)
    assert net["a"].role is Role.FOLLOWER
    assert any(rd.removed for rd in net.readies["a"])
    # the remaining two elect a leader among themselves
    for _ in range(40):
        net.tick(0.1)
    ld = net.leader()
    assert ld in ("b", "c")
    assert "a" not in suffrages(net, ld)


@pytest.mark.parametrize("seed", range(12))
def test_demoted_leader_that_crashed_before_replicating_can_still_finish(seed: int) -> None:
    # Raft thesis 4.2.2: a voter of the committed configuration campaigns while a newer
    # configuration that demotes it is uncommitted, counting only the latest voters.
    # Found by the simulation (a two-voter group stuck forever). Several timer seeds:
    # with some, the member that cannot win kept resetting the other's election timer
    # by its newer terms (fixed: a newer term alone no longer resets the timer).
    net = Net(["a", "b"], seed=seed, env_seed=False)
    net.elect("a")
    settle(net)
    net.partition(["a"], ["b"])
    net["a"].change_configuration(change(ChangeKind.DEMOTE_VOTER, "a"), "t")
    net.drain()
    net.crash_restart("a")
    net.heal()
    for _ in range(200):
        net.tick(0.1)
        if net.leader() == "b" and net["b"].commit_index == net["b"].last_index:
            break
    assert net.leader() == "b"
    assert suffrages(net, "b")["a"] == ServerSuffrage.NONVOTER

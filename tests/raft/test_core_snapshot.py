"""Snapshots, compaction and InstallSnapshot in the deterministic core."""

from __future__ import annotations

import random

import pytest
from test_core import Net, hdr

from ddastate.raft.commands import (
    AppendEntriesRequest,
    InstallSnapshotRequest,
    InstallSnapshotResponse,
)
from ddastate.raft.configuration import encode_configuration
from ddastate.raft.core import RaftCore
from ddastate.raft.errors import NothingNewToSnapshotError, RaftError
from ddastate.raft.log import Log, LogType
from ddastate.raft.ready import CoreConfig, HardState, Role, SnapshotInfo


def leader_with_entries(n: int, trailing: int = 5, ids: tuple[str, ...] = ("a",)) -> Net:
    net = Net(list(ids), trailing_logs=trailing)
    net.elect("a")
    for k in range(n):
        net["a"].propose(f"e{k}".encode())
    net.drain()
    net.tick(0.1)
    return net


def test_compaction_keeps_trailing_logs() -> None:
    net = leader_with_entries(20, trailing=5)
    core = net["a"]
    last = core.last_index
    info = net.snapshot("a")
    assert info.index == last
    compacts = [rd.compact_to for rd in net.readies["a"] if rd.compact_to]
    assert compacts == [last - 5]
    assert core.first_index == last - 4
    assert [e.index for e in net.disk["a"]["log"]] == list(range(last - 4, last + 1))
    with pytest.raises(NothingNewToSnapshotError):
        core.snapshot_point(last)


def test_trailing_zero_compacts_everything() -> None:
    net = leader_with_entries(10, trailing=0)
    net.snapshot("a")
    assert net.disk["a"]["log"] == []
    core = net["a"]
    assert core.first_index == core.last_index + 1
    i = core.propose(b"after")
    net.drain()
    assert core.commit_index == i


def test_snapshot_refused_before_configuration_is_applied() -> None:
    net = Net(["a"])
    core = net["a"]
    with pytest.raises(NothingNewToSnapshotError):
        core.snapshot_point(0)
    with pytest.raises(RaftError):
        core.snapshot_point(5)  # not applied yet


def test_lagging_follower_gets_install_snapshot_and_catches_up() -> None:
    net = leader_with_entries(0, trailing=2, ids=("a", "b", "c"))
    net.partition(["a", "b"], ["c"])
    for k in range(30):
        net["a"].propose(f"x{k}".encode())
    net.drain()
    net.tick(0.1)
    info = net.snapshot("a")
    assert net["a"].first_index > net["c"].last_index + 1
    net.heal()
    for _ in range(5):
        net.tick(0.1)
    sent = [
        m.request
        for rd in net.readies["a"]
        for m in rd.messages
        if isinstance(m.request, InstallSnapshotRequest)
    ]
    assert sent and sent[0].last_log_index == info.index
    assert sent[0].configuration == encode_configuration(info.configuration)
    c = net["c"]
    assert c.snapshot is not None and c.snapshot.index == info.index
    assert c.last_index == net["a"].last_index
    assert net["a"].match_index("c") == net["a"].last_index
    assert c.commit_index == net["a"].commit_index


def _follower_with_log(entries: list[Log], commit: int = 0) -> RaftCore:
    from test_core import boot_entries, conf

    log = boot_entries(conf("a", "b")) + entries
    core = RaftCore(CoreConfig("b"), random.Random(1), 0.0, HardState(5, 0, b""), None, log)
    core.ready()
    return core


def _install(core: RaftCore, index: int, term: int) -> InstallSnapshotRequest:
    from test_core import conf

    req = hdr(
        InstallSnapshotRequest(
            term=6,
            leader=b"a",
            last_log_index=index,
            last_log_term=term,
            configuration=encode_configuration(conf("a", "b")),
            configuration_index=1,
            size=10,
        ),
        "a",
    )
    core.step(req, "tok", 1.0)
    rd = core.ready()
    assert [i.token for i in rd.snapshot_installs] == ["tok"]
    assert rd.replies == []
    return req


def test_follower_with_conflicting_entry_discards_whole_log() -> None:
    # figure 13 rule 7: our entry at the snapshot index has another term
    core = _follower_with_log([Log(i, 2, data=b"old") for i in range(2, 12)])
    _install(core, 8, 4)
    core.on_snapshot_installed("tok", True)
    rd = core.ready()
    assert rd.truncate_from == 1  # the whole log goes
    assert rd.truncated_from == 1
    assert rd.snapshot_installed is not None and rd.snapshot_installed.index == 8
    resp = rd.replies[0].response
    assert isinstance(resp, InstallSnapshotResponse) and resp.success
    assert core.last_index == 8 and core.last_term == 4
    assert core.first_index == 9 and core.commit_index == 8
    # continues from the snapshot
    ae = hdr(
        AppendEntriesRequest(
            term=6, leader=b"a", prev_log_entry=8, prev_log_term=4, entries=[Log(9, 6)]
        ),
        "a",
    )
    core.step(ae, "t2", 2.0)
    rd = core.ready()
    assert rd.replies[0].response.success  # type: ignore[union-attr]
    assert [e.index for e in rd.entries] == [9]


def test_follower_with_matching_entry_keeps_suffix() -> None:
    core = _follower_with_log([Log(i, 4, data=b"x") for i in range(2, 12)])
    _install(core, 8, 4)
    core.on_snapshot_installed("tok", True)
    rd = core.ready()
    assert rd.truncate_from == 0
    assert core.last_index == 11
    assert core.commit_index == 8
    assert core.snapshot is not None and core.snapshot.index == 8


def test_failed_install_leaves_previous_state() -> None:
    core = _follower_with_log([Log(i, 2, data=b"old") for i in range(2, 6)])
    _install(core, 8, 4)
    core.on_snapshot_installed("tok", False)
    rd = core.ready()
    assert not rd.replies[0].response.success  # type: ignore[union-attr]
    assert rd.truncate_from == 0 and rd.snapshot_installed is None
    assert core.last_index == 5 and core.snapshot is None


@pytest.mark.parametrize(
    "fields",
    [
        {"configuration": b"\xc1junk"},
        {"configuration": None},
        {"size": -1},
        {"last_log_index": 0},
        {"configuration_index": 99},
        {"last_log_term": 99},
    ],
)
def test_bad_install_snapshot_is_rejected(fields: dict[str, object]) -> None:
    from test_core import conf

    core = _follower_with_log([Log(i, 2) for i in range(2, 6)])
    base: dict[str, object] = dict(
        term=6,
        leader=b"a",
        last_log_index=8,
        last_log_term=4,
        configuration=encode_configuration(conf("a", "b")),
        configuration_index=1,
        size=10,
    )
    base.update(fields)
    req = hdr(InstallSnapshotRequest(**base), "a")  # type: ignore[arg-type]
    core.step(req, "tok", 1.0)
    rd = core.ready()
    assert rd.snapshot_installs == []
    assert not rd.replies[0].response.success  # type: ignore[union-attr]
    assert core.last_index == 5 and core.snapshot is None


def test_restart_with_log_that_conflicts_with_snapshot_discards_it() -> None:
    from test_core import boot_entries, conf

    c = conf("a", "b")
    log = boot_entries(c) + [Log(i, 2) for i in range(2, 10)]
    snap = SnapshotInfo(5, 3, c, 1)
    core = RaftCore(CoreConfig("b"), random.Random(1), 0.0, HardState(3, 0, b""), snap, log)
    rd = core.ready()
    assert rd.truncate_from == 1
    assert core.last_index == 5 and core.last_term == 3


def test_restart_with_snapshot_and_trailing_log() -> None:
    net = leader_with_entries(20, trailing=5)
    net.snapshot("a")
    last = net["a"].last_index
    core = net.crash_restart("a")
    assert core.last_index == last
    assert core.commit_index == net.disk["a"]["snap"].index
    assert core.role is Role.FOLLOWER
    net.tick(2.5)
    assert net["a"].role is Role.LEADER


def test_user_snapshot_restore_reaches_followers_by_install_snapshot() -> None:
    net = leader_with_entries(0, ids=("a", "b", "c"))
    core = net["a"]
    for k in range(5):
        core.propose(f"e{k}".encode())
    net.drain()
    net.tick(0.1)
    net.partition(["a"], ["b", "c"])
    pending = core.propose(b"aborted")
    net.drain()
    net.heal()
    info = core.user_snapshot_point(meta_index=3)
    assert info.index == core.last_index + 1 and info.term == core.term
    net.disk["a"]["snap"] = info
    core.on_user_snapshot_restored(info)
    rd = core.ready()
    assert rd.truncate_from == 1 and rd.restored_from <= pending
    net.readies["a"].append(rd)
    net.disk["a"]["log"] = []
    noop = core.propose(None, LogType.NOOP)
    net.drain()
    for _ in range(3):
        net.tick(0.1)
    assert core.commit_index == noop
    for i in ("b", "c"):
        snap = net[i].snapshot
        assert snap is not None and snap.index == info.index
        assert net[i].last_index == noop
        assert net[i].entry(pending) is None


def test_user_snapshot_refused_on_follower_and_with_pending_change() -> None:
    from ddastate.raft.errors import NotLeaderError
    from ddastate.raft.ready import ChangeKind, ConfigurationChange

    net = leader_with_entries(0, ids=("a", "b", "c", "d"))
    with pytest.raises(NotLeaderError):
        net["b"].user_snapshot_point(0)
    net.partition(["a"], ["b", "c", "d"])
    net["a"].change_configuration(ConfigurationChange(ChangeKind.ADD_NONVOTER, "d", "d"), "t")
    net.drain()
    with pytest.raises(RaftError, match="cannot restore snapshot now"):
        net["a"].user_snapshot_point(0)

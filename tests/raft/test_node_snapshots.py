"""Snapshots, compaction, InstallSnapshot, leadership transfer and pre-vote on the node API."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ddastate.raft import (
    FileSnapshotStore,
    NothingNewToSnapshotError,
    NotLeaderError,
    RaftState,
    ReloadableConfig,
)
from ddastate.raft.config import ConfigError
from ddastate.raft.testing import Cluster, RecordingFSM, apply_many, fast_config, wait_for

pytestmark = pytest.mark.timeout(120)


def _logs(c: Cluster, mid: str) -> list[bytes]:
    fsm = c.fsm(mid)
    assert isinstance(fsm, RecordingFSM)
    return fsm.logs


async def test_snapshot_on_request_and_nothing_new() -> None:
    async with await Cluster.create(3) as c:
        leader = await c.wait_for_leader()
        await apply_many(leader, [b"s%d" % i for i in range(40)])
        meta = await leader.snapshot()
        assert meta.index == leader.applied_index()
        with pytest.raises(NothingNewToSnapshotError):
            await leader.snapshot()
        f = leader.snapshot()
        with pytest.raises(NothingNewToSnapshotError):
            await f
        await leader.apply(b"one more")
        f = leader.snapshot()
        meta2, reader = await f.open()
        try:
            assert meta2.index > meta.index
            assert len(reader.read()) == meta2.size
        finally:
            reader.close()
        assert leader.stats()["last_snapshot_index"] == str(meta2.index)


async def test_compaction_keeps_trailing_logs() -> None:
    cfg = fast_config(trailing_logs=10)
    async with await Cluster.create(3, config=cfg) as c:
        leader = await c.wait_for_leader()
        await apply_many(leader, [b"c%d" % i for i in range(100)])
        meta = await leader.snapshot()
        store = c.members[leader.local_id].logs
        await wait_for(lambda: store.first_index() > 1, what="compaction")
        last = store.last_index()
        assert last == meta.index
        assert last - store.first_index() + 1 == 10  # exactly TrailingLogs entries kept
        # the node keeps working after compaction
        await apply_many(leader, [b"d%d" % i for i in range(10)])
        await c.ensure_same_state()


async def test_lagging_follower_catches_up_through_install_snapshot() -> None:
    # 10,000 applies with 512 in flight and a snapshot every 20 ms keep the loop busy:
    # on a loaded machine a 100 ms lease can lapse and the leader step down mid-stream
    # (correctly, but apply_many then fails). Longer timers keep this about snapshots.
    cfg = fast_config(
        trailing_logs=50,
        snapshot_threshold=100,
        snapshot_interval=0.02,
        heartbeat_timeout=0.5,
        election_timeout=0.5,
        leader_lease_timeout=0.5,
    )
    async with await Cluster.create(3, config=cfg) as c:
        leader = await c.wait_for_leader()
        lagger = next(m for m in c.members if m != leader.local_id)
        await c.stop(lagger)
        await apply_many(leader, [b"k%d" % i for i in range(10_000)], in_flight=512)
        # automatic snapshots ran and compacted the log past what the lagger has
        store = c.members[leader.local_id].logs
        await wait_for(lambda: store.first_index() > 2, timeout=10, what="auto snapshot")
        await c.start(lagger)
        await c.wait_applied(leader.last_index(), timeout=20)
        await c.ensure_same_state(timeout=20)
        assert _logs(c, lagger) == [b"k%d" % i for i in range(10_000)]
        # it got a snapshot, not the whole log
        assert c.members[lagger].snaps.list()
        assert int(c.node(lagger).stats()["last_snapshot_index"]) > 0
        # the discarded log prefix is gone from the store once the node's write ran
        lagger_logs = c.members[lagger].logs
        await wait_for(lambda: lagger_logs.first_index() != 1, what="log discarded")


async def test_restart_restores_snapshot_then_log() -> None:
    cfg = fast_config(trailing_logs=5)
    async with await Cluster.create(3, config=cfg) as c:
        leader = await c.wait_for_leader()
        await apply_many(leader, [b"r%d" % i for i in range(30)])
        await leader.snapshot()
        await apply_many(leader, [b"t%d" % i for i in range(5)])
        await c.ensure_same_state()
        lid = leader.local_id
        await c.stop(lid)
        node = await c.start(lid)
        await wait_for(lambda: node.applied_index() >= 36, what="replay after restart")
        assert _logs(c, lid) == [b"r%d" % i for i in range(30)] + [b"t%d" % i for i in range(5)]


async def test_no_snapshot_restore_on_start() -> None:
    cfg = fast_config(trailing_logs=5, no_snapshot_restore_on_start=True)
    async with await Cluster.create(1, config=cfg) as c:
        leader = await c.wait_for_leader()
        await apply_many(leader, [b"n%d" % i for i in range(20)])
        meta = await leader.snapshot()
        await c.stop("n1")
        node = await c.start("n1")
        leader = await c.wait_for_leader()
        await leader.apply(b"after")
        # the snapshot was not loaded into the FSM: only entries after it are applied
        assert _logs(c, "n1") == [b"after"]
        assert node.applied_index() > meta.index


def _damage(path: Path) -> None:
    with open(path, "r+b") as fh:
        fh.seek(0)
        fh.write(b"\xff\xff\xff\xff")
        fh.flush()
        os.fsync(fh.fileno())


async def test_damaged_newest_snapshot_falls_back(tmp_path: Path) -> None:
    dirs = iter(range(100))

    def factory() -> FileSnapshotStore:
        return FileSnapshotStore(str(tmp_path / f"snaps{next(dirs)}"), retain=2)

    cfg = fast_config(trailing_logs=1000)
    async with await Cluster.create(1, config=cfg, snapshot_store_factory=factory) as c:
        leader = await c.wait_for_leader()
        await apply_many(leader, [b"a%d" % i for i in range(10)])
        first = await leader.snapshot()
        await apply_many(leader, [b"b%d" % i for i in range(10)])
        second = await leader.snapshot()
        snaps = c.members["n1"].snaps
        assert isinstance(snaps, FileSnapshotStore)
        # damage the newest snapshot's data file
        sdir = Path(snaps.dir) / second.id
        victims = [p for p in sdir.iterdir() if p.is_file() and "meta" not in p.name]
        assert victims
        _damage(victims[0])
        await c.stop("n1")
        node = await c.start("n1")
        assert node.stats()["last_snapshot_index"] == str(first.index)
        await c.wait_for_leader()
        await wait_for(lambda: node.applied_index() >= second.index, what="replay")
        assert _logs(c, "n1") == [b"a%d" % i for i in range(10)] + [b"b%d" % i for i in range(10)]


async def test_leadership_transfer_to_chosen_and_to_best() -> None:
    async with await Cluster.create(3) as c:
        leader = await c.wait_for_leader()
        await apply_many(leader, [b"x%d" % i for i in range(20)])
        target = next(m for m in c.members if m != leader.local_id)
        await leader.leadership_transfer_to_server(target)
        new = await c.wait_for_leader()
        assert new.local_id == target
        await new.apply(b"after-transfer")
        old_id = new.local_id
        await new.leadership_transfer()
        newer = await c.wait_for_leader()
        assert newer.local_id != old_id
        await newer.apply(b"after-second-transfer")
        await c.ensure_same_state()
        follower = c.followers()[0]
        with pytest.raises(NotLeaderError):
            await follower.leadership_transfer()


async def test_prevote_rejoining_member_does_not_depose_leader() -> None:
    async with await Cluster.create(3) as c:
        leader = await c.wait_for_leader()
        await leader.apply(b"x")
        term = leader.current_term()
        outsider = next(m for m in c.members if m != leader.local_id)
        c.isolate(outsider)
        node = c.node(outsider)
        # the isolated member keeps timing out; with pre-vote its term does not grow
        await wait_for(
            lambda: node.state is not RaftState.FOLLOWER or node.leader()[1] == "",
            what="outsider lost its leader",
        )
        for _ in range(3):
            await leader.apply(b"y")
        c.heal()
        await c.wait_for_leader()
        await leader.barrier()
        assert leader.state is RaftState.LEADER
        assert leader.current_term() == term
        await c.ensure_same_state()


async def test_reload_config() -> None:
    async with await Cluster.create(1) as c:
        leader = await c.wait_for_leader()
        rc = leader.reloadable_config()
        assert rc.trailing_logs == 10240
        leader.reload_config(
            ReloadableConfig(
                trailing_logs=3,
                snapshot_interval=0.02,
                snapshot_threshold=10,
                heartbeat_timeout=0.1,
                election_timeout=0.1,
            )
        )
        assert leader.reloadable_config().trailing_logs == 3
        assert leader._c.cfg.trailing_logs == 3  # reached the core
        await apply_many(leader, [b"z%d" % i for i in range(50)])
        # the new threshold and interval drive an automatic snapshot soon
        await wait_for(lambda: leader.stats()["last_snapshot_index"] != "0", what="auto snapshot")
        with pytest.raises(ConfigError, match="election_timeout"):
            leader.reload_config(ReloadableConfig(heartbeat_timeout=1.0, election_timeout=0.5))


async def test_member_restarted_from_fresh_vs_persisted_stores() -> None:
    from ddastate.raft import InmemLogStore, InmemSnapshotStore, InmemStableStore

    cfg = fast_config(trailing_logs=20)
    async with await Cluster.create(3, config=cfg) as c:
        leader = await c.wait_for_leader()
        await apply_many(leader, [b"a%d" % i for i in range(100)])
        await leader.snapshot()
        await apply_many(leader, [b"b%d" % i for i in range(30)])
        await c.ensure_same_state()
        persisted, fresh = [m for m in c.members if m != leader.local_id]
        # one member restarts from what it persisted, the other lost everything
        await c.stop(persisted)
        await c.stop(fresh)
        m = c.members[fresh]
        m.logs, m.stable, m.snaps = InmemLogStore(), InmemStableStore(), InmemSnapshotStore()
        node_p = await c.start(persisted)
        # from its own stores: FSM rebuilt locally before the leader says anything
        assert node_p.last_index() == leader.last_index()
        node_f = await c.start(fresh)
        assert node_f.last_index() == 0
        await apply_many(leader, [b"c%d" % i for i in range(10)])
        await c.wait_applied(leader.last_index())
        await c.ensure_same_state()
        expected = [b"a%d" % i for i in range(100)] + [b"b%d" % i for i in range(30)]
        expected += [b"c%d" % i for i in range(10)]
        assert _logs(c, fresh) == expected
        assert _logs(c, persisted) == expected


async def test_user_restore_replaces_state_everywhere() -> None:
    import io

    import msgpack

    from ddastate.raft import SnapshotMeta

    async with await Cluster.create(3) as c:
        leader = await c.wait_for_leader()
        await apply_many(leader, [b"old%d" % i for i in range(10)])
        pending = leader.apply(b"racing")
        data = msgpack.packb([b"restored-1", b"restored-2"], use_bin_type=True)
        meta = SnapshotMeta("user", 0, 0, (await leader.get_configuration()), 0, len(data))
        await leader.restore(meta, io.BytesIO(data), timeout=10)
        await pending.error()  # committed before the restore, or aborted by it
        await leader.apply(b"new")
        await c.wait_applied(leader.last_index())
        await c.ensure_same_state()
        assert _logs(c, leader.local_id) == [b"restored-1", b"restored-2", b"new"]
        follower = c.followers()[0]
        with pytest.raises(NotLeaderError):
            await follower.restore(meta, io.BytesIO(data))


async def test_leadership_transfer_blocks_proposals_and_times_out() -> None:
    from ddastate.raft import LeadershipTransferInProgressError, RaftError

    async with await Cluster.create(3) as c:
        leader = await c.wait_for_leader()
        await leader.apply(b"x")
        target = next(m for m in c.members if m != leader.local_id)
        c.network.disconnect(leader.local_id, target)  # the target cannot be reached
        transfer = leader.leadership_transfer_to_server(target)
        with pytest.raises(LeadershipTransferInProgressError):
            await leader.apply(b"during-transfer")
        with pytest.raises(RaftError):
            await transfer  # times out after ElectionTimeout
        c.heal()
        if leader.state is RaftState.LEADER:
            await leader.apply(b"after")
        await c.wait_for_leader()

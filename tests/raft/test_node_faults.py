"""Faults around the node: bad snapshots from the network, a slow disk, heartbeat observers."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import threading
from collections.abc import AsyncIterator, Sequence

import pytest

from ddastate.raft import (
    Configuration,
    FailedHeartbeatObservation,
    InmemLogStore,
    InmemNetwork,
    InmemSnapshotStore,
    InmemStableStore,
    Log,
    Observer,
    Raft,
    RaftState,
    ResumedHeartbeatObservation,
    Server,
    encode_configuration,
)
from ddastate.raft.commands import InstallSnapshotRequest, InstallSnapshotResponse
from ddastate.raft.testing import Cluster, RecordingFSM, apply_many, fast_config, wait_for

pytestmark = pytest.mark.timeout(60)


class _BrokenReader(io.RawIOBase):
    """Gives some bytes, then fails like a connection dropped midway."""

    def __init__(self, good: int) -> None:
        self.left = good

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        if self.left <= 0:
            raise ConnectionResetError("stream broke midway")
        n = min(len(b), self.left)
        b[:n] = b"\x00" * n
        self.left -= n
        return n


@pytest.mark.parametrize("fault", ["size", "configuration", "broken stream"])
async def test_bad_install_snapshot_leaves_follower_unchanged(
    fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with await Cluster.create(3) as c:
        leader = await c.wait_for_leader()
        await apply_many(leader, [b"v%d" % i for i in range(20)])
        await c.ensure_same_state()
        follower = c.followers()[0]
        fsm = c.fsm(follower.local_id)
        assert isinstance(fsm, RecordingFSM)
        before = list(fsm.logs)
        applied = follower.applied_index()
        cfg_bytes = encode_configuration(
            Configuration(tuple(Server(m, m) for m in sorted(c.members)))
        )
        lid = leader.local_id.encode()
        req = InstallSnapshotRequest(
            term=leader.current_term(),
            leader=lid,
            last_log_index=leader.last_index() + 1000,
            last_log_term=leader.current_term(),
            configuration=cfg_bytes,
            configuration_index=1,
            size=100,
            id=lid,
            addr=lid,
        )
        reader: io.RawIOBase | io.BytesIO
        if fault == "size":
            reader = io.BytesIO(b"\x90" * 60)  # 60 bytes, 100 announced
        elif fault == "configuration":
            req.configuration = b"\xc1\xc1"
            reader = io.BytesIO(b"\x90" * 100)
        else:
            reader = _BrokenReader(40)
        t = c.members[follower.local_id].transport
        assert t is not None
        with caplog.at_level(logging.WARNING, logger="ddastate.raft"):
            fut = t.inject(req, reader)  # type: ignore[arg-type]
            try:
                resp = await asyncio.wait_for(fut, 5)
                assert isinstance(resp, InstallSnapshotResponse)
                assert not resp.success
            except (TimeoutError, Exception) as e:
                assert not isinstance(e, AssertionError)
        assert caplog.records, "a log line names the dropped snapshot"
        assert follower.state is not RaftState.SHUTDOWN
        assert fsm.logs[: len(before)] == before
        assert follower.applied_index() >= applied
        # the member still follows the leader and converges
        leader = await c.wait_for_leader()
        await apply_many(leader, [b"after%d" % i for i in range(10)])
        await c.ensure_same_state()


class _SlowLogStore(InmemLogStore):
    """store_logs blocks while ``gate`` is clear, like a stalled disk."""

    inline_safe = False

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.gate.set()
        self.blocked = threading.Event()

    def store_logs(self, logs: Sequence[Log]) -> None:
        if not self.gate.is_set():
            self.blocked.set()
            self.gate.wait(10)
        super().store_logs(logs)


class _ThreadStable(InmemStableStore):
    inline_safe = False


@contextlib.asynccontextmanager
async def _slow_disk_group(
    net_seed: int, node_seed: int
) -> AsyncIterator[tuple[dict[str, Raft], dict[str, _SlowLogStore], Raft]]:
    """Three members whose log stores can be stalled; yields them, their stores and
    the leader once it has committed a first entry."""
    net = InmemNetwork(seed=net_seed)
    ids = ["s0", "s1", "s2"]
    stores = {i: _SlowLogStore() for i in ids}
    nodes: dict[str, Raft] = {}
    try:
        conf = Configuration(tuple(Server(i, i) for i in ids))
        for k, i in enumerate(ids):
            r = Raft(
                fast_config(i),
                RecordingFSM(),
                stores[i],
                _ThreadStable(),
                InmemSnapshotStore(),
                net.transport(i),
                seed=node_seed + k,  # distinct seeds: equal timeouts would split every vote
            )
            await r.start()
            await r.bootstrap_cluster(conf)
            nodes[i] = r
        await wait_for(lambda: any(r.state is RaftState.LEADER for r in nodes.values()))
        leader = next(r for r in nodes.values() if r.state is RaftState.LEADER)
        await leader.apply(b"warm")
        yield nodes, stores, leader
    finally:
        for s in stores.values():
            s.gate.set()
        for r in nodes.values():
            await r.shutdown()


async def test_slow_disk_does_not_stall_heartbeats() -> None:
    async with _slow_disk_group(11, 7) as (nodes, stores, leader):
        slow_id = next(i for i in nodes if i != leader.local_id)
        slow = nodes[slow_id]
        term = slow.current_term()
        stores[slow_id].gate.clear()
        f = leader.apply(b"while-slow")
        await f  # committed by the leader and the healthy follower
        await asyncio.to_thread(stores[slow_id].blocked.wait, 5)
        # Several election timeouts pass with the slow member's write stuck: heartbeats are
        # still answered, so it neither campaigns nor loses the leader.
        loop = asyncio.get_running_loop()
        until = loop.time() + 6 * 0.1
        await wait_for(lambda: loop.time() > until, what="six heartbeat timeouts")
        assert slow.current_term() == term
        assert slow.state is RaftState.FOLLOWER
        assert slow.leader()[1] == leader.local_id
        assert leader.state is RaftState.LEADER
        stores[slow_id].gate.set()
        await wait_for(lambda: slow.applied_index() >= f.index, what="slow member catches up")


async def test_leader_removing_itself_with_a_slow_disk_sees_its_change_succeed() -> None:
    """The other voters commit the leader's removal while the leader's own write of it
    is stuck: the leader steps down, but shuts down only once it has applied the
    change, so remove_server reports success instead of RaftShutdownError."""
    async with _slow_disk_group(5, 3) as (nodes, stores, leader):
        stores[leader.local_id].gate.clear()
        change = leader.remove_server(leader.local_id)
        await asyncio.to_thread(stores[leader.local_id].blocked.wait, 5)
        # the remaining voters commit the removal; the old leader steps down meanwhile
        others = [r for r in nodes.values() if r is not leader]
        await wait_for(lambda: leader.state is not RaftState.LEADER, what="step down")
        assert leader.state is RaftState.FOLLOWER  # not shut down: the change is not applied
        assert not change.done()
        stores[leader.local_id].gate.set()
        index = await asyncio.wait_for(change, 5)  # the index of the removal entry
        assert index > 2
        await wait_for(lambda: leader.state is RaftState.SHUTDOWN, what="shutdown")
        await wait_for(lambda: any(r.state is RaftState.LEADER for r in others))
        new_leader = next(r for r in others if r.state is RaftState.LEADER)
        cfg = await new_leader.get_configuration()
        assert sorted(s.id for s in cfg.servers) == sorted(r.local_id for r in others)


async def test_failed_and_resumed_heartbeat_observations() -> None:
    async with await Cluster.create(3) as c:
        leader = await c.wait_for_leader()
        obs = leader.observe(
            lambda o: isinstance(o.data, FailedHeartbeatObservation | ResumedHeartbeatObservation)
        )
        victim = next(m for m in c.members if m != leader.local_id)
        c.network.disconnect(leader.local_id, victim)
        o = await asyncio.wait_for(obs.__anext__(), 5)
        assert isinstance(o.data, FailedHeartbeatObservation) and o.data.peer_id == victim
        c.heal()
        while True:
            o = await asyncio.wait_for(obs.__anext__(), 5)
            if isinstance(o.data, ResumedHeartbeatObservation):
                break
        assert o.data.peer_id == victim
        leader.deregister_observer(obs)


async def test_blocking_observer_never_drops_nonblocking_drops() -> None:
    async with await Cluster.create(3) as c:
        leader = await c.wait_for_leader()
        blocking = Observer(asyncio.Queue(1), blocking=True)
        lossy = Observer(asyncio.Queue(1), blocking=False)
        leader.register_observer(blocking)
        leader.register_observer(lossy)
        for i in range(4, 8):
            c._new_member(f"n{i}")
            await c.start(f"n{i}")
            await leader.add_nonvoter(f"n{i}", f"n{i}")
        got = [await asyncio.wait_for(blocking.queue.get(), 5) for _ in range(4)]
        assert [o.data.peer.id for o in got] == ["n4", "n5", "n6", "n7"]
        assert blocking.get_num_dropped() == 0
        assert lossy.get_num_dropped() == 3 and lossy.get_num_observed() == 4
        leader.deregister_observer(blocking)
        leader.deregister_observer(lossy)

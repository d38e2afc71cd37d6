"""Scenario tests of the Raft node API on the in-memory transport."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import pytest

from ddastate.raft import (
    CantBootstrapError,
    Configuration,
    ConfigurationError,
    InmemLogStore,
    InmemNetwork,
    InmemSnapshotStore,
    InmemStableStore,
    LeaderObservation,
    LeadershipLostError,
    NotLeaderError,
    PeerObservation,
    Raft,
    RaftError,
    RaftShutdownError,
    RaftState,
    RequestVoteObservation,
    Server,
    ServerSuffrage,
)
from ddastate.raft.testing import Cluster, RecordingFSM, apply_many, fast_config, wait_for

pytestmark = pytest.mark.timeout(60)


async def test_three_members_replicate_and_fsms_match() -> None:
    async with await Cluster.create(3) as c:
        leader = await c.wait_for_leader()
        resps = await apply_many(leader, [b"v%d" % i for i in range(200)], in_flight=32)
        # the FSM's response (the entry's index) comes back through the future
        assert resps == sorted(resps) and len(set(resps)) == 200
        await c.ensure_same_state()
        fsm = c.fsm(leader.local_id)
        assert isinstance(fsm, RecordingFSM)
        assert fsm.logs == [b"v%d" % i for i in range(200)]


async def test_five_members_and_future_index() -> None:
    async with await Cluster.create(5) as c:
        leader = await c.wait_for_leader()
        f = leader.apply(b"hello")
        resp = await f
        assert f.index == resp == leader.applied_index()
        await c.ensure_same_state()
        assert len(c.followers()) == 4


async def test_apply_on_follower_is_not_leader() -> None:
    async with await Cluster.create(3) as c:
        await c.wait_for_leader()
        follower = c.followers()[0]
        with pytest.raises(NotLeaderError):
            await follower.apply(b"x")
        with pytest.raises(NotLeaderError):
            await follower.barrier()
        with pytest.raises(NotLeaderError):
            await follower.verify_leader()
        with pytest.raises(NotLeaderError):
            await follower.add_voter("n9", "n9")


async def test_leader_failure_and_reelection() -> None:
    async with await Cluster.create(3) as c:
        old = await c.wait_for_leader()
        await apply_many(old, [b"a%d" % i for i in range(50)])
        old_id = old.local_id
        await c.stop(old_id)
        rest = [m for m in c.members if m != old_id]
        new = await c.wait_for_leader(among=rest)
        assert new.local_id != old_id
        assert new.current_term() > 0
        await apply_many(new, [b"b%d" % i for i in range(50)])
        await c.start(old_id)
        await c.wait_applied(new.last_index())
        await c.ensure_same_state()
        fsm = c.fsm(old_id)
        assert isinstance(fsm, RecordingFSM)
        assert len(fsm.logs) == 100


async def test_partitioned_old_leader_cannot_commit_and_rejoins() -> None:
    async with await Cluster.create(3) as c:
        old = await c.wait_for_leader()
        await apply_many(old, [b"before%d" % i for i in range(10)])
        c.isolate(old.local_id)
        stuck = old.apply(b"lost-write")
        rest = [m for m in c.members if m != old.local_id]
        new = await c.wait_for_leader(among=rest)
        await apply_many(new, [b"after%d" % i for i in range(10)])
        # no quorum: the isolated leader cannot commit (it may already have failed the
        # write when its lease ran out and it stepped down)
        assert not stuck.done() or stuck.exception() is not None
        assert old.state is not RaftState.LEADER or not stuck.done()
        c.heal()
        with pytest.raises((LeadershipLostError, NotLeaderError)):
            await stuck
        await c.wait_for_leader()
        await c.wait_applied(new.last_index())
        await c.ensure_same_state()
        for mid in c.members:
            fsm = c.fsm(mid)
            assert isinstance(fsm, RecordingFSM)
            assert b"lost-write" not in fsm.logs
            assert fsm.logs[-1] == b"after9"


async def test_add_and_remove_members_under_write_load() -> None:
    async with await Cluster.create(3) as c:
        leader = await c.wait_for_leader()
        stop = asyncio.Event()
        acked: list[bytes] = []

        async def writer() -> None:
            i = 0
            while not stop.is_set():
                data = b"w%d" % i
                try:
                    lead = await c.wait_for_leader()
                    await lead.apply(data)
                    acked.append(data)
                except (NotLeaderError, LeadershipLostError, RaftShutdownError):
                    pass
                i += 1

        tasks = [asyncio.create_task(writer()) for _ in range(4)]
        try:
            await wait_for(lambda: len(acked) > 50, what="some writes")
            await c.add_member("n4")
            await c.add_member("n5", voter=False)
            await wait_for(lambda: len(acked) > 150, what="more writes")
            leader = await c.wait_for_leader()
            victim = next(m for m in ("n2", "n3", "n1") if m != leader.local_id)
            await leader.remove_server(victim)
            await c.stop(victim)
            await wait_for(lambda: len(acked) > 250, what="writes after removal")
        finally:
            stop.set()
            await asyncio.gather(*tasks)
        leader = await c.wait_for_leader()
        await leader.barrier()
        await c.ensure_same_state()
        cfg = await leader.get_configuration()
        ids = {s.id: s.suffrage for s in cfg}
        assert victim not in ids
        assert ids["n4"] is ServerSuffrage.VOTER
        assert ids["n5"] is ServerSuffrage.NONVOTER
        fsm = c.fsm(leader.local_id)
        assert isinstance(fsm, RecordingFSM)
        applied = set(fsm.logs)
        assert all(a in applied for a in acked)  # every acknowledged write is in the FSM


async def test_membership_calls_and_configuration() -> None:
    async with await Cluster.create(3) as c:
        leader = await c.wait_for_leader()
        cf = leader.get_configuration()
        cfg = await cf
        assert [s.id for s in cfg] == ["n1", "n2", "n3"]
        assert cf.index == 1
        c._new_member("n4")
        await c.start("n4")
        idx = await leader.add_nonvoter("n4", "n4")
        assert idx > 1
        cfg = await leader.get_configuration()
        assert cfg.get("n4") == Server("n4", "n4", ServerSuffrage.NONVOTER)
        # prev_index that is not the latest configuration index is refused
        with pytest.raises(RaftError, match="configuration changed"):
            await leader.add_voter("n4", "n4", prev_index=1)
        cf = leader.get_configuration()
        await cf
        idx2 = await leader.add_voter("n4", "n4", prev_index=cf.index)
        assert idx2 > idx
        assert (await leader.get_configuration()).is_voter("n4")
        await leader.demote_voter("n4")
        assert not (await leader.get_configuration()).is_voter("n4")
        await leader.remove_server("n4")
        assert (await leader.get_configuration()).get("n4") is None
        # bad user input: clear errors
        with pytest.raises(ConfigurationError, match="server id"):
            await leader.add_voter("", "x")
        with pytest.raises(ConfigurationError, match="address"):
            await leader.add_voter("n7", "")
        with pytest.raises(ConfigurationError, match="prev_index"):
            await leader.remove_server("n2", prev_index=-1)


async def test_removed_leader_steps_down_and_shuts_down() -> None:
    async with await Cluster.create(3) as c:
        leader = await c.wait_for_leader()
        await leader.remove_server(leader.local_id)
        await wait_for(lambda: leader.state is RaftState.SHUTDOWN, what="removed leader shut down")
        rest = [m for m in c.members if m != leader.local_id]
        new = await c.wait_for_leader(among=rest)
        await new.apply(b"x")
        assert (await new.get_configuration()).get(leader.local_id) is None


async def test_shutdown_semantics() -> None:
    async with await Cluster.create(3) as c:
        leader = await c.wait_for_leader()
        c.isolate(leader.local_id)
        pending = [leader.apply(b"p%d" % i) for i in range(5)]
        verify = leader.verify_leader()
        changes = leader.leader_changes()
        await leader.shutdown()
        for f in pending:
            with pytest.raises(RaftShutdownError):
                await f
        with pytest.raises(RaftShutdownError):
            await verify
        assert leader.state is RaftState.SHUTDOWN
        await leader.shutdown()  # idempotent
        with pytest.raises(RaftShutdownError):
            await leader.apply(b"late")
        with pytest.raises(RaftShutdownError):
            await leader.verify_leader()
        assert [x async for x in changes] == [False]  # leadership ends with the node
        c.heal()


async def test_leader_changes_iterator_and_observers() -> None:
    async with await Cluster.create(3) as c:
        leader = await c.wait_for_leader()
        changes = leader.leader_changes()
        seen: list[Any] = []
        follower = c.followers()[0]
        obs = follower.observe(lambda o: isinstance(o.data, LeaderObservation | RaftState))
        votes = [
            f.observe(lambda o: isinstance(o.data, RequestVoteObservation)) for f in c.followers()
        ]
        peers = leader.observe(lambda o: isinstance(o.data, PeerObservation))
        c.isolate(leader.local_id)
        assert await changes.__anext__() is False  # the isolated leader steps down (lease)
        c.heal()
        await c.wait_for_leader()
        async with obs:
            while True:
                o = await asyncio.wait_for(obs.__anext__(), 5)
                seen.append(o.data)
                if isinstance(o.data, LeaderObservation) and o.data.leader_id:
                    break
        assert any(isinstance(d, LeaderObservation) for d in seen)
        # the two followers elected one of them: the other one saw a vote request
        got = [v.queue.get_nowait() for v in votes if not v.queue.empty()]
        assert got and isinstance(got[0].data, RequestVoteObservation)
        await changes.aclose()
        new_leader = await c.wait_for_leader()
        new_leader.register_observer(peers)
        c._new_member("n4")
        await c.start("n4")
        await new_leader.add_nonvoter("n4", "n4")
        p = await asyncio.wait_for(peers.__anext__(), 5)
        assert isinstance(p.data, PeerObservation) and p.data.peer.id == "n4"
        new_leader.deregister_observer(peers)


async def test_barrier_and_verify_leader() -> None:
    async with await Cluster.create(3) as c:
        leader = await c.wait_for_leader()
        fs = [leader.apply(b"x%d" % i) for i in range(20)]
        b = leader.barrier()
        await b
        assert all(f.done() for f in fs)
        assert leader.applied_index() >= b.index
        await leader.verify_leader()
        stats = leader.stats()
        assert stats["state"] == "Leader"
        assert int(stats["applied_index"]) >= b.index
        assert stats["num_peers"] == "2"
        assert stats["last_contact"] == "0"
        follower = c.followers()[0]
        assert follower.stats()["last_contact"].endswith("ms")
        assert follower.last_contact() is not None
        assert leader.leader() == (leader.local_addr, leader.local_id)


async def test_bootstrap_rules() -> None:
    net = InmemNetwork(seed=3)
    nodes: list[Raft] = []
    try:
        cfg = Configuration(tuple(Server(f"m{i}", f"m{i}") for i in range(3)))
        for i in range(3):
            t = net.transport(f"m{i}")
            r = Raft(
                fast_config(f"m{i}"),
                RecordingFSM(),
                InmemLogStore(),
                InmemStableStore(),
                InmemSnapshotStore(),
                t,
            )
            await r.start()
            nodes.append(r)
        with pytest.raises(ConfigurationError):
            await nodes[0].bootstrap_cluster(Configuration(()))
        await nodes[0].bootstrap_cluster(cfg)
        with pytest.raises(CantBootstrapError):
            await nodes[0].bootstrap_cluster(cfg)
        # the others learn the configuration from the leader
        await wait_for(lambda: any(r.state is RaftState.LEADER for r in nodes), what="leader")
        leader = next(r for r in nodes if r.state is RaftState.LEADER)
        await leader.apply(b"z")
        await wait_for(lambda: all(r.applied_index() == leader.applied_index() for r in nodes))
    finally:
        for r in nodes:
            await r.shutdown()


async def test_restart_whole_cluster_from_stores() -> None:
    async with await Cluster.create(3) as c:
        leader = await c.wait_for_leader()
        await apply_many(leader, [b"r%d" % i for i in range(30)])
        await c.ensure_same_state()
        for mid in list(c.members):
            await c.stop(mid)
        for mid in list(c.members):
            await c.start(mid)
        leader = await c.wait_for_leader()
        await leader.barrier()
        await c.ensure_same_state()
        fsm = c.fsm("n1")
        assert isinstance(fsm, RecordingFSM)
        assert fsm.logs == [b"r%d" % i for i in range(30)]


class _ThreadedLogStore(InmemLogStore):
    """Same store, but the node must use its writer thread (not inline-safe)."""

    inline_safe = False


class _ThreadedStableStore(InmemStableStore):
    inline_safe = False


async def test_writer_thread_path() -> None:
    net = InmemNetwork(seed=5)
    nodes: list[Raft] = []
    try:
        cfg = Configuration(tuple(Server(f"t{i}", f"t{i}") for i in range(3)))
        for i in range(3):
            r = Raft(
                fast_config(f"t{i}"),
                RecordingFSM(),
                _ThreadedLogStore(),
                _ThreadedStableStore(),
                InmemSnapshotStore(),
                net.transport(f"t{i}"),
            )
            await r.start()
            assert r._writer is not None
            nodes.append(r)
        for r in nodes:
            await r.bootstrap_cluster(cfg)
        await wait_for(lambda: any(r.state is RaftState.LEADER for r in nodes), what="leader")
        leader = next(r for r in nodes if r.state is RaftState.LEADER)
        await apply_many(leader, [b"%d" % i for i in range(300)], in_flight=64)
        await wait_for(lambda: all(r.applied_index() == leader.applied_index() for r in nodes))
        fsms = [r._fsm for r in nodes]
        assert all(f == fsms[0] for f in fsms)
    finally:
        for r in nodes:
            await r.shutdown()


@pytest.mark.parametrize("threaded", [False, True], ids=["inline-store", "writer-thread"])
async def test_leader_sends_append_entries_before_its_own_log_write(threaded: bool) -> None:
    """A leader's AppendEntries for new entries reach the transport before the leader's
    own write of those entries starts (the leader counts itself only once persisted)."""
    from ddastate.raft.commands import AppendEntriesRequest

    events: list[tuple[str, str, int, int]] = []  # (node, "send" | "store", first, last)

    def recording_store(node_id: str) -> InmemLogStore:
        class Store(InmemLogStore):
            inline_safe = not threaded

            def store_logs(self, logs: Any) -> None:
                if logs:
                    events.append((node_id, "store", logs[0].index, logs[-1].index))
                super().store_logs(logs)

        return Store()

    net = InmemNetwork(seed=11)
    nodes: list[Raft] = []
    try:
        for i in range(3):
            nid = f"o{i}"
            transport = net.transport(nid)
            inner = transport.call_then

            def call_then(
                target: str, req: Any, on_done: Any, nid: str = nid, inner: Any = inner
            ) -> None:
                if type(req) is AppendEntriesRequest and req.entries:
                    events.append((nid, "send", req.entries[0].index, req.entries[-1].index))
                inner(target, req, on_done)

            transport.call_then = call_then  # type: ignore[method-assign]
            r = Raft(
                fast_config(nid),
                RecordingFSM(),
                recording_store(nid),
                (_ThreadedStableStore if threaded else InmemStableStore)(),
                InmemSnapshotStore(),
                transport,
            )
            await r.start()
            nodes.append(r)
        cfg = Configuration(tuple(Server(f"o{i}", f"o{i}") for i in range(3)))
        for r in nodes:
            await r.bootstrap_cluster(cfg)
        await wait_for(lambda: any(r.state is RaftState.LEADER for r in nodes), what="leader")
        leader = next(r for r in nodes if r.state is RaftState.LEADER)
        await leader.barrier()
        start = leader.last_index() + 1
        for i in range(20):  # one at a time: each one's commit frees a follower's window
            await leader.apply(b"%d" % i)
        lid = leader.local_id
        mine = [e for e in events if e[0] == lid]
        for index in range(start, start + 20):
            sent = next(k for k, e in enumerate(mine) if e[1] == "send" and e[2] <= index <= e[3])
            stored = next(
                k for k, e in enumerate(mine) if e[1] == "store" and e[2] <= index <= e[3]
            )
            assert sent < stored, (index, mine[min(sent, stored) : max(sent, stored) + 1])
    finally:
        for r in nodes:
            await r.shutdown()


async def test_bad_input_on_transport_is_dropped(caplog: pytest.LogCaptureFixture) -> None:
    from ddastate.raft.commands import (
        AppendEntriesRequest,
        InstallSnapshotRequest,
        RequestVoteRequest,
    )
    from ddastate.raft.log import Log

    async with await Cluster.create(3) as c:
        leader = await c.wait_for_leader()
        await leader.apply(b"ok")
        follower = c.followers()[0]
        t = c.members[follower.local_id].transport
        assert t is not None
        term = follower.current_term()
        bad: list[Any] = [
            "garbage",
            42,
            None,
            AppendEntriesRequest(term=-1, leader=b"n1", addr=b"n1", id=b"n1"),
            AppendEntriesRequest(term=2**70, leader=b"n1", addr=b"n1", id=b"n1"),
            AppendEntriesRequest(
                term=term, leader=b"n1", prev_log_entry=2**66, addr=b"n1", id=b"n1"
            ),
            AppendEntriesRequest(
                term=term,
                leader=b"n1",
                entries=["not a log"],
                addr=b"n1",
                id=b"n1",  # type: ignore[list-item]
            ),
            AppendEntriesRequest(
                term=term,
                leader=b"n1",
                prev_log_entry=1,
                prev_log_term=1,
                entries=[Log(index=5, term=1)],  # not contiguous with prev_log_entry
                addr=b"n1",
                id=b"n1",
            ),
            AppendEntriesRequest(term="x", leader=b"n1"),  # type: ignore[arg-type]
            RequestVoteRequest(term=term + 1, candidate=12, id=b"n9", addr=b"n9"),  # type: ignore[arg-type]
            RequestVoteRequest(term=term, protocol_version=1, id=b"n9", addr=b"n9"),
            InstallSnapshotRequest(term=term, size=-5, configuration=b"\xc1"),
        ]
        with caplog.at_level(logging.WARNING, logger="ddastate.raft.node"):
            for cmd in bad:
                fut = t.inject(cmd)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(fut, 2)
        assert "malformed" in caplog.text
        assert follower.state is RaftState.FOLLOWER
        assert follower.current_term() == term  # absurd terms did not move us
        leader = await c.wait_for_leader()
        await apply_many(leader, [b"after%d" % i for i in range(20)])
        await c.ensure_same_state()


async def test_enqueue_timeout_and_cancelled_apply() -> None:
    async with await Cluster.create(3) as c:
        leader = await c.wait_for_leader()
        f = leader.apply(b"x", timeout=5.0)
        assert await f == f.index
        g = leader.apply(b"y")
        g.cancel()
        await leader.barrier()
        fsm = c.fsm(leader.local_id)
        assert isinstance(fsm, RecordingFSM)
        assert b"y" not in fsm.logs
        with pytest.raises(TypeError):
            await leader.apply("not bytes")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("plain", "pipeline", "prevote"),
    [(True, True, True), (True, False, False), (False, False, False)],
)
async def test_protocol_only_transport_and_go_like_peers(
    plain: bool, pipeline: bool, prevote: bool
) -> None:
    """Without the in-memory fast paths (consumer queue + coroutine calls), and with a
    transport that neither pipelines nor pre-votes (as the Go reference)."""
    from ddastate.raft.inmem import PlainInmemTransport

    # 300 applies with 128 in flight keep the one shared loop busy: on a loaded machine
    # a 100 ms lease lapsed once and the leader stepped down mid-stream (correctly, but
    # apply_many then fails). Longer timers keep this about the transport.
    slow = {"heartbeat_timeout": 0.5, "election_timeout": 0.5, "leader_lease_timeout": 0.5}
    async with await Cluster.create(
        3,
        config=fast_config(**slow),
        transport_class=PlainInmemTransport if plain else None,
        can_pipeline=pipeline,
        can_prevote=prevote,
    ) as c:
        leader = await c.wait_for_leader()
        await apply_many(leader, [b"p%d" % i for i in range(300)], in_flight=128)
        await c.stop(leader.local_id)
        rest = [m for m in c.members if m != leader.local_id]
        new = await c.wait_for_leader(among=rest)
        await apply_many(new, [b"q%d" % i for i in range(50)])
        await c.start(leader.local_id)
        await c.wait_applied(new.last_index())
        await c.ensure_same_state()


class _BatchingFSM(RecordingFSM):
    """hashicorp's BatchingFSM shape: apply_batch gets runs of commands."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    def apply_batch(self, logs: list[Any]) -> list[Any]:
        self.batches.append(len(logs))
        return [self.apply(log) for log in logs]


async def test_batching_fsm_gets_runs_of_commands() -> None:
    # 256 in flight on a busy host can hold the loop past a 100 ms lease: the leader would
    # step down mid-run, which is not what this test is about
    cfg = fast_config(heartbeat_timeout=0.5, election_timeout=0.5, leader_lease_timeout=0.5)
    async with await Cluster.create(3, fsm_factory=_BatchingFSM, config=cfg) as c:
        leader = await c.wait_for_leader()
        resps = await apply_many(leader, [b"b%d" % i for i in range(500)], in_flight=256)
        assert len(set(resps)) == 500
        await c.ensure_same_state()
        fsm = c.fsm(leader.local_id)
        assert isinstance(fsm, _BatchingFSM)
        assert fsm.logs == [b"b%d" % i for i in range(500)]
        assert max(fsm.batches) > 1


async def test_module_bootstrap_and_has_existing_state() -> None:
    from ddastate.raft import bootstrap_cluster, has_existing_state

    logs, stable, snaps = InmemLogStore(), InmemStableStore(), InmemSnapshotStore()
    conf = Configuration((Server("a", "a"),))
    assert not await has_existing_state(logs, stable, snaps)
    await bootstrap_cluster(fast_config("a"), logs, stable, snaps, None, conf)
    assert await has_existing_state(logs, stable, snaps)
    with pytest.raises(CantBootstrapError):
        await bootstrap_cluster(fast_config("a"), logs, stable, snaps, None, conf)
    with pytest.raises(ConfigurationError):
        await bootstrap_cluster(
            fast_config("b"),
            InmemLogStore(),
            InmemStableStore(),
            None,
            None,
            Configuration((Server("a", "a"), Server("a", "b"))),
        )
    # a single-member cluster elects itself and applies
    net = InmemNetwork()
    fsm = RecordingFSM()
    async with Raft(fast_config("a"), fsm, logs, stable, snaps, net.transport("a")) as r:
        await wait_for(lambda: r.state is RaftState.LEADER, what="self-election")
        assert await r.apply(b"solo") == r.applied_index()
    assert r.state is RaftState.SHUTDOWN
    assert fsm.logs == [b"solo"]


async def test_removed_member_keeps_running_without_shutdown_on_remove() -> None:
    async with await Cluster.create(3, config=fast_config(shutdown_on_remove=False)) as c:
        leader = await c.wait_for_leader()
        term = leader.current_term()
        victim = c.followers()[0]
        await leader.remove_server(victim.local_id)
        # As in hashicorp the leader stops replicating to a removed server, which may
        # never learn of its removal; without ShutdownOnRemove it is not shut down, and
        # its election attempts do not disturb the remaining members.
        loop = asyncio.get_running_loop()
        until = loop.time() + 5 * 0.1
        while loop.time() < until:
            await leader.apply(b"after-removal")
        assert victim.state is not RaftState.SHUTDOWN
        assert leader.state is RaftState.LEADER and leader.current_term() == term
        assert (await leader.get_configuration()).get(victim.local_id) is None


async def test_apply_then_reports_from_inside_the_node() -> None:
    """``apply_then``'s callback runs as the future completes, before any callback
    registered with ``add_done_callback`` (those wait for an event-loop round)."""
    async with await Cluster.create(3) as c:
        leader = await c.wait_for_leader()
        order: list[str] = []
        seen: list[tuple[int, Any]] = []

        def on_done(f: Any) -> None:
            assert f.done()
            order.append("on_done")
            seen.append((f.index, f.result()))

        f = leader.apply_then(b"x", on_done)
        f.add_done_callback(lambda _: order.append("done_callback"))
        assert await f == f.index
        assert order == ["on_done", "done_callback"]
        assert seen == [(f.index, f.index)]  # the RecordingFSM answers the index

        # refused at once: the callback has run before apply_then returns
        failed: list[BaseException | None] = []
        follower = c.followers()[0]
        g = follower.apply_then(b"y", lambda f: failed.append(f.exception()))
        assert len(failed) == 1 and isinstance(failed[0], NotLeaderError)
        with pytest.raises(NotLeaderError):
            await g

        # cancelled by its caller: reported once, as cancelled
        cancelled: list[bool] = []
        h = leader.apply_then(b"z", lambda f: cancelled.append(f.cancelled()))
        h.cancel()
        h.cancel()
        await leader.barrier()
        assert cancelled == [True]

"""RaftBinding: factory, options, lifecycle errors, bad input from the network, restart."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgpack
import pytest

from ddastate._fdatasync import AsyncFdatasync
from ddastate.com.api import Action, Scope
from ddastate.raft.testing import wait_for
from ddastate.state import UnsupportedProtocolError, new
from ddastate.state.api import Input, InputOp
from ddastate.state.raft import (
    BindingNotOpenError,
    BindingOptions,
    RaftBinding,
    StateBindingError,
    codec,
)
from ddastate.state.raft.messages import (
    AddVoterRequest,
    ApplyRequest,
    ApplyResponse,
    RemoveServerRequest,
)

from .helpers import Group, converged, next_item

SET_K = Input(InputOp.SET, "k", b"v")
FAST = {"heartbeatTimeout": 300, "electionTimeout": 300, "lfwTimeout": 1000}


@pytest.fixture
async def group(com_factory: Any) -> AsyncIterator[Group]:
    g = Group(com_factory)
    yield g
    await g.close_all()


@pytest.fixture
async def lgroup(loopback_factory: Any) -> AsyncIterator[Group]:
    g = Group(loopback_factory)
    yield g
    await g.close_all()


# ------------------------------------------------------------------------ factory


def test_new_raft_and_unknown_protocol() -> None:
    assert isinstance(new("raft"), RaftBinding)
    with pytest.raises(UnsupportedProtocolError, match="paxos"):
        new("paxos")
    with pytest.raises(UnsupportedProtocolError):
        new("")


# ------------------------------------------------------------------------ options


def test_options_defaults_and_units() -> None:
    o = BindingOptions.from_opts({})
    assert (o.startup_timeout, o.lfw_timeout, o.rpc_timeout) == (10.0, 20.0, 1.0)
    assert (o.heartbeat_timeout, o.election_timeout) == (1.0, 1.0)
    assert o.install_snapshot_timeout_scale == 262144
    assert (o.snapshot_interval, o.snapshot_threshold) == (120.0, 8192)
    assert not o.debug and not o.pipeline
    assert o.max_append_entries == 512  # ddastate's batch; Go members use hashicorp's 64
    assert BindingOptions.from_opts({"maxAppendEntries": 64}).max_append_entries == 64
    assert o.async_fsync  # on unless turned off; null means the default too
    assert not BindingOptions.from_opts({"asyncFsync": False}).async_fsync
    assert BindingOptions.from_opts({"asyncFsync": None}).async_fsync
    o = BindingOptions.from_opts(
        {
            "debug": True,
            "startupTimeout": 2500,
            "lfwTimeout": 5000,
            "rpcTimeout": 0,
            "heartbeatTimeout": 200,
            "electionTimeout": 400,
            "installSnapshotTimeoutScale": 1024,
            "snapshotInterval": 50,
            "snapshotThreshold": 40,
            "unknownKey": "kept for others",
        }
    )
    assert o.debug and o.startup_timeout == 2.5 and o.lfw_timeout == 5.0
    assert o.rpc_timeout == 1.0  # 0 means the default, as in the reference
    assert (o.heartbeat_timeout, o.election_timeout) == (0.2, 0.4)
    assert o.install_snapshot_timeout_scale == 1024
    assert (o.snapshot_interval, o.snapshot_threshold) == (0.05, 40)


@pytest.mark.parametrize(
    ("opts", "name"),
    [
        ({"rpcTimeout": "1s"}, "rpcTimeout"),
        ({"heartbeatTimeout": True}, "heartbeatTimeout"),
        ({"snapshotThreshold": -1}, "snapshotThreshold"),
        ({"snapshotThreshold": 1.5}, "snapshotThreshold"),
        ({"debug": "yes"}, "debug"),
        ({"asyncFsync": 0}, "asyncFsync"),
        ({"lfwTimeout": float("nan")}, "lfwTimeout"),
    ],
)
def test_bad_options_name_the_option(opts: dict[str, Any], name: str) -> None:
    with pytest.raises(StateBindingError, match=f"services.state.opts.{name}"):
        BindingOptions.from_opts(opts)


async def test_invalid_raft_settings_fail_open(loopback_factory: Any) -> None:
    g = Group(loopback_factory)
    # an election timeout below the heartbeat timeout is refused by the Raft config rules
    with pytest.raises(StateBindingError, match="election_timeout"):
        await g.member(bootstrap=True, opts={"heartbeatTimeout": 1000, "electionTimeout": 100})
    await g.close_all()


# ---------------------------------------------------------------------- lifecycle


async def test_not_open_binding_raises_at_once() -> None:
    b = RaftBinding()
    assert b.node_id() == "" and b.node() is None and not b.is_open
    with pytest.raises(BindingNotOpenError, match="not open"):
        await b.propose_input(Input(InputOp.SET, "k", b"v"), timeout=100)
    with pytest.raises(BindingNotOpenError):
        await b.observe_state_change()
    with pytest.raises(BindingNotOpenError):
        await b.observe_membership_change()
    await b.close()  # harmless


async def test_bad_input_objects_are_refused(lgroup: Group) -> None:
    m = await lgroup.member(bootstrap=True, opts=FAST)
    with pytest.raises(StateBindingError, match="Input"):
        await m.propose_input("not an input")
    with pytest.raises(StateBindingError, match="key"):
        await m.propose_input(Input(InputOp.SET, 5, b"v"))  # type: ignore[arg-type]
    with pytest.raises(StateBindingError, match="value"):
        await m.propose_input(Input(InputOp.SET, "k", "text"))  # type: ignore[arg-type]
    with pytest.raises(StateBindingError, match="op"):
        await m.propose_input(Input(9, "k", b"v"))  # type: ignore[arg-type]
    await m.propose_input(Input(InputOp.UNDEFINED, "k", b"v"), 5)  # accepted, changes nothing
    fsm = m.fsm()
    assert fsm is not None and fsm.state() == {}


async def test_observers_end_when_binding_closes(lgroup: Group) -> None:
    m = await lgroup.member(bootstrap=True, opts=FAST)
    await m.propose_input(Input(InputOp.SET, "a", b"1"), 5)
    obs = await m.observe_state_change()
    mobs = await m.observe_membership_change()
    assert await next_item(obs) == Input(InputOp.SET, "a", b"1")
    await next_item(mobs)
    await m.close()
    with pytest.raises(StopAsyncIteration):
        await next_item(obs)
    with pytest.raises(StopAsyncIteration):
        await next_item(mobs)


async def test_join_waits_for_a_leader(lgroup: Group) -> None:
    joiner = asyncio.create_task(lgroup.member(opts=FAST))
    await asyncio.sleep(0)  # the joiner starts asking before any leader exists
    m1 = await lgroup.member(bootstrap=True, opts=FAST)
    m2 = await asyncio.wait_for(joiner, 30)
    await m2.propose_input(Input(InputOp.SET, "x", b"y"), 10)
    fsm = m1.fsm()
    assert fsm is not None and fsm.state() == {"x": b"y"}


async def test_propose_times_out_without_leader(lgroup: Group) -> None:
    m1 = await lgroup.member(bootstrap=True, opts=FAST)
    m2 = await lgroup.member(opts=FAST)
    lgroup.factory.bus.partition([m1.node_id()], [m2.node_id()])
    with pytest.raises(TimeoutError):
        await m2.propose_input(Input(InputOp.SET, "x", b"y"), timeout=0.5)
    lgroup.factory.bus.heal()
    await m2.propose_input(Input(InputOp.SET, "x", b"y"), timeout=30)


async def test_restart_from_store_without_bootstrap(lgroup: Group, tmp_path: Path) -> None:
    store = str(tmp_path / "m1")
    m1 = await lgroup.member(bootstrap=True, opts=FAST, store=store)
    for i in range(20):
        await m1.propose_input(Input(InputOp.SET, f"k{i}", b"v"), 5)
    await m1.propose_input(Input(InputOp.DELETE, "k3"), 5)
    cfg = m1.test_cfg
    # crash: stop without leaving the group (storage kept)
    await m1._teardown()
    again = RaftBinding()
    await again.open(cfg, m1.test_com)  # bootstrap flag still set, but the store has state
    lgroup.members.append(again)
    obs = await again.observe_state_change()
    got = {(await next_item(obs)).key for _ in range(19)}
    assert got == {f"k{i}" for i in range(20)} - {"k3"}
    await again.propose_input(Input(InputOp.SET, "new", b"1"), 10)
    assert await next_item(obs) == Input(InputOp.SET, "new", b"1")


# ------------------------------------------------------------------ bad network input


GARBAGE: list[bytes] = [
    b"",
    b"\xc1",
    b"\x00" * 3,
    b"\x92\x01\x02",
    b"\x81\xa4Term\xa5hello",  # wrongly typed field
    b"\x82\xa7Entries\x91\x05\xa4Term\x02",  # an entry that is not a map
    b"\x89\xa4Addr",  # truncated
    b"\xde\xff\xff",
    bytes(range(256)),
]


async def test_garbage_on_rpc_and_lfw_topics_keeps_group_committing(
    group: Group, caplog: pytest.LogCaptureFixture
) -> None:
    m1 = await group.member(bootstrap=True, opts=FAST)
    m2 = await group.member(opts=FAST)
    m3 = await group.member(opts=FAST)
    outsider = await group.factory.open()
    caplog.set_level(logging.WARNING, logger="ddastate.state.raft")

    async def send(type_: str, op: str, payload: bytes) -> Any:
        try:
            return await outsider.request_action(
                Action(type=type_, id=op, source="bad", params=payload), Scope.STA, 0.5
            )
        except TimeoutError:
            return None

    rpc_results = await asyncio.gather(
        *(
            send(f"rpc{target.node_id()}", op, payload)
            for target in (m1, m2, m3)
            for op in ("ae", "rv", "is", "tn", "xx")
            for payload in GARBAGE
        )
    )
    lfw_results = await asyncio.gather(
        *(send("lfw", op, payload) for op in ("ap", "av", "rs", "zz") for payload in GARBAGE)
    )
    answered = 0
    for res in rpc_results:
        if res is not None:
            answered += 1
            raw = msgpack.unpackb(res.data, raw=True)
            assert set(raw) == {b"Error", b"Response", b"Retryable"}
    for res in lfw_results:
        if res is not None:
            answered += 1
            reply = codec.decode_rpc_reply(res.data, ApplyResponse)
            if reply.error == "":
                continue  # e.g. b"" decodes as an empty request; see the av/rs test below
            assert not reply.retryable and reply.response is None
    assert answered > 0
    assert any("does not decode" in r.getMessage() for r in caplog.records)
    # the group keeps committing, every member agrees
    for i, m in enumerate((m1, m2, m3)):
        await m.propose_input(Input(InputOp.SET, f"after{i}", b"ok"), 30)
    state = await converged([m1, m2, m3], "after2")
    assert state == {f"after{i}": b"ok" for i in range(3)}


async def test_ap_with_undecodable_input_answered_with_error(group: Group) -> None:
    m1 = await group.member(bootstrap=True, opts=FAST)
    await group.member(opts=FAST)
    outsider = await group.factory.open()
    bad_inputs = [
        b"\xc1",
        b"not msgpack at all",
        msgpack.packb({"Key": 5, "Op": 1, "Value": b"v"}, use_bin_type=False),
        msgpack.packb({"Key": b"k", "Op": 7, "Value": b"v"}, use_bin_type=False),
        msgpack.packb([1, 2, 3]),
    ]
    for cmd in bad_inputs:
        params = codec.encode_msgpack(ApplyRequest(command=cmd, timeout=0))
        res = await outsider.request_action(
            Action(type="lfw", id="ap", source="outsider", params=params), Scope.STA, 5
        )
        reply = codec.decode_rpc_reply(res.data, ApplyResponse)
        assert reply.error and not reply.retryable, reply
        assert res.context == m1.node_id()  # the leader answered
    # a good forwarded apply from an outsider is answered with {Index, Response: nil}
    good = codec.encode_msgpack(ApplyRequest(command=codec.encode_msgpack(SET_K)))
    res = await outsider.request_action(
        Action(type="lfw", id="ap", source="outsider", params=good),
        Scope.STA,
        5,
    )
    raw = msgpack.unpackb(res.data, raw=True)
    assert raw[b"Error"] == b"" and raw[b"Retryable"] is False
    assert raw[b"Response"][b"Response"] is None and raw[b"Response"][b"Index"] > 0
    fsm = m1.fsm()
    assert fsm is not None and fsm.state() == {"k": b"v"}
    # av / rs without a server id are refused, not applied
    for op, req in (("av", AddVoterRequest("", "", 0)), ("rs", RemoveServerRequest("", 0))):
        res = await outsider.request_action(
            Action(type="lfw", id=op, source="outsider", params=codec.encode_msgpack(req)),
            Scope.STA,
            5,
        )
        reply = codec.decode_rpc_reply(res.data, ApplyResponse)
        assert reply.error and not reply.retryable
    node = m1.node()
    assert node is not None
    conf = await node.get_configuration()
    assert len(conf) == 2


async def test_propose_right_after_leader_left_does_not_wait_for_lfw_timeout(
    lgroup: Group,
) -> None:
    # lfwTimeout stays at its 20 s default: a forwarded attempt to a leader that is gone
    # must be abandoned when the leader changes, not after lfwTimeout.
    opts = {"heartbeatTimeout": 300, "electionTimeout": 300}
    m1 = await lgroup.member(bootstrap=True, opts=opts)
    m2 = await lgroup.member(opts=opts)
    m3 = await lgroup.member(opts=opts)
    await m1.close()
    await m2.propose_input(Input(InputOp.SET, "y", b"2"), timeout=10)
    await m3.propose_input(Input(InputOp.SET, "z", b"3"), timeout=10)


@pytest.mark.parametrize(
    "ext",
    [
        {"pipeline": True},
        {"preVote": True},
        {"pipeline": True, "preVote": True, "maxAppendEntries": 512},
    ],
)
async def test_all_python_extensions(group: Group, ext: dict[str, Any]) -> None:
    opts = {**FAST, **ext}
    ms = [await group.member(bootstrap=True, opts=opts)]
    ms += [await group.member(opts=opts) for _ in range(2)]
    sem = asyncio.Semaphore(256)

    async def one(i: int) -> None:
        async with sem:
            await ms[i % 3].propose_input(Input(InputOp.SET, f"k{i % 500}", str(i).encode()), 30)

    await asyncio.gather(*(one(i) for i in range(3000)))
    await ms[1].propose_input(Input(InputOp.SET, "last", b""), 30)
    state = await converged(ms, "last")
    assert len(state) == 501


async def test_propose_at_leader_times_out_without_quorum(lgroup: Group) -> None:
    m1 = await lgroup.member(bootstrap=True, opts=FAST)
    m2 = await lgroup.member(opts=FAST)
    lgroup.factory.bus.partition([m1.node_id()], [m2.node_id()])
    with pytest.raises(TimeoutError):
        await m1.propose_input(Input(InputOp.SET, "x", b"y"), timeout=0.2)
    assert not m1._deadlines._expired  # the expiry was taken by the proposal it ended
    lgroup.factory.bus.heal()
    await m1.propose_input(Input(InputOp.SET, "x", b"z"), timeout=30)


async def test_cancel_as_the_deadline_passes_stays_a_cancellation(lgroup: Group) -> None:
    """A proposal cancelled by its caller in the same loop pass as its deadline passes
    raises CancelledError, not TimeoutError: the caller's cancellation is not lost."""
    m1 = await lgroup.member(bootstrap=True, opts=FAST)
    m2 = await lgroup.member(opts=FAST)
    lgroup.factory.bus.partition([m1.node_id()], [m2.node_id()])  # nothing commits
    deadlines = m1._deadlines
    expire = deadlines._fire
    task: asyncio.Task[None] | None = None

    def expire_then_cancel(key: int) -> None:
        assert task is not None
        expire(key)
        task.cancel()

    deadlines._fire = expire_then_cancel  # type: ignore[method-assign]
    task = asyncio.ensure_future(m1.propose_input(Input(InputOp.SET, "x", b"y"), timeout=0.2))
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()
    lgroup.factory.bus.heal()


async def test_leader_proposals_share_deadline_timers_and_leave_none_behind(
    lgroup: Group,
) -> None:
    m1 = await lgroup.member(bootstrap=True, opts=FAST)
    inputs = [Input(InputOp.SET, f"k{i}", b"v") for i in range(500)]
    await asyncio.gather(*(m1.propose_input(inp, 30) for inp in inputs))
    deadlines = m1._deadlines
    # proposals made together share their deadline's millisecond (not a timer each)
    assert 1 <= len(deadlines._buckets) <= 100
    assert all(not bucket for bucket in deadlines._buckets.values())  # done ones removed
    assert not deadlines._expired
    fsm = m1.fsm()
    assert fsm is not None and len(fsm.state()) == 500


@pytest.mark.parametrize("async_fsync", [True, False], ids=["kernel-fsync", "writer-thread"])
async def test_slow_disk_on_a_follower_does_not_stall_heartbeats(
    lgroup: Group, tmp_path: Path, async_fsync: bool
) -> None:
    """Heartbeats take the fast path: a follower whose writes take 4x the heartbeat
    timeout to become durable keeps hearing from the leader and never starts an
    election, whether its flushes are done by the kernel or by its writer thread."""
    import time as _time

    from ddastate.raft.observer import RaftState

    opts = {"heartbeatTimeout": 250, "electionTimeout": 250, "asyncFsync": async_fsync}
    m1 = await lgroup.member(bootstrap=True, opts=opts)
    m2 = await lgroup.member(opts=opts)
    m3 = await lgroup.member(opts=opts, store=str(tmp_path / "m3"))  # a disk to be slow
    n1, n3 = m1.node(), m3.node()
    assert n1 is not None and n3 is not None
    term = n1.current_term()
    store3 = m3._store
    assert store3 is not None
    slow_calls: list[int] = []
    loop = asyncio.get_running_loop()
    fsync = n3._fsync
    if async_fsync:
        assert fsync is not None, "this kernel has no asynchronous fdatasync"
        real_sync_then = fsync.sync_then

        def slow_sync_then(cb: Any) -> None:  # the flush completes 1 s late
            slow_calls.append(1)
            real_sync_then(lambda err: loop.call_later(1.0, cb, err))

        fsync.sync_then = slow_sync_then  # type: ignore[method-assign]
    else:
        assert fsync is None
        real = store3.store_logs

        def slow_store_logs(logs: Any) -> None:
            slow_calls.append(len(logs))
            _time.sleep(1.0)  # runs in the node's writer thread, never on the event loop
            real(logs)

        store3.store_logs = slow_store_logs  # type: ignore[method-assign]
    roles: list[Any] = []
    async with n3.observe(lambda o: isinstance(o.data, RaftState)) as obs:

        async def record() -> None:
            async for o in obs:
                roles.append(o.data)

        rec = asyncio.create_task(record())
        for i in range(15):  # about 2 s of commits through m1 and m2 while m3's disk is slow
            await m1.propose_input(Input(InputOp.SET, f"k{i}", b"v"), 10)
            await asyncio.sleep(0.1)
        rec.cancel()
    assert len(slow_calls) >= 2
    assert RaftState.CANDIDATE not in roles
    assert n1.current_term() == term and n3.current_term() == term
    if async_fsync:
        assert fsync is not None
        fsync.sync_then = real_sync_then  # type: ignore[method-assign]
    else:
        store3.store_logs = real  # type: ignore[method-assign]
    await m2.propose_input(Input(InputOp.SET, "done", b""), 10)
    await converged([m1, m2, m3], "done")


@pytest.mark.parametrize("async_fsync", [True, False], ids=["kernel-fsync", "writer-thread"])
async def test_where_stores_are_written_and_synced(
    lgroup: Group, tmp_path: Path, async_fsync: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An in-memory store is written on the event loop (no thread hand-off per write).
    A durable one is written on the loop and flushed by the kernel (asyncFsync), or
    written and flushed in the node's writer thread; no fsync ever runs on the loop."""
    import os
    import threading

    opts = {"asyncFsync": async_fsync}
    m1 = await lgroup.member(bootstrap=True, opts=opts)
    m2 = await lgroup.member(store=str(tmp_path / "m2"), opts=opts)
    n2 = m2.node()
    assert n2 is not None and (n2._fsync is not None) == async_fsync
    writers: dict[str, set[threading.Thread]] = {"memory": set(), "durable": set()}
    for kind, m in (("memory", m1), ("durable", m2)):
        store = m._store
        assert store is not None
        real = store.store_logs

        def record(logs: Any, real: Any = real, seen: Any = writers[kind]) -> None:
            seen.add(threading.current_thread())
            real(logs)

        store.store_logs = record
    fsyncs: set[threading.Thread] = set()
    for name in ("fsync", "fdatasync"):
        real_sync = getattr(os, name)

        def traced(fd: int, real_sync: Any = real_sync) -> None:
            fsyncs.add(threading.current_thread())
            real_sync(fd)

        monkeypatch.setattr(os, name, traced)
    kernel_flushes: list[int] = []
    if n2._fsync is not None:
        real_then = n2._fsync.sync_then

        def counted_then(cb: Any) -> None:
            kernel_flushes.append(1)
            real_then(cb)

        n2._fsync.sync_then = counted_then  # type: ignore[method-assign]
    for i in range(5):
        await m1.propose_input(Input(InputOp.SET, f"k{i}", b"v"), 10)
    await converged([m1, m2], "k4")
    loop_thread = threading.current_thread()
    assert writers["memory"] == {loop_thread}
    assert loop_thread not in fsyncs
    if async_fsync:
        assert writers["durable"] == {loop_thread}
        assert len(kernel_flushes) >= 5
    else:
        assert writers["durable"] and loop_thread not in writers["durable"]


async def test_a_write_is_acknowledged_only_after_its_kernel_flush(
    lgroup: Group, tmp_path: Path
) -> None:
    """Followers write on the loop but answer AppendEntries only once the kernel's
    fdatasync of that write is done: with both followers' flushes held, nothing commits."""
    m1 = await lgroup.member(bootstrap=True, store=str(tmp_path / "m1"))
    m2 = await lgroup.member(store=str(tmp_path / "m2"))
    m3 = await lgroup.member(store=str(tmp_path / "m3"))
    held: dict[str, list[Any]] = {}
    asked: dict[str, asyncio.Event] = {}
    for m in (m2, m3):
        node = m.node()
        assert node is not None
        fsync = node._fsync
        assert fsync is not None, "this kernel has no asynchronous fdatasync"
        mine: list[Any] = []
        event = asyncio.Event()
        held[m.node_id()], asked[m.node_id()] = mine, event

        def hold(cb: Any, mine: list[Any] = mine, event: asyncio.Event = event) -> None:
            mine.append(cb)
            event.set()

        fsync.sync_then = hold  # type: ignore[method-assign]
    n1, n2 = m1.node(), m2.node()
    assert n1 is not None and n2 is not None
    index = n1.last_index() + 1
    proposal = asyncio.create_task(m1.propose_input(Input(InputOp.SET, "k", b"v"), 10))
    for e in asked.values():
        await e.wait()  # each follower wrote the entry and asked for its flush
    assert n2._held_replies  # its answer waits for the flush
    assert n1.commit_index() < index and not proposal.done()

    def release(m: RaftBinding) -> None:
        """The member's disk catches up: its held flushes run, later ones are not held."""
        node = m.node()
        assert node is not None and node._fsync is not None
        for cb in held[m.node_id()]:
            AsyncFdatasync.sync_then(node._fsync, cb)
        del node._fsync.sync_then

    release(m2)  # m1 + m2 are a majority
    await proposal
    assert n1.commit_index() >= index
    release(m3)
    await converged([m1, m2, m3], "k")


async def test_a_failed_kernel_flush_shuts_the_member_down(
    lgroup: Group, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A flush the kernel reports as failed is a storage failure: the member shuts its
    node down instead of acknowledging the write, and the others go on without it."""
    import errno

    from ddastate.raft.observer import RaftState

    m1 = await lgroup.member(bootstrap=True, opts=FAST)
    m2 = await lgroup.member(opts=FAST)
    m3 = await lgroup.member(opts=FAST, store=str(tmp_path / "m3"))
    n1, n3 = m1.node(), m3.node()
    assert n1 is not None and n3 is not None and n3._fsync is not None
    loop = asyncio.get_running_loop()
    failed: list[int] = []

    def failing_sync_then(cb: Any) -> None:
        failed.append(1)
        loop.call_soon(cb, OSError(errno.EIO, "fdatasync: Input/output error"))

    n3._fsync.sync_then = failing_sync_then  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="ddastate.raft"):
        await m1.propose_input(Input(InputOp.SET, "k", b"v"), 10)  # m1 + m2 commit it
        await wait_for(lambda: n3.state is RaftState.SHUTDOWN, what="m3 shut down")
    assert failed
    assert "storage write failed" in caplog.text and "Input/output error" in caplog.text
    await m2.propose_input(Input(InputOp.SET, "k2", b"v"), 10)
    await converged([m1, m2], "k2")


async def test_checkpoints_run_in_the_writer_thread(lgroup: Group, tmp_path: Path) -> None:
    """With deferred syncs the WAL is checkpointed by the writer thread, never inside a
    commit on the loop, and it stays bounded; writes then return to the loop."""
    import os
    import threading

    from ddastate.store import SqliteStore

    m1 = await lgroup.member(bootstrap=True, store=str(tmp_path / "m1"))
    store = m1._store
    assert store is not None
    kv = store.kv
    assert isinstance(kv, SqliteStore)
    real_sync = kv.sync
    syncs: list[threading.Thread] = []

    def traced_sync() -> None:
        syncs.append(threading.current_thread())
        real_sync()

    kv.sync = traced_sync  # type: ignore[method-assign]
    wal = os.path.join(kv.location, "store.sqlite-wal")
    i = 0
    while not syncs:
        await m1.propose_input(Input(InputOp.SET, f"k{i}", b"v" * 100), 10)
        i += 1
        assert i < 5000, "no checkpoint"
    loop_thread = threading.current_thread()
    assert loop_thread not in syncs
    writers: set[threading.Thread] = set()
    real_store_logs = store.store_logs

    def traced_store_logs(logs: Any) -> None:
        writers.add(threading.current_thread())
        real_store_logs(logs)

    store.store_logs = traced_store_logs  # type: ignore[method-assign]
    for j in range(3 * i):  # three times as many again: the WAL is reused, not grown
        await m1.propose_input(Input(InputOp.SET, f"j{j}", b"v" * 100), 10)
    assert len(syncs) >= 2 and loop_thread not in syncs
    assert loop_thread in writers
    assert os.stat(wal).st_size < 4 * 4096 * 1000


async def test_forwarded_proposals_leave_no_waiters_behind(lgroup: Group) -> None:
    m1 = await lgroup.member(bootstrap=True, opts=FAST)
    m2 = await lgroup.member(opts=FAST)
    await asyncio.gather(
        *(m2.propose_input(Input(InputOp.SET, f"f{i}", b"v"), 30) for i in range(300))
    )
    change = m2._leader_change
    assert change is not None and not change.waiting  # each removed itself when done
    # every proposal is in the state; on a loaded machine the leadership may have moved
    # to m2 meanwhile (300 ms timers), and m1 then applies the last ones a little later
    assert len(await converged([m1, m2], "f299")) == 300


async def test_forwarded_proposal_moves_on_when_the_leader_changes(lgroup: Group) -> None:
    """A forwarded proposal the old leader never answered goes to the new leader as soon
    as the leadership changes, not after lfwTimeout (here ten minutes)."""
    m1 = await lgroup.member(bootstrap=True, opts=FAST)
    m2 = await lgroup.member(opts={**FAST, "lfwTimeout": 600_000})
    m3 = await lgroup.member(opts=FAST)
    t1 = m1.transport()
    assert t1 is not None
    swallowed: list[Any] = []
    t1.set_lfw_handler(swallowed.append, gate=lambda: True)  # takes it, never answers
    proposal = asyncio.create_task(m2.propose_input(Input(InputOp.SET, "k", b"v")))
    await wait_for(lambda: bool(swallowed), what="the proposal at the old leader")
    await m1.close()
    await asyncio.wait_for(proposal, 60)
    assert (await converged([m2, m3], "k"))["k"] == b"v"
    change = m2._leader_change
    assert change is not None and not change.waiting


async def test_cancelled_forwarded_proposal_leaves_nothing_pending(lgroup: Group) -> None:
    m1 = await lgroup.member(bootstrap=True, opts=FAST)
    # long timers: the cut-off member must not campaign (its votes would be pending too)
    m2 = await lgroup.member(opts={"heartbeatTimeout": 60_000, "electionTimeout": 60_000})
    lgroup.factory.bus.partition([m1.node_id()], [m2.node_id()])
    proposal = asyncio.create_task(m2.propose_input(Input(InputOp.SET, "x", b"y")))
    com = m2._transport._com  # type: ignore[union-attr]
    await wait_for(lambda: bool(com._pending), what="the forwarded proposal in flight")
    proposal.cancel()
    with pytest.raises(asyncio.CancelledError):
        await proposal
    assert not com._pending
    change = m2._leader_change
    assert change is not None and not change.waiting


async def test_close_ends_pending_proposals(lgroup: Group) -> None:
    m1 = await lgroup.member(bootstrap=True, opts=FAST)
    m2 = await lgroup.member(opts=FAST)
    lgroup.factory.bus.partition([m1.node_id()], [m2.node_id()])
    pending = asyncio.create_task(m2.propose_input(Input(InputOp.SET, "x", b"y")))  # no timeout
    com = m2._transport._com  # type: ignore[union-attr]
    await wait_for(lambda: bool(com._pending), what="the forwarded proposal in flight")
    assert not pending.done()
    await m2.close()
    with pytest.raises(BindingNotOpenError):
        await asyncio.wait_for(pending, 5)


async def test_fsm_rejection_reported_by_leader_is_an_error(lgroup: Group) -> None:
    """A Go leader reports an FSM rejection as success with ApplyResponse.Response set."""
    m1 = await lgroup.member(bootstrap=True, opts=FAST)
    m2 = await lgroup.member(opts=FAST)
    t1 = m1.transport()
    assert t1 is not None

    def go_like(rpc: Any) -> None:
        rpc.respond(ApplyResponse(index=0, response="FSM error"))

    t1.set_lfw_handler(go_like, gate=lambda: True)
    with pytest.raises(StateBindingError, match="rejected"):
        await m2.propose_input(Input(InputOp.SET, "x", b"y"), timeout=5)


async def test_member_that_left_rejoins_from_its_store(lgroup: Group, tmp_path: Path) -> None:
    m1 = await lgroup.member(bootstrap=True, opts=FAST)
    m2 = await lgroup.member(opts=FAST, store=str(tmp_path / "m2"))
    await m2.propose_input(Input(InputOp.SET, "a", b"1"), 10)
    cfg, com = m2.test_cfg, m2.test_com
    await m2.close()  # leaves the group, keeps its storage
    n1 = m1.node()
    assert n1 is not None
    assert len(await n1.get_configuration()) == 1
    await m1.propose_input(Input(InputOp.SET, "b", b"2"), 10)
    again = RaftBinding()
    await asyncio.wait_for(again.open(cfg, com), 30)
    lgroup.members.append(again)
    assert len(await n1.get_configuration()) == 2
    await again.propose_input(Input(InputOp.SET, "c", b"3"), 10)
    state = await converged([m1, again], "c")
    assert state == {"a": b"1", "b": b"2", "c": b"3"}


async def test_undecodable_lfw_is_answered_by_every_member(group: Group) -> None:
    """As Go members do, leader or not (only the first reply counts for the requester)."""
    members = [await group.member(bootstrap=True, opts=FAST)]
    members += [await group.member(opts=FAST) for _ in range(2)]
    outsider = await group.factory.open()
    results = await outsider.publish_action(
        Action(type="lfw", id="ap", source="outsider", params=b"\xc1 not msgpack"),
        Scope.STA,
        timeout=5,
    )
    contexts: set[str] = set()
    async with results:
        async for res in results:
            reply = codec.decode_rpc_reply(res.data, ApplyResponse)
            assert reply.error and not reply.retryable and reply.response is None
            contexts.add(res.context)
            if len(contexts) == len(members):
                break
    assert contexts == {m.node_id() for m in members}


@pytest.mark.mqtt
async def test_cancelled_join_always_ends(mqtt5_factory: Any) -> None:
    """Cancelling a member's open while it joins a group without a leader ends it,
    wherever the cancellation lands (subscribing, starting the node, asking to join,
    waiting to retry); the com binding closes afterwards."""
    import random

    rng = random.Random(1)
    delays = [0.0, 0.0002, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.008, 0.012, 0.02, 0.05, 0.11]
    for i in range(60):
        com = await mqtt5_factory.open()
        cfg = mqtt5_factory.config()
        cfg.identity.id = f"lonely{i}"
        cfg.services.state.bootstrap = False
        cfg.services.state.opts.update(FAST)
        binding = RaftBinding()
        opening = asyncio.ensure_future(binding.open(cfg.validate(), com))
        await asyncio.sleep(rng.choice(delays))
        opening.cancel()
        with pytest.raises(asyncio.CancelledError):
            async with asyncio.timeout(10):  # a lost cancellation would join forever
                await asyncio.shield(opening)
        assert opening.cancelled()
        await com.close()

"""The reference scenario of the state service (issue 6), on the loopback bus and on Mosquitto.

Every observer's stream is checked item by item; "observed once" is made exact by
draining each observer up to a later sentinel change and comparing the whole sequence,
so an extra or a missing change anywhere fails the test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from ddastate.state.api import Input, InputOp, MembershipChange
from ddastate.state.raft import BindingNotOpenError, RaftBinding

from .helpers import Group, converged, next_item

FOLLOWER_OPTS = {"snapshotInterval": 50, "snapshotThreshold": 40, "lfwTimeout": 5000}


@pytest.fixture
async def group(com_factory: Any) -> AsyncIterator[Group]:
    g = Group(com_factory)
    yield g
    await g.close_all()


def SET(key: str, value: bytes) -> Input:  # noqa: N802
    return Input(InputOp.SET, key, value)


def DEL(key: str) -> Input:  # noqa: N802
    return Input(InputOp.DELETE, key)


async def take(it: Any, n: int) -> list[Any]:
    return [await next_item(it) for _ in range(n)]


async def wait_until(cond: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        assert loop.time() < end, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def until_sentinel(it: Any, key: str) -> list[Input]:
    """Everything observed before the sentinel SET of ``key`` (which is consumed)."""
    out: list[Input] = []
    while True:
        item = await next_item(it)
        if item.key == key:
            return out
        out.append(item)


async def test_reference_scenario(group: Group) -> None:
    m1: RaftBinding = await group.member(bootstrap=True)
    id1 = m1.node_id()

    mobs1 = await m1.observe_membership_change()
    assert await next_item(mobs1) == MembershipChange(id1, True)
    assert mobs1.pending() == 0

    sobs1 = await m1.observe_state_change()
    assert sobs1.pending() == 0  # empty state: no synthetic changes

    await m1.propose_input(SET("foo", b"foo"), timeout=10)
    assert await next_item(sobs1) == SET("foo", b"foo")

    # member 2 joins
    m2: RaftBinding = await group.member(opts=FOLLOWER_OPTS)
    id2 = m2.node_id()
    assert await next_item(mobs1) == MembershipChange(id2, True)

    mobs2 = await m2.observe_membership_change()
    first_two = await take(mobs2, 2)
    assert sorted(first_two, key=lambda c: c.id) == sorted(
        [MembershipChange(id1, True), MembershipChange(id2, True)], key=lambda c: c.id
    )
    assert mobs2.pending() == 0

    sobs2 = await m2.observe_state_change()
    assert await next_item(sobs2) == SET("foo", b"foo")
    assert sobs2.pending() == 0

    # a DELETE proposed on follower 2 is observed once on 1 and 2
    await m2.propose_input(DEL("foo"), timeout=10)
    assert await next_item(sobs2) == DEL("foo")
    assert await next_item(sobs1) == DEL("foo")

    # member 3 joins
    m3: RaftBinding = await group.member(opts=FOLLOWER_OPTS)
    id3 = m3.node_id()
    assert await next_item(mobs1) == MembershipChange(id3, True)
    assert await next_item(mobs2) == MembershipChange(id3, True)

    mobs3 = await m3.observe_membership_change()
    three = await take(mobs3, 3)
    assert {c.id for c in three} == {id1, id2, id3} and all(c.joined for c in three)
    assert mobs3.pending() == 0

    sobs3 = await m3.observe_state_change()
    assert sobs3.pending() == 0  # state is empty again

    await m3.propose_input(SET("foo", b"bar"), timeout=10)
    for obs in (sobs3, sobs1, sobs2):
        assert await next_item(obs) == SET("foo", b"bar")

    # exactly once so far: nothing between "foo=bar" and a sentinel on any observer
    await m1.propose_input(SET("sentinel-1", b""), timeout=10)
    for obs in (sobs1, sobs2, sobs3):
        assert await until_sentinel(obs, "sentinel-1") == []
    for mobs in (mobs1, mobs2, mobs3):
        assert mobs.pending() == 0

    # cancelling observers on member 1 ends them
    await mobs1.aclose()
    with pytest.raises(StopAsyncIteration):
        await next_item(mobs1)
    await sobs1.aclose()
    with pytest.raises(StopAsyncIteration):
        await next_item(sobs1)

    # a late membership observer on 1 gets all three members
    async with await m1.observe_membership_change() as late:
        got = await take(late, 3)
        assert {c.id for c in got} == {id1, id2, id3} and all(c.joined for c in got)
        assert late.pending() == 0

    # member 1 (the leader) closes
    await m1.close()
    with pytest.raises(BindingNotOpenError):
        await m1.propose_input(DEL("foo"))
    with pytest.raises(BindingNotOpenError):
        await m1.observe_state_change()
    with pytest.raises(BindingNotOpenError):
        await m1.observe_membership_change()
    await m1.close()  # harmless

    assert await next_item(mobs2, 15) == MembershipChange(id1, False)
    assert await next_item(mobs3, 15) == MembershipChange(id1, False)

    # a SET proposed on 2 succeeds after the new election
    await m2.propose_input(SET("foo", b"baz"), timeout=30)
    assert await next_item(sobs2) == SET("foo", b"baz")
    assert await next_item(sobs3) == SET("foo", b"baz")

    # 100 SETs on 2 and 100 on 3, observed in order on 2 (and 3) while snapshots are taken
    for i in range(100):
        await m2.propose_input(SET(f"foo{i}", f"foo{i}".encode()), timeout=30)
    # Member 2 snapshots (threshold 40) before the next 100; its timer, not the
    # proposals, decides when, so wait for it rather than assume it came.
    node2 = m2.node()
    assert node2 is not None
    await wait_until(lambda: int(node2.stats()["last_snapshot_index"]) > 0, "a snapshot on 2")
    for i in range(100):
        await m3.propose_input(SET(f"bar{i}", f"bar{i}".encode()), timeout=30)
    await m3.propose_input(SET("sentinel-2", b""), timeout=30)
    want = [SET(f"foo{i}", f"foo{i}".encode()) for i in range(100)] + [
        SET(f"bar{i}", f"bar{i}".encode()) for i in range(100)
    ]
    assert await until_sentinel(sobs2, "sentinel-2") == want
    assert await until_sentinel(sobs3, "sentinel-2") == want
    assert mobs2.pending() == 0 and mobs3.pending() == 0

    fsm2, fsm3 = m2.fsm(), m3.fsm()
    assert fsm2 is not None and fsm3 is not None
    assert fsm2.state() == fsm3.state()
    assert len(fsm2.state()) == 203  # foo, 200 keys and two sentinels


async def test_observers_agree_on_log_order_under_concurrent_proposals(group: Group) -> None:
    """Every member's observer sees the same changes in the same order; a late observer's
    synthetic SETs plus what follows add up to the final state."""
    opts = {"snapshotInterval": 50, "snapshotThreshold": 100}
    ms = [await group.member(bootstrap=True, opts=opts)]
    ms += [await group.member(opts=opts) for _ in range(2)]
    observers = [await m.observe_state_change() for m in ms]

    async def propose(i: int) -> None:
        m = ms[i % 3]
        key = f"k{i % 37}"
        if i % 5 == 4:
            await m.propose_input(DEL(key), timeout=30)
        else:
            await m.propose_input(SET(key, str(i).encode()), timeout=30)

    await asyncio.gather(*(propose(i) for i in range(300)))
    late = await ms[2].observe_state_change()
    await asyncio.gather(*(propose(i) for i in range(300, 600)))
    await ms[0].propose_input(SET("sentinel", b""), timeout=30)

    seqs = [await until_sentinel(o, "sentinel") for o in observers]
    assert seqs[0] == seqs[1] == seqs[2]
    assert len(seqs[0]) == 600

    def fold(changes: list[Input], start: dict[str, bytes] | None = None) -> dict[str, bytes]:
        st = dict(start or {})
        for c in changes:
            if c.op == InputOp.SET:
                st[c.key] = c.value or b""
            else:
                st.pop(c.key, None)
        return st

    final = await converged(ms, "sentinel")
    del final["sentinel"]
    assert fold(seqs[0]) == final
    assert fold(await until_sentinel(late, "sentinel")) == final

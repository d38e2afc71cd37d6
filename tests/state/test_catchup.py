"""A member that missed 1,000 changes catches up through InstallSnapshot over pub-sub."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from ddastate.state.api import Input, InputOp
from ddastate.state.raft import RaftBinding
from ddastate.testing.mosquitto import Mosquitto

from .helpers import Group, converged
from .procs import MemberProc

OPTS = {
    "heartbeatTimeout": 300,
    "electionTimeout": 300,
    "lfwTimeout": 2000,
    "snapshotInterval": 100,
    "snapshotThreshold": 100,
    "trailingLogs": 10,
}


async def until(cond: Callable[[], Any], timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def propose_many(b: RaftBinding, prefix: str, n: int, inflight: int = 64) -> None:
    sem = asyncio.Semaphore(inflight)

    async def one(i: int) -> None:
        async with sem:
            await b.propose_input(Input(InputOp.SET, f"{prefix}{i}", str(i).encode()), 60)

    await asyncio.gather(*(one(i) for i in range(n)))


@pytest.fixture
async def group(loopback_factory: Any) -> AsyncIterator[Group]:
    g = Group(loopback_factory)
    yield g
    await g.close_all()


async def test_isolated_member_catches_up_by_install_snapshot(group: Group) -> None:
    m1 = await group.member(bootstrap=True, opts=OPTS)
    m2 = await group.member(opts=OPTS)
    m3 = await group.member(opts=OPTS)
    await m1.propose_input(Input(InputOp.SET, "before", b"1"), 10)
    await m1.propose_input(Input(InputOp.DELETE, "gone-later"), 10)
    await m1.propose_input(Input(InputOp.SET, "gone-later", b"x"), 10)
    n3 = m3.node()
    n1 = m1.node()
    assert n1 is not None and n3 is not None
    await until(lambda: n3.applied_index() == n1.applied_index(), 10, "member 3 up to date")
    seen: dict[str, bytes] = {}
    obs = await m3.observe_state_change()

    async def follow() -> None:
        async for ch in obs:
            if ch.op == InputOp.SET:
                seen[ch.key] = ch.value or b""
            else:
                seen.pop(ch.key, None)

    follower = asyncio.create_task(follow())
    down_at = n3.last_index()

    group.factory.bus.partition([m3.node_id()], [m1.node_id(), m2.node_id()])
    await propose_many(m1, "k", 1000)
    await m1.propose_input(Input(InputOp.DELETE, "gone-later"), 10)
    # The leader compacts its log past everything member 3 has. A snapshot is taken
    # once 100 entries have piled up since the last one, so the newest one may stop
    # up to 99 entries short of the end: wait for one within 100 of it.
    await until(
        lambda: int(n1.stats()["last_snapshot_index"]) > down_at + 900,
        30,
        "a snapshot on the leader",
    )
    group.factory.bus.heal()

    await m2.propose_input(Input(InputOp.SET, "after", b"2"), 60)
    state = await converged([m1, m2, m3], "after", 60)
    assert len(state) == 1002  # before + k0..k999 + after ("gone-later" deleted)
    # it came through InstallSnapshot, not through AppendEntries from the log
    assert int(n3.stats()["last_snapshot_index"]) > down_at + 900
    # the observer converged on the same state (the restore reports the difference)
    await until(lambda: "after" in seen, 10, "the observer to see a change after the install")
    assert seen == state
    await obs.aclose()
    await follower


@pytest.mark.mqtt
async def test_killed_member_catches_up_by_install_snapshot_on_mosquitto(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    cluster = f"catchup{os.getpid()}"
    procs: list[MemberProc] = []
    try:
        for i in range(3):
            p = MemberProc(
                mosquitto.url,
                cluster,
                f"c{i}-{uuid.uuid4().hex[:6]}",
                store=str(tmp_path / f"s{i}"),
                bootstrap=(i == 0),
                opts=OPTS,
                log_path=str(tmp_path / f"c{i}.log"),
            )
            procs.append(p)
            await p.start()
        before = await procs[2].call({"cmd": "status"})
        procs[2].kill()
        await procs[2].wait()
        r = await procs[0].call({"cmd": "bench", "n": 1000, "inflight": 64, "prefix": "k"}, 120)
        assert r["ok"], r
        loop = asyncio.get_running_loop()
        end = loop.time() + 30
        # the newest snapshot may stop up to 99 entries short of the end (threshold 100)
        compacted_past = before["last"] + 900
        while (await procs[0].call({"cmd": "status"}))["last_snapshot_index"] <= compacted_past:
            assert loop.time() < end, "no snapshot on the leader"
            await asyncio.sleep(0.05)
        again = MemberProc(
            mosquitto.url,
            cluster,
            procs[2].id,
            store=str(tmp_path / "s2"),
            opts=OPTS,
            log_path=str(tmp_path / "c2.log"),
        )
        procs[2] = again
        await again.start()
        target = (await procs[0].call({"cmd": "status"}))["commit"]
        end = loop.time() + 60
        while (await again.call({"cmd": "status"}))["applied"] < target:
            assert loop.time() < end, "restarted member did not catch up"
            await asyncio.sleep(0.05)
        st = [await p.call({"cmd": "state"}) for p in procs]
        assert st[0]["state"] == st[2]["state"] and len(st[2]["state"]) == 1000
        after = await again.call({"cmd": "status"})
        assert after["last_snapshot_index"] > compacted_past
    finally:
        for p in procs:
            with contextlib.suppress(Exception):
                await p.stop()

"""Crash and restart with real member processes on a real Mosquitto (SIGKILL).

Three members with persistent stores; in each round every member streams proposals,
the current leader is killed with SIGKILL in the middle and restarted from its store.
At the end every proposal that returned success is in every member's state, and the
three states are equal. ``-m slow`` runs more rounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from ddastate.testing.mosquitto import Mosquitto

from .procs import MemberProc

pytestmark = pytest.mark.mqtt

OPTS = {
    "heartbeatTimeout": 500,
    "electionTimeout": 500,
    "lfwTimeout": 2000,
    "snapshotInterval": 500,
    "snapshotThreshold": 200,
}


async def until(cond: Callable[[], Any], timeout: float, what: str) -> None:
    """Wait until ``cond()`` is true (checked every 20 ms); fail after ``timeout``."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def converge(procs: list[MemberProc], timeout: float = 60) -> list[dict[str, str]]:
    """Wait until every member applied the same index and holds the same state."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        got = [await p.call({"cmd": "state"}, 30) for p in procs]
        same = all(g["ok"] for g in got) and len({g["applied"] for g in got}) == 1
        if same and all(g["state"] == got[0]["state"] for g in got):
            return [g["state"] for g in got]
        if loop.time() > end:
            raise AssertionError(f"members did not converge: {[g.get('applied') for g in got]}")
        await asyncio.sleep(0.1)


async def leader_of(procs: list[MemberProc], timeout: float = 30) -> int:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        roles = [(await p.call({"cmd": "status"}))["role"] for p in procs]
        if roles.count("Leader") == 1:
            return roles.index("Leader")
        assert loop.time() < end, f"no single leader: {roles}"
        await asyncio.sleep(0.05)


@pytest.fixture
async def cleanup() -> AsyncIterator[list[MemberProc]]:
    procs: list[MemberProc] = []
    yield procs
    for p in procs:
        with contextlib.suppress(Exception):
            p.kill()
            await p.wait()


async def run_crash_rounds(
    broker: Mosquitto, tmp: Path, cleanup: list[MemberProc], rounds: int
) -> None:
    cluster = f"crash{os.getpid()}{uuid.uuid4().hex[:4]}"
    ids = [f"m{i}-{uuid.uuid4().hex[:8]}" for i in range(3)]

    def make(i: int) -> MemberProc:
        p = MemberProc(
            broker.url,
            cluster,
            ids[i],
            store=str(tmp / f"s{i}"),
            bootstrap=(i == 0),
            opts=OPTS,
            log_path=str(tmp / f"m{i}.log"),
        )
        cleanup.append(p)
        return p

    procs = [make(0)]
    await procs[0].start()
    for i in (1, 2):
        procs.append(make(i))
        await procs[i].start()

    acked: set[str] = set()
    for r in range(rounds):
        leader_i = await leader_of(procs)
        streams = [
            p.send({"cmd": "stream", "prefix": f"r{r}p{i}-", "count": 200, "timeout": 60})
            for i, p in enumerate(procs)
        ]
        victim = procs[leader_i]
        await until(lambda v=victim: len(v.acked) >= 60, 60, "acknowledged proposals")
        streams[leader_i].add_done_callback(lambda f: f.exception())  # dies with the process
        victim.kill()
        assert await victim.wait() == -9
        acked |= set(victim.acked)  # what it acknowledged before it died

        again = make(leader_i)  # restart from its store: same id, same arguments
        await again.start()
        procs[leader_i] = again

        results = await asyncio.wait_for(
            asyncio.gather(*(s for i, s in enumerate(streams) if i != leader_i)), 180
        )
        for res in results:
            assert res["ok"] and res["failed"] == 0, res
        for i, p in enumerate(procs):
            if i != leader_i:
                acked |= set(p.acked)
                p.acked.clear()

    last = await procs[0].call({"cmd": "stream", "prefix": "end-", "count": 20, "timeout": 60})
    assert last["ok"] and last["acked"] == 20
    acked |= set(procs[0].acked)

    final = await converge(procs)
    assert len(acked) >= rounds * (60 + 2 * 200) + 20
    for st in final:
        missing = [k for k in acked if k not in st]
        assert not missing, f"{len(missing)} acknowledged proposals missing, e.g. {missing[:5]}"
        assert all(bytes.fromhex(st[k]) == k.encode() for k in acked)
    assert final[0] == final[1] == final[2]
    await leader_of(procs)
    for p in procs:
        await p.stop()


async def test_leader_killed_during_proposals_and_restarted(
    mosquitto: Mosquitto, tmp_path: Path, cleanup: list[MemberProc]
) -> None:
    await run_crash_rounds(mosquitto, tmp_path, cleanup, rounds=2)


@pytest.mark.slow
async def test_leader_killed_many_times(
    mosquitto: Mosquitto, tmp_path: Path, cleanup: list[MemberProc]
) -> None:
    await run_crash_rounds(mosquitto, tmp_path, cleanup, rounds=10)

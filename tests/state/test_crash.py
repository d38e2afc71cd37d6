"""Crash and restart with real member processes on a real Mosquitto (SIGKILL)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Callable
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


async def states(procs: list[MemberProc]) -> list[dict[str, Any]]:
    return [await p.call({"cmd": "state"}, 30) for p in procs]


async def converge(procs: list[MemberProc], timeout: float = 60) -> list[dict[str, str]]:
    """Wait until every member applied the same index and holds the same state."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        got = await states(procs)
        same = all(g["ok"] for g in got) and len({g["applied"] for g in got}) == 1
        if same and all(g["state"] == got[0]["state"] for g in got):
            return [g["state"] for g in got]
        if loop.time() > end:
            raise AssertionError(f"members did not converge: {[g.get('applied') for g in got]}")
        await asyncio.sleep(0.1)


@pytest.fixture
async def cleanup() -> Any:
    procs: list[MemberProc] = []
    yield procs
    for p in procs:
        with contextlib.suppress(Exception):
            p.kill()
            await p.wait()


async def test_leader_killed_during_proposals_and_restarted(
    mosquitto: Mosquitto, tmp_path: Path, cleanup: list[MemberProc]
) -> None:
    cluster = f"crash{os.getpid()}"
    ids = [f"m{i}-{uuid.uuid4().hex[:8]}" for i in range(3)]

    def make(i: int) -> MemberProc:
        p = MemberProc(
            mosquitto.url,
            cluster,
            ids[i],
            store=str(tmp_path / f"s{i}"),
            bootstrap=(i == 0),
            opts=OPTS,
            log_path=str(tmp_path / f"m{i}.log"),
        )
        cleanup.append(p)
        return p

    procs = [make(0)]
    await procs[0].start()
    for i in (1, 2):
        procs.append(make(i))
        await procs[i].start()

    status = [await p.call({"cmd": "status"}) for p in procs]
    leader_i = next(i for i, s in enumerate(status) if s["role"] == "Leader")
    assert leader_i == 0

    streams = [
        p.send({"cmd": "stream", "prefix": f"p{i}-", "count": 300, "timeout": 60})
        for i, p in enumerate(procs)
    ]
    victim = procs[leader_i]
    await until(lambda: len(victim.acked) >= 100, 60, "100 acknowledged proposals on the leader")
    streams[leader_i].add_done_callback(lambda f: f.exception())  # dies with the process
    victim.kill()
    assert await victim.wait() == -9
    acked_before_kill = list(victim.acked)

    # restart the killed member from its store (same id, same arguments)
    again = make(leader_i)
    await again.start()
    procs[leader_i] = again

    survivors = [s for i, s in enumerate(streams) if i != leader_i]
    results = await asyncio.wait_for(asyncio.gather(*survivors), 180)
    for r in results:
        assert r["ok"] and r["failed"] == 0, r
    # the restarted member proposes too
    r = await again.call({"cmd": "stream", "prefix": "after-", "count": 50, "timeout": 60}, 120)
    assert r["ok"] and r["acked"] == 50

    final = await converge(procs)
    acked = set(acked_before_kill) | set(again.acked)
    for i, p in enumerate(procs):
        if i != leader_i:
            acked |= set(p.acked)
    assert len(acked) >= 100 + 300 + 300 + 50 - 0
    for st in final:
        missing = [k for k in acked if k not in st]
        assert not missing, f"{len(missing)} acknowledged proposals missing, e.g. {missing[:5]}"
        assert all(bytes.fromhex(st[k]) == k.encode() for k in acked)
    assert final[0] == final[1] == final[2]
    statuses = [await p.call({"cmd": "status"}) for p in procs]
    assert sum(s["role"] == "Leader" for s in statuses) == 1
    for p in procs:
        await p.stop()

"""Randomised faults on the real node: lossy, slow, duplicating links, partitions, restarts.

Clients write through whoever is leader while faults come and go; at the end every
member must hold the same FSM, and every acknowledged write must be in it exactly once.
``pytest -m slow tests/raft/test_node_chaos.py`` runs more seeds for longer.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from ddastate.raft import (
    InmemLogStore,
    InmemStableStore,
    LeadershipLostError,
    NotLeaderError,
    RaftError,
    RaftState,
)
from ddastate.raft.testing import Cluster, RecordingFSM, fast_config

pytestmark = pytest.mark.timeout(120)


class _ThreadedLogStore(InmemLogStore):
    inline_safe = False  # every write goes through the node's writer thread


class _ThreadedStableStore(InmemStableStore):
    inline_safe = False


async def _chaos(seed: int, rounds: int, members: int = 5, threaded: bool = False) -> None:
    rng = random.Random(seed)
    cfg = fast_config(trailing_logs=20, snapshot_threshold=40, snapshot_interval=0.05)
    extra: dict[str, object] = {}
    if threaded:
        extra = {
            "log_store_factory": _ThreadedLogStore,
            "stable_store_factory": _ThreadedStableStore,
        }
    async with await Cluster.create(members, config=cfg, seed=seed, **extra) as c:  # type: ignore[arg-type]
        c.network.rpc_timeout = 0.05
        await c.wait_for_leader()
        ids = list(c.members)
        acked: list[bytes] = []
        stop = asyncio.Event()

        async def client(cid: int) -> None:
            i = 0
            while not stop.is_set():
                leaders = c.leaders()
                if not leaders:
                    await asyncio.sleep(0.002)
                    continue
                data = b"c%d-%d" % (cid, i)
                i += 1
                try:
                    await asyncio.wait_for(leaders[0].apply(data), 0.5)
                    acked.append(data)
                except (NotLeaderError, LeadershipLostError, RaftError, TimeoutError):
                    await asyncio.sleep(0.002)

        clients = [asyncio.create_task(client(k)) for k in range(3)]
        down: set[str] = set()
        try:
            for _ in range(rounds):
                action = rng.choice(["loss", "delay", "dup", "partition", "restart", "heal"])
                a, b = rng.sample(ids, 2)
                if action == "loss":
                    c.network.set_loss(a, b, rng.uniform(0.1, 0.5))
                elif action == "delay":
                    c.network.set_delay(a, b, rng.uniform(0.001, 0.01))
                elif action == "dup":
                    c.network.set_duplicate(a, b, rng.uniform(0.1, 0.5))
                elif action == "partition":
                    k = rng.randint(1, members // 2)
                    c.partition(rng.sample(ids, k))
                elif action == "restart" and len(down) < (members - 1) // 2:
                    victim = rng.choice([i for i in ids if i not in down])
                    await c.stop(victim)
                    down.add(victim)
                else:
                    c.heal()
                    for v in list(down):
                        await c.start(v, fresh_fsm=True)
                        down.discard(v)
                await asyncio.sleep(rng.uniform(0.02, 0.1))
        finally:
            stop.set()
            await asyncio.gather(*clients)
        c.heal()
        for v in list(down):
            await c.start(v, fresh_fsm=True)
        leader = await c.wait_for_leader(timeout=10)
        await leader.barrier()
        await c.wait_applied(leader.applied_index(), timeout=10)
        await c.ensure_same_state(timeout=10)
        fsm = c.fsm(leader.local_id)
        assert isinstance(fsm, RecordingFSM)
        applied = fsm.logs
        assert len(applied) == len(set(applied)), "an entry was applied twice"
        missing = set(acked) - set(applied)
        assert not missing, f"acknowledged writes lost: {sorted(missing)[:5]}"
        assert len(acked) > 0
        assert all(r.state is not RaftState.SHUTDOWN for r in c.nodes())


@pytest.mark.parametrize(("seed", "threaded"), [(1, False), (2, False), (3, True), (4, True)])
async def test_chaos_short(seed: int, threaded: bool) -> None:
    await _chaos(seed, rounds=15, threaded=threaded)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(100, 120))
async def test_chaos_long(seed: int) -> None:
    await _chaos(seed, rounds=80, threaded=seed % 2 == 1)

"""CPU per input on the hot path: ddastate's members beside the least work CPython can do.

The 1024-in-flight target of issue 6 (100,000 inputs/s) gives the whole group, three
members and the broker on this machine's cores, ``cores / 100,000`` seconds of CPU per
input: 20 us on two cores. This benchmark shows how that budget compares with

- ddastate: a one-member group (the leader's own work: binding, node, core, store, FSM,
  the caller's future) and a two-member group (the difference is a follower's share,
  with the leader's replication work), both on the loopback bus with in-memory stores,
  1024 proposals in flight;
- the minimum: the same callers and the same bytes on the wire, with nothing else. A
  leader that packs each Input as the reference does, puts it in a batch, packs every
  entry of the batch once as a Go ``Log`` map, keeps those bytes in a list, decodes and
  applies each input to a dict and resolves its caller's future. A follower that unpacks
  an AppendEntries body of 512 such entries, keeps each entry's bytes, decodes and
  applies each input.

No disk, no network: those come on top in a real group (see state_bench.py).

    .venv/bin/python benchmarks/hot_path_bench.py [--n 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Awaitable, Callable

import msgpack
from state_bench import loopback_group, run_load

from ddastate.com.loopback import LoopbackBus
from ddastate.state.api import Input, InputOp

INFLIGHT = 1024
BATCH = 512  # ddastate's maxAppendEntries
VALUE = b"v" * 16
TARGET_RATE = 100_000


async def measure(fn: Callable[[int], Awaitable[None]], n: int) -> tuple[float, float]:
    """(inputs/s, CPU us per input) of ``n`` calls with INFLIGHT outstanding, after a warm-up."""
    await run_load(fn, min(n, 5000), INFLIGHT)
    cpu = time.process_time()
    rate, _, _ = await run_load(fn, n, INFLIGHT)
    return rate, (time.process_time() - cpu) / n * 1e6


async def ddastate_group(members: int, n: int) -> tuple[float, float]:
    # no snapshot during the run: the table is about the per-input path
    opts = {"snapshotThreshold": 10 * n}
    async with loopback_group(LoopbackBus(), members, opts=opts) as group:
        leader = group[0]

        async def one(i: int) -> None:
            await leader.propose_input(Input(InputOp.SET, f"k{i}", VALUE), 60)

        return await measure(one, n)


# The parts of a Go Log map around an entry's data and index (its keys in order).
_packer = msgpack.Packer(use_bin_type=True)
_pack = _packer.pack
_LOG_HEAD = b"\x86" + _pack("AppendedAt") + _pack(b"\x00" * 15) + _pack("Data")
_LOG_MID = _pack("Extensions") + _pack(None) + _pack("Index")
_LOG_TAIL = _pack("Term") + _pack(1) + _pack("Type") + _pack(0)


class MinimalLeader:
    """Proposals batched per loop iteration, each entry packed once, applied to a dict."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._pending: list[tuple[bytes, asyncio.Future[None]]] = []
        self.log: list[bytes] = []
        self.state: dict[str, bytes] = {}
        self.bodies: list[bytes] = []  # the AppendEntries bodies, kept for the follower

    async def propose(self, key: str, value: bytes) -> None:
        data = _pack({"Key": key.encode(), "Op": 1, "Value": value})
        fut = self._loop.create_future()
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append((data, fut))
        await fut

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        for lo in range(0, len(batch), BATCH):
            part = batch[lo : lo + BATCH]
            index = len(self.log)
            entries = []
            for data, _ in part:
                index += 1
                entries.append(_LOG_HEAD + _pack(data) + _LOG_MID + _pack(index) + _LOG_TAIL)
            self.log.extend(entries)
            self.bodies.append(_packer.pack_array_header(len(entries)) + b"".join(entries))
        for data, fut in batch:
            m = msgpack.unpackb(data)
            if m["Op"] == 1:
                self.state[m["Key"].decode()] = m["Value"]
            fut.set_result(None)


def minimal_follower(bodies: list[bytes]) -> float:
    """CPU us per entry to take the leader's AppendEntries bodies: unpack, keep, apply."""
    log: list[bytes] = []
    state: dict[str, bytes] = {}
    count = 0
    cpu = time.process_time()
    for body in bodies:
        unpacker = msgpack.Unpacker(use_list=False)
        unpacker.feed(body)
        for _ in range(unpacker.read_array_header()):
            entry = unpacker.unpack()
            log.append(entry["Data"])
            m = msgpack.unpackb(entry["Data"])
            if m["Op"] == 1:
                state[m["Key"].decode()] = m["Value"]
            count += 1
    return (time.process_time() - cpu) / count * 1e6


async def main(n: int) -> None:
    cores = os.cpu_count() or 1
    budget = cores * 1e6 / TARGET_RATE
    one = await ddastate_group(1, n)
    two = await ddastate_group(2, n)
    leader = MinimalLeader()

    async def propose(i: int) -> None:
        await leader.propose(f"k{i}", VALUE)

    minimum = await measure(propose, n)
    follower_min = minimal_follower(leader.bodies)
    print(f"{INFLIGHT} proposals in flight, loopback, in-memory stores, {n} inputs")
    print(f"{'':<44} {'inputs/s':>10} {'CPU us/input':>13}")
    print(f"{'ddastate, one member (the leader alone)':<44} {one[0]:>10,.0f} {one[1]:>13.2f}")
    print(f"{'ddastate, two members in one process':<44} {two[0]:>10,.0f} {two[1]:>13.2f}")
    print(f"{'  of which a follower and replication':<44} {'':>10} {two[1] - one[1]:>13.2f}")
    print(f"{'minimum leader':<44} {minimum[0]:>10,.0f} {minimum[1]:>13.2f}")
    print(f"{'minimum follower':<44} {'':>10} {follower_min:>13.2f}")
    print(
        f"budget at {TARGET_RATE:,}/s on {cores} cores, for three members and the broker: "
        f"{budget:.1f} us; ddastate's leader + 2 followers here: "
        f"{one[1] + 2 * (two[1] - one[1]):.1f} us; the minimum's: "
        f"{minimum[1] + 2 * follower_min:.1f} us"
    )


def cli() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--n", type=int, default=200_000, help="inputs per row")
    asyncio.run(main(p.parse_args().n))


if __name__ == "__main__":
    cli()

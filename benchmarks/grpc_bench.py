"""Sidecar benchmark: ProposeInput over gRPC against three ``ddastate run`` processes.

Starts a Mosquitto (examples/mosquitto.conf settings) and three sidecars with durable
stores, then measures from this process, with the generated stubs on grpc.aio:

- the floor: AdminService.Status (gRPC alone, no Raft, no broker), sequential and 256
  in flight;
- ProposeInput at the leader and at a follower, one at a time (p50 / p99 latency);
- ProposeInput at the leader with 64 and 256 calls in flight (inputs/s).

    .venv/bin/python benchmarks/grpc_bench.py [--n 2000] [--keep DIR]

No targets of its own: it shows what the gRPC hop adds to the binding's figures
(benchmarks/state_bench.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc

from ddastate.apis.grpc.gen.dda.state.v1 import state_pb2, state_pb2_grpc
from ddastate.apis.grpc.gen.ddastate.admin.v1 import admin_pb2, admin_pb2_grpc
from ddastate.testing.mosquitto import Mosquitto
from ddastate.testing.sidecars import SidecarGroup


def pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def sequential(call: Callable[[int], Awaitable[Any]], n: int) -> tuple[float, float, float]:
    """(calls/s, p50 ms, p99 ms) of n calls one after the other."""
    for i in range(min(100, n)):  # warm up
        await call(-1 - i)
    lat: list[float] = []
    t0 = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        await call(i)
        lat.append(time.perf_counter() - t)
    total = time.perf_counter() - t0
    return n / total, pct(lat, 50) * 1e3, pct(lat, 99) * 1e3


async def in_flight(
    call: Callable[[int], Awaitable[Any]], n: int, window: int
) -> tuple[float, float, float]:
    """(calls/s, p50 ms, p99 ms) of n calls with ``window`` in flight."""
    lat: list[float] = []
    sem = asyncio.Semaphore(window)

    async def one(i: int) -> None:
        async with sem:
            t = time.perf_counter()
            await call(i)
            lat.append(time.perf_counter() - t)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    total = time.perf_counter() - t0
    return n / total, pct(lat, 50) * 1e3, pct(lat, 99) * 1e3


async def measure(group: SidecarGroup, n: int) -> list[tuple[str, tuple[float, float, float]]]:
    status = json.loads(group[0].cli("status", "--json").stdout)
    leader = next(s for s in group if s.name == status["leader"])
    follower = next(s for s in group if s is not leader)
    rows: list[tuple[str, tuple[float, float, float]]] = []
    async with (
        grpc.aio.insecure_channel(leader.address) as lch,
        grpc.aio.insecure_channel(follower.address) as fch,
    ):
        admin: Any = admin_pb2_grpc.AdminServiceStub(lch)
        lstate: Any = state_pb2_grpc.StateServiceStub(lch)
        fstate: Any = state_pb2_grpc.StateServiceStub(fch)
        value = b"x" * 16

        async def status_call(i: int) -> None:
            await admin.Status(admin_pb2.StatusRequest())

        def propose(stub: Any, prefix: str) -> Callable[[int], Awaitable[Any]]:
            async def call(i: int) -> None:
                await stub.ProposeInput(
                    state_pb2.Input(
                        op=state_pb2.INPUT_OPERATION_SET, key=f"{prefix}{i}", value=value
                    )
                )

            return call

        rows.append(("Status round trip (gRPC floor)", await sequential(status_call, n)))
        rows.append(
            ("Status, 256 in flight (gRPC floor)", await in_flight(status_call, n * 4, 256))
        )
        rows.append(
            ("ProposeInput at leader, sequential", await sequential(propose(lstate, "l"), n))
        )
        rows.append(
            ("ProposeInput at follower, sequential", await sequential(propose(fstate, "f"), n))
        )
        for window in (64, 256):
            rows.append(
                (
                    f"ProposeInput at leader, {window} in flight",
                    await in_flight(propose(lstate, f"w{window}-"), n * 4, window),
                )
            )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="calls per sequential row")
    parser.add_argument("--keep", default=None, help="directory for stores and logs (kept)")
    args = parser.parse_args()
    directory = Path(args.keep or tempfile.mkdtemp(prefix="ddastate-grpc-bench-"))
    with (
        Mosquitto() as broker,
        SidecarGroup(directory, broker_url=broker.url, size=3) as group,
    ):
        group.start_all()
        rows = asyncio.run(measure(group, args.n))
    cores = os.cpu_count()
    print(f"\nddastate sidecar benchmark: 3 sidecars, Mosquitto, SQLite stores, {cores} cores")
    print(f"{'':44} {'calls/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
    for name, (rate, p50, p99) in rows:
        print(f"{name:44} {rate:10.0f} {p50:8.2f} {p99:8.2f}")
    floor = rows[0][1][1]
    seq = rows[2][1][1]
    print(f"\ngRPC floor p50 {floor:.2f} ms; ProposeInput at leader adds {seq - floor:.2f} ms")
    if args.keep is None:
        import shutil

        shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""ProposeInput against the Go reference: the same measurement on both kinds of sidecar.

Runs three reference sidecars (``github.com/coatyio/dda`` v0.43.0, built from the Go
module proxy as the interop tests do) and then three ddastate sidecars, each group on a
fresh Mosquitto with durable stores (for the reference Pebble, one synced write per log
entry; for ddastate SQLite, one flush per batch), and drives both from this process
through the same gRPC ``StateService`` stubs:

- ProposeInput at the leader and at a follower (leader-forwarded), one at a time;
- ProposeInput at the leader with 64 and 256 calls in flight;
- beside them, this client's own limit: AdminService.Status on the ddastate leader (a
  gRPC call with no Raft and no broker behind it; the reference has no such service).

The leader is the member that bootstrapped the group (nothing disturbs it here); for
ddastate the script checks that with AdminService.Status. The gRPC hop and this client
are the same for both kinds, so the difference between the columns is the sidecars';
where a figure comes near the client's limit, the client bounds it, not the sidecar.
Needs Go (``$GO``, ``go`` on PATH or ``/usr/local/go/bin/go``); the first run builds the
reference, which takes minutes.

    .venv/bin/python benchmarks/reference_bench.py [--n 1000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "interop"))

import gointerop
from com_bench import proc_cpu_seconds
from grpc_bench import in_flight, sequential
from mixed import Kind, Member, MixedGroup, WatchMembers

from ddastate.apis.grpc.gen.dda.state.v1 import state_pb2, state_pb2_grpc
from ddastate.apis.grpc.gen.ddastate.admin.v1 import admin_pb2, admin_pb2_grpc
from ddastate.testing.mosquitto import Mosquitto

ROWS = (
    "ProposeInput at leader, sequential",
    "ProposeInput at follower, sequential",
    "ProposeInput at leader, 64 in flight",
    "ProposeInput at leader, 256 in flight",
)

FLOOR_ROWS = ("Status, sequential", "Status, 256 in flight")

Figures = tuple[float, float, float]


async def in_flight_cpu(
    call: Callable[[int], Awaitable[Any]], n: int, window: int, server: Member
) -> tuple[Figures, float]:
    """``in_flight`` and the CPU the server process spent per call (us)."""
    before = proc_cpu_seconds(server.pid)
    figures = await in_flight(call, n, window)
    return figures, (proc_cpu_seconds(server.pid) - before) / n * 1e6


async def client_floor(member: Member, n: int) -> tuple[list[Figures], float]:
    """AdminService.Status on a ddastate sidecar (gRPC alone: no Raft, no broker), one
    at a time and 256 in flight, with the sidecar's CPU per call in flight; checks first
    that ``member`` is the leader."""
    async with grpc.aio.insecure_channel(member.grpc_address) as ch:
        admin: Any = admin_pb2_grpc.AdminServiceStub(ch)
        status = await admin.Status(admin_pb2.StatusRequest())
        if status.role != "leader":
            raise RuntimeError(f"the bootstrapping ddastate sidecar is {status.role}")

        async def call(i: int) -> None:
            await admin.Status(admin_pb2.StatusRequest())

        seq = await sequential(call, n)
        busy, cpu = await in_flight_cpu(call, n * 4, 256, member)
        return [seq, busy], cpu


async def measure(leader: Member, follower: Member, n: int) -> tuple[list[Figures], list[float]]:
    """The ROWS, and the leader's CPU per call (us) on the in-flight rows."""
    async with (
        grpc.aio.insecure_channel(leader.grpc_address) as lch,
        grpc.aio.insecure_channel(follower.grpc_address) as fch,
    ):
        lstate: Any = state_pb2_grpc.StateServiceStub(lch)
        fstate: Any = state_pb2_grpc.StateServiceStub(fch)
        value = b"x" * 16

        def propose(stub: Any, prefix: str) -> Callable[[int], Awaitable[Any]]:
            async def call(i: int) -> None:
                await stub.ProposeInput(
                    state_pb2.Input(
                        op=state_pb2.INPUT_OPERATION_SET, key=f"{prefix}{i}", value=value
                    ),
                    timeout=60,
                )

            return call

        rows = [
            await sequential(propose(lstate, "l"), n),
            await sequential(propose(fstate, "f"), n),
        ]
        cpus = []
        for window in (64, 256):
            figures, cpu = await in_flight_cpu(
                propose(lstate, f"w{window}-"), n * 4, window, leader
            )
            rows.append(figures)
            cpus.append(cpu)
        return rows, cpus


@dataclass
class GroupFigures:
    rows: list[Figures]  # ROWS
    cpus: list[float]  # the leader's CPU per call (us) on the in-flight ROWS
    floor: list[Figures]  # FLOOR_ROWS (ddastate only)
    floor_cpu: float = 0.0  # the sidecar's CPU per Status call in flight (ddastate only)


async def run_group(kind: Kind, directory: Path, n: int) -> GroupFigures:
    """Three sidecars of one kind on a fresh broker: start, measure, kill."""
    with Mosquitto() as broker, MixedGroup(directory, broker.url, cluster=f"bench{kind}") as g:
        members = [g.add(kind, bootstrap=i == 0) for i in range(3)]
        try:
            for m in members:
                await asyncio.to_thread(m.start)
            ids = {m.member_id for m in members}
            async with WatchMembers(members[0]) as watch:
                await watch.wait_for(lambda seen: {c.id for c in seen if c.joined} >= ids, 60)
            figures = GroupFigures(*await measure(members[0], members[1], n), floor=[])
            if kind == "py":
                figures.floor, figures.floor_cpu = await client_floor(members[0], n)
            return figures
        finally:
            for m in members:  # no graceful leave needed: the group is thrown away
                m.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="calls per sequential row")
    parser.add_argument("--keep", default=None, help="directory for stores and logs (kept)")
    args = parser.parse_args()
    try:
        gointerop.install_reference_sidecar()
    except gointerop.GoUnavailable as e:
        print(f"reference_bench needs the Go reference: {e}", file=sys.stderr)
        return 2
    directory = Path(args.keep or tempfile.mkdtemp(prefix="ddastate-reference-bench-"))
    try:
        go = asyncio.run(run_group("go", directory / "go", args.n))
        py = asyncio.run(run_group("py", directory / "py", args.n))
    finally:
        if args.keep is None:
            shutil.rmtree(directory, ignore_errors=True)
    print(
        f"\nProposeInput over gRPC, 3 sidecars, Mosquitto, durable stores, "
        f"{os.cpu_count()} cores: the Go reference {gointerop.REFERENCE_VERSION} and ddastate"
    )
    head = f"{'':40} {'reference calls/s':>17} {'p50 ms':>7} {'p99 ms':>7}"
    print(f"{head} {'ddastate calls/s':>16} {'p50 ms':>7} {'p99 ms':>7}")
    for name, (gr, g50, g99), (pr, p50, p99) in zip(ROWS, go.rows, py.rows, strict=True):
        print(f"{name:40} {gr:17.0f} {g50:7.2f} {g99:7.2f} {pr:16.0f} {p50:7.2f} {p99:7.2f}")
    print("\nCPU of the leader's process per call (us), reference / ddastate:")
    for name, g, p in zip(ROWS[2:], go.cpus, py.cpus, strict=True):
        print(f"{name:40} {g:17.0f} {p:33.0f}")
    print("\nThis client's own limit (AdminService.Status on the ddastate leader: no Raft):")
    for name, (rate, p50, p99) in zip(FLOOR_ROWS, py.floor, strict=True):
        print(f"{name:40} {rate:17.0f} {p50:7.2f} {p99:7.2f}")
    print(f"{'the sidecar CPU per Status call (us), 256 in flight':52} {py.floor_cpu:5.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""State binding benchmark: ProposeInput throughput and latency, 3 members.

One table: for each transport (loopback bus in one process; Mosquitto with three member
processes) and store (memory; durable SQLite with fsync), ProposeInput at the leader and
through a follower (leader forwarding), sequential and with 64 and 1024 proposals in
flight: inputs/s, p50 and p99 latency. Beside them, the floor: a bare com request/response
round trip between two members on the same transport (no Raft, no storage), sequential
and with the same number in flight.

    .venv/bin/python benchmarks/state_bench.py                # everything (a few minutes)
    .venv/bin/python benchmarks/state_bench.py --quick        # fewer inputs per row
    .venv/bin/python benchmarks/state_bench.py --only loopback --stores memory

Targets (issue 6, Mosquitto + durable stores): sequential propose at the leader p50
<= 0.5 ms and p99 <= 1 ms, through a follower p50 <= 0.7 ms; >= 100,000 inputs/s with
1024 in flight at p99 <= 10 ms.

Options: ``--opts '{"pipeline": true}'`` runs the pipelining extension (all-Python
groups), ``--opts '{"maxAppendEntries": 64}'`` the Go reference's batch size (ddastate's
default is 512); ``--uvloop`` runs the members on uvloop.

Where the time goes (one sequential propose at the leader; three member processes, durable
stores, Mosquitto; medians from timestamps taken in each process, tracing included):
propose to AppendEntries on the socket ~0.14 ms (binding, node flush, encode, publish);
broker to follower ~0.19 ms; follower decode and step ~0.06 ms, hand-off to its writer
thread ~0.1 ms, SQLite commit ~0.26 ms (three members fdatasync one virtual disk at
once: one overwrite+fdatasync alone takes ~0.11 ms here, three at once ~0.19 ms each),
back on the loop and reply sent ~0.1 ms; broker to leader ~0.2 ms; commit, FSM apply
and back to the caller ~0.12 ms. The floor is the bare round trip (0.19-0.31 ms) plus a
contended fdatasync (~0.19 ms). On two cores the sequential case is also CPU-bound:
about 1.4-1.7 ms of CPU per proposal across the three members and Mosquitto, so
every hop waits for a core. Under load the leader is CPU-bound: per input about 6 us
for the proposal (binding, node, future), 1 us to batch and encode AppendEntries (each
entry is encoded once, for both followers and the leader's store), 4 us to apply,
resolve and wake the caller (one event-loop callback per awaiting caller is the
asyncio floor), and 2-3 us in its writer thread (SQLite under the same GIL); each
follower spends about 4 us decoding and 3 us storing an entry. With in-memory stores
the writes run on the event loop (no writer thread). Through a follower every input
is its own leader-forwarded request, broadcast to every member: about 220 us of CPU
per input across the group (75 us on the proposer, 64 us on the leader, 40 us on the
other follower, 40 us in Mosquitto) against 42 us for a proposal made at the leader.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from typing import Any

from ddastate.com.api import Action, ActionResult, ActionWithCallback, Scope, SubscriptionFilter
from ddastate.com.loopback import LoopbackBinding, LoopbackBus
from ddastate.com.mqtt5 import Mqtt5Binding
from ddastate.config import Config
from ddastate.state.api import Input, InputOp
from ddastate.state.raft import RaftBinding
from ddastate.testing.mosquitto import Mosquitto

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

OPTS: dict[str, Any] = {}  # the seed's defaults (heartbeat 1000 ms, ...)


@dataclass
class Row:
    transport: str
    store: str
    who: str
    inflight: int
    n: int
    rate: float
    p50: float
    p99: float
    floor_rate: float = float("nan")
    floor_p50: float = float("nan")
    floor_p99: float = float("nan")


def pct(vals: list[float], p: float) -> float:
    if not vals:
        return float("nan")
    s = sorted(vals)
    return s[min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))]


async def run_load(fn: Any, n: int, inflight: int) -> tuple[float, float, float]:
    """Call ``await fn(i)`` n times with ``inflight`` outstanding: (rate, p50, p99)."""
    lat: list[float] = []
    pc = time.perf_counter
    start = pc()
    if inflight <= 1:
        for i in range(n):
            t = pc()
            await fn(i)
            lat.append(pc() - t)
    else:
        it = iter(range(n))

        async def worker() -> None:
            for i in it:
                t = pc()
                await fn(i)
                lat.append(pc() - t)

        await asyncio.gather(*(worker() for _ in range(inflight)))
    secs = pc() - start
    return n / secs, pct(lat, 50), pct(lat, 99)


def cfg_for(cluster: str, protocol: str, url: str, node_id: str) -> Config:
    cfg = Config()
    cfg.cluster = cluster
    cfg.identity.id = node_id
    cfg.services.com.protocol = protocol
    if url:
        cfg.services.com.url = url
    cfg.services.state.disabled = False
    cfg.services.state.opts = dict(OPTS)
    return cfg


# ----------------------------------------------------------------------- floors


async def floor_rows(
    protocol: str, url: str, bus: LoopbackBus | None, plan: list[tuple[int, int]]
) -> dict[int, tuple[float, float, float]]:
    """Bare com request/response between two bindings of this process."""
    cluster = f"floor{uuid.uuid4().hex[:6]}"

    def make() -> Any:
        return LoopbackBinding(bus) if protocol == "loopback" else Mqtt5Binding()

    a, b = make(), make()
    await a.open(cfg_for(cluster, protocol, url, "fa"))
    await b.open(cfg_for(cluster, protocol, url, "fb"))

    def echo(awc: ActionWithCallback) -> None:
        awc.send(ActionResult(context="fb", data=awc.action.params))

    sub = await b.subscribe_action(SubscriptionFilter(Scope.STA, "rpcfb"), handler=echo)
    payload = b"x" * 120  # about one AppendEntries with one small entry

    async def one(i: int) -> None:
        await a.request_action(Action("rpcfb", "ae", "fa", payload), Scope.STA, 10)

    out: dict[int, tuple[float, float, float]] = {}
    try:
        for inflight, n in plan:
            await run_load(one, min(n, 500), inflight)  # warm up
            out[inflight] = await run_load(one, n, inflight)
    finally:
        await sub.aclose()
        await a.close()
        await b.close()
    return out


# ------------------------------------------------------------------ loopback case


async def loopback_case(store: str, plan: list[tuple[int, int]]) -> list[Row]:
    bus = LoopbackBus()
    cluster = f"bench{uuid.uuid4().hex[:6]}"
    tmp = tempfile.mkdtemp(prefix="state-bench-") if store == "durable" else ""
    members: list[RaftBinding] = []
    coms: list[LoopbackBinding] = []
    rows: list[Row] = []
    try:
        for i in range(3):
            cfg = cfg_for(cluster, "loopback", "", f"m{i}")
            cfg.services.state.bootstrap = i == 0
            cfg.services.state.store = os.path.join(tmp, f"m{i}") if tmp else ""
            com = LoopbackBinding(bus)
            await com.open(cfg)
            b = RaftBinding()
            await b.open(cfg, com)
            members.append(b)
            coms.append(com)
        leader, follower = members[0], members[1]
        floor = await floor_rows("loopback", "", bus, plan)
        value = b"v" * 16
        for who, b in (("leader", leader), ("follower", follower)):
            for inflight, n in plan:

                async def one(i: int, b: RaftBinding = b, who: str = who) -> None:
                    await b.propose_input(Input(InputOp.SET, f"{who}{i}", value), 60)

                await run_load(one, min(n, 300), inflight)  # warm up
                rate, p50, p99 = await run_load(one, n, inflight)
                f = floor[inflight]
                rows.append(Row("loopback", store, who, inflight, n, rate, p50, p99, *f))
                print_row(rows[-1])
    finally:
        for b in members:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(b.close(), 5)
        for c in coms:
            await c.close()
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return rows


# ------------------------------------------------------------------ mosquitto case


async def mosquitto_case(
    broker: Mosquitto, store: str, plan: list[tuple[int, int]], member_args: list[str]
) -> list[Row]:
    from state.procs import MemberProc

    cluster = f"bench{uuid.uuid4().hex[:6]}"
    tmp = tempfile.mkdtemp(prefix="state-bench-")
    procs: list[MemberProc] = []
    rows: list[Row] = []
    try:
        for i in range(3):
            p = MemberProc(
                broker.url,
                cluster,
                f"m{i}-{uuid.uuid4().hex[:6]}",
                store=os.path.join(tmp, f"m{i}") if store == "durable" else "",
                bootstrap=i == 0,
                opts=OPTS,
                extra_args=member_args,
            )
            await p.start()
            procs.append(p)
        floor = await floor_rows("mqtt5", broker.url, None, plan)
        for who, p in (("leader", procs[0]), ("follower", procs[1])):
            for inflight, n in plan:
                await p.call(
                    {"cmd": "bench", "n": min(n, 300), "inflight": inflight, "prefix": "w"}, 600
                )
                r = await p.call({"cmd": "bench", "n": n, "inflight": inflight, "prefix": who}, 900)
                if not r.get("ok"):
                    raise RuntimeError(f"bench failed: {r}")
                f = floor[inflight]
                rows.append(
                    Row(
                        "mosquitto",
                        store,
                        who,
                        inflight,
                        n,
                        n / r["seconds"],
                        r["p50"],
                        r["p99"],
                        *f,
                    )
                )
                print_row(rows[-1])
    finally:
        for p in procs:
            with contextlib.suppress(Exception):
                await p.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


# ------------------------------------------------------------------------ output

HEADER = (
    f"{'transport':<10} {'store':<8} {'proposer':<9} {'in flight':>9} {'n':>7} "
    f"{'inputs/s':>10} {'p50 ms':>8} {'p99 ms':>8} | "
    f"{'floor/s':>10} {'floor p50':>9} {'floor p99':>9}"
)


def print_row(r: Row) -> None:
    print(
        f"{r.transport:<10} {r.store:<8} {r.who:<9} {r.inflight:>9} {r.n:>7} "
        f"{r.rate:>10,.0f} {r.p50 * 1e3:>8.3f} {r.p99 * 1e3:>8.3f} | "
        f"{r.floor_rate:>10,.0f} {r.floor_p50 * 1e3:>9.3f} {r.floor_p99 * 1e3:>9.3f}",
        flush=True,
    )


async def main(args: argparse.Namespace) -> None:
    scale = 0.2 if args.quick else 1.0
    plan = [(1, int(2000 * scale)), (64, int(20000 * scale)), (1024, int(60000 * scale))]
    plan = [(k, max(n, 200)) for k, n in plan if k in args.inflight]
    rows: list[Row] = []
    member_args = ["--uvloop"] if args.uvloop else []
    if args.switch_interval > 0:
        sys.setswitchinterval(args.switch_interval)
        member_args += ["--switch-interval", str(args.switch_interval)]
    if args.opts:
        OPTS.update(json.loads(args.opts))
    print(
        f"options: {OPTS or 'reference defaults'}; uvloop: {args.uvloop}; "
        f"switch interval: {sys.getswitchinterval() * 1e3:g} ms"
    )
    print(HEADER)
    print("-" * len(HEADER))
    if "loopback" in args.only:
        for store in args.stores:
            rows += await loopback_case(store, plan)
    if "mosquitto" in args.only:
        with Mosquitto() as broker:
            for store in args.stores:
                rows += await mosquitto_case(broker, store, plan, member_args)
    if args.json:
        with open(args.json, "w") as f:  # noqa: ASYNC230
            json.dump([r.__dict__ for r in rows], f, indent=1)


def cli() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only", nargs="+", default=["loopback", "mosquitto"])
    p.add_argument("--stores", nargs="+", default=["memory", "durable"])
    p.add_argument("--inflight", nargs="+", type=int, default=[1, 64, 1024])
    p.add_argument("--uvloop", action="store_true", help="members run on uvloop")
    p.add_argument("--json", default="")
    p.add_argument(
        "--switch-interval",
        type=float,
        default=0.0,
        help="sys.setswitchinterval in seconds for this process and the members (0: Python's 5 ms)",
    )
    p.add_argument(
        "--opts", default="", help="services.state.opts as JSON, e.g. '{\"pipeline\": true}'"
    )
    args = p.parse_args()
    if args.uvloop:
        import uvloop

        uvloop.install()
    asyncio.run(main(args))


if __name__ == "__main__":
    cli()

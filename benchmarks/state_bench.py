"""State binding benchmark: ProposeInput throughput and latency, 3 members.

One table: for each transport (loopback bus in one process; Mosquitto with three member
processes) and store (memory; durable SQLite with fsync), ProposeInput at the leader and
through a follower (leader forwarding), sequential and with 64 and 1024 proposals in
flight: inputs/s, p50 and p99 latency. Beside them, in the same run, the floor: the same
load on a replication without Raft, SQLite or codecs, between three bindings of the
benchmark process on the same transport. Its proposer sends what is waiting (up to 512
writes) as one request to two responders, one batch at a time, and a write is done at
the first answer; on durable rows the proposer and both responders also write the batch
to a file of their own and fdatasync it (through the kernel, as members do) before they
count or answer. It is what the hardware, the broker and asyncio allow a lean Python
member here.

    .venv/bin/python benchmarks/state_bench.py                # everything (a few minutes)
    .venv/bin/python benchmarks/state_bench.py --quick        # fewer inputs per row
    .venv/bin/python benchmarks/state_bench.py --only loopback --stores memory

Targets (issue 6, Mosquitto + durable stores): sequential propose at the leader p50
<= 0.5 ms and p99 <= 1 ms, through a follower p50 <= 0.7 ms; >= 100,000 inputs/s with
1024 in flight at p99 <= 10 ms.

Options: ``--opts '{"pipeline": true}'`` runs the pipelining extension (all-Python
groups), ``--opts '{"maxAppendEntries": 64}'`` the Go reference's batch size (ddastate's
default is 512); ``--uvloop`` runs the members on uvloop.

Where the time goes. Sequentially a commit is a broker round trip plus a follower's
fdatasync while the two other members flush too (one 4 KiB overwrite + fdatasync takes
about 0.1 ms alone here and 0.18 ms with three writers at once), plus the CPU of every
hop: about 1.2 ms of CPU per proposal across the three members and Mosquitto on two
cores (leader about 0.43 ms, each follower 0.3 ms, Mosquitto 0.13 ms), so hops wait for a
core. Each flush also wakes a kernel worker on the member's CPU, which preempts the
member (``io_submit`` returns after about 45 us), and the three members flush to one
virtual disk at once: inside the round a flush takes 290-380 us, alone 180 us. In one
process (loopback, durable), one round takes about 0.55 ms of CPU with real flushes and
0.29 ms when the flush completes at once. Under load the leader is CPU-bound at 13-17 us
per input: the proposal (binding, node, future, deadline), encoding each entry once (for
both followers and its own store), the SQLite insert, applying, resolving the caller's
future and waking it (one event-loop callback per awaiting caller is the asyncio
floor, about 2 us); each follower spends 6-9 us decoding, storing and applying an
entry (``hot_path_bench.py`` puts both beside the least work CPython does for the same
bytes, and beside the 1024-in-flight target's budget: 20 us of CPU per input for the
whole group on two cores). Through a follower every input is its own leader-forwarded
request, broadcast to every member: about 220 us of CPU per input across the group
(75 us on the proposer, 64 us on the leader, 40 us on the other follower, 40 us in
Mosquitto) against 42 us for a proposal made at the leader.
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
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from ddastate._fdatasync import AsyncFdatasync
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

BLOCK = 4096  # a WAL page
REGION = b"x" * (64 * BLOCK)  # preallocated and overwritten in turn, as SQLite reuses its WAL
ENTRY = b"x" * 64  # about one encoded entry of the benchmark's inputs
MAX_BATCH = 512  # ddastate's maxAppendEntries


class BareLog:
    """A member's durable log write without the log: whole pages written on the loop and
    flushed by the kernel, as a member does with ``asyncFsync``."""

    def __init__(self, path: str, loop: asyncio.AbstractEventLoop) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        os.pwrite(self._fd, REGION, 0)
        os.fsync(self._fd)
        self._flush = AsyncFdatasync(loop, self._fd)
        self._at = 0

    def write_then(self, nbytes: int, callback: Callable[[OSError | None], None]) -> None:
        size = -(-nbytes // BLOCK) * BLOCK
        if self._at + size > len(REGION):
            self._at = 0
        os.pwrite(self._fd, REGION[:size], self._at)
        self._at += size
        self._flush.sync_then(callback)

    async def aclose(self) -> None:
        await self._flush.aclose()
        os.close(self._fd)


async def floor_rows(
    protocol: str, url: str, bus: LoopbackBus | None, plan: list[tuple[int, int]], durable: bool
) -> dict[int, tuple[float, float, float]]:
    """Replicated writes without Raft, SQLite or codecs: three bindings of this process.

    The proposer sends what is waiting, up to 512 writes, as one request to two
    responders and waits for one answer before it sends the next batch. On durable
    rows the proposer and each responder also write the batch to a file of its own and
    flush it (Linux AIO) before it counts or answers: a write is done once the
    proposer's flush and one answer are in, as a commit of three members.
    """
    cluster = f"floor{uuid.uuid4().hex[:6]}"
    loop = asyncio.get_running_loop()
    tmp = tempfile.mkdtemp(prefix="state-bench-floor-")
    bindings: list[Any] = []
    logs: list[BareLog] = []
    subs: list[Any] = []
    closing = False
    try:
        for name in ("fa", "fb", "fc"):
            com = LoopbackBinding(bus) if protocol == "loopback" else Mqtt5Binding()
            await com.open(cfg_for(cluster, protocol, url, name))
            bindings.append(com)
            if durable:
                logs.append(BareLog(os.path.join(tmp, name), loop))
        for i, name in ((1, "fb"), (2, "fc")):

            def answer(awc: ActionWithCallback, name: str = name, i: int = i) -> None:
                def flushed(err: OSError | None) -> None:
                    # after a failed flush no answer: the proposer's request times out
                    if err is None and not closing:
                        awc.send(ActionResult(context=name))

                if durable:
                    logs[i].write_then(len(awc.action.params), flushed)
                else:
                    flushed(None)

            flt = SubscriptionFilter(Scope.STA, f"rpc{name}")
            subs.append(await bindings[i].subscribe_action(flt, handler=answer))
        proposer = bindings[0]
        waiting: list[asyncio.Future[None]] = []
        busy = False

        def send_batch() -> None:
            nonlocal waiting, busy
            batch, waiting = waiting[:MAX_BATCH], waiting[MAX_BATCH:]
            busy = True
            flushed, answered, finished = not durable, False, False

            def check(err: BaseException | None) -> None:
                nonlocal busy, finished
                if finished or not (err is not None or (flushed and answered)):
                    return
                finished, busy = True, False
                for f in batch:
                    if err is None:
                        f.set_result(None)
                    else:
                        f.set_exception(err)
                if waiting:
                    send_batch()

            def on_flush(err: OSError | None) -> None:
                nonlocal flushed
                flushed = True
                check(err)

            def on_answer(res: ActionResult | None, err: BaseException | None) -> None:
                nonlocal answered
                answered = True
                check(err)

            payload = ENTRY * len(batch)
            if durable:
                logs[0].write_then(len(payload), on_flush)
            for target in ("fb", "fc"):
                action = Action(f"rpc{target}", "ae", "fa", payload)
                proposer.request_action_callback(action, Scope.STA, 10, on_answer)

        async def one(i: int) -> None:
            fut: asyncio.Future[None] = loop.create_future()
            waiting.append(fut)
            if not busy:
                send_batch()
            await fut

        out: dict[int, tuple[float, float, float]] = {}
        for inflight, n in plan:
            await run_load(one, min(n, 500), inflight)  # warm up
            out[inflight] = await run_load(one, n, inflight)
        return out
    finally:
        closing = True
        for sub in subs:
            await sub.aclose()
        for com in bindings:
            await com.close()
        for log in logs:
            await log.aclose()
        shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------ loopback case


@contextlib.asynccontextmanager
async def loopback_group(
    bus: LoopbackBus, count: int, store_dir: str = "", opts: dict[str, Any] | None = None
) -> AsyncIterator[list[RaftBinding]]:
    """``count`` members on ``bus``, the first bootstrapping; in-memory stores unless
    ``store_dir`` is given; ``opts`` on top of the benchmark's options. Closed on exit."""
    cluster = f"bench{uuid.uuid4().hex[:6]}"
    members: list[RaftBinding] = []
    coms: list[LoopbackBinding] = []
    try:
        for i in range(count):
            cfg = cfg_for(cluster, "loopback", "", f"m{i}")
            cfg.services.state.bootstrap = i == 0
            cfg.services.state.store = os.path.join(store_dir, f"m{i}") if store_dir else ""
            cfg.services.state.opts.update(opts or {})
            com = LoopbackBinding(bus)
            await com.open(cfg)
            coms.append(com)
            b = RaftBinding()
            await b.open(cfg, com)
            members.append(b)
        yield members
    finally:
        for b in members:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(b.close(), 5)
        for c in coms:
            await c.close()


async def loopback_case(store: str, plan: list[tuple[int, int]]) -> list[Row]:
    bus = LoopbackBus()
    tmp = tempfile.mkdtemp(prefix="state-bench-") if store == "durable" else ""
    rows: list[Row] = []
    try:
        async with loopback_group(bus, 3, tmp) as members:
            leader, follower = members[0], members[1]
            floor = await floor_rows("loopback", "", bus, plan, store == "durable")
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
        floor = await floor_rows("mqtt5", broker.url, None, plan, store == "durable")
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

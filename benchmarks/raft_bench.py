"""Raft node benchmark: 3 members on the in-memory transport, in one process.

Prints committed applies/s and latency percentiles (p50/p99/p999) for sequential
applies and for 256 and 1024 applies in flight, beside a baseline: the same number
of event-loop hops (proposal queue -> flush -> two follower round trips through
tasks -> resolve) with asyncio futures and no Raft at all.

Rows "writer thread" use the same in-memory stores flagged not inline-safe, so every
write goes through the node's writer thread as it does for a real disk store.
A second table: time to install a 100 MB snapshot on a follower over the in-memory
transport, and apply throughput (256 in flight) while the leader persists a 100 MB
snapshot to a FileSnapshotStore (fsync) in a temporary directory.

    .venv/bin/python benchmarks/raft_bench.py [--n 20000] [--uvloop] [--profile] [--no-snapshot]
                                              [--sqlite]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import shutil
import tempfile
import time
from collections.abc import Callable
from typing import Any

from ddastate.raft import (
    Config,
    FileSnapshotStore,
    InmemLogStore,
    InmemStableStore,
    RaftState,
    SnapshotSink,
)
from ddastate.raft.testing import Cluster, RecordingFSM, fast_config, wait_for


class ThreadedLogStore(InmemLogStore):
    inline_safe = False


class ThreadedStableStore(InmemStableStore):
    inline_safe = False


class _BlobSnapshot:
    def __init__(self, blob: bytes) -> None:
        self.blob = blob

    def persist(self, sink: SnapshotSink) -> None:
        mv = memoryview(self.blob)
        step = 1 << 20
        for i in range(0, len(mv), step):
            sink.write(bytes(mv[i : i + step]))
        sink.close()

    def release(self) -> None:
        pass


class BlobFSM:
    """State: one blob; a command b"grow:<n>" makes it n bytes; others are counted."""

    def __init__(self) -> None:
        self.blob = b""
        self.n = 0

    def apply(self, log: Any) -> Any:
        data = log.data or b""
        if data.startswith(b"grow:"):
            self.blob = bytes(int(data[5:]))
        self.n += 1
        return log.index

    def snapshot(self) -> _BlobSnapshot:
        return _BlobSnapshot(self.blob)

    def restore(self, reader: Any) -> None:
        self.blob = reader.read()


SWITCH: list[float | None] = [0.0005]  # Config.gil_switch_interval, set from the command line


class NullFSM:
    """Counts applies; responds with the index (no per-entry storage)."""

    def __init__(self) -> None:
        self.n = 0

    def apply(self, log: Any) -> Any:
        self.n += 1
        return log.index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NullFSM) and other.n == self.n

    __hash__ = None  # type: ignore[assignment]

    def snapshot(self) -> Any:
        return RecordingFSM().snapshot()

    def restore(self, reader: Any) -> None:
        reader.read()


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, round(p / 100.0 * (len(values) - 1)))
    return values[k]


async def drive(
    submit: Callable[[], asyncio.Future[Any]], n: int, in_flight: int
) -> tuple[float, list[float]]:
    """Keep ``in_flight`` operations outstanding until ``n`` completed."""
    loop = asyncio.get_running_loop()
    lat: list[float] = []
    done = loop.create_future()
    state = {"issued": 0, "completed": 0}
    clock = time.perf_counter

    def issue() -> None:
        state["issued"] += 1
        t0 = clock()
        f = submit()

        def cb(fut: asyncio.Future[Any], t0: float = t0) -> None:
            if fut.exception() is not None:
                if not done.done():
                    done.set_exception(fut.exception())  # type: ignore[arg-type]
                return
            lat.append(clock() - t0)
            state["completed"] += 1
            if state["completed"] >= n:
                if not done.done():
                    done.set_result(None)
                return
            if state["issued"] < n:
                issue()

        f.add_done_callback(cb)

    start = clock()
    for _ in range(min(in_flight, n)):
        issue()
    await done
    return clock() - start, lat


async def drive_sequential(
    submit: Callable[[], asyncio.Future[Any]], n: int
) -> tuple[float, list[float]]:
    clock = time.perf_counter
    lat: list[float] = []
    start = clock()
    for _ in range(n):
        t0 = clock()
        await submit()
        lat.append(clock() - t0)
    return clock() - start, lat


class Baseline:
    """The same queue hops as a leader with two followers, without Raft."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.pending: list[asyncio.Future[Any]] = []
        self.scheduled = False

    def submit(self) -> asyncio.Future[Any]:
        f = self.loop.create_future()
        self.pending.append(f)
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self.flush)
        return f

    def flush(self) -> None:
        self.scheduled = False
        batch, self.pending = self.pending, []
        acks = {"n": 0}
        for _ in range(2):
            self.loop.create_task(self.rpc(batch, acks))

    async def rpc(self, batch: list[asyncio.Future[Any]], acks: dict[str, int]) -> None:
        resp = self.loop.create_future()
        self.loop.call_soon(self.follower, resp)
        await resp
        acks["n"] += 1
        if acks["n"] == 1:  # majority of 3 with the leader itself
            self.loop.call_soon(self.resolve, batch)

    def follower(self, resp: asyncio.Future[Any]) -> None:
        self.loop.call_soon(resp.set_result, True)

    @staticmethod
    def resolve(batch: list[asyncio.Future[Any]]) -> None:
        for f in batch:
            f.set_result(None)


async def _run_cluster(
    rows: list[tuple[str, str, float, list[float]]],
    system: str,
    n: int,
    profile: bool,
    with_baseline: bool,
    **kwargs: Any,
) -> None:
    # hashicorp defaults (1 s heartbeat, 64 entries per message, TrailingLogs 10240,
    # SnapshotThreshold 8192) except SnapshotInterval 1 s instead of 120 s: at 100,000
    # applies/s the default interval lets millions of entries pile up in memory, and
    # CPython's full garbage collections then pause the loop for 100+ ms.
    cfg = Config(local_id="x", snapshot_interval=1.0, gil_switch_interval=SWITCH[0])
    async with await Cluster.create(3, config=cfg, fsm_factory=NullFSM, **kwargs) as c:
        leader = await c.wait_for_leader(timeout=10)
        payload = b"v" * 64
        await leader.barrier()

        def submit() -> asyncio.Future[Any]:
            return leader.apply(payload)

        base = Baseline()
        prof = cProfile.Profile() if profile else None
        for label, fl in (("sequential", 1), ("256 in flight", 256), ("1024 in flight", 1024)):
            count = n if fl == 1 else n * 5
            if with_baseline:
                el, lat = (
                    await drive_sequential(base.submit, count)
                    if fl == 1
                    else await drive(base.submit, count, fl)
                )
                rows.append(("baseline (no raft)", label, count / el, lat))
            if prof is not None:
                prof.enable()
            el, lat = (
                await drive_sequential(submit, count) if fl == 1 else await drive(submit, count, fl)
            )
            if prof is not None:
                prof.disable()
            assert leader.state is RaftState.LEADER
            rows.append((system, label, count / el, lat))
        await c.ensure_same_state(timeout=30)
        if prof is not None:
            s = io.StringIO()
            pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(25)
            print(s.getvalue())


async def bench(
    n: int, profile: bool, sqlite: bool = False
) -> list[tuple[str, str, float, list[float]]]:
    rows: list[tuple[str, str, float, list[float]]] = []
    await _run_cluster(rows, "ddastate.raft 3 members", n, profile, True)
    await _run_cluster(
        rows,
        "raft, writer thread",
        n,
        False,
        False,
        log_store_factory=ThreadedLogStore,
        stable_store_factory=ThreadedStableStore,
    )
    if sqlite:
        from ddastate.state.raft.store import RaftStore

        tmp = tempfile.mkdtemp(prefix="raft-bench-sqlite-")
        made: list[RaftStore] = []

        def log_store() -> RaftStore:
            made.append(RaftStore(os.path.join(tmp, f"m{len(made)}")))
            return made[-1]

        try:
            await _run_cluster(
                rows,
                "raft, RaftStore SQLite",
                max(1, n // 10),
                False,
                False,
                log_store_factory=log_store,
                stable_store_factory=lambda: made[-1],
                snapshot_store_factory=lambda: made[-1].snapshot_store,
            )
        finally:
            for st in made:
                st.close()
            shutil.rmtree(tmp, ignore_errors=True)
    return rows


async def bench_snapshots(size: int) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    tmp = tempfile.mkdtemp(prefix="raft-bench-")
    counter = iter(range(100))
    try:

        def file_store() -> FileSnapshotStore:
            return FileSnapshotStore(os.path.join(tmp, f"s{next(counter)}"), retain=2)

        cfg = fast_config(
            trailing_logs=10,
            heartbeat_timeout=1.0,
            election_timeout=1.0,
            leader_lease_timeout=0.5,
            commit_timeout=0.05,
        )
        async with await Cluster.create(3, config=cfg, fsm_factory=BlobFSM) as c:
            leader = await c.wait_for_leader(timeout=10)
            lagger = next(m for m in c.members if m != leader.local_id)
            await c.stop(lagger)
            await leader.apply(b"grow:%d" % size)
            for i in range(50):
                await leader.apply(b"x%d" % i)
            t0 = time.perf_counter()
            await leader.snapshot()
            out.append(
                (
                    f"persist {size >> 20} MB snapshot (in-memory store)",
                    f"{time.perf_counter() - t0:.3f} s",
                )
            )
            t0 = time.perf_counter()
            node = await c.start(lagger)
            await wait_for(lambda: node.applied_index() >= leader.last_index(), timeout=120)
            el = time.perf_counter() - t0
            out.append((f"install {size >> 20} MB snapshot on a follower", f"{el:.3f} s"))
            fsm = c.fsm(lagger)
            assert isinstance(fsm, BlobFSM) and len(fsm.blob) == size

        async with await Cluster.create(
            3, config=cfg, fsm_factory=BlobFSM, snapshot_store_factory=file_store
        ) as c:
            leader = await c.wait_for_leader(timeout=10)
            await leader.apply(b"grow:%d" % size)
            payload = b"v" * 64

            def submit() -> asyncio.Future[Any]:
                return leader.apply(payload)

            el, _ = await drive(submit, 50_000, 256)
            out.append(("applies/s, 256 in flight, idle", f"{50_000 / el:,.0f}"))
            snap = leader.snapshot()
            t0 = time.perf_counter()
            count = 0
            while not snap.done():
                el, _ = await drive(submit, 5_000, 256)
                count += 5_000
            el_total = time.perf_counter() - t0
            await snap
            out.append(
                (
                    f"applies/s, 256 in flight, while persisting {size >> 20} MB (fsync)",
                    f"{count / el_total:,.0f} ({count} applies in {el_total:.2f} s)",
                )
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=20000, help="sequential applies (x5 when in flight)")
    ap.add_argument("--uvloop", action="store_true", help="run on uvloop")
    ap.add_argument("--profile", action="store_true", help="print a cProfile of the raft runs")
    ap.add_argument("--no-snapshot", action="store_true", help="skip the snapshot table")
    ap.add_argument(
        "--switch-interval",
        default="0.0005",
        help="Config.gil_switch_interval in seconds, or 'off' to leave the interpreter's 5 ms",
    )
    ap.add_argument(
        "--sqlite", action="store_true", help="add rows on RaftStore (SQLite, fsync; n/10 applies)"
    )
    ap.add_argument("--snapshot-mb", type=int, default=100, help="snapshot size in MB")
    args = ap.parse_args()
    SWITCH[0] = None if args.switch_interval == "off" else float(args.switch_interval)
    if args.uvloop:
        import uvloop

        uvloop.install()
    rows = asyncio.run(bench(args.n, args.profile, args.sqlite))
    print(f"{'system':26} {'load':16} {'applies/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'p999 ms':>8}")
    for system, label, rate, lat in rows:
        print(
            f"{system:26} {label:16} {rate:11,.0f} {pct(lat, 50) * 1e3:8.3f} "
            f"{pct(lat, 99) * 1e3:8.3f} {pct(lat, 99.9) * 1e3:8.3f}"
        )
    if not args.no_snapshot:
        print()
        for what, value in asyncio.run(bench_snapshots(args.snapshot_mb << 20)):
            print(f"{what:64} {value}")


if __name__ == "__main__":
    main()

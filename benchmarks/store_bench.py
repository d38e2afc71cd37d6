"""Durable log-append throughput of RaftStore beside the physical limit of the disk.

Prints one table: durable ``store_logs`` calls for batches of 1 and 64 entries against a
bare file that appends the same bytes and fsyncs (or fdatasyncs) after every batch,
``get_log`` latency, and the cost of encoding an entry. The variants run one call each
in turn, so that disk and CPU contention (which on a shared machine moves from second
to second) hits all alike; several rounds are run and the median round is reported.

    .venv/bin/python benchmarks/store_bench.py [--dir DIR] [--seconds 2] [--rounds 5]

Targets (issue 4): batch 1 at >= 90% of append+fsync, batch 64 at >= 80%.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from ddastate.raft.log import Log, LogType
from ddastate.state.api import Input, InputOp
from ddastate.state.raft.codec import encode_log, encode_msgpack
from ddastate.state.raft.store import RaftStore

PAYLOAD = encode_msgpack(Input(InputOp.SET, "sensors/temperature/room-42", b"x" * 64))

Variant = tuple[Callable[[], Any], Callable[[Any], Any]]


def make_entries(start: int, n: int) -> list[Log]:
    now = time.time_ns()
    return [Log(i, 3, LogType.COMMAND, PAYLOAD, None, now) for i in range(start, start + n)]


class BareFile:
    """A file that appends the bytes RaftStore stores and syncs after every batch."""

    def __init__(self, path: str, sync: Callable[[int], None]) -> None:
        self.path = path
        self.sync = sync
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        self.record = (1).to_bytes(8, "big") + encode_log(make_entries(1, 1)[0])

    def append(self, batch: int) -> None:
        os.write(self.fd, self.record * batch)
        self.sync(self.fd)

    def read_latency(self, samples: int = 20000) -> tuple[float, float]:
        """p50 and p99 (us) of reading one record at a random offset (pread, no decode)."""
        size = len(self.record)
        count = os.fstat(self.fd).st_size // size
        rfd = os.open(self.path, os.O_RDONLY)
        rng = random.Random(1)
        times = []
        try:
            for i in (rng.randrange(count) for _ in range(samples)):
                t = time.perf_counter_ns()
                os.pread(rfd, size, i * size)
                times.append(time.perf_counter_ns() - t)
        finally:
            os.close(rfd)
        times.sort()
        return times[len(times) // 2] / 1000, times[int(len(times) * 0.99)] / 1000

    def close(self) -> None:
        os.close(self.fd)
        os.unlink(self.path)


def alternate(variants: dict[str, Variant], seconds: float) -> dict[str, float]:
    """Run the variants one call each in turn; calls per second of time spent in each.

    A variant is (prepare, call): ``prepare`` builds the call's input untimed (the Log
    objects a Raft node hands over), ``call`` is timed.
    """
    spent = dict.fromkeys(variants, 0.0)
    calls = dict.fromkeys(variants, 0)
    clock = time.perf_counter
    deadline = clock() + seconds
    while clock() < deadline:
        for name, (prepare, call) in variants.items():
            arg = prepare()
            t = clock()
            call(arg)
            spent[name] += clock() - t
            calls[name] += 1
    return {k: calls[k] / spent[k] for k in variants}


def get_log_latency(rs: RaftStore, samples: int = 20000) -> tuple[float, float]:
    """p50 and p99 of get_log at random indexes, in microseconds."""
    first, last = rs.first_index(), rs.last_index()
    rng = random.Random(1)
    times = []
    for i in (rng.randint(first, last) for _ in range(samples)):
        t = time.perf_counter_ns()
        rs.get_log(i)
        times.append(time.perf_counter_ns() - t)
    times.sort()
    return times[len(times) // 2] / 1000, times[int(len(times) * 0.99)] / 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--dir", default=None, help="directory on the disk to measure")
    ap.add_argument("--seconds", type=float, default=2.0, help="length of one round")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    base = tempfile.mkdtemp(prefix="store-bench-", dir=args.dir)
    try:
        rs = RaftStore(os.path.join(base, "member"))
        fsync_file = BareFile(os.path.join(base, "bare-fsync.log"), os.fsync)
        fdatasync_file = BareFile(os.path.join(base, "bare-fdatasync.log"), os.fdatasync)
        nxt = [1]

        def batch_of(n: int) -> list[Log]:
            nxt[0] += n
            return make_entries(nxt[0] - n, n)

        def nothing() -> None:
            return None

        def append(f: BareFile, n: int, _: object) -> None:
            f.append(n)

        results: dict[str, list[float]] = {}
        for _ in range(args.rounds):
            for b in (1, 64):
                variants: dict[str, Variant] = {
                    f"fsync{b}": (nothing, partial(append, fsync_file, b)),
                    f"fdatasync{b}": (nothing, partial(append, fdatasync_file, b)),
                    # store_logs includes encoding the entries, as in the node
                    f"store{b}": (partial(batch_of, b), rs.store_logs),
                }
                for k, v in alternate(variants, args.seconds).items():
                    results.setdefault(k, []).append(v * b)
        bare_p50, bare_p99 = fsync_file.read_latency()
        fsync_file.close()
        fdatasync_file.close()
        p50, p99 = get_log_latency(rs)
        sample = make_entries(1, 10000)
        t = time.perf_counter()
        for e in sample:
            encode_log(e)
        enc_us = (time.perf_counter() - t) / len(sample) * 1e6
        entries = rs.last_index() - rs.first_index() + 1
        rs.close()
    finally:
        shutil.rmtree(base, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in results.items()}
    size = len(encode_log(make_entries(1, 1)[0]))
    print(
        f"store_bench: {args.rounds} rounds of {args.seconds:.1f} s, variants alternating "
        f"call by call, median round; entry {size} bytes encoded"
    )
    print()
    print(
        f"{'measure':<42}{'append+fsync':>14}{'append+fdatasync':>18}"
        f"{'RaftStore':>12}{'vs fsync':>10}{'vs fdatasync':>14}"
    )

    def ratio(b: int, base: str) -> float:
        """Median over rounds of the per-round ratio (rounds see different disk speeds)."""
        pairs = zip(results[f"store{b}"], results[f"{base}{b}"], strict=True)
        return statistics.median(s / f for s, f in pairs)

    for b in (1, 64):
        f, d, s = med[f"fsync{b}"], med[f"fdatasync{b}"], med[f"store{b}"]
        rf, rd = ratio(b, "fsync"), ratio(b, "fdatasync")
        label = f"durable store_logs, batch {b:<2} ({'commits' if b == 1 else 'entries'}/s)"
        print(f"{label:<42}{f:>14,.0f}{d:>18,.0f}{s:>12,.0f}{rf:>10.0%}{rd:>14.0%}")
    f64, d64, s64 = med["fsync64"] / 64, med["fdatasync64"] / 64, med["store64"] / 64
    print(f"{'  same, in commits/s':<42}{f64:>14,.0f}{d64:>18,.0f}{s64:>12,.0f}")
    bare_read = f"{bare_p50:.1f}/{bare_p99:.1f}"
    print(
        f"{'get_log latency p50/p99 (us)':<42}{bare_read:>14}{'-':>18}{f'{p50:.1f}/{p99:.1f}':>12}"
    )
    print(f"{'  (bare: pread of one record; RaftStore: query + decode)':<42}")
    print(f"{'encode one entry (us, included above)':<42}{'-':>14}{'-':>18}{enc_us:>12.2f}")
    print()
    print("ratios: median over rounds of RaftStore / bare in the same round")
    print(f"targets: batch 1 >= 90%, batch 64 >= 80% of append+fsync; log held {entries:,} entries")
    for b in (1, 64):
        ratios = [s / f for s, f in zip(results[f"store{b}"], results[f"fsync{b}"], strict=True)]
        print(
            f"  batch {b:<2}: RaftStore / append+fsync per round: "
            + " ".join(f"{r:.0%}" for r in ratios)
            + f"  (median {statistics.median(ratios):.0%})"
        )
    for k in sorted(results):
        print(f"  rounds {k:<12} " + " ".join(f"{x:,.0f}" for x in results[k]))


if __name__ == "__main__":
    main()

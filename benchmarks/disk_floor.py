"""Disk floor: the latency of one small durable write, alone and with other writers.

Each of 1, 2 or 3 processes (a member's log writer each) writes 4 KiB and calls
fdatasync, one write at a time, in a file of its own on the same disk, either appending
(the file grows: the file system journals its size) or overwriting a preallocated region
(what SQLite's WAL does once it has wrapped around). It prints the p50 latency and the
rate of each writer: the physical limit under every durable commit of the state benchmark.

    .venv/bin/python benchmarks/disk_floor.py [--n 2000] [--dir DIR]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import tempfile
import time

BLOCK = b"x" * 4096
REGION = 64  # blocks preallocated for the overwrite mode


def writer(path: str, n: int, mode: str, out: mp.Queue[tuple[float, float]]) -> None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        if mode == "overwrite":
            os.write(fd, b"\0" * 4096 * REGION)
            os.fsync(fd)
        lat: list[float] = []
        for i in range(n):
            t = time.perf_counter()
            if mode == "overwrite":
                os.pwrite(fd, BLOCK, (i % REGION) * 4096)
            else:
                os.write(fd, BLOCK)
            os.fdatasync(fd)
            lat.append(time.perf_counter() - t)
    finally:
        os.close(fd)
    lat.sort()
    out.put((lat[len(lat) // 2], n / sum(lat)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=2000, help="writes per writer")
    p.add_argument("--dir", default="", help="directory on the disk to measure")
    args = p.parse_args()
    base = tempfile.mkdtemp(prefix="disk-floor-", dir=args.dir or None)
    print(f"{'mode':<10} {'writers':>7} {'p50 us (each)':>22} {'writes/s (each)':>24}")
    print("-" * 66)
    try:
        for mode in ("append", "overwrite"):
            for k in (1, 2, 3):
                q: mp.Queue[tuple[float, float]] = mp.Queue()
                procs = [
                    mp.Process(target=writer, args=(os.path.join(base, f"w{j}"), args.n, mode, q))
                    for j in range(k)
                ]
                for pr in procs:
                    pr.start()
                res = [q.get() for _ in procs]
                for pr in procs:
                    pr.join()
                p50s = " ".join(f"{r[0] * 1e6:.0f}" for r in res)
                rates = " ".join(f"{r[1]:,.0f}" for r in res)
                print(f"{mode:<10} {k:>7} {p50s:>22} {rates:>24}", flush=True)
    finally:
        for name in os.listdir(base):
            os.unlink(os.path.join(base, name))
        os.rmdir(base)


if __name__ == "__main__":
    main()

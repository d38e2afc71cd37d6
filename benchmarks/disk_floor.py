"""Disk floor: the latency of one small durable write, alone and with other writers.

Each of 1, 2 or 3 processes (a member's log writer each) writes 4 KiB and calls
fdatasync, one write at a time, in a file of its own on the same disk, either appending
(the file grows: the file system journals its size) or overwriting a preallocated region
(what SQLite's WAL does once it has wrapped around). It prints the p50 latency and the
rate of each writer: the physical limit under every durable commit of the state benchmark.

A second table times one writer's overwrite + fdatasync from an asyncio event loop:
inline (the loop blocks for the fsync) and handed to a long-lived thread that reports
back with ``call_soon_threadsafe``, as the Raft node does for durable stores so that a
slow disk never stalls heartbeats: the difference is the price of that hand-off (two
thread wake-ups), in latency and in CPU. The third row writes on the loop and leaves
the fdatasync to the kernel (Linux AIO, completion on an eventfd the loop watches), as
the node does by default now: no thread, and the loop never blocks for the disk. Its
CPU column leaves out the flush work the kernel does in its own worker.

    .venv/bin/python benchmarks/disk_floor.py [--n 2000] [--dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import queue
import resource
import tempfile
import threading
import time

from ddastate._fdatasync import AsyncFdatasync

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


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def _from_loop(path: str, n: int) -> list[tuple[str, float, float]]:
    """(how, p50 us, CPU us per write) of overwrite + fdatasync inline, via a thread and
    via the kernel (when this kernel can)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, b"\0" * 4096 * REGION)
    os.fsync(fd)

    def write(i: int) -> None:
        os.pwrite(fd, BLOCK, (i % REGION) * 4096)
        os.fdatasync(fd)

    loop = asyncio.get_running_loop()
    jobs: queue.SimpleQueue[tuple[int, asyncio.Future[None]] | None] = queue.SimpleQueue()

    def writer_thread() -> None:
        while (job := jobs.get()) is not None:
            write(job[0])
            loop.call_soon_threadsafe(job[1].set_result, None)

    thread = threading.Thread(target=writer_thread, daemon=True)
    thread.start()
    kernel: AsyncFdatasync | None = None
    try:
        kernel = AsyncFdatasync(loop, fd)
    except OSError as e:
        print(f"(no kernel-side fdatasync here: {e})")
    rows = []
    try:
        for how in ("inline", "thread", "kernel") if kernel else ("inline", "thread"):
            lat: list[float] = []
            c0 = _cpu()
            for i in range(n):
                t = time.perf_counter()
                if how == "inline":
                    write(i)
                elif how == "kernel" and kernel is not None:
                    os.pwrite(fd, BLOCK, (i % REGION) * 4096)
                    fut = loop.create_future()
                    kernel.sync_then(fut.set_result)
                    if await fut is not None:
                        raise RuntimeError("fdatasync failed")
                else:
                    fut = loop.create_future()
                    jobs.put((i, fut))
                    await fut
                lat.append(time.perf_counter() - t)
            cpu = (_cpu() - c0) / n
            lat.sort()
            rows.append((how, lat[len(lat) // 2] * 1e6, cpu * 1e6))
    finally:
        if kernel is not None:
            kernel.close()
        jobs.put(None)
        thread.join()
        os.close(fd)
    return rows


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
        print()
        print(f"{'from a loop':<12} {'p50 us':>8} {'CPU us/write':>13}")
        print("-" * 35)
        for how, p50, cpu in asyncio.run(_from_loop(os.path.join(base, "loop"), args.n)):
            print(f"{how:<12} {p50:>8.0f} {cpu:>13.0f}", flush=True)
    finally:
        for name in os.listdir(base):
            os.unlink(os.path.join(base, name))
        os.rmdir(base)


if __name__ == "__main__":
    main()

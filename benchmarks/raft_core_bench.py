"""Cost of the deterministic Raft core alone: 3 cores wired synchronously in one thread.

No asyncio, no transport, no storage: every Ready is "persisted" at once and every
message delivered at once. This is the ceiling the asyncio node can reach on this
machine; the baseline row is the same loop of Python calls with no Raft in it.

    .venv/bin/python benchmarks/raft_core_bench.py [--n 20000]
"""

from __future__ import annotations

import argparse
import random
import time
from collections import deque
from typing import Any

from ddastate.raft.configuration import Configuration, Server, encode_configuration
from ddastate.raft.core import RaftCore
from ddastate.raft.log import Log, LogType
from ddastate.raft.ready import CoreConfig, HardState, Role


class Group:
    def __init__(self, pipeline: bool = True) -> None:
        ids = ["a", "b", "c"]
        cfg = Configuration(tuple(Server(i, i) for i in ids))
        boot = [Log(1, 1, LogType.CONFIGURATION, encode_configuration(cfg))]
        self.cores = {
            i: RaftCore(
                CoreConfig(i, pipeline=pipeline, pipeline_window=128),
                random.Random(i),
                0.0,
                HardState(1, 0, b""),
                None,
                list(boot),
            )
            for i in ids
        }
        self.q: deque[tuple[int, str, Any, Any]] = deque()
        self.applied = 0
        for i in ids:
            self.process(i)
        self.cores["a"]._campaign()
        self.settle()
        assert self.cores["a"].role is Role.LEADER
        self.leader = self.cores["a"]

    def process(self, i: str) -> None:
        c = self.cores[i]
        while c.has_ready():
            rd = c.ready()
            if rd.entries:
                c.on_persisted(rd.entries[-1].index, rd.entries[-1].term)
            if i == "a":
                self.applied += len(rd.committed)
            for m in rd.messages:
                self.q.append((0, i, m.to_id, m.request))
            for r in rd.replies:
                self.q.append((1, i, r.token, r.response))

    def settle(self) -> None:
        for i in self.cores:
            self.process(i)
        q = self.q
        while q:
            k, frm, x, y = q.popleft()
            if k == 0:
                self.cores[x].step(y, (frm, y), 0.0)
                self.process(x)
            else:
                sender, req = x
                self.cores[sender].on_response(frm, req, y, 0.0)
                self.process(sender)


def run_core(in_flight: int, total: int) -> float:
    g = Group()
    data = b"x" * 32
    t = time.perf_counter()
    done = 0
    while done < total:
        for _ in range(in_flight):
            g.leader.propose(data)
        done += in_flight
        g.settle()
    dt = time.perf_counter() - t
    assert g.applied >= total
    return total / dt


def run_baseline(in_flight: int, total: int) -> float:
    """The same shape of work (queue hops per round) without Raft."""
    q: deque[tuple[int, int]] = deque()
    log: list[bytes] = []
    t = time.perf_counter()
    done = 0
    while done < total:
        for _ in range(in_flight):
            log.append(b"x" * 32)
        done += in_flight
        for peer in (1, 2):
            q.append((0, peer))
        while q:
            k, p = q.popleft()
            if k == 0:
                q.append((1, p))
    dt = time.perf_counter() - t
    return total / dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=20000, help="sequential proposals (x10 in flight)")
    a = ap.parse_args()
    print(f"{'system':<28}{'load':<18}{'commits/s':>14}")
    for in_flight, total in ((1, a.n), (256, a.n * 10), (1024, a.n * 10)):
        label = "sequential" if in_flight == 1 else f"{in_flight} in flight"
        print(f"{'baseline (no raft)':<28}{label:<18}{run_baseline(in_flight, total):>14,.0f}")
        print(f"{'raft core, 3 members':<28}{label:<18}{run_core(in_flight, total):>14,.0f}")


if __name__ == "__main__":
    main()

"""Crash safety with real processes.

A forked child appends to a RaftStore (and sets the term, compacts, writes snapshots)
and reports each call on a pipe only after the call returned; the parent kills it with
SIGKILL at a random point, 200 times. After every kill the store must open cleanly
and hold everything the child reported done, and a batch the child was killed in the
middle of storing must be there entirely or not at all (one transaction). More rounds:
``DDASTATE_CRASH_ROUNDS=2000 .venv/bin/pytest tests/raftstore/test_crash.py``.
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

from ddastate.raft.configuration import Configuration, Server
from ddastate.raft.log import Log, LogType
from ddastate.state.raft.store import RaftStore

ROUNDS = int(os.environ.get("DDASTATE_CRASH_ROUNDS", "200"))
KEEP = 150  # the child compacts the log down to about this many entries


def payload(index: int) -> bytes:
    return f"entry-{index}".encode() * (1 + index % 5)


def child(location: str, wfd: int, seed: int) -> None:
    rng = random.Random(seed)
    rs = RaftStore(location)
    os.write(wfd, b"open\n")
    nxt = rs.last_index() + 1
    term = rs.get_uint64(b"CurrentTerm") if nxt > 1 else 1
    while True:
        n = rng.choice((1, 1, 1, 2, 8, 64))
        batch = [
            Log(i, term, LogType.COMMAND, payload(i), None, time.time_ns())
            for i in range(nxt, nxt + n)
        ]
        os.write(wfd, f"B {nxt} {nxt + n - 1}\n".encode())  # about to store this batch
        rs.store_logs(batch)
        nxt += n
        os.write(wfd, f"L {nxt - 1}\n".encode())
        r = rng.random()
        if r < 0.1:
            term += 1
            rs.set_uint64(b"CurrentTerm", term)
            os.write(wfd, f"T {term}\n".encode())
        elif r < 0.15 and rs.last_index() - rs.first_index() > KEEP:
            upto = rs.last_index() - KEEP
            rs.delete_range(rs.first_index(), upto)
            os.write(wfd, f"D {upto}\n".encode())
        elif r < 0.18:
            last = rs.last_index()
            sink = rs.snapshot_store.create(1, last, term, Configuration.of([Server("a", "a")]), 1)
            for _ in range(rng.randint(1, 20)):
                sink.write(payload(last) * 50)
            sink.close()
            os.write(wfd, f"S {sink.id()}\n".encode())


def run_child(location: str, seed: int, rng: random.Random) -> list[str]:
    """Fork a writer, kill it at a random point, return the lines it reported."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.close(rfd)
        try:
            child(location, wfd, seed)
        finally:
            os._exit(1)
    os.close(wfd)
    buf = b""
    wanted = rng.randint(0, 40)
    with os.fdopen(rfd, "rb", buffering=0) as r:
        while buf.count(b"\n") < wanted + 1:
            chunk = r.read(4096)
            if not chunk:
                break
            buf += chunk
        delay = rng.choice((0.0, 0.0, rng.uniform(0, 0.003)))
        if delay:
            end = time.perf_counter() + delay  # spin: a random kill point, not a wait
            while time.perf_counter() < end:
                pass
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status), f"child ended on its own: {status}"
        buf += r.read()  # lines written before the kill were reported
    return buf.decode().splitlines()


def verify(location: str, lines: list[str], state: dict[str, int]) -> None:
    in_flight: tuple[int, int] | None = None
    for line in lines:
        kind, _, val = line.partition(" ")
        if kind == "B":
            lo, hi = map(int, val.split())
            in_flight = (lo, hi)
        elif kind == "L":
            in_flight = None
            state["last"] = max(state["last"], int(val))
        elif kind == "T":
            state["term"] = int(val)
        elif kind == "D":
            state["deleted"] = int(val)
        elif kind == "S":
            state["snap_index"] = int(val.split("-")[1])
    rs = RaftStore(location)  # opens cleanly every time
    try:
        db = rs.kv._db  # type: ignore[attr-defined]
        assert db.execute("PRAGMA quick_check").fetchone()[0] == "ok"
        first, last = rs.first_index(), rs.last_index()
        assert last >= state["last"], f"reported {state['last']} but last index is {last}"
        if in_flight is not None:  # killed inside store_logs: all of the batch or none
            assert last in (in_flight[0] - 1, in_flight[1]), (in_flight, last)
            state["last"] = last
            state["mid_call_kills"] += 1
        if state["last"]:
            assert first <= state["last"]
            assert first > state["deleted"]
            for i in range(first, last + 1):
                e = rs.get_log(i)
                assert e.index == i and e.data == payload(i)
        if state["term"]:
            assert rs.get_uint64(b"CurrentTerm") >= state["term"]
        snaps = rs.snapshot_store.list()
        if state["snap_index"]:
            assert snaps and snaps[0].index >= state["snap_index"]
        for meta in snaps:
            _, f = rs.snapshot_store.open(meta.id)  # checksum verified
            f.close()
    finally:
        rs.close()


def test_sigkill_at_random_points(tmp_path: Path) -> None:
    loc = str(tmp_path / "member")
    rng = random.Random(20240506)
    state = {"last": 0, "term": 0, "deleted": 0, "snap_index": 0, "mid_call_kills": 0}
    for round_ in range(ROUNDS):
        lines = run_child(loc, seed=round_, rng=rng)
        assert lines and lines[0] == "open"
        before = state["last"]
        verify(loc, lines[1:], state)
        assert state["last"] >= before
    assert state["last"] > ROUNDS  # the children really appended
    kills = state["mid_call_kills"]
    print(f"{ROUNDS} kills, {kills} inside store_logs, last index {state['last']}")

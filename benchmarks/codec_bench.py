"""Encode and decode cost of the hot Raft messages, beside bare msgpack on plain data.

The baseline is what the C msgpack extension alone takes for the same bytes (packb of
a prepared dict, unpackb to raw dicts): the floor for any codec written on top of it.
Ours adds building the dict from the dataclass, and on decode the schema checks and
the dataclass construction.

    .venv/bin/python benchmarks/codec_bench.py
"""

from __future__ import annotations

import time
import timeit
from typing import Any

import msgpack

from ddastate.raft.commands import AppendEntriesRequest, AppendEntriesResponse, RequestVoteRequest
from ddastate.raft.log import Log, LogType
from ddastate.state.api import Input, InputOp
from ddastate.state.raft.codec import decode_msgpack, encode_log, encode_msgpack

ID = b"11111111-2222-3333-4444-555555555555"


def messages() -> list[tuple[str, Any]]:
    cmd = encode_msgpack(Input(InputOp.SET, "sensors/temperature/room-42", b"x" * 64))
    now = time.time_ns()

    def ae(n: int) -> AppendEntriesRequest:
        entries = [Log(100 + i, 3, LogType.COMMAND, cmd, None, now) for i in range(n)]
        return AppendEntriesRequest(3, ID, 99, 3, entries, 98, id=ID, addr=ID)

    return [
        ("AppendEntries heartbeat", AppendEntriesRequest(3, ID, id=ID, addr=ID)),
        ("AppendEntries, 1 entry", ae(1)),
        ("AppendEntries, 64 entries", ae(64)),
        ("AppendEntriesResponse", AppendEntriesResponse(3, 163, True, id=ID, addr=ID)),
        ("RequestVoteRequest", RequestVoteRequest(4, ID, 163, 3, id=ID, addr=ID)),
        ("Log record (store)", Log(7, 3, LogType.COMMAND, cmd, None, now)),
        ("Input (FSM command)", Input(InputOp.SET, "sensors/temperature/room-42", b"x" * 64)),
    ]


def per_call_us(fn: Any, budget: float = 0.3) -> float:
    n = 1
    while True:
        t = timeit.timeit(fn, number=n)
        if t > budget / 5:
            break
        n *= 4
    best = min(timeit.repeat(fn, number=n, repeat=5))
    return best / n * 1e6


def main() -> None:
    print(
        f"{'message':<28}{'bytes':>7}{'encode us':>11}{'packb us':>10}"
        f"{'decode us':>11}{'unpackb us':>12}"
    )
    for name, m in messages():
        raw = encode_log(m) if isinstance(m, Log) else encode_msgpack(m)
        plain = msgpack.unpackb(raw, raw=True)
        enc = per_call_us(lambda m=m: encode_msgpack(m))
        base_enc = per_call_us(lambda p=plain: msgpack.packb(p, use_bin_type=False))
        cls = type(m)
        dec = per_call_us(lambda r=raw, c=cls: decode_msgpack(r, c))
        base_dec = per_call_us(lambda r=raw: msgpack.unpackb(r, raw=True))
        print(f"{name:<28}{len(raw):>7}{enc:>11.2f}{base_enc:>10.2f}{dec:>11.2f}{base_dec:>12.2f}")


if __name__ == "__main__":
    main()

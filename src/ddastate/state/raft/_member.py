"""A state group member as a process, driven by JSON lines on stdin/stdout (tests, benchmarks).

    python -m ddastate.state.raft._member --url tcp://127.0.0.1:1883 --cluster c1 \
        --id m1 --store /tmp/m1 --bootstrap --opts '{"heartbeatTimeout": 500}'

It opens an MQTT 5 com binding and a RaftBinding, prints ``{"event": "open", ...}`` and
then reads one JSON command per line; each runs as its own task and answers with one
JSON line carrying the command's ``tag``:

- ``{"cmd": "propose", "tag": 1, "op": 1, "key": "k", "value": "<hex>", "timeout": 5}``
- ``{"cmd": "stream", "tag": 2, "prefix": "p-", "count": 1000, "timeout": 30}``: proposes
  ``<prefix><i>`` one after the other; prints ``{"acked": key}`` for each success and a
  final answer with the counts.
- ``{"cmd": "bench", "tag": 3, "n": 10000, "inflight": 64, "prefix": "b"}``: proposes n
  inputs with ``inflight`` outstanding; answers seconds and latency percentiles.
- ``{"cmd": "state", "tag": 4}``: the FSM state (values hex) and indexes.
- ``{"cmd": "status", "tag": 5}``: role, leader, term, indexes.
- ``{"cmd": "close", "tag": 6}``: leave the group and exit 0.

Not a user-facing tool: no promises beyond what the tests and benchmarks use.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from typing import Any

from ddastate.com import new as new_com
from ddastate.config import Config
from ddastate.state.api import Input, InputOp

from .binding import RaftBinding

logger = logging.getLogger("ddastate.state.raft.member")
_PROFILER: Any = None


def _out(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def _pct(sorted_vals: list[float], p: float) -> float:
    if not sorted_vals:
        return 0.0
    i = min(len(sorted_vals) - 1, max(0, round(p / 100 * (len(sorted_vals) - 1))))
    return sorted_vals[i]


class Member:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.binding = RaftBinding()
        self.com: Any = None
        self.done = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()

    async def open(self) -> None:
        a = self.args
        cfg = Config()
        cfg.cluster = a.cluster
        cfg.identity.id = a.id
        cfg.services.com.protocol = "mqtt5"
        cfg.services.com.url = a.url
        cfg.services.state.disabled = False
        cfg.services.state.bootstrap = a.bootstrap
        cfg.services.state.store = a.store
        cfg.services.state.opts = json.loads(a.opts) if a.opts else {}
        self.com = new_com("mqtt5")
        await self.com.open(cfg)
        t = time.perf_counter()
        await self.binding.open(cfg, self.com)
        _out({"event": "open", "id": a.id, "pid": os.getpid(), "seconds": time.perf_counter() - t})

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while not self.done.is_set():
            line = await reader.readline()
            if not line:
                break
            try:
                cmd = json.loads(line)
            except ValueError:
                _out({"error": f"not JSON: {line[:80]!r}"})
                continue
            t = asyncio.create_task(self.handle(cmd))
            self.tasks.add(t)
            t.add_done_callback(self.tasks.discard)
        await self.shutdown()

    async def shutdown(self) -> None:
        await self.binding.close()
        if self.com is not None:
            await self.com.close()

    async def handle(self, cmd: dict[str, Any]) -> None:
        tag = cmd.get("tag")
        try:
            res = await self.dispatch(cmd)
            _out({"tag": tag, "ok": True, **res})
        except Exception as e:
            _out({"tag": tag, "ok": False, "error": f"{type(e).__name__}: {e}"})
        if cmd.get("cmd") == "close":
            self.done.set()
            if _PROFILER is not None:
                _PROFILER.disable()
                _PROFILER.dump_stats(self.args.profile)
            sys.stdin.close()
            os._exit(0)

    async def dispatch(self, cmd: dict[str, Any]) -> dict[str, Any]:
        b = self.binding
        name = cmd.get("cmd")
        if name == "propose":
            value = bytes.fromhex(cmd.get("value", ""))
            await b.propose_input(
                Input(InputOp(cmd.get("op", 1)), cmd["key"], value), cmd.get("timeout")
            )
            return {}
        if name == "stream":
            prefix, count = cmd["prefix"], int(cmd["count"])
            acked = failed = 0
            for i in range(count):
                key = f"{prefix}{i}"
                try:
                    await b.propose_input(
                        Input(InputOp.SET, key, key.encode()), cmd.get("timeout", 30)
                    )
                except Exception as e:
                    failed += 1
                    _out({"failed": key, "error": str(e)})
                    continue
                acked += 1
                _out({"acked": key})
            return {"acked": acked, "failed": failed}
        if name == "bench":
            return await self.bench(int(cmd["n"]), int(cmd["inflight"]), cmd.get("prefix", "b"))
        if name == "state":
            fsm = b.fsm()
            node = b.node()
            return {
                "state": {k: v.hex() for k, v in (fsm.state() if fsm else {}).items()},
                "applied": node.applied_index() if node else 0,
                "commit": node.commit_index() if node else 0,
            }
        if name == "status":
            node = b.node()
            if node is None:
                return {"role": "closed"}
            return {
                "role": str(node.state),
                "leader": node.leader()[1],
                "term": node.current_term(),
                "applied": node.applied_index(),
                "commit": node.commit_index(),
                "last": node.last_index(),
                "last_snapshot_index": int(node.stats().get("last_snapshot_index", "0") or 0),
            }
        if name == "close":
            await b.close()
            return {}
        raise ValueError(f"unknown command {name!r}")

    async def bench(self, n: int, inflight: int, prefix: str) -> dict[str, Any]:
        b = self.binding
        lat: list[float] = []
        pc = time.perf_counter
        value = b"x" * 16
        numbers = iter(range(n))

        async def worker() -> None:
            # ``inflight`` workers each keep one proposal outstanding: a task per
            # proposal behind a semaphore costs more CPU than the proposal itself.
            for i in numbers:
                t = pc()
                await b.propose_input(Input(InputOp.SET, f"{prefix}{i}", value), 60)
                lat.append(pc() - t)

        start = pc()
        await asyncio.gather(*(worker() for _ in range(max(1, inflight))))
        secs = pc() - start
        lat.sort()
        return {
            "n": n,
            "seconds": secs,
            "p50": _pct(lat, 50),
            "p99": _pct(lat, 99),
        }


async def _main(args: argparse.Namespace) -> None:
    m = Member(args)
    await m.open()
    await m.run()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ddastate.state.raft._member")
    p.add_argument("--url", required=True)
    p.add_argument("--cluster", default="dda")
    p.add_argument("--id", required=True)
    p.add_argument("--store", default="")
    p.add_argument("--bootstrap", action="store_true")
    p.add_argument("--opts", default="")
    p.add_argument("--log", default="WARNING")
    p.add_argument("--uvloop", action="store_true")
    p.add_argument("--profile", default="", help="write cProfile stats here on close")
    p.add_argument(
        "--switch-interval",
        type=float,
        default=0.0,
        help="sys.setswitchinterval (seconds) for this process; 0 keeps Python's 5 ms",
    )
    args = p.parse_args(argv)
    if args.switch_interval > 0:
        sys.setswitchinterval(args.switch_interval)
    logging.basicConfig(
        level=getattr(logging, args.log.upper(), logging.WARNING),
        stream=sys.stderr,
        format=f"%(asctime)s {args.id[:8]} %(name)s %(levelname)s %(message)s",
    )
    if args.uvloop:
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass
    global _PROFILER
    if args.profile:
        import cProfile

        _PROFILER = cProfile.Profile()
        _PROFILER.enable()
    try:
        asyncio.run(_main(args))
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

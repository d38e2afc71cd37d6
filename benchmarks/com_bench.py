"""Communication layer benchmark on a loopback Mosquitto.

Prints one table: action round-trip latency (p50 / p99) of the MQTT 5 binding
against a bare gmqtt request/response pair (the floor), and one-way event
throughput of the binding against bare gmqtt. Requester / subscriber run in this
process, responder / publisher in a child process (2 cores: one each, the broker
shares). The in-process loopback bus is measured too, for reference.

    .venv/bin/python benchmarks/com_bench.py [--n 5000] [--events 200000] [--uvloop]

Targets (issue 5): round trip within 1.2x of the bare pair; events >= 100,000/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

from gmqtt import Client
from gmqtt.mqtt.constants import MQTTv50

from ddastate.com.api import (
    Action,
    ActionResult,
    ActionWithCallback,
    Event,
    Scope,
    SubscriptionFilter,
)
from ddastate.com.loopback import LoopbackBinding, LoopbackBus
from ddastate.com.mqtt5 import Mqtt5Binding
from ddastate.config import Config
from ddastate.testing.mosquitto import Mosquitto

CLUSTER = "bench"


def _cfg(port: int) -> Config:
    cfg = Config()
    cfg.cluster = CLUSTER
    cfg.services.com.url = f"tcp://127.0.0.1:{port}"
    return cfg


def proc_cpu_seconds(pid: int | None) -> float:
    """CPU seconds (user + system) used so far by process ``pid`` (Linux /proc)."""
    if pid is None:
        return float("nan")
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


# ----------------------------------------------------------------------------- child roles


async def _bare_client(port: int, name: str) -> Client:
    c = Client(f"{name}-{uuid.uuid4().hex[:8]}")
    await c.connect("127.0.0.1", port, version=MQTTv50)
    return c


async def role_bare_responder(port: int) -> None:
    c = await _bare_client(port, "bare-resp")

    def on_message(client: Any, topic: str, payload: bytes, qos: int, props: dict[str, Any]) -> int:
        client.publish(
            props["response_topic"][0],
            payload,
            qos=0,
            user_property=[("ct", ""), ("dt", ""), ("sq", "0")],
            correlation_data=props["correlation_data"][0],
        )
        return 0

    c.on_message = on_message
    c.subscribe(f"{CLUSTER}/sta/act/echo", qos=0)
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


async def role_ours_responder(port: int) -> None:
    b = Mqtt5Binding()
    await b.open(_cfg(port))

    def echo(awc: ActionWithCallback) -> None:
        awc.send(ActionResult("", awc.action.params))

    await b.subscribe_action(SubscriptionFilter(Scope.STA, "echo"), handler=echo)
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await b.close()


async def role_bare_publisher(port: int, n: int) -> None:
    c = await _bare_client(port, "bare-pub")
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    props = [("id", "1"), ("sr", "pub"), ("tm", ""), ("dt", "")]
    payload = b"x" * 64
    cpu = time.process_time()
    for i in range(n):
        c.publish(f"{CLUSTER}/com/evt/ev", payload, qos=0, user_property=props)
        if i % 500 == 0:
            await asyncio.sleep(0)
    await asyncio.sleep(0)
    print(f"cpu {time.process_time() - cpu}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


async def role_ours_publisher(port: int, n: int) -> None:
    b = Mqtt5Binding()
    await b.open(_cfg(port))
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    ev = Event("ev", "1", "pub", b"x" * 64)
    cpu = time.process_time()
    for i in range(n):
        await b.publish_event(ev)
        if i % 500 == 0:
            await asyncio.sleep(0)
    await asyncio.sleep(0)
    print(f"cpu {time.process_time() - cpu}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await b.close()


# ----------------------------------------------------------------------------- measurements


class Child:
    def __init__(self, *args: str, uvloop: bool) -> None:
        cmd = [sys.executable, __file__, "--role", *args]
        if uvloop:
            cmd.append("--uvloop")
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.p.stdout is not None
        line = self.p.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"child failed: {line!r}")

    def go(self) -> None:
        assert self.p.stdin is not None
        self.p.stdin.write("go\n")
        self.p.stdin.flush()

    def cpu(self) -> float:
        """CPU seconds the child reported for its publish loop."""
        assert self.p.stdout is not None
        line = self.p.stdout.readline().split()
        return float(line[1]) if len(line) == 2 and line[0] == "cpu" else float("nan")

    def stop(self) -> None:
        assert self.p.stdin is not None
        self.p.stdin.close()
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()


async def _drive(one: Any, n: int, inflight: int) -> tuple[list[float], float]:
    """Run ``n`` requests (+10% warm-up) with ``inflight`` of them outstanding at a
    time; return the latencies and the requests per second after warm-up."""
    warm = n // 10
    lat: list[float] = []
    done = 0
    t_start = 0.0

    async def worker() -> None:
        nonlocal done, t_start
        while done < n + warm:
            done += 1
            if done == warm + 1:
                t_start = time.perf_counter()
            measured = done > warm
            t = time.perf_counter()
            await one()
            if measured:
                lat.append(time.perf_counter() - t)

    await asyncio.gather(*(worker() for _ in range(inflight)))
    return lat, len(lat) / (time.perf_counter() - t_start)


async def rtt_bare(port: int, n: int, uvloop: bool, inflight: int = 1) -> tuple[list[float], float]:
    child = Child("bare-responder", str(port), uvloop=uvloop)
    c = await _bare_client(port, "bare-req")
    rid = uuid.uuid4().hex
    waiting: dict[bytes, asyncio.Future[bytes]] = {}
    sub_done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_message(client: Any, topic: str, payload: bytes, qos: int, props: dict[str, Any]) -> int:
        f = waiting.pop(props["correlation_data"][0], None)
        if f is not None and not f.done():
            f.set_result(payload)
        return 0

    c.on_message = on_message
    c.on_subscribe = lambda *a: sub_done.done() or sub_done.set_result(None)
    c.subscribe(f"{CLUSTER}/+/acr/+/{rid}", qos=0)
    await sub_done
    loop = asyncio.get_running_loop()

    async def one() -> None:
        corr = str(uuid.uuid4()).encode()
        f: asyncio.Future[bytes] = loop.create_future()
        waiting[corr] = f
        c.publish(
            f"{CLUSTER}/sta/act/echo",
            b"p" * 64,
            qos=0,
            user_property=[("id", "ae"), ("sr", rid), ("dt", "")],
            response_topic=f"{CLUSTER}/sta/acr/echo/{rid}",
            correlation_data=corr,
        )
        await f

    out = await _drive(one, n, inflight)
    await c.disconnect()
    child.stop()
    return out


async def rtt_ours(port: int, n: int, uvloop: bool, inflight: int = 1) -> tuple[list[float], float]:
    child = Child("ours-responder", str(port), uvloop=uvloop)
    b = Mqtt5Binding()
    await b.open(_cfg(port))
    act = Action("echo", "ae", b.identity(), b"p" * 64)

    async def one() -> None:
        await b.request_action(act, Scope.STA, 10.0)

    out = await _drive(one, n, inflight)
    await b.close()
    child.stop()
    return out


async def rtt_loopback(n: int) -> list[float]:
    bus = LoopbackBus()
    a, r = LoopbackBinding(bus), LoopbackBinding(bus)
    cfg = Config()
    await a.open(cfg)
    await r.open(Config())
    await r.subscribe_action(
        SubscriptionFilter(Scope.STA, "echo"),
        handler=lambda awc: awc.send(ActionResult("", awc.action.params)),
    )
    act = Action("echo", "ae", a.identity(), b"p" * 64)
    out = []
    for _ in range(n):
        t = time.perf_counter()
        await a.request_action(act, Scope.STA, 5.0)
        out.append(time.perf_counter() - t)
    await a.close()
    await r.close()
    return out


EventRates = tuple[float, float, float, float]


class _Arrivals:
    """Counts arriving events and times the first and the n-th (wall clock and our CPU)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.count = 0
        self.t_first = self.t_last = self.cpu_first = self.cpu_last = 0.0
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def hit(self) -> None:
        self.count += 1
        if self.count == 1:
            self.t_first = time.perf_counter()
            self.cpu_first = time.process_time()
        if self.count == self.n:
            self._stop()
            self.done.set_result(None)

    def _stop(self) -> None:
        self.t_last = time.perf_counter()
        self.cpu_last = time.process_time()

    async def measure(
        self, label: str, port: int, uvloop: bool, broker_pid: int | None
    ) -> EventRates:
        """Start a publisher process of ``label`` and wait for its n events.

        Returns events/s, receiver CPU us per event, publisher CPU us per event and
        broker CPU us per event.
        """
        n = self.n
        child = Child(f"{label}-publisher", str(port), str(n), uvloop=uvloop)
        b0 = proc_cpu_seconds(broker_pid)
        child.go()
        try:
            await asyncio.wait_for(self.done, 120)
        except TimeoutError:
            print(f"  {label}: only {self.count} of {n} events arrived", file=sys.stderr)
            self._stop()
        broker_cpu = proc_cpu_seconds(broker_pid) - b0
        pub_cpu = child.cpu()
        child.stop()
        return (
            (self.count - 1) / (self.t_last - self.t_first),
            (self.cpu_last - self.cpu_first) / max(1, self.count - 1) * 1e6,
            pub_cpu / n * 1e6,
            broker_cpu / n * 1e6,
        )


async def events_bare(port: int, n: int, uvloop: bool, broker_pid: int | None) -> EventRates:
    c = await _bare_client(port, "bare-sub")
    arrivals = _Arrivals(n)
    sub_done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_message(client: Any, topic: str, payload: bytes, qos: int, props: dict[str, Any]) -> int:
        arrivals.hit()
        return 0

    c.on_message = on_message
    c.on_subscribe = lambda *a: sub_done.done() or sub_done.set_result(None)
    c.subscribe(f"{CLUSTER}/com/evt/ev", qos=0)
    await sub_done
    rates = await arrivals.measure("bare", port, uvloop, broker_pid)
    await c.disconnect()
    return rates


async def events_ours(port: int, n: int, uvloop: bool, broker_pid: int | None) -> EventRates:
    b = Mqtt5Binding()
    await b.open(_cfg(port))
    arrivals = _Arrivals(n)

    def on_event(ev: Event) -> None:
        arrivals.hit()

    await b.subscribe_event(SubscriptionFilter(Scope.COM, "ev"), handler=on_event)
    rates = await arrivals.measure("ours", port, uvloop, broker_pid)
    await b.close()
    return rates


async def main(args: argparse.Namespace) -> None:
    uv = args.uvloop
    rows: list[tuple[str, str, str, str]] = []
    results: dict[str, Any] = {}
    with Mosquitto() as broker:
        port = broker.port
        bare: list[float] = []
        ours: list[float] = []
        # interleave runs so that drift of the machine hits both alike
        bare_tp: list[float] = []
        ours_tp: list[float] = []
        bare_lat64: list[float] = []
        ours_lat64: list[float] = []
        for _ in range(args.rounds):
            bare += (await rtt_bare(port, args.n, uv))[0]
            ours += (await rtt_ours(port, args.n, uv))[0]
            lat, tp = await rtt_bare(port, args.n * 4, uv, args.inflight)
            bare_lat64 += lat
            bare_tp.append(tp)
            lat, tp = await rtt_ours(port, args.n * 4, uv, args.inflight)
            ours_lat64 += lat
            ours_tp.append(tp)
        lb = await rtt_loopback(args.n)
        b50, b99 = _pct(bare, 50) * 1e6, _pct(bare, 99) * 1e6
        o50, o99 = _pct(ours, 50) * 1e6, _pct(ours, 99) * 1e6
        rows.append(("action round trip p50 (us)", f"{b50:.0f}", f"{o50:.0f}", f"{o50 / b50:.2f}x"))
        rows.append(("action round trip p99 (us)", f"{b99:.0f}", f"{o99:.0f}", f"{o99 / b99:.2f}x"))
        rows.append(
            (
                "action round trip mean (us)",
                f"{statistics.mean(bare) * 1e6:.0f}",
                f"{statistics.mean(ours) * 1e6:.0f}",
                f"{statistics.mean(ours) / statistics.mean(bare):.2f}x",
            )
        )
        btp, otp = max(bare_tp), max(ours_tp)
        rows.append(
            (
                f"actions/s, {args.inflight} in flight (best)",
                f"{btp:,.0f}",
                f"{otp:,.0f}",
                f"{otp / btp:.2f}x",
            )
        )
        b50, o50 = _pct(bare_lat64, 50) * 1e6, _pct(ours_lat64, 50) * 1e6
        rows.append(
            (f"  round trip p50 at {args.inflight} in flight (us)", f"{b50:.0f}", f"{o50:.0f}",
             f"{o50 / b50:.2f}x")
        )  # fmt: skip
        eb = []
        eo = []
        for _ in range(args.rounds):
            eb.append(await events_bare(port, args.events, uv, broker.pid))
            eo.append(await events_ours(port, args.events, uv, broker.pid))
        ebm, eom = max(x[0] for x in eb), max(x[0] for x in eo)
        rows.append(
            ("events one-way (msg/s, best)", f"{ebm:,.0f}", f"{eom:,.0f}", f"{eom / ebm:.2f}x")
        )
        rb, ro = min(x[1] for x in eb), min(x[1] for x in eo)
        pb, po = min(x[2] for x in eb), min(x[2] for x in eo)
        rows.append(
            ("events: receiver CPU per event (us)", f"{rb:.2f}", f"{ro:.2f}", f"{ro / rb:.2f}x")
        )
        rows.append(
            ("  = receiver capacity, one core (msg/s)", f"{1e6 / rb:,.0f}", f"{1e6 / ro:,.0f}", "")
        )
        kb, ko = min(x[3] for x in eb), min(x[3] for x in eo)
        rows.append(
            ("events: Mosquitto CPU per event (us)", f"{kb:.2f}", f"{ko:.2f}", f"{ko / kb:.2f}x")
        )
        rows.append(
            ("  = broker capacity, one core (msg/s)", f"{1e6 / kb:,.0f}", f"{1e6 / ko:,.0f}", "")
        )
        rows.append(
            ("events: publisher CPU per event (us)", f"{pb:.2f}", f"{po:.2f}", f"{po / pb:.2f}x")
        )
        rows.append(
            ("  = publisher capacity, one core (msg/s)", f"{1e6 / pb:,.0f}", f"{1e6 / po:,.0f}", "")
        )
        results = {
            "rtt_bare_p50_us": b50,
            "rtt_bare_p99_us": b99,
            "rtt_ours_p50_us": o50,
            "rtt_ours_p99_us": o99,
            "events_bare_per_s": eb,
            "events_ours_per_s": eo,
            "rtt_loopback_p50_us": _pct(lb, 50) * 1e6,
            "rtt_loopback_p99_us": _pct(lb, 99) * 1e6,
        }
    loop_name = "uvloop" if uv else "asyncio"
    print(f"\nddastate.com benchmark: loopback Mosquitto, {loop_name}, {os.cpu_count()} cores")
    print(
        f"round trips: {args.rounds} x {args.n} (+10% warm-up) each; events: {args.events} x 64 B"
    )
    w = max(len(r[0]) for r in rows)
    print(f"{'':{w}}  {'bare gmqtt':>12}  {'ddastate':>12}  {'ratio':>7}")
    for name, a, b, r in rows:
        print(f"{name:{w}}  {a:>12}  {b:>12}  {r:>7}")
    print(
        f"(in-process loopback bus round trip: p50 {results['rtt_loopback_p50_us']:.1f} us, "
        f"p99 {results['rtt_loopback_p99_us']:.1f} us)"
    )
    print("targets: round trip <= 1.2x bare; events >= 100,000/s")
    if args.json:
        print(json.dumps(results))


def _run_role(argv: list[str], uv: bool) -> None:
    role, port = argv[0], int(argv[1])
    if role == "bare-responder":
        coro: Any = role_bare_responder(port)
    elif role == "ours-responder":
        coro = role_ours_responder(port)
    elif role == "bare-publisher":
        coro = role_bare_publisher(port, int(argv[2]))
    elif role == "ours-publisher":
        coro = role_ours_publisher(port, int(argv[2]))
    else:
        raise SystemExit(f"unknown role {role}")
    _run(coro, uv)


def _run(coro: Any, uv: bool) -> None:
    if uv:
        import uvloop

        uvloop.run(coro)
    else:
        asyncio.run(coro)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=5000, help="round trips per run")
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--inflight", type=int, default=64, help="concurrent requests")
    ap.add_argument("--uvloop", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--role", nargs="+")
    a = ap.parse_args()
    if a.role:
        _run_role(a.role, a.uvloop)
    else:
        _run(main(a), a.uvloop)

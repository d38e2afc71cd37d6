"""Broker crash (SIGKILL) and restart on the same port during a stream of actions."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from ddastate.com.api import (
    Action,
    ActionResult,
    ActionWithCallback,
    ComError,
    ComNotConnectedError,
    Event,
    Scope,
    SubscriptionFilter,
)
from ddastate.com.mqtt5 import ComConnectError, Mqtt5Binding
from ddastate.config import Config
from ddastate.testing.mosquitto import Mosquitto, free_port

from .helpers import drain, flush

pytestmark = [pytest.mark.mqtt, pytest.mark.timeout(120)]

REPORT = Path(os.environ.get("DDASTATE_REPORT_DIR", "/tmp")) / "ddastate-com-restart.json"


def _cfg(broker: Mosquitto, cluster: str, **opts: Any) -> Config:
    cfg = Config()
    cfg.cluster = cluster
    cfg.services.com.url = broker.url
    cfg.services.com.opts.update(opts)
    return cfg.validate()


@pytest.mark.parametrize(
    ("qos", "outage"), [(0, 0.0), (1, 0.0), (0, 1.5)], ids=["qos0", "qos1", "qos0-long-outage"]
)
async def test_reconnect_after_broker_kill_and_stream_resumes(
    mosquitto: Mosquitto, qos: int, outage: float
) -> None:
    requester = Mqtt5Binding()
    responder = Mqtt5Binding()
    await requester.open(_cfg(mosquitto, "restart", qos=qos))
    await responder.open(_cfg(mosquitto, "restart", qos=qos))
    answered = 0

    def answer(awc: ActionWithCallback) -> None:
        nonlocal answered
        answered += 1
        awc.send(ActionResult("", awc.action.params))

    await responder.subscribe_action(SubscriptionFilter(Scope.STA, "work"), handler=answer)
    events = await responder.subscribe_event(SubscriptionFilter(Scope.COM, "ev"))

    ok_before = asyncio.Event()
    ok_after = asyncio.Event()
    restarted = asyncio.Event()
    stats = {"ok": 0, "ok_after": 0, "failed": 0, "not_connected": 0}

    async def stream() -> None:
        i = 0
        while not ok_after.is_set():
            i += 1
            try:
                r = await requester.request_action(
                    Action("work", "n", requester.identity(), str(i).encode()), Scope.STA, 0.3
                )
                assert r.data == str(i).encode()
                stats["ok"] += 1
                if restarted.is_set():
                    stats["ok_after"] += 1
                if stats["ok"] >= 50:
                    ok_before.set()
                if stats["ok_after"] >= 50:
                    ok_after.set()
            except TimeoutError:
                stats["failed"] += 1
            except ComNotConnectedError:
                stats["not_connected"] += 1
                await requester.wait_connected(30)

    task = asyncio.ensure_future(stream())
    await asyncio.wait_for(ok_before.wait(), 30)

    mosquitto.kill()  # SIGKILL: a crash, not a clean shutdown
    await requester.wait_disconnected(10)
    await responder.wait_disconnected(10)
    assert not requester.connected

    # while the broker is down: QoS 0 fails clearly, QoS 1 is kept for later
    if qos == 0:
        with pytest.raises(ComNotConnectedError):
            await requester.publish_event(Event("ev", "down", "r"))
    else:
        own = await requester.subscribe_event(SubscriptionFilter(Scope.COM, "ev"))
        await requester.publish_event(Event("ev", "down", "r"))

    if outage:
        await asyncio.sleep(outage)  # the broker stays down a while (scenario, not a sync)
    mosquitto.start()
    t_up = time.monotonic()
    await asyncio.gather(requester.wait_connected(10), responder.wait_connected(10))
    reconnect_s = time.monotonic() - t_up
    restarted.set()
    await asyncio.wait_for(ok_after.wait(), 30)
    await task

    if qos == 1:
        # the publication made while disconnected is delivered after reconnect
        got = await own.get(10)
        assert got.id == "down"
    # subscriptions of both members were restored: a new event reaches the responder
    await flush(responder)
    await requester.publish_event(Event("ev", "after", "r"))
    ids = []
    while "after" not in ids:
        ids.append((await events.get(10)).id)
    assert ids[-1] == "after"

    durations = requester.reconnect_durations + responder.reconnect_durations
    report = {
        "qos": qos,
        "outage_s": outage,
        "reconnect_after_broker_up_s": round(reconnect_s, 4),
        "outage_to_reconnect_s": [round(d, 4) for d in durations],
        **stats,
    }
    print("broker restart:", json.dumps(report))
    try:
        old = json.loads(REPORT.read_text()) if REPORT.exists() else {}
        old[f"qos{qos}-outage{outage}"] = report
        REPORT.write_text(json.dumps(old, indent=1))
    except (OSError, ValueError):
        pass
    # requirement of the issue: back within 2 s of the broker coming up
    assert reconnect_s < 2.0, report
    await requester.close()
    await responder.close()


async def test_subscribe_while_disconnected_is_restored(mosquitto: Mosquitto) -> None:
    a = Mqtt5Binding()
    await a.open(_cfg(mosquitto, "sub-down"))
    mosquitto.kill()
    await a.wait_disconnected(10)
    sub = await a.subscribe_event(SubscriptionFilter(Scope.COM, "late"))
    mosquitto.start()
    await a.wait_connected(10)
    # our own event comes back once the resubscription is in place (same connection order)
    await a.publish_event(Event("late", "1", "a"))
    assert (await sub.get(10)).id == "1"
    await a.close()


async def test_open_fails_clearly_without_broker() -> None:
    cfg = Config()
    cfg.services.com.url = f"tcp://127.0.0.1:{free_port()}"
    cfg.services.com.opts.update(connectRetryDelay=50)
    b = Mqtt5Binding()
    t = time.monotonic()
    with pytest.raises(ComConnectError, match="cannot connect"):
        await b.open(cfg, timeout=0.3)
    assert time.monotonic() - t < 5
    assert isinstance(ComConnectError("x"), ComError)
    assert not b.is_open


async def test_open_waits_for_broker_coming_up() -> None:
    port = free_port()
    broker = Mosquitto(port)
    cfg = Config()
    cfg.services.com.url = broker.url
    cfg.services.com.opts.update(connectRetryDelay=100)
    b = Mqtt5Binding()
    opener = asyncio.ensure_future(b.open(cfg, timeout=20))
    await asyncio.sleep(0.3)  # let a few connection attempts fail (not a synchronisation)
    assert not opener.done()
    try:
        broker.start()
        await opener
        assert b.is_open and b.connected
    finally:
        await b.close()
        broker.cleanup()


async def test_dropped_connection_reconnects_and_restores(mosquitto: Mosquitto) -> None:
    """The TCP connection breaks (not the broker): reconnect and resubscribe."""
    a = Mqtt5Binding()
    b = Mqtt5Binding()
    await a.open(_cfg(mosquitto, "drop", connectRetryDelay=100))
    await b.open(_cfg(mosquitto, "drop", connectRetryDelay=100))
    sub = await b.subscribe_event(SubscriptionFilter(Scope.COM, "d"))
    await b.subscribe_action(
        SubscriptionFilter(Scope.STA, "d"), handler=lambda awc: awc.send(ActionResult("b"))
    )
    b._client._connection._transport.abort()  # network failure on b's side
    await b.wait_disconnected(5)
    await b.wait_connected(10)
    assert len(b.reconnect_durations) == 1
    print(f"dropped connection: reconnected after {b.reconnect_durations[0]:.4f} s")
    await flush(b)  # b's resubscriptions went out before this round trip's own SUBSCRIBE
    res = await a.request_action(Action("d", "1", "a"), Scope.STA, 5)
    assert res.context == "b"
    await a.publish_event(Event("d", "after-drop", "a"))
    assert (await sub.get(5)).id == "after-drop"
    await a.close()
    await b.close()


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_receive_path_and_malformed_packet_length(mosquitto: Mosquitto, loop_kind: str) -> None:
    """Requests and events on the receive path; bytes that cannot be an MQTT packet
    (a remaining length over 4 bytes) end that connection with a log line, and the
    binding reconnects and works on. Also on uvloop (the sidecar's loop), which binds
    a protocol's data_received when the connection is made."""
    loop_factory = None
    if loop_kind == "uvloop":
        loop_factory = pytest.importorskip("uvloop").new_event_loop

    async def scenario() -> None:
        a = Mqtt5Binding()
        b = Mqtt5Binding()
        await a.open(_cfg(mosquitto, "badlen", connectRetryDelay=100))
        await b.open(_cfg(mosquitto, "badlen", connectRetryDelay=100))
        try:
            sub = await b.subscribe_event(SubscriptionFilter(Scope.COM, "m"))
            await b.subscribe_action(
                SubscriptionFilter(Scope.STA, "m"),
                handler=lambda awc: awc.send(ActionResult("b", awc.action.params[::-1])),
            )
            res = await a.request_action(Action("m", "1", "a", b"abc"), Scope.STA, 5)
            assert res.data == b"cba"
            # as if the broker had sent it: PUBLISH whose length has five continuation bytes
            b._client._connection._protocol.data_received(b"\x30\xff\xff\xff\xff\x7f")
            await b.wait_disconnected(5)
            await b.wait_connected(10)
            assert len(b.reconnect_durations) == 1
            await flush(b)  # b's resubscriptions went out before this round trip's SUBSCRIBE
            await a.publish_event(Event("m", "after-garbage", "a"))
            assert (await sub.get(5)).id == "after-garbage"
        finally:
            await a.close()
            await b.close()

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(scenario())


async def test_no_local_subscription_survives_a_reconnect(mosquitto: Mosquitto) -> None:
    """The resubscription after a dropped connection keeps a subscription's noLocal."""
    a = Mqtt5Binding()
    b = Mqtt5Binding()
    await a.open(_cfg(mosquitto, "nolocal", connectRetryDelay=100))
    await b.open(_cfg(mosquitto, "nolocal", connectRetryDelay=100))
    quiet = await a.subscribe_action(SubscriptionFilter(Scope.STA, "c"), no_local=True)
    await b.subscribe_action(
        SubscriptionFilter(Scope.STA, "c"), handler=lambda awc: awc.send(ActionResult("b"))
    )
    a._client._connection._transport.abort()  # network failure on a's side
    await a.wait_disconnected(5)
    await a.wait_connected(10)
    await flush(a)  # a's resubscriptions went out before this round trip's own SUBSCRIBE
    assert (await a.request_action(Action("c", "own", "a"), Scope.STA, 5)).context == "b"
    await b.request_action(Action("c", "from-b", "b"), Scope.STA, 5)
    await flush(a)
    assert [x.action.id for x in drain(quiet)] == ["from-b"]
    await a.close()
    await b.close()

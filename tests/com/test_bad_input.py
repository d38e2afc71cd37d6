"""Bad input from the network is dropped with a log line; the binding keeps serving."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ddastate.com.api import (
    Action,
    ActionResult,
    ActionWithCallback,
    Event,
    Scope,
    SubscriptionFilter,
)
from ddastate.com.mqtt5 import Mqtt5Binding, encode_publish

from .helpers import drain, flush
from .plain import PlainClient

pytestmark = pytest.mark.timeout(60)


class Injector:
    """Publishes raw messages: straight onto the loopback bus, or by a plain MQTT client."""

    def __init__(self, factory: Any) -> None:
        self.factory = factory
        self.plain: PlainClient | None = None

    async def start(self) -> Injector:
        if self.factory.protocol == "mqtt5":
            self.plain = await PlainClient.connect(self.factory.broker.port, subscribe=None)
        return self

    def send(
        self,
        topic: str,
        payload: bytes,
        props: list[tuple[str, str]] | None,
        response_topic: str | None = None,
        corr: bytes | None = None,
    ) -> None:
        if self.plain is None:
            self.factory.bus.publish(topic, payload, props, response_topic, corr, "injector")
            return
        kw: dict[str, Any] = {}
        if props is not None:
            kw["user_property"] = props
        if response_topic is not None:
            kw["response_topic"] = response_topic
        if corr is not None:
            kw["correlation_data"] = corr
        self.plain.publish(topic, payload, **kw)

    async def close(self) -> None:
        if self.plain is not None:
            await self.plain.close()


async def _serving(a: Any, b: Any) -> None:
    """b answers a's request: the binding still works."""
    res = await a.request_action(Action("echo", "ok", a.identity(), b"ping"), timeout=5)
    assert res.data == b"ping"


def _dropped(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    return any(text in r.getMessage() and r.levelno >= logging.WARNING for r in caplog.records)


async def test_bad_requests_dropped(com_factory: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="ddastate.com")
    a = await com_factory.open()
    b = await com_factory.open()
    got: list[Action] = []

    def echo(awc: ActionWithCallback) -> None:
        got.append(awc.action)
        awc.send(ActionResult("", awc.action.params))

    await b.subscribe_action(SubscriptionFilter(Scope.COM, "echo"), handler=echo)
    inj = await Injector(com_factory).start()
    c = com_factory.cluster
    good_rt = f"{c}/com/acr/echo/injector"
    corr = str(uuid.uuid4()).encode()
    try:
        cases = [
            (None, good_rt, corr, "without user properties"),
            ([("sr", "x"), ("dt", "")], good_rt, corr, "missing id or source"),
            ([("id", "x"), ("dt", "")], good_rt, corr, "missing id or source"),
            ([("id", "x"), ("sr", "y"), ("dt", "")], None, corr, "response topic"),
            ([("id", "x"), ("sr", "y"), ("dt", "")], good_rt, None, "correlation data"),
        ]
        if com_factory.protocol == "loopback":
            # a broker refuses wildcard topics itself; the bus hands them on
            for bad_rt in (f"{c}/+/acr/#", f"{c}/com/acr/\x01", "$SYS/x", f"{c}/\x7f"):
                props = [("id", "x"), ("sr", "y"), ("dt", "")]
                cases.append((props, bad_rt, corr, "response topic"))
        for props, rt, cd, text in cases:
            caplog.clear()
            inj.send(f"{c}/com/act/echo", b"\xff\x00garbage", props, rt, cd)
            await flush(b)
            assert _dropped(caplog, text), (props, rt, cd, caplog.text)
            assert got == []
            await _serving(a, b)
            got.clear()
        # garbage payload in a well-formed Action is not the com layer's business: delivered
        inj.send(
            f"{c}/com/act/echo",
            b"\xc1\xff\x00",
            [("id", "x"), ("sr", "y"), ("dt", "")],
            good_rt,
            corr,
        )
        await flush(b)
        assert [g.params for g in got] == [b"\xc1\xff\x00"]
        await _serving(a, b)
    finally:
        await inj.close()


async def test_bad_results_dropped(com_factory: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="ddastate.com")
    a = await com_factory.open()
    b = await com_factory.open()
    await b.subscribe_action(
        SubscriptionFilter(Scope.COM, "echo"),
        handler=lambda awc: awc.send(ActionResult("", awc.action.params)),
    )
    inj = await Injector(com_factory).start()
    c = com_factory.cluster
    try:
        stream = await a.publish_action(Action("nobody", "1", "a"), Scope.STA, timeout=30)
        corr = stream.correlation_data
        rt = f"{c}/sta/acr/nobody/{a.identity()}"
        cases = [
            (rt, [("ct", ""), ("dt", ""), ("sq", "x1")], corr, "bad sequence number"),
            (rt, [("ct", ""), ("dt", "")], corr, "bad sequence number"),
            (rt, [("ct", ""), ("dt", ""), ("sq", "")], corr, "bad sequence number"),
            (rt, None, corr, "without user properties"),
            (rt, [("ct", ""), ("dt", ""), ("sq", "1")], None, "without correlation data"),
            (f"{c}/xyz/acr/nobody/{a.identity()}", [("sq", "1")], corr, "unknown scope"),
        ]
        for topic, props, cd, text in cases:
            caplog.clear()
            inj.send(topic, b"\x00garbage", props, None, cd)
            await flush(a)
            assert _dropped(caplog, text), (topic, props, caplog.text)
            assert drain(stream) == []
            await _serving(a, b)
        # a well-formed result with the right correlation data still gets through
        inj.send(rt, b"fine", [("ct", "c"), ("dt", ""), ("sq", "-3")], None, corr)
        r = await stream.get(5)
        assert r == ActionResult("c", b"fine", "", -3)
        # a result for a request that is gone is ignored quietly
        await stream.aclose()
        inj.send(rt, b"late", [("ct", "c"), ("dt", ""), ("sq", "0")], None, corr)
        await flush(a)
        await _serving(a, b)
    finally:
        await inj.close()


async def test_malformed_topics_dropped(
    loopback_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Topics a subscription could never match on a broker; fed to the receive path directly."""
    caplog.set_level(logging.WARNING, logger="ddastate.com")
    a = await loopback_factory.open()
    c = loopback_factory.cluster
    props = [("id", "1"), ("sr", "x"), ("tm", ""), ("dt", "")]
    for topic, text in [
        ("a/b", "malformed topic"),
        (f"{c}/com/evt/t/extra/more", "malformed topic"),
        ("other-cluster/com/evt/t", "foreign cluster"),
        (f"{c}/com/zzz/t", "unknown level"),
        (f"{c}/com/acr/t", "malformed topic"),
        (f"{c}/com/evt/t/x", "malformed topic"),
    ]:
        caplog.clear()
        a._on_message(topic, b"", props, None, None, [99])
        assert _dropped(caplog, text), (topic, caplog.text)
    sub = await a.subscribe_event(SubscriptionFilter(Scope.COM, "t"))
    await a.publish_event(Event("t", "1", "a"))
    assert (await sub.get(5)).id == "1"


async def test_handler_exception_does_not_stop_binding(
    com_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    a = await com_factory.open()
    calls = 0

    def broken(awc: ActionWithCallback) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")
        awc.send(ActionResult("", b"second"))

    await a.subscribe_action(SubscriptionFilter(Scope.COM, "b"), handler=broken)
    with pytest.raises(TimeoutError):
        await a.request_action(Action("b", "1", "a"), timeout=0.2)
    assert "boom" in caplog.text or "failed" in caplog.text
    assert (await a.request_action(Action("b", "2", "a"), timeout=5)).data == b"second"


# ----------------------------------------------------------------------------- decoder fuzz


@pytest.mark.mqtt
async def test_publish_decoder_survives_garbage(mqtt5_factory: Any) -> None:
    a = await mqtt5_factory.open()
    b = await mqtt5_factory.open()
    await b.subscribe_action(
        SubscriptionFilter(Scope.COM, "echo"),
        handler=lambda awc: awc.send(ActionResult("", awc.action.params)),
    )
    c = mqtt5_factory.cluster
    valid = encode_publish(
        f"{c}/com/act/echo",
        b"p",
        [("id", "1"), ("sr", "x"), ("dt", "")],
        f"{c}/com/acr/echo/x",
        b"c",
    )
    body = valid[2:]  # fixed header is 2 bytes here
    delivered: list[Any] = []
    orig = b._dispatch

    def spy(*args: Any) -> None:
        delivered.append(args)
        orig(*args)  # decoded garbage is handled for real: replies go out

    b._dispatch = spy

    @settings(
        max_examples=300,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(st.data())
    def run(data: st.DataObject) -> None:
        kind = data.draw(st.sampled_from(["random", "truncate", "flip"]))
        if kind == "random":
            raw = data.draw(st.binary(max_size=200))
        elif kind == "truncate":
            raw = body[: data.draw(st.integers(0, len(body)))]
        else:
            i = data.draw(st.integers(0, len(body) - 1))
            raw = body[:i] + bytes([data.draw(st.integers(0, 255))]) + body[i + 1 :]
        Mqtt5Binding._handle_publish_packet(b, 0x30, raw)  # must not raise

    run()
    b._dispatch = orig
    for args in delivered:
        assert isinstance(args[0], str) and isinstance(args[1], bytes)
    await flush(a, b)
    # nothing we sent in reply made the broker drop our connection
    assert b.connected and b.reconnect_durations == []
    res = await a.request_action(Action("echo", "1", "a", b"still"), timeout=5)
    assert res.data == b"still"

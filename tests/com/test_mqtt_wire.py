"""Wire format of the MQTT 5 binding, seen by a plain MQTT client (WIRE.md section 1)."""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

import pytest

from ddastate.com.api import (
    Action,
    ActionResult,
    ActionWithCallback,
    Event,
    Scope,
    SubscriptionFilter,
)
from ddastate.com.mqtt5 import client_id_for, encode_publish
from ddastate.config import Config

from .helpers import flush
from .plain import PlainClient

pytestmark = [pytest.mark.mqtt, pytest.mark.timeout(60)]

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


async def test_event_action_and_result_on_the_wire(mqtt5_factory: Any) -> None:
    plain = await PlainClient.connect(mqtt5_factory.broker.port)
    try:
        c = mqtt5_factory.cluster
        a = await mqtt5_factory.open()
        b = await mqtt5_factory.open()

        await a.publish_event(Event("temp", "ev-1", "src-a", b"\x01\x02", "tm-1", "dt-1"))
        ev = await plain.wait_for(lambda s: s.topic == f"{c}/com/evt/temp")
        assert ev.payload == b"\x01\x02"
        assert ev.user_properties == [
            ("id", "ev-1"),
            ("sr", "src-a"),
            ("tm", "tm-1"),
            ("dt", "dt-1"),
        ]
        assert ev.response_topic is None and ev.correlation_data is None
        assert ev.retain == 0 and ev.qos == 0

        # empty properties are still sent
        await a.publish_event(Event("temp", "ev-2", "src-a"))
        ev2 = await plain.wait_for(lambda s: s.user_properties[:1] == [("id", "ev-2")])
        assert ev2.user_properties == [("id", "ev-2"), ("sr", "src-a"), ("tm", ""), ("dt", "")]
        assert ev2.payload == b""

        def answer(awc: ActionWithCallback) -> None:
            awc.send(ActionResult("ctx-b", b"result", "application/octet-stream", 0))

        await b.subscribe_action(
            SubscriptionFilter(Scope.STA, "rpc" + b.identity()), handler=answer
        )
        typ = "rpc" + b.identity()
        res = await a.request_action(Action(typ, "ae", a.identity(), b"params", ""), Scope.STA, 5)
        assert res.data == b"result"

        act = await plain.wait_for(lambda s: s.topic == f"{c}/sta/act/{typ}")
        assert act.payload == b"params"
        assert act.user_properties == [("id", "ae"), ("sr", a.identity()), ("dt", "")]
        assert act.response_topic == f"{c}/sta/acr/{typ}/{a.identity()}"
        assert act.correlation_data is not None and len(act.correlation_data) == 36
        assert UUID_RE.match(act.correlation_data.decode())

        acr = await plain.wait_for(lambda s: s.topic == act.response_topic)
        assert acr.payload == b"result"
        assert acr.user_properties == [
            ("ct", "ctx-b"),
            ("dt", "application/octet-stream"),
            ("sq", "0"),
        ]
        assert acr.correlation_data == act.correlation_data
        assert acr.response_topic is None
    finally:
        await plain.close()


async def test_hand_made_action_is_answered(mqtt5_factory: Any) -> None:
    """An Action in the reference's format from a foreign client gets its result."""
    c = mqtt5_factory.cluster
    plain = await PlainClient.connect(mqtt5_factory.broker.port, subscribe=f"{c}/sta/acr/#")
    try:
        b = await mqtt5_factory.open()
        seen: list[Action] = []

        def answer(awc: ActionWithCallback) -> None:
            seen.append(awc.action)
            for i in range(2):
                awc.send(ActionResult("go-ctx", awc.action.params[::-1], "x", i))

        await b.subscribe_action(SubscriptionFilter(Scope.STA, "lfw"), handler=answer)
        corr = str(uuid.uuid4()).encode()
        plain.publish(
            f"{c}/sta/act/lfw",
            b"\x81\xa7Command\xa1x",
            user_property=[("id", "ap"), ("sr", "go-member"), ("dt", "")],
            response_topic=f"{c}/sta/acr/lfw/go-member",
            correlation_data=corr,
        )
        r0 = await plain.wait_for(lambda s: ("sq", "0") in s.user_properties)
        r1 = await plain.wait_for(lambda s: ("sq", "1") in s.user_properties)
        assert seen == [Action("lfw", "ap", "go-member", b"\x81\xa7Command\xa1x", "")]
        for r, sq in ((r0, "0"), (r1, "1")):
            assert r.topic == f"{c}/sta/acr/lfw/go-member"
            assert r.correlation_data == corr
            assert r.user_properties == [("ct", "go-ctx"), ("dt", "x"), ("sq", sq)]
            assert r.payload == b"x\xa1dnammoC\xa7\x81"
    finally:
        await plain.close()


async def test_shared_subscription_topic_and_no_local_flag(mqtt5_factory: Any) -> None:
    """A shared subscription is `$share/<g>/<topic>`: a plain publish reaches it."""
    c = mqtt5_factory.cluster
    plain = await PlainClient.connect(mqtt5_factory.broker.port, subscribe=None)
    try:
        b = await mqtt5_factory.open(noLocal=True)
        sub = await b.subscribe_event(SubscriptionFilter(Scope.COM, "job", "workers"))
        plain.publish(
            f"{c}/com/evt/job",
            b"1",
            user_property=[("id", "1"), ("sr", "p"), ("tm", ""), ("dt", "")],
        )
        e = await sub.get(5)
        assert e == Event("job", "1", "p", b"1", "", "")
    finally:
        await plain.close()


def test_client_id_rules() -> None:
    cfg = Config()
    cfg.identity.name = "DDA"
    cfg.identity.id = "1234-abcd_.x"
    assert client_id_for(cfg) == "DDA1234-abcd_.x"
    cfg.services.com.opts["strictClientId"] = True
    assert client_id_for(cfg) == "DDA12340abcd00x"
    cfg.identity.id = str(uuid.UUID(int=0))
    assert client_id_for(cfg) == "DDA00000000000000000000"
    assert len(client_id_for(cfg)) == 23


def test_encode_publish_matches_gmqtt() -> None:
    """Our PUBLISH encoder writes the same bytes as gmqtt's generic one."""
    from gmqtt.client import Message
    from gmqtt.mqtt.package import PublishPacket

    class _Proto:
        proto_ver = 5

    props = [("id", "x"), ("sr", "é"), ("dt", "")]
    ours = encode_publish("a/b/c", b"payload" * 40, props, "a/r", b"corr")
    msg = Message(
        "a/b/c",
        b"payload" * 40,
        qos=0,
        user_property=props,
        response_topic="a/r",
        correlation_data=b"corr",
    )
    _, theirs = PublishPacket.build_package(msg, _Proto())
    assert ours == bytes(theirs)


async def test_large_message_round_trip(mqtt5_factory: Any) -> None:
    """A snapshot-sized payload (16 MiB) each way."""
    a = await mqtt5_factory.open()
    b = await mqtt5_factory.open()
    await b.subscribe_action(
        SubscriptionFilter(Scope.STA, "big"),
        handler=lambda awc: awc.send(ActionResult("", awc.action.params[::-1])),
    )
    data = bytes(range(256)) * (16 * 4096)
    res = await a.request_action(Action("big", "is", a.identity(), data), Scope.STA, 60)
    assert res.data == data[::-1]


async def test_socket_reads_land_in_one_buffer_per_connection(mqtt5_factory: Any) -> None:
    """The broker's socket is read into the connection's own buffer, every time.

    A fresh bytes object per read is an mmap, an mremap and a munmap in glibc.
    """
    a = await mqtt5_factory.open()
    b = await mqtt5_factory.open()
    protocol = b._client._connection._protocol
    buffers: set[int] = set()
    reads = 0
    get_buffer = protocol.get_buffer

    def counting_get_buffer(sizehint: int) -> memoryview:
        nonlocal reads
        buf: memoryview = get_buffer(sizehint)
        buffers.add(id(buf.obj))
        reads += 1
        return buf

    protocol.get_buffer = counting_get_buffer
    sub = await b.subscribe_event(SubscriptionFilter(Scope.COM, "reads"))
    data = bytes(range(256)) * 4096  # 1 MiB: several reads
    await a.publish_event(Event("reads", "ev-big", "src-a", data))
    for i in range(20):
        await a.publish_event(Event("reads", f"ev-{i}", "src-a", bytes([i]) * 10))
    got = [await sub.get(10) for _ in range(21)]
    assert got[0].data == data
    assert [e.data for e in got[1:]] == [bytes([i]) * 10 for i in range(20)]
    assert reads >= 2
    assert len(buffers) == 1


async def test_stream_split_at_every_size(mqtt5_factory: Any) -> None:
    """The receive path reassembles packets however the byte stream is cut."""
    b = await mqtt5_factory.open()
    sub = await b.subscribe_event(SubscriptionFilter(Scope.COM, "cut"))
    sid = next(r.sub_id for r in b._routes.values() if r.filter.endswith("/cut"))
    c = mqtt5_factory.cluster
    props = [("id", "x"), ("sr", "s"), ("tm", ""), ("dt", "")]
    pkts = [
        encode_publish(f"{c}/com/evt/cut", bytes([i]) * (i * 97), props, None, None)
        for i in range(40)
    ]
    # add the subscription identifier the broker would add: rebuild through the broker format
    stream = b"".join(_with_sub_id(p, sid) for p in pkts)
    conn = b._client._connection
    for size in (1, 2, 3, 7, 64, 1000, len(stream)):
        for i in range(0, len(stream), size):
            assert b._fast_read_packet(conn, stream[i : i + size]) == len(stream[i : i + size])
        got = [await sub.get(5) for _ in range(40)]
        assert [len(e.data) for e in got] == [i * 97 for i in range(40)]


def _with_sub_id(pkt: bytes, sid: int) -> bytes:
    """Insert a subscription identifier property into a QoS 0 PUBLISH we encoded."""
    from ddastate.com.mqtt5 import _vbi

    # parse fixed header
    i, rl, shift = 1, 0, 0
    while True:
        byte = pkt[i]
        i += 1
        rl |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
    body = pkt[i:]
    tlen = (body[0] << 8) | body[1]
    head, rest = body[: 2 + tlen], body[2 + tlen :]
    j, plen, shift = 0, 0, 0
    while True:
        byte = rest[j]
        j += 1
        plen |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
    props, payload = rest[j : j + plen], rest[j + plen :]
    props = b"\x0b" + _vbi(sid) + props
    new_body = head + _vbi(len(props)) + props + payload
    return bytes([pkt[0]]) + _vbi(len(new_body)) + new_body


@pytest.mark.parametrize("qos", [1, 2])
async def test_qos_levels(mqtt5_factory: Any, qos: int) -> None:
    plain = await PlainClient.connect(mqtt5_factory.broker.port)
    try:
        a = await mqtt5_factory.open(qos=qos)
        b = await mqtt5_factory.open(qos=qos)
        await b.subscribe_action(
            SubscriptionFilter(Scope.COM, "q"),
            handler=lambda awc: awc.send(ActionResult("", awc.action.params)),
        )
        sub = await b.subscribe_event(SubscriptionFilter(Scope.COM, "e"))
        for i in range(50):
            res = await a.request_action(Action("q", "1", "a", str(i).encode()), timeout=5)
            assert res.data == str(i).encode()
            await a.publish_event(Event("e", str(i), "a"))
        assert [(await sub.get(5)).id for _ in range(50)] == [str(i) for i in range(50)]
        seen = await plain.wait_for(lambda s: s.topic.endswith("/com/evt/e"))
        assert seen.payload == b""
        # every outgoing QoS>0 message gets acknowledged by the broker. The last
        # PUBCOMP of a QoS 2 flow may still be on its way when the reply it
        # carried has been delivered, so wait for the store to drain.
        await flush(a, b)
        for binding in (a, b):
            await asyncio.wait_for(binding._client._persistent_storage.wait_empty(), 10)
            assert binding._client._persistent_storage.is_empty
    finally:
        await plain.close()


async def test_cancel_as_the_suback_arrives_is_not_lost(mqtt5_factory: Any) -> None:
    """A subscribe cancelled in the same loop pass as its SUBACK arrives raises
    CancelledError. (asyncio.wait_for of Python 3.11 returned the result instead and
    dropped the cancellation: a sidecar stopped during startup went on joining.)"""
    b = await mqtt5_factory.open()
    task: asyncio.Task[Any] | None = None
    deliver = b._on_subscribe

    def cancel_then_deliver(*args: Any) -> None:
        assert task is not None
        task.cancel()
        deliver(*args)

    b._client.on_subscribe = cancel_then_deliver
    task = asyncio.ensure_future(b.subscribe_event(SubscriptionFilter(Scope.COM, "late")))
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()

"""One behaviour suite, run against the loopback bus and against MQTT 5 on Mosquitto."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ddastate.com.api import (
    Action,
    ActionResult,
    ActionWithCallback,
    ComClosedError,
    ComError,
    ComNotOpenError,
    Event,
    InvalidNameError,
    Query,
    QueryResult,
    QueryWithCallback,
    Scope,
    SubscriptionFilter,
)
from ddastate.config import ConfigError

from .helpers import drain, flush

pytestmark = pytest.mark.timeout(60)


async def test_event_delivered_with_all_fields(com_factory: Any) -> None:
    a = await com_factory.open()
    b = await com_factory.open()
    sub = await b.subscribe_event(SubscriptionFilter(Scope.COM, "temp"))
    ev = Event("temp", "e1", "sensor-1", b"\x00\xff21.5", "2024-05-06T07:08:09Z", "application/x")
    await a.publish_event(ev)
    got = await sub.get(5)
    assert got == ev
    await sub.aclose()
    assert sub.closed


async def test_own_events_are_delivered_unless_no_local(com_factory: Any) -> None:
    a = await com_factory.open()
    sub = await a.subscribe_event(SubscriptionFilter("", "self"))
    await a.publish_event(Event("self", "1", "a"))
    assert (await sub.get(5)).id == "1"

    n = await com_factory.open(noLocal=True)
    nsub = await n.subscribe_event(SubscriptionFilter(Scope.COM, "self"))
    await n.publish_event(Event("self", "2", "n"))
    await a.publish_event(Event("self", "3", "a"))
    assert (await nsub.get(5)).id == "3"  # own "2" was not delivered before "3"
    await flush(n, via=a)
    assert drain(nsub) == []


async def test_scope_empty_means_com(com_factory: Any) -> None:
    a = await com_factory.open()
    sub = await a.subscribe_event(SubscriptionFilter(Scope.COM, "x"))
    await a.publish_event(Event("x", "1", "a"), scope="")
    assert (await sub.get(5)).id == "1"


async def test_scopes_types_and_clusters_are_isolated(com_factory: Any) -> None:
    a = await com_factory.open()
    b = await com_factory.open()
    other_cfg = com_factory.config()
    other_cfg.cluster = com_factory.cluster + "-other"
    other = await com_factory.open(other_cfg)

    com_sub = await b.subscribe_event(SubscriptionFilter(Scope.COM, "t"))
    sta_sub = await b.subscribe_event(SubscriptionFilter(Scope.STA, "t"))
    sdc_sub = await b.subscribe_event(SubscriptionFilter(Scope.SDC, "t"))
    u_sub = await b.subscribe_event(SubscriptionFilter(Scope.COM, "u"))
    other_sub = await other.subscribe_event(SubscriptionFilter(Scope.COM, "t"))

    await a.publish_event(Event("t", "com", "a"), Scope.COM)
    await a.publish_event(Event("t", "sta", "a"), Scope.STA)
    await a.publish_event(Event("t", "sdc", "a"), Scope.SDC)
    await a.publish_event(Event("u", "u", "a"))
    await flush(a, b, other)
    assert [e.id for e in drain(com_sub)] == ["com"]
    assert [e.id for e in drain(sta_sub)] == ["sta"]
    assert [e.id for e in drain(sdc_sub)] == ["sdc"]
    assert [e.id for e in drain(u_sub)] == ["u"]
    assert drain(other_sub) == []

    # and the other cluster's traffic does not reach ours
    await other.publish_event(Event("t", "foreign", "o"))
    await other.publish_event(Event("t", "mine", "o"))
    assert (await other_sub.get(5)).id == "foreign"
    await flush(other, b)
    assert drain(com_sub) == []


async def test_action_with_one_result(com_factory: Any) -> None:
    a = await com_factory.open()
    b = await com_factory.open()

    sub = await b.subscribe_action(SubscriptionFilter(Scope.STA, "add"))

    async def serve() -> None:
        awc = await sub.get()
        assert awc.action.type == "add" and awc.action.id == "op" and awc.action.source == "a"
        n = int(awc.action.params)
        await awc.callback(ActionResult("ctx", str(n + 1).encode(), "text/plain", 0))

    task = asyncio.ensure_future(serve())
    res = await a.request_action(Action("add", "op", "a", b"41", "text/plain"), Scope.STA, 5)
    await task
    assert res == ActionResult("ctx", b"42", "text/plain", 0)


async def test_action_with_several_results_and_several_responders(com_factory: Any) -> None:
    a = await com_factory.open()
    responders = [await com_factory.open() for _ in range(2)]

    def make_handler(name: str) -> Any:
        def handler(awc: ActionWithCallback) -> None:
            for i in range(3):
                awc.send(ActionResult(name, awc.action.params + str(i).encode(), "", i))

        return handler

    for i, r in enumerate(responders):
        await r.subscribe_action(
            SubscriptionFilter(Scope.COM, "multi"), handler=make_handler(f"r{i}")
        )
    stream = await a.publish_action(Action("multi", "m", "a", b"p"), timeout=30)
    got: list[ActionResult] = []
    async for res in stream:
        got.append(res)
        if len(got) == 6:
            await stream.aclose()
    assert stream.closed
    by_ctx: dict[str, list[int]] = {}
    for r in got:
        by_ctx.setdefault(r.context, []).append(r.sequence_number)
        assert r.data == b"p" + str(r.sequence_number).encode()
    assert by_ctx == {"r0": [0, 1, 2], "r1": [0, 1, 2]}


async def test_result_stream_ends_on_timeout(com_factory: Any) -> None:
    a = await com_factory.open()
    stream = await a.publish_action(Action("nobody", "x", "a"), timeout=0.05)
    assert [r async for r in stream] == []
    assert stream.closed


async def test_request_action_times_out(com_factory: Any) -> None:
    a = await com_factory.open()
    with pytest.raises(TimeoutError):
        await a.request_action(Action("nobody", "x", "a"), timeout=0.05)
    assert a._pending == {}


async def test_async_handler(com_factory: Any) -> None:
    a = await com_factory.open()
    b = await com_factory.open()

    async def handler(awc: ActionWithCallback) -> None:
        await asyncio.sleep(0)
        await awc.callback(ActionResult("async", awc.action.params))

    await b.subscribe_action(SubscriptionFilter(Scope.COM, "h"), handler=handler)
    res = await a.request_action(Action("h", "1", "a", b"z"), timeout=5)
    assert res.context == "async" and res.data == b"z"


async def test_results_are_routed_only_to_their_request(com_factory: Any) -> None:
    r1 = await com_factory.open()
    r2 = await com_factory.open()
    b = await com_factory.open()
    await b.subscribe_action(
        SubscriptionFilter(Scope.COM, "echo"),
        handler=lambda awc: awc.send(ActionResult("", awc.action.params)),
    )
    s1 = await r1.publish_action(Action("echo", "1", "r1", b"one"), timeout=30)
    s1b = await r1.publish_action(Action("echo", "2", "r1", b"two"), timeout=30)
    s2 = await r2.publish_action(Action("echo", "3", "r2", b"three"), timeout=30)
    assert (await s1.get(5)).data == b"one"
    assert (await s1b.get(5)).data == b"two"
    assert (await s2.get(5)).data == b"three"
    await flush(r1, r2)
    assert drain(s1) == drain(s1b) == drain(s2) == []
    results = await asyncio.gather(
        *[
            r1.request_action(Action("echo", "x", "r1", str(i).encode()), timeout=5)
            for i in range(20)
        ]
    )
    assert [r.data for r in results] == [str(i).encode() for i in range(20)]


async def test_query_with_results(com_factory: Any) -> None:
    a = await com_factory.open()
    b = await com_factory.open()

    def handler(q: QueryWithCallback) -> None:
        assert q.query.data == b"SELECT"
        q.send(QueryResult("q", b"row1", "t", 0))
        q.send(QueryResult("q", b"row2", "t", 1))

    qsub = await b.subscribe_query(SubscriptionFilter(Scope.COM, "db"), handler=handler)
    first = await a.request_query(Query("db", "q1", "a", b"SELECT"), timeout=5)
    assert first == QueryResult("q", b"row1", "t", 0)
    stream = await a.publish_query(Query("db", "q2", "a", b"SELECT"), timeout=30)
    rows = [await stream.get(5), await stream.get(5)]
    await stream.aclose()
    assert [r.data for r in rows] == [b"row1", b"row2"]
    assert [r.sequence_number for r in rows] == [0, 1]
    await qsub.aclose()
    # an action of the same type is not a query
    with pytest.raises(TimeoutError):
        await a.request_action(Action("db", "x", "a"), timeout=0.1)


async def test_query_iterator_subscription(com_factory: Any) -> None:
    a = await com_factory.open()
    b = await com_factory.open()
    qsub = await b.subscribe_query(SubscriptionFilter(Scope.SDC, "q"))
    stream = await a.publish_query(Query("q", "1", "a", b"?"), Scope.SDC, timeout=30)
    q = await qsub.get(5)
    assert q.query == Query("q", "1", "a", b"?", "")
    await q.callback(QueryResult("c", b"!", "", 7))
    r = await stream.get(5)
    assert r.sequence_number == 7 and r.data == b"!"


async def test_shared_subscriptions_deliver_to_one_member_per_group(com_factory: Any) -> None:
    pub = await com_factory.open()
    group_a = [await com_factory.open() for _ in range(3)]
    group_b = [await com_factory.open() for _ in range(2)]
    plain = await com_factory.open()
    subs_a = [await m.subscribe_event(SubscriptionFilter(Scope.COM, "job", "ga")) for m in group_a]
    subs_b = [await m.subscribe_event(SubscriptionFilter(Scope.COM, "job", "gb")) for m in group_b]
    plain_sub = await plain.subscribe_event(SubscriptionFilter(Scope.COM, "job"))
    n = 30
    for i in range(n):
        await pub.publish_event(Event("job", str(i), "pub"))
    got_plain = [(await plain_sub.get(5)).id for _ in range(n)]
    assert got_plain == [str(i) for i in range(n)]
    await flush(pub, *group_a, *group_b)
    got_a = [[e.id for e in drain(s)] for s in subs_a]
    got_b = [[e.id for e in drain(s)] for s in subs_b]
    assert sorted((x for g in got_a for x in g), key=int) == [str(i) for i in range(n)]
    assert sorted((x for g in got_b for x in g), key=int) == [str(i) for i in range(n)]
    # the broker spreads the load: more than one member of a group gets work
    assert sum(1 for g in got_a if g) >= 2


async def test_shared_action_answered_by_one_member(com_factory: Any) -> None:
    a = await com_factory.open()
    workers = [await com_factory.open() for _ in range(3)]
    for i, w in enumerate(workers):
        await w.subscribe_action(
            SubscriptionFilter(Scope.COM, "work", "pool"),
            handler=lambda awc, i=i: awc.send(ActionResult(f"w{i}", awc.action.params)),
        )
    for k in range(6):
        stream = await a.publish_action(Action("work", str(k), "a"), timeout=30)
        first = await stream.get(5)
        assert first.context in {"w0", "w1", "w2"}
        await flush(a)
        assert drain(stream) == []  # exactly one member answered
        await stream.aclose()


async def test_shared_and_plain_subscription_in_one_member(com_factory: Any) -> None:
    a = await com_factory.open()
    b = await com_factory.open()
    shared = await b.subscribe_event(SubscriptionFilter(Scope.COM, "both", "g"))
    plain = await b.subscribe_event(SubscriptionFilter(Scope.COM, "both"))
    await a.publish_event(Event("both", "1", "a"))
    await flush(a, b)
    assert [e.id for e in drain(shared)] == ["1"]
    assert [e.id for e in drain(plain)] == ["1"]


async def test_unsubscribe_stops_delivery(com_factory: Any) -> None:
    a = await com_factory.open()
    s1 = await a.subscribe_event(SubscriptionFilter(Scope.COM, "u"))
    s2 = await a.subscribe_event(SubscriptionFilter(Scope.COM, "u"))
    await a.publish_event(Event("u", "1", "a"))
    assert (await s1.get(5)).id == "1" and (await s2.get(5)).id == "1"
    await s1.aclose()
    await a.publish_event(Event("u", "2", "a"))
    assert (await s2.get(5)).id == "2"
    await s2.aclose()
    async with await a.subscribe_event(SubscriptionFilter(Scope.COM, "v")) as s3:
        await a.publish_event(Event("u", "3", "a"))
        await a.publish_event(Event("v", "4", "a"))
        assert (await s3.get(5)).id == "4"
    assert s3.closed
    assert drain(s1) == drain(s2) == []


@pytest.mark.parametrize(
    "bad",
    ["", "a/b", "a+", "#", "x y", "ä", "a\x00", "a\n"],
)
async def test_invalid_names_rejected(com_factory: Any, bad: str) -> None:
    a = await com_factory.open()
    with pytest.raises(InvalidNameError, match="Type"):
        await a.publish_event(Event(bad, "1", "a"))
    with pytest.raises(InvalidNameError, match="Type"):
        await a.publish_action(Action(bad, "1", "a"))
    with pytest.raises(InvalidNameError, match="Type"):
        await a.request_action(Action(bad, "1", "a"))
    with pytest.raises(InvalidNameError, match="Type"):
        await a.publish_query(Query(bad, "1", "a"))
    with pytest.raises(InvalidNameError, match="Type"):
        await a.subscribe_event(SubscriptionFilter(Scope.COM, bad))
    with pytest.raises(InvalidNameError, match="Type"):
        await a.subscribe_action(SubscriptionFilter(Scope.COM, bad))
    with pytest.raises(InvalidNameError, match="Type"):
        await a.subscribe_query(SubscriptionFilter(Scope.COM, bad))
    if bad:
        with pytest.raises(InvalidNameError, match="Share"):
            await a.subscribe_event(SubscriptionFilter(Scope.COM, "ok", bad))
    assert issubclass(InvalidNameError, ValueError)


async def test_empty_id_and_source_rejected(com_factory: Any) -> None:
    a = await com_factory.open()
    with pytest.raises(InvalidNameError, match="Event Id"):
        await a.publish_event(Event("t", "", "a"))
    with pytest.raises(InvalidNameError, match="Event Source"):
        await a.publish_event(Event("t", "1", ""))
    with pytest.raises(InvalidNameError, match="Action Id"):
        await a.request_action(Action("t", "", "a"))
    with pytest.raises(InvalidNameError, match="Action Source"):
        await a.publish_action(Action("t", "1", ""))
    with pytest.raises(InvalidNameError, match="Query Id"):
        await a.publish_query(Query("t", "", "a"))
    with pytest.raises(ValueError, match="unknown scope"):
        await a.publish_event(Event("t", "1", "a"), scope="xyz")


async def test_bad_cluster_rejected_at_open(com_factory: Any) -> None:
    cfg = com_factory.config()
    cfg.cluster = "bad/cluster"
    b = com_factory.binding()
    with pytest.raises(ConfigError, match="cluster"):
        await b.open(cfg)


async def test_close_ends_streams_and_fails_waiters(com_factory: Any) -> None:
    a = await com_factory.open()
    sub = await a.subscribe_event(SubscriptionFilter(Scope.COM, "c"))
    stream = await a.publish_action(Action("nobody", "1", "a"), timeout=30)
    waiter = asyncio.ensure_future(a.request_action(Action("nobody", "2", "a"), timeout=30))
    await asyncio.sleep(0)
    await a.close()
    assert [e async for e in sub] == []
    assert [r async for r in stream] == []
    with pytest.raises(ComClosedError):
        await waiter
    with pytest.raises(ComNotOpenError):
        await a.publish_event(Event("c", "1", "a"))
    with pytest.raises(ComNotOpenError):
        await a.subscribe_event(SubscriptionFilter(Scope.COM, "c"))
    await a.close()  # idempotent


async def test_callback_after_requester_gone_is_harmless(com_factory: Any) -> None:
    a = await com_factory.open()
    b = await com_factory.open()
    sub = await b.subscribe_action(SubscriptionFilter(Scope.COM, "late"))
    stream = await a.publish_action(Action("late", "1", "a"), timeout=30)
    awc = await sub.get(5)
    await stream.aclose()
    await awc.callback(ActionResult("late"))  # nobody waits: dropped by the requester
    res_task = asyncio.ensure_future(a.request_action(Action("late", "2", "a"), timeout=5))
    awc2 = await sub.get(5)
    awc2.send(ActionResult("ok"))
    assert (await res_task).context == "ok"


async def test_reopen_after_close(com_factory: Any) -> None:
    a = await com_factory.open()
    cfg = a._cfg
    await a.close()
    await a.open(cfg)
    sub = await a.subscribe_event(SubscriptionFilter(Scope.COM, "again"))
    await a.publish_event(Event("again", "1", "a"))
    assert (await sub.get(5)).id == "1"
    assert (await a.publish_action(Action("x", "1", "a"), timeout=0.01)).closed is False


async def test_requests_need_no_subscription_of_their_own(com_factory: Any) -> None:
    a = await com_factory.open()
    b = await com_factory.open()
    await b.subscribe_action(
        SubscriptionFilter(Scope.STA, "rpc"), handler=lambda awc: awc.send(ActionResult(""))
    )
    routes, next_id = dict(a._routes), a._next_sub_id
    for i in range(100):
        await a.request_action(Action("rpc", str(i), "a"), Scope.STA, 5)
        stream = await a.publish_action(Action("rpc", str(i), "a"), Scope.STA, 5)
        await stream.get(5)
        await stream.aclose()
    assert a._routes == routes and a._next_sub_id == next_id
    assert a._pending == {}


async def test_action_subscription_can_skip_own_actions(com_factory: Any) -> None:
    """``no_local`` on a subscription: the binding's own Actions of that filter are not
    delivered back to it, others' are. A second subscription to that filter must not
    want them (the broker subscription is shared): asking is a clear error."""
    a = await com_factory.open()
    b = await com_factory.open()
    quiet = await a.subscribe_action(SubscriptionFilter(Scope.STA, "cmd"), no_local=True)
    await b.subscribe_action(
        SubscriptionFilter(Scope.STA, "cmd"), handler=lambda awc: awc.send(ActionResult("b"))
    )
    assert (await a.request_action(Action("cmd", "own", "a"), Scope.STA, 5)).context == "b"
    await b.request_action(Action("cmd", "from-b", "b"), Scope.STA, 5)
    await flush(a)  # everything sent to a before this round trip has been dispatched
    assert [x.action.id for x in drain(quiet)] == ["from-b"]

    with pytest.raises(ComError, match="no_local"):
        await a.subscribe_action(SubscriptionFilter(Scope.STA, "cmd"))
    also_quiet = await a.subscribe_action(SubscriptionFilter(Scope.STA, "cmd"), no_local=True)
    await b.request_action(Action("cmd", "from-b-2", "b"), Scope.STA, 5)
    await a.request_action(Action("cmd", "own-2", "a"), Scope.STA, 5)
    await flush(a)
    assert [x.action.id for x in drain(quiet)] == ["from-b-2"]
    assert [x.action.id for x in drain(also_quiet)] == ["from-b-2"]

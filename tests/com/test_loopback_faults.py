"""Fault injection of the loopback bus: drop, delay, duplicate, reorder, partition, heal."""

from __future__ import annotations

from typing import Any

import pytest

from ddastate.com.api import Action, ActionResult, Event, Scope, SubscriptionFilter
from ddastate.com.loopback import LoopbackBinding, LoopbackBus
from ddastate.config import Config

from .helpers import drain, flush

pytestmark = pytest.mark.timeout(30)


async def _members(bus: LoopbackBus, *names: str) -> list[LoopbackBinding]:
    out = []
    for n in names:
        cfg = Config()
        cfg.identity.id = n
        cfg.cluster = "faults"
        b = LoopbackBinding(bus)
        await b.open(cfg)
        out.append(b)
    return out


async def _subs(*bs: LoopbackBinding) -> list[Any]:
    return [await b.subscribe_event(SubscriptionFilter(Scope.COM, "e")) for b in bs]


async def test_partition_and_heal() -> None:
    bus = LoopbackBus(seed=7)
    a, b, c = await _members(bus, "a", "b", "c")
    sa, sb, sc = await _subs(a, b, c)
    bus.partition(["a", "b"], ["c"])
    await a.publish_event(Event("e", "1", "a"))
    await c.publish_event(Event("e", "2", "c"))
    await flush(a, b, c)
    assert [e.id for e in drain(sa)] == ["1"]
    assert [e.id for e in drain(sb)] == ["1"]
    assert [e.id for e in drain(sc)] == ["2"]
    # requests across the cut time out; inside a side they work
    await c.subscribe_action(
        SubscriptionFilter(Scope.STA, "x"), handler=lambda w: w.send(ActionResult("c"))
    )
    with pytest.raises(TimeoutError):
        await a.request_action(Action("x", "1", "a"), Scope.STA, timeout=0.05)
    assert (await c.request_action(Action("x", "1", "c"), Scope.STA, timeout=5)).context == "c"
    bus.heal()
    await a.publish_event(Event("e", "3", "a"))
    await flush(a, b, c)
    assert [e.id for e in drain(sc)] == ["3"]
    assert (await a.request_action(Action("x", "1", "a"), Scope.STA, timeout=5)).context == "c"


async def test_isolate_unlisted_members_are_each_alone() -> None:
    bus = LoopbackBus()
    a, b, c = await _members(bus, "a", "b", "c")
    sa, sb, sc = await _subs(a, b, c)
    bus.isolate("a")
    await b.publish_event(Event("e", "from-b", "b"))
    await flush(a, b, c)
    assert drain(sa) == []
    assert [e.id for e in drain(sb)] == ["from-b"]  # own messages always arrive
    assert drain(sc) == []  # b and c are not listed: each its own group


async def _drop_pattern(seed: int) -> list[str]:
    bus = LoopbackBus(seed=seed)
    a, b, c = await _members(bus, "a", "b", "c")
    _, sb, sc = await _subs(a, b, c)
    bus.set_link("a", "b", drop=0.5)
    for i in range(200):
        await a.publish_event(Event("e", str(i), "a"))
    await flush(a, b, c)
    got_b = [e.id for e in drain(sb)]
    assert len(drain(sc)) == 200  # other links unaffected
    for m in (a, b, c):
        await m.close()
    return got_b


async def test_drop_is_per_link_and_deterministic_with_seed() -> None:
    p1 = await _drop_pattern(42)
    p2 = await _drop_pattern(42)
    p3 = await _drop_pattern(43)
    assert p1 == p2
    assert p1 != p3
    assert 60 < len(p1) < 140


async def test_duplicate() -> None:
    bus = LoopbackBus(seed=1)
    a, b = await _members(bus, "a", "b")
    _, sb = await _subs(a, b)
    bus.set_link("a", "*", duplicate=1.0)
    for i in range(5):
        await a.publish_event(Event("e", str(i), "a"))
    await flush(a, b)
    assert sorted(e.id for e in drain(sb)) == sorted([str(i) for i in range(5)] * 2)
    assert bus.delivered >= 10


async def test_delay_lets_others_overtake() -> None:
    bus = LoopbackBus(seed=1)
    a, b, c = await _members(bus, "a", "b", "c")
    _, sb, _ = await _subs(a, b, c)
    bus.set_link("a", "b", delay=0.05)
    await a.publish_event(Event("e", "slow", "a"))
    await c.publish_event(Event("e", "fast", "c"))
    first = await sb.get(5)
    second = await sb.get(5)
    assert (first.id, second.id) == ("fast", "slow")


async def test_reorder_delivers_everything_out_of_order() -> None:
    bus = LoopbackBus(seed=3)
    a, b = await _members(bus, "a", "b")
    _, sb = await _subs(a, b)
    bus.set_faults(reorder=0.02)
    n = 50
    for i in range(n):
        await a.publish_event(Event("e", str(i), "a"))
    got = [(await sb.get(5)).id for _ in range(n)]
    assert sorted(got, key=int) == [str(i) for i in range(n)]
    assert got != [str(i) for i in range(n)]
    bus.heal()
    await a.publish_event(Event("e", "after", "a"))
    assert (await sb.get(5)).id == "after"


async def test_faults_on_results_too() -> None:
    """Replies travel links as well: drop them and the request times out."""
    bus = LoopbackBus(seed=1)
    a, b = await _members(bus, "a", "b")
    await b.subscribe_action(
        SubscriptionFilter(Scope.STA, "q"), handler=lambda w: w.send(ActionResult("b"))
    )
    bus.set_link("b", "a", drop=1.0)
    with pytest.raises(TimeoutError):
        await a.request_action(Action("q", "1", "a"), Scope.STA, timeout=0.05)
    bus.heal()
    assert (await a.request_action(Action("q", "1", "a"), Scope.STA, timeout=5)).context == "b"

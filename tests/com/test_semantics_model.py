"""Random scenarios against a model of the pub-sub semantics, on loopback and Mosquitto.

Members subscribe to (scope, type) with or without a share group, then publish
events. The model: a plain subscription gets every matching event of its cluster
exactly once; a share group gets each matching event exactly once in total.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ddastate.com.api import Event, Scope, SubscriptionFilter
from ddastate.com.loopback import LoopbackBinding, LoopbackBus
from ddastate.com.mqtt5 import Mqtt5Binding
from ddastate.config import Config

from .helpers import drain, flush

pytestmark = pytest.mark.timeout(300)

MEMBERS = 3
SCOPES = [Scope.COM, Scope.STA]
TYPES = ["a", "b"]
SHARES = ["", "g1", "g2"]

subscription = st.tuples(
    st.integers(0, MEMBERS - 1),
    st.sampled_from(SCOPES),
    st.sampled_from(TYPES),
    st.sampled_from(SHARES),
)
publication = st.tuples(
    st.integers(0, MEMBERS - 1), st.sampled_from(SCOPES), st.sampled_from(TYPES)
)
scenario = st.tuples(
    st.lists(subscription, min_size=1, max_size=8, unique=True),
    st.lists(publication, min_size=1, max_size=12),
)

_seq = itertools.count()


async def _run(protocol: str, url: str, subs: list[Any], pubs: list[Any]) -> None:
    cluster = f"model{next(_seq)}"
    bus = LoopbackBus()
    members: list[Any] = []
    for _ in range(MEMBERS):
        cfg = Config()
        cfg.cluster = cluster
        cfg.services.com.url = url
        b: Any = LoopbackBinding(bus) if protocol == "loopback" else Mqtt5Binding()
        await b.open(cfg)
        members.append(b)
    try:
        handles = []
        for m, scope, typ, share in subs:
            s = await members[m].subscribe_event(SubscriptionFilter(scope, typ, share))
            handles.append(((m, scope, typ, share), s))
        for i, (m, scope, typ) in enumerate(pubs):
            await members[m].publish_event(Event(typ, str(i), f"m{m}"), scope)
        await flush(*members)
        got = {key: sorted(int(e.id) for e in drain(s)) for key, s in handles}
        for key, ids in got.items():
            _, scope, typ, share = key
            expected = [i for i, (_, ps, pt) in enumerate(pubs) if (ps, pt) == (scope, typ)]
            if not share:
                assert ids == expected, (protocol, key)
        groups: dict[tuple[Any, ...], Counter[int]] = {}
        for key, ids in got.items():
            _, scope, typ, share = key
            if share:
                groups.setdefault((scope, typ, share), Counter()).update(ids)
        for (scope, typ, _share), counts in groups.items():
            expected = [i for i, (_, ps, pt) in enumerate(pubs) if (ps, pt) == (scope, typ)]
            assert sorted(counts.elements()) == expected, (protocol, scope, typ, counts)
    finally:
        for b in members:
            await b.close()


def _check_scenarios(run: Any, protocol: str, url: str, examples: int) -> None:
    """Run ``run(protocol, url, subs, pubs)`` on hypothesis-drawn scenarios."""

    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(scenario)
    def check(sc: tuple[list[Any], list[Any]]) -> None:
        asyncio.run(run(protocol, url, *sc))

    check()


@pytest.mark.parametrize("protocol", ["loopback", pytest.param("mqtt5", marks=pytest.mark.mqtt)])
def test_random_scenarios_match_the_model(protocol: str, mosquitto_session: Any) -> None:
    _check_scenarios(_run, protocol, mosquitto_session.url, 60 if protocol == "mqtt5" else 200)


async def _run_actions(protocol: str, url: str, subs: list[Any], pubs: list[Any]) -> None:
    from ddastate.com.api import Action, ActionResult

    cluster = f"amodel{next(_seq)}"
    bus = LoopbackBus()
    members: list[Any] = []
    for _ in range(MEMBERS):
        cfg = Config()
        cfg.cluster = cluster
        cfg.services.com.url = url
        b: Any = LoopbackBinding(bus) if protocol == "loopback" else Mqtt5Binding()
        await b.open(cfg)
        members.append(b)
    try:
        for n, (m, scope, typ, share) in enumerate(subs):
            await members[m].subscribe_action(
                SubscriptionFilter(scope, typ, share),
                handler=lambda awc, n=n: awc.send(ActionResult(str(n), awc.action.params)),
            )
        streams = []
        for i, (m, scope, typ) in enumerate(pubs):
            action = Action(typ, str(i), f"m{m}", str(i).encode())
            streams.append(await members[m].publish_action(action, scope, timeout=60))
        await flush(*members)
        await flush(*members)
        for i, ((_, scope, typ), stream) in enumerate(zip(pubs, streams, strict=True)):
            results = drain(stream)
            await stream.aclose()
            assert all(r.data == str(i).encode() for r in results)  # only its own results
            answered_by = Counter(int(r.context) for r in results)
            plain = {n for n, s in enumerate(subs) if s[1:3] == (scope, typ) and not s[3]}
            groups = {s[3] for s in subs if s[1:3] == (scope, typ) and s[3]}
            assert {n for n in answered_by if not subs[n][3]} == plain, (protocol, i)
            assert all(answered_by[n] == 1 for n in plain)
            for g in groups:
                in_group = [n for n in answered_by if subs[n][1:4] == (scope, typ, g)]
                assert sum(answered_by[n] for n in in_group) == 1, (protocol, i, g)
    finally:
        for b in members:
            await b.close()


@pytest.mark.parametrize("protocol", ["loopback", pytest.param("mqtt5", marks=pytest.mark.mqtt)])
def test_random_action_scenarios_match_the_model(protocol: str, mosquitto_session: Any) -> None:
    _check_scenarios(
        _run_actions, protocol, mosquitto_session.url, 40 if protocol == "mqtt5" else 150
    )

"""ddastate.com.api types and the ddastate.com.new factory."""

from __future__ import annotations

from typing import Any

import pytest

import ddastate.com
from ddastate.com.api import (
    ComApi,
    Event,
    InvalidNameError,
    Scope,
    SubscriptionFilter,
    validate_name,
    validate_non_empty,
)
from ddastate.com.loopback import LoopbackBinding, LoopbackBus
from ddastate.com.mqtt5 import Mqtt5Binding
from ddastate.config import ConfigError


def test_scope() -> None:
    assert Scope.of("") is Scope.COM
    assert Scope.of(None) is Scope.COM
    assert Scope.of("sta") is Scope.STA
    assert Scope.of(Scope.SDC) is Scope.SDC
    assert Scope.COM == "com" and str(Scope.STA) == "sta"
    with pytest.raises(ValueError, match="unknown scope"):
        Scope.of("xyz")


def test_subscription_filter_normalizes_scope() -> None:
    f = SubscriptionFilter("", "t")
    assert f.scope is Scope.COM and f.type == "t" and f.share == ""
    assert SubscriptionFilter("sta", "t", "g").scope is Scope.STA


def test_name_rules() -> None:
    for ok in ("a", "A-b_c.9", "rpc0f1e2d3c-aaaa-4bbb-8ccc-111122223333"):
        validate_name(ok, "Event", "Type")
    for bad in ("", "a b", "a/b", "+", "#", "é", "a\n"):
        with pytest.raises(InvalidNameError, match=r"invalid Event Type .*must only contain"):
            validate_name(bad, "Event", "Type")
    with pytest.raises(InvalidNameError, match="must not be empty"):
        validate_non_empty("", "Event", "Id")
    validate_non_empty("any thing/at all", "Event", "Id")


def test_factory() -> None:
    assert isinstance(ddastate.com.new("mqtt5"), Mqtt5Binding)
    bus = LoopbackBus()
    lb = ddastate.com.new("loopback", bus)
    assert isinstance(lb, LoopbackBinding) and lb.bus is bus
    assert isinstance(lb, ComApi) and isinstance(Mqtt5Binding(), ComApi)
    with pytest.raises(ConfigError, match="unknown protocol 'amqp'"):
        ddastate.com.new("amqp")


async def test_handler_subscription_cannot_be_iterated(loopback_factory: Any) -> None:
    a = await loopback_factory.open()
    sub = await a.subscribe_event(SubscriptionFilter(Scope.COM, "h"), handler=lambda e: None)
    with pytest.raises(TypeError, match="handler"):
        await sub.__anext__()
    await sub.aclose()


async def test_get_with_timeout(loopback_factory: Any) -> None:
    a = await loopback_factory.open()
    sub = await a.subscribe_event(SubscriptionFilter(Scope.COM, "g"))
    with pytest.raises(TimeoutError):
        await sub.get(0.01)
    await a.publish_event(Event("g", "1", "a"))
    assert (await sub.get(5)).id == "1"
    sub.close()
    with pytest.raises(StopAsyncIteration):
        await sub.get()


async def test_not_open(loopback_factory: Any) -> None:
    from ddastate.com.api import Action, ComNotOpenError

    b = loopback_factory.binding()
    with pytest.raises(ComNotOpenError):
        await b.publish_event(Event("t", "1", "a"))
    with pytest.raises(ComNotOpenError):
        await b.request_action(Action("t", "1", "a"))
    await b.close()  # closing an unopened binding is harmless


async def test_open_com(mosquitto_session: Any) -> None:
    from ddastate.config import Config

    cfg = Config()
    cfg.services.com.protocol = "loopback"
    com = await ddastate.com.open_com(cfg)
    assert isinstance(com, LoopbackBinding) and com.is_open
    await com.close()
    cfg.services.com.protocol = "mqtt5"
    cfg.services.com.url = mosquitto_session.url
    com = await ddastate.com.open_com(cfg)
    assert isinstance(com, Mqtt5Binding) and com.connected
    await com.close()

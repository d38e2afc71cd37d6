"""Helpers for communication tests."""

from __future__ import annotations

from typing import Any

from ddastate.com.api import Action, ActionResult, ActionWithCallback, Scope, SubscriptionFilter

_barrier_subs: dict[int, Any] = {}


async def flush(*bindings: Any, via: Any = None) -> None:
    """Wait until everything sent to each binding before this call was processed.

    A round trip from a binding to itself through the bus or broker: messages to
    one client are delivered in order, so when its own reply is back, every
    earlier message to it has been dispatched. No sleeping. A binding with
    noLocal set cannot answer itself: pass another open binding as ``via``.
    """
    for b in bindings:
        responder = via if via is not None else b
        typ = await _barrier_type(responder)
        await b.request_action(Action(typ, "flush", b.identity()), Scope.SDC, timeout=10.0)


async def _barrier_type(b: Any) -> str:
    key = id(b)
    if key not in _barrier_subs or _barrier_subs[key][0] is not b:
        typ = f"barrier-{b.identity()}"

        def answer(awc: ActionWithCallback) -> None:
            awc.send(ActionResult("barrier"))

        sub = await b.subscribe_action(SubscriptionFilter(Scope.SDC, typ), handler=answer)
        _barrier_subs[key] = (b, sub, typ)
    return str(_barrier_subs[key][2])


def drain(sub: Any) -> list[Any]:
    """Items already buffered in an iterator subscription (non-blocking)."""
    items = list(sub._items)
    sub._items.clear()
    return items

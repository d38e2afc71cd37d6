"""request_action_callback (the request the Raft transport sends from callbacks) and
the correlation data every request carries; run on the loopback bus and on Mosquitto."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from ddastate.com._core import _Uuid4Source
from ddastate.com.api import (
    Action,
    ActionResult,
    ComClosedError,
    Scope,
    SubscriptionFilter,
)

pytestmark = pytest.mark.timeout(60)


class _Outcomes:
    """Collects callback outcomes; ``wait(n)`` returns once n have arrived."""

    def __init__(self) -> None:
        self.items: list[tuple[Any, BaseException | None]] = []
        self._changed = asyncio.Event()

    def __call__(self, result: Any, error: BaseException | None) -> None:
        self.items.append((result, error))
        self._changed.set()

    async def wait(self, n: int) -> list[tuple[Any, BaseException | None]]:
        while len(self.items) < n:
            self._changed.clear()
            await asyncio.wait_for(self._changed.wait(), 10)
        return self.items


async def _requester_and_echo(com_factory: Any) -> Any:
    """Opens two bindings: the second answers ``echo`` actions with their params."""
    a = await com_factory.open()
    b = await com_factory.open()
    await b.subscribe_action(
        SubscriptionFilter(Scope.STA, "echo"),
        handler=lambda awc: awc.send(ActionResult("b", awc.action.params)),
    )
    return a


async def test_callback_request_reports_each_result_once(com_factory: Any) -> None:
    a = await _requester_and_echo(com_factory)
    outcomes = [_Outcomes() for _ in range(20)]
    for i, out in enumerate(outcomes):
        a.request_action_callback(Action("echo", f"r{i}", "a", b"%d" % i), Scope.STA, 5, out)
    for i, out in enumerate(outcomes):
        [(result, error)] = await out.wait(1)
        assert error is None and result.data == b"%d" % i and result.context == "b"
    assert a._pending == {}


async def test_callback_request_times_out(com_factory: Any) -> None:
    a = await com_factory.open()
    out = _Outcomes()
    a.request_action_callback(Action("nobody", "x", "a"), Scope.COM, 0.05, out)
    [(result, error)] = await out.wait(1)
    assert result is None and isinstance(error, TimeoutError)
    assert a._pending == {}


async def test_callback_request_fails_when_the_binding_closes(com_factory: Any) -> None:
    a = await com_factory.open()
    out = _Outcomes()
    a.request_action_callback(Action("nobody", "x", "a"), Scope.COM, 30, out)
    await a.close()
    [(result, error)] = await out.wait(1)
    assert result is None and isinstance(error, ComClosedError)


async def test_forgotten_callback_request_reports_nothing(com_factory: Any) -> None:
    a = await com_factory.open()
    b = await com_factory.open()
    answered = _Outcomes()
    await b.subscribe_action(
        SubscriptionFilter(Scope.STA, "late"),
        handler=lambda awc: awc.send(ActionResult("b")),
    )
    silent = _Outcomes()
    forget = a.request_action_callback(Action("late", "1", "a"), Scope.STA, 0.05, silent)
    forget()
    assert a._pending == {}
    # a later request to the same responder is answered after the forgotten one, and
    # a request with a longer timeout expires after the forgotten one's would have
    a.request_action_callback(Action("late", "2", "a"), Scope.STA, 5, answered)
    later = _Outcomes()
    a.request_action_callback(Action("nobody", "3", "a"), Scope.COM, 0.1, later)
    await answered.wait(1)
    [(_, error)] = await later.wait(1)
    assert isinstance(error, TimeoutError)
    assert silent.items == []  # neither its result nor its timeout reached the callback


async def test_failing_callback_does_not_break_the_receive_path(com_factory: Any) -> None:
    a = await _requester_and_echo(com_factory)

    def broken(result: Any, error: BaseException | None) -> None:
        raise RuntimeError("callback bug")

    a.request_action_callback(Action("echo", "1", "a", b"1"), Scope.STA, 5, broken)
    out = _Outcomes()
    a.request_action_callback(Action("echo", "2", "a", b"2"), Scope.STA, 5, out)
    [(result, error)] = await out.wait(1)
    assert error is None and result.data == b"2"


def test_correlation_data_is_a_fresh_uuid4_string() -> None:
    src = _Uuid4Source()
    seen = set()
    for _ in range(3 * _Uuid4Source._BATCH + 7):  # crosses refills of the random buffer
        corr = src.new()
        assert len(corr) == 36
        u = uuid.UUID(corr.decode())
        assert u.version == 4 and u.variant == uuid.RFC_4122
        assert str(u).encode() == corr  # canonical lower-case form
        seen.add(corr)
    assert len(seen) == 3 * _Uuid4Source._BATCH + 7


def test_forked_child_draws_fresh_correlation_data() -> None:
    import os

    from ddastate.com._core import _correlation

    _correlation.new()  # the buffer holds unread random bytes now
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next correlation data, then exit at once
        os.write(w, _correlation.new())
        os._exit(0)
    os.close(w)
    child = os.read(r, 64)
    os.close(r)
    os.waitpid(pid, 0)
    assert len(child) == 36
    assert child != _correlation.new()  # without the reset both would take the same bytes


async def test_requests_due_together_share_one_expiry_timer(com_factory: Any) -> None:
    """Requests are expired by millisecond buckets, one loop timer each, not a timer per
    request; each still fails with TimeoutError, and not before its timeout."""
    a = await com_factory.open()
    loop = asyncio.get_running_loop()
    outs = [_Outcomes() for _ in range(200)]
    sent_at = loop.time()
    futures = []
    expired_at: list[float] = []
    for i, out in enumerate(outs):
        a.request_action_callback(Action("nobody", f"c{i}", "a"), Scope.COM, 0.2, out)
        f = asyncio.ensure_future(a.request_action(Action("nobody", f"f{i}", "a"), Scope.COM, 0.2))
        f.add_done_callback(lambda _: expired_at.append(loop.time()))
        futures.append(f)
    await asyncio.sleep(0)  # the coroutine requests start
    buckets = a._deadlines._buckets
    assert sum(len(b) for b in buckets.values()) == 400
    assert len(buckets) <= 50  # 400 requests issued within a few milliseconds
    for out in outs:
        [(result, error)] = await out.wait(1)
        assert result is None and isinstance(error, TimeoutError)
    for f in futures:
        with pytest.raises(TimeoutError):
            await f
    await asyncio.gather(*futures, return_exceptions=True)
    assert len(expired_at) == 200 and min(expired_at) - sent_at >= 0.2
    assert a._pending == {} and not a._deadlines._buckets

"""The node's futures: error() reports the operation's outcome, and never swallows
a cancellation of its caller."""

from __future__ import annotations

import asyncio

import pytest

from ddastate.raft.errors import NotLeaderError
from ddastate.raft.futures import ApplyFuture, RaftFuture


async def test_error_is_none_on_success_and_the_error_otherwise() -> None:
    ok: RaftFuture[int] = RaftFuture()
    ok.set_result(1)
    assert await ok.error() is None
    failed = ApplyFuture()
    failed.set_exception(NotLeaderError())
    assert isinstance(await failed.error(), NotLeaderError)


async def test_error_of_a_cancelled_operation_is_a_cancelled_error() -> None:
    f: RaftFuture[None] = RaftFuture()
    waiting = asyncio.ensure_future(f.error())
    await asyncio.sleep(0)  # the waiter is parked on the future
    f.cancel()
    assert isinstance(await waiting, asyncio.CancelledError)


async def test_caller_cancelled_together_with_the_operation_stays_cancelled() -> None:
    f: RaftFuture[None] = RaftFuture()
    waiting = asyncio.ensure_future(f.error())
    await asyncio.sleep(0)
    f.cancel()  # the operation ends...
    waiting.cancel()  # ...and its caller is cancelled in the same loop pass
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert waiting.cancelled()

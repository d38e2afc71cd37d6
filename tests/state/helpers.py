"""Shared helpers of the state binding tests."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any, TypeVar

from ddastate.config import Config

T = TypeVar("T")


def make_cfg(
    *,
    cluster: str = "dda",
    node_id: str | None = None,
    url: str = "",
    protocol: str = "loopback",
    bootstrap: bool = False,
    store: str = "",
    opts: dict[str, Any] | None = None,
) -> Config:
    """A Config for one member: its own id, the com service and the state service."""
    cfg = Config()
    cfg.cluster = cluster
    cfg.identity.id = node_id or str(uuid.uuid4())
    cfg.services.com.protocol = protocol
    if url:
        cfg.services.com.url = url
    cfg.services.state.disabled = False
    cfg.services.state.bootstrap = bootstrap
    cfg.services.state.store = store
    cfg.services.state.opts = dict(opts or {})
    return cfg


async def next_item(it: AsyncIterator[T], timeout: float = 10.0) -> T:
    """The next item of an async iterator; fails the test if none comes in ``timeout``."""
    return await asyncio.wait_for(it.__anext__(), timeout)


async def no_item(it: Any, quiet: float = 0.2) -> None:
    """Assert that ``it`` yields nothing more within ``quiet`` seconds (nothing queued)."""
    try:
        item = await asyncio.wait_for(it.__anext__(), quiet)
    except (TimeoutError, StopAsyncIteration):
        return
    raise AssertionError(f"unexpected item {item!r}")


class Group:
    """Members of one state group, each with its own com binding (from a ComFactory)."""

    def __init__(self, factory: Any) -> None:
        self.factory = factory
        self.members: list[Any] = []

    async def member(
        self,
        *,
        bootstrap: bool = False,
        opts: dict[str, Any] | None = None,
        store: str = "",
        node_id: str | None = None,
    ) -> Any:
        """Open a new member (a RaftBinding on its own com binding) and return it."""
        from ddastate.state.raft import RaftBinding

        cfg = self.factory.config()
        if node_id:
            cfg.identity.id = node_id
        cfg.services.state.disabled = False
        cfg.services.state.bootstrap = bootstrap
        cfg.services.state.store = store
        cfg.services.state.opts = dict(opts or {})
        com = await self.factory.open(cfg)
        b = RaftBinding()
        await b.open(cfg, com)
        b.test_cfg = cfg  # type: ignore[attr-defined]
        b.test_com = com  # type: ignore[attr-defined]
        self.members.append(b)
        return b

    async def close_all(self) -> None:
        for b in self.members:
            try:
                await asyncio.wait_for(b.close(), 10)
            except Exception:
                pass


async def converged(members: list[Any], must_have: str, timeout: float = 30) -> dict[str, bytes]:
    """Wait until every member's FSM holds ``must_have`` and all states are equal."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        states = [m.fsm().state() for m in members]
        if all(must_have in s for s in states) and all(s == states[0] for s in states):
            return states[0]  # type: ignore[no-any-return]
        if loop.time() > end:
            raise AssertionError(
                f"members did not converge: sizes {[len(s) for s in states]}, "
                f"have {must_have!r}: {[must_have in s for s in states]}"
            )
        await asyncio.sleep(0.01)

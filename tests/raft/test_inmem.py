"""In-memory stores and the in-memory transport with its fault hooks."""

from __future__ import annotations

import asyncio

import pytest

from ddastate.raft.commands import (
    AppendEntriesRequest,
    AppendEntriesResponse,
    RequestVoteRequest,
    RequestVoteResponse,
)
from ddastate.raft.errors import KeyNotFoundError, LogNotFoundError, TransportShutdownError
from ddastate.raft.inmem import InmemLogStore, InmemNetwork, InmemStableStore, InmemTransport
from ddastate.raft.interfaces import RPC
from ddastate.raft.log import Log


def test_log_store_basics() -> None:
    s = InmemLogStore()
    assert (s.first_index(), s.last_index()) == (0, 0)
    s.store_logs([Log(i, 1, data=b"%d" % i) for i in range(1, 11)])
    assert (s.first_index(), s.last_index()) == (1, 10)
    assert s.get_log(5).data == b"5"
    s.delete_range(1, 3)
    assert (s.first_index(), s.last_index()) == (4, 10)
    s.delete_range(8, 10)
    assert (s.first_index(), s.last_index()) == (4, 7)
    with pytest.raises(LogNotFoundError):
        s.get_log(9)
    s.store_log(Log(8, 2))
    assert s.last_index() == 8
    s.delete_range(0, 100)
    assert (s.first_index(), s.last_index()) == (0, 0)


def test_stable_store() -> None:
    s = InmemStableStore()
    with pytest.raises(KeyNotFoundError) as ei:
        s.get(b"CurrentTerm")
    assert str(ei.value) == "not found"
    with pytest.raises(KeyNotFoundError):
        s.get_uint64(b"CurrentTerm")
    s.set_uint64(b"CurrentTerm", 7)
    s.set(b"LastVoteCand", b"n1")
    assert s.get_uint64(b"CurrentTerm") == 7
    assert s.get(b"LastVoteCand") == b"n1"


async def _echo(t: InmemTransport, seen: list[object]) -> None:
    q = t.consumer()
    while True:
        rpc = await q.get()
        seen.append(rpc.command)
        if isinstance(rpc.command, AppendEntriesRequest):
            rpc.respond(AppendEntriesResponse(term=rpc.command.term, success=True))
        else:
            rpc.respond(RequestVoteResponse(term=1, granted=True))


async def _pair(net: InmemNetwork) -> tuple[InmemTransport, InmemTransport, list[object]]:
    a = net.transport("a")
    b = net.transport("b")
    seen: list[object] = []
    task = asyncio.create_task(_echo(b, seen))
    task.add_done_callback(lambda _t: None)
    _tasks.append(task)
    return a, b, seen


_tasks: list[asyncio.Task[None]] = []


@pytest.fixture(autouse=True)
async def _cleanup() -> object:
    yield
    for t in _tasks:
        t.cancel()
    _tasks.clear()


async def test_request_response_and_order() -> None:
    net = InmemNetwork(seed=1)
    a, _b, seen = await _pair(net)
    resps = await asyncio.gather(
        *(a.append_entries("b", "b", AppendEntriesRequest(term=i + 1)) for i in range(50))
    )
    assert [r.term for r in resps] == list(range(1, 51))
    assert [c.term for c in seen] == list(range(1, 51))  # type: ignore[attr-defined]


async def test_cut_link_fails_fast_and_heals() -> None:
    net = InmemNetwork(seed=1)
    a, _b, _seen = await _pair(net)
    net.disconnect("a", "b")
    with pytest.raises(ConnectionError):
        await a.request_vote("b", "b", RequestVoteRequest(term=1))
    net.heal()
    r = await a.request_vote("b", "b", RequestVoteRequest(term=1))
    assert r.granted


async def test_partition_groups() -> None:
    net = InmemNetwork(seed=1)
    a, _b, _seen = await _pair(net)
    c = net.transport("c")
    net.partition(["a"], ["b", "c"])
    assert net.link("a", "b").cut and net.link("c", "a").cut
    assert not net.link("b", "c").cut
    with pytest.raises(ConnectionError):
        await a.request_vote("b", "b", RequestVoteRequest(term=1))
    await c.close()


async def test_lossy_link_times_out() -> None:
    net = InmemNetwork(seed=1, rpc_timeout=0.05)
    a, _b, seen = await _pair(net)
    net.set_loss("a", "b", 1.0, both=False)
    with pytest.raises(TimeoutError):
        await a.request_vote("b", "b", RequestVoteRequest(term=1))
    assert seen == []


async def test_duplicating_link_delivers_twice_answers_once() -> None:
    net = InmemNetwork(seed=1)
    a, _b, seen = await _pair(net)
    net.set_duplicate("a", "b", 1.0)
    r = await a.append_entries("b", "b", AppendEntriesRequest(term=3))
    assert r.term == 3
    await asyncio.sleep(0)
    assert len(seen) == 2


async def test_delay_keeps_order() -> None:
    net = InmemNetwork(seed=1)
    a, _b, seen = await _pair(net)
    net.set_delay("a", "b", 0.01)
    await asyncio.gather(
        *(a.append_entries("b", "b", AppendEntriesRequest(term=i + 1)) for i in range(10))
    )
    assert [c.term for c in seen] == list(range(1, 11))  # type: ignore[attr-defined]


async def test_unknown_peer_and_closed_transport() -> None:
    net = InmemNetwork(seed=1)
    a = net.transport("a")
    b = net.transport("b")
    with pytest.raises(ConnectionError):
        await a.request_vote("zz", "zz", RequestVoteRequest(term=1))
    pending = asyncio.ensure_future(a.request_vote("b", "b", RequestVoteRequest(term=1)))
    await asyncio.sleep(0)
    await b.close()
    with pytest.raises(TransportShutdownError):
        await pending
    with pytest.raises(ConnectionError):
        await a.request_vote("b", "b", RequestVoteRequest(term=1))
    await a.close()
    with pytest.raises(TransportShutdownError):
        await a.request_vote("b", "b", RequestVoteRequest(term=1))


async def test_heartbeat_fast_path_and_inject() -> None:
    net = InmemNetwork(seed=1)
    a = net.transport("a")
    b = net.transport("b")
    got: list[RPC] = []

    def hb(rpc: RPC) -> None:
        got.append(rpc)
        rpc.respond(AppendEntriesResponse(term=5, success=True))

    b.set_heartbeat_handler(hb)
    r = await a.append_entries("b", "b", AppendEntriesRequest(term=5, addr=b"a", leader=b"a"))
    assert r.success and len(got) == 1
    assert b.consumer().empty()
    fut = b.inject("garbage")
    rpc = b.consumer().get_nowait()
    assert rpc.command == "garbage"
    rpc.respond(None, ValueError("bad"))
    with pytest.raises(ValueError):
        await fut

"""RaftTransport over the loopback bus: WIRE.md section 2."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncIterator

import msgpack
import pytest

from ddastate.com.api import Action, ActionResult, Scope
from ddastate.com.loopback import LoopbackBinding, LoopbackBus
from ddastate.raft.commands import (
    AppendEntriesRequest,
    AppendEntriesResponse,
    InstallSnapshotRequest,
    InstallSnapshotResponse,
    RequestVoteRequest,
    RequestVoteResponse,
    TimeoutNowRequest,
    TimeoutNowResponse,
)
from ddastate.raft.errors import (
    LeadershipLostError,
    LeadershipTransferInProgressError,
    NotLeaderError,
    RaftError,
    TransportShutdownError,
)
from ddastate.raft.interfaces import RPC
from ddastate.raft.log import Log
from ddastate.state.raft import codec
from ddastate.state.raft.messages import (
    AddVoterRequest,
    AddVoterResponse,
    ApplyRequest,
    ApplyResponse,
    RemoveServerRequest,
    RpcReply,
)
from ddastate.state.raft.transport import (
    LfwRejectedError,
    LfwRPC,
    RaftTransport,
    RaftTransportConfig,
    RpcError,
)

from .helpers import converged, make_cfg


class Member:
    def __init__(self, com: LoopbackBinding, transport: RaftTransport) -> None:
        self.com = com
        self.t = transport
        self.id = transport.local_addr()


@pytest.fixture
async def members() -> AsyncIterator[list[Member]]:
    bus = LoopbackBus(seed=1)
    out: list[Member] = []
    for name in ("a", "b", "c"):
        com = LoopbackBinding(bus)
        await com.open(make_cfg(node_id=f"node-{name}"))
        t = RaftTransport(RaftTransportConfig(timeout=0.3), f"node-{name}", com)
        await t.start()
        out.append(Member(com, t))
    yield out
    for m in out:
        await m.t.close()
        await m.com.close()


async def serve_one(t: RaftTransport, resp: object) -> RPC:
    rpc = await asyncio.wait_for(t.consumer().get(), 5)
    rpc.respond(resp)  # type: ignore[arg-type]
    return rpc


def ae(term: int = 2, prev: int = 4, entries: list[Log] | None = None) -> AppendEntriesRequest:
    return AppendEntriesRequest(
        term=term,
        leader=b"node-a",
        prev_log_entry=prev,
        prev_log_term=1,
        entries=entries,
        leader_commit_index=prev,
        id=b"node-a",
        addr=b"node-a",
    )


async def test_append_entries_round_trip(members: list[Member]) -> None:
    a, b, _ = members
    req = ae(entries=[Log(index=5, term=2, data=b"x", appended_at=1_700_000_000_123_456_789)])
    want = AppendEntriesResponse(term=2, last_log=5, success=True, id=b"node-b", addr=b"node-b")
    server = asyncio.create_task(serve_one(b.t, want))
    got = await a.t.append_entries("node-b", "node-b", req)
    rpc = await server
    assert got == want
    assert rpc.command == req


async def test_vote_timeout_now_and_install_snapshot(members: list[Member]) -> None:
    a, b, _ = members
    rv = RequestVoteRequest(term=3, candidate=b"node-a", last_log_index=9, last_log_term=2)
    server = asyncio.create_task(serve_one(b.t, RequestVoteResponse(term=3, granted=True)))
    assert (await a.t.request_vote("node-b", "node-b", rv)).granted
    assert (await server).command == rv

    server = asyncio.create_task(serve_one(b.t, TimeoutNowResponse()))
    assert isinstance(
        await a.t.timeout_now("node-b", "node-b", TimeoutNowRequest()), TimeoutNowResponse
    )
    await server

    blob = bytes(range(256)) * 40
    isr = InstallSnapshotRequest(
        term=3,
        leader=b"node-a",
        last_log_index=100,
        last_log_term=3,
        configuration=b"\x81\xa7Servers\x90",
        configuration_index=1,
        size=len(blob),
    )
    server = asyncio.create_task(serve_one(b.t, InstallSnapshotResponse(term=3, success=True)))
    resp = await a.t.install_snapshot("node-b", "node-b", isr, io.BytesIO(blob))
    assert resp.success
    rpc = await server
    assert rpc.command == isr
    assert rpc.reader is not None and rpc.reader.read() == blob


async def test_heartbeat_fast_path(members: list[Member]) -> None:
    a, b, _ = members
    seen: list[RPC] = []

    def hb(rpc: RPC) -> None:
        seen.append(rpc)
        rpc.respond(AppendEntriesResponse(term=5, success=True))

    b.t.set_heartbeat_handler(hb)
    hb_req = AppendEntriesRequest(term=5, leader=b"node-a", id=b"node-a", addr=b"node-a")
    assert hb_req.is_heartbeat()
    resp = await a.t.append_entries("node-b", "node-b", hb_req)
    assert resp.success and len(seen) == 1
    assert b.t.consumer().empty()
    # a non-heartbeat AE still goes to the consumer
    server = asyncio.create_task(serve_one(b.t, AppendEntriesResponse(term=5)))
    await a.t.append_entries("node-b", "node-b", ae(term=5))
    await server
    assert len(seen) == 1


async def test_error_reply_raises_rpc_error(members: list[Member]) -> None:
    a, b, _ = members

    async def fail() -> None:
        rpc = await b.t.consumer().get()
        rpc.respond(None, RaftError("disk on fire"))

    server = asyncio.create_task(fail())
    with pytest.raises(RpcError, match="disk on fire") as ei:
        await a.t.append_entries("node-b", "node-b", ae())
    assert not ei.value.retryable
    await server


async def test_unanswered_request_times_out(members: list[Member]) -> None:
    a, b, _ = members
    with pytest.raises(TimeoutError):
        await a.t.request_vote("node-b", "node-b", RequestVoteRequest(term=1))
    # the request did arrive; answering late is harmless
    rpc = b.t.consumer().get_nowait()
    rpc.respond(RequestVoteResponse(term=1))
    with pytest.raises(TimeoutError):
        await a.t.request_vote("node-c", "node-nobody", RequestVoteRequest(term=1))


async def test_append_entries_arrive_in_send_order(members: list[Member]) -> None:
    a, b, _ = members
    n = 300
    sends = [
        asyncio.create_task(a.t.append_entries("node-b", "node-b", ae(prev=i)))
        for i in range(1, n + 1)
    ]
    order: list[int] = []
    for _ in range(n):
        rpc = await asyncio.wait_for(b.t.consumer().get(), 5)
        assert isinstance(rpc.command, AppendEntriesRequest)
        order.append(rpc.command.prev_log_entry)
        rpc.respond(AppendEntriesResponse(term=2, last_log=rpc.command.prev_log_entry))
    assert order == list(range(1, n + 1))
    got = await asyncio.gather(*sends)
    assert [r.last_log for r in got] == list(range(1, n + 1))


async def test_replies_do_not_wait_for_each_other(members: list[Member]) -> None:
    """A slow AE (e.g. waiting for a disk write) does not hold back the vote behind it."""
    a, b, _ = members
    slow = asyncio.create_task(a.t.append_entries("node-b", "node-b", ae()))
    first = await asyncio.wait_for(b.t.consumer().get(), 5)
    vote = asyncio.create_task(a.t.request_vote("node-b", "node-b", RequestVoteRequest(term=9)))
    second = await asyncio.wait_for(b.t.consumer().get(), 5)
    second.respond(RequestVoteResponse(term=9, granted=True))
    assert (await vote).granted
    assert not slow.done()
    first.respond(AppendEntriesResponse(term=2, success=True))
    assert (await slow).success


async def test_closed_transport_refuses_to_send(members: list[Member]) -> None:
    a, _, _ = members
    await a.t.close()
    await a.t.close()  # idempotent
    with pytest.raises(TransportShutdownError):
        await a.t.append_entries("node-b", "node-b", ae())


# ----------------------------------------------------------------- leader forwarding


def leader(t: RaftTransport, answer: object) -> list[LfwRPC]:
    """Make ``t`` act as a leader answering every lfw request with ``answer``."""
    got: list[LfwRPC] = []

    def handler(rpc: LfwRPC) -> None:
        got.append(rpc)
        if isinstance(answer, BaseException):
            rpc.respond(None, answer)
        else:
            rpc.respond(answer)  # type: ignore[arg-type]

    t.set_lfw_handler(handler, gate=lambda: True)
    return got


def follower(t: RaftTransport) -> list[LfwRPC]:
    got: list[LfwRPC] = []

    def handler(rpc: LfwRPC) -> None:
        got.append(rpc)

    t.set_lfw_handler(handler, gate=lambda: False)
    return got


async def test_lfw_only_the_leader_answers(members: list[Member]) -> None:
    a, b, c = members
    own = leader(a.t, ApplyResponse(index=99))  # a would answer, but must ignore its own broadcast
    on_b = leader(b.t, ApplyResponse(index=7))
    on_c = follower(c.t)
    resp = await a.t.lfw_apply(ApplyRequest(command=b"cmd", timeout=0), 1.0)
    assert resp == ApplyResponse(index=7, response=None)
    assert own == [] and on_c == []
    assert len(on_b) == 1 and on_b[0].command == ApplyRequest(command=b"cmd", timeout=0)
    assert on_b[0].source == "node-a"

    resp2 = await a.t.lfw_add_voter(AddVoterRequest("node-a", "node-a", 0), 1.0)
    assert resp2 == AddVoterResponse(index=0) or isinstance(resp2, AddVoterResponse)


async def test_lfw_without_leader_times_out(members: list[Member]) -> None:
    a, b, c = members
    follower(b.t)
    follower(c.t)
    with pytest.raises(TimeoutError):
        await a.t.lfw_remove_server(RemoveServerRequest("node-a", 0), 0.3)


@pytest.mark.parametrize(
    ("error", "answered", "retryable"),
    [
        (LeadershipLostError(), True, True),
        (LeadershipTransferInProgressError(), True, True),
        (LfwRejectedError("input does not decode"), True, False),
        (NotLeaderError(), False, False),
        (RaftError("something else"), False, False),
    ],
)
async def test_lfw_error_reply_rules(
    members: list[Member], error: BaseException, answered: bool, retryable: bool
) -> None:
    a, b, c = members
    leader(b.t, error)
    follower(c.t)
    if not answered:
        with pytest.raises(TimeoutError):
            await a.t.lfw_apply(ApplyRequest(command=b"x"), 0.3)
        return
    with pytest.raises(RpcError) as ei:
        await a.t.lfw_apply(ApplyRequest(command=b"x"), 1.0)
    assert ei.value.retryable is retryable
    msg = str(ei.value)
    assert msg.startswith("retryable error: ") is retryable
    assert str(error) in msg


async def test_lfw_apply_then_reports_once_from_the_receive_path(members: list[Member]) -> None:
    a, b, c = members
    assert a.t.can_call_back
    on_b = leader(b.t, ApplyResponse(index=7))
    follower(c.t)
    out = _Outcome()
    a.t.lfw_apply_then(ApplyRequest(command=b"cmd"), 1.0, out)
    assert await out.future == ApplyResponse(index=7, response=None)
    assert [r.command for r in on_b] == [ApplyRequest(command=b"cmd")]
    assert not a.com._pending  # answered: nothing left waiting

    leader(b.t, LeadershipLostError())
    out = _Outcome()
    a.t.lfw_apply_then(ApplyRequest(command=b"x"), 1.0, out)
    with pytest.raises(RpcError) as ei:
        await out.future
    assert ei.value.retryable

    follower(b.t)
    out = _Outcome()
    a.t.lfw_apply_then(ApplyRequest(command=b"x"), 0.2, out)
    with pytest.raises(TimeoutError):
        await out.future
    assert not a.com._pending


async def test_lfw_apply_then_forgotten_request_is_dropped(members: list[Member]) -> None:
    a, b, c = members
    follower(b.t)
    follower(c.t)
    out = _Outcome()
    forget = a.t.lfw_apply_then(ApplyRequest(command=b"x"), 30.0, out)
    assert len(a.com._pending) == 1
    forget()
    assert not a.com._pending  # no reply, no timer: the callback can no longer run
    assert not out.future.done()


async def test_lfw_rpc_response_future_is_made_on_demand() -> None:
    replies: list[tuple[object, object]] = []
    rpc = LfwRPC(ApplyRequest(command=b"x"), "node-a", reply=lambda r, e: replies.append((r, e)))
    rpc.respond(ApplyResponse(index=3))
    rpc.respond(ApplyResponse(index=4))  # a second answer is ignored
    assert rpc.response.result() == ApplyResponse(index=3)
    assert replies == [(ApplyResponse(index=3), None)]

    waiting = LfwRPC(ApplyRequest(command=b"x"), "node-a")
    fut = waiting.response
    assert not fut.done()
    waiting.respond(None, NotLeaderError())
    assert waiting.response is fut and isinstance(fut.exception(), NotLeaderError)

    given_up = LfwRPC(ApplyRequest(command=b"x"), "node-a", reply=lambda r, e: replies.append(r))
    given_up.response.cancel()
    given_up.respond(ApplyResponse(index=5))  # its consumer gave up: no reply either
    assert len(replies) == 1


async def test_lfw_reply_wire_format(members: list[Member]) -> None:
    """A reply is {Error, Response, Retryable}; Response nil on failure."""
    a, b, c = members
    leader(b.t, LeadershipLostError())
    follower(c.t)
    params = codec.encode_msgpack(ApplyRequest(command=b"x"))
    res = await a.com.request_action(
        Action(type="lfw", id="ap", source="someone-else", params=params), Scope.STA, 1.0
    )
    raw = msgpack.unpackb(res.data, raw=True)
    assert raw == {
        b"Error": b"retryable error: leadership lost while committing log",
        b"Response": None,
        b"Retryable": True,
    }
    assert res.context == "node-b"


# ---------------------------------------------------------------------- bad input


GARBAGE = [
    b"",
    b"\xc1",
    b"\x92\x01",
    b"\x81\xa4Term\xa3abc",
    b"\x89" + b"\xa4Term" * 3,
    b"\xff" * 50,
]


@pytest.mark.parametrize("op", ["ae", "rv", "is", "tn"])
@pytest.mark.parametrize("payload", GARBAGE)
async def test_garbage_rpc_is_answered_with_error(
    members: list[Member], op: str, payload: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    a, b, _ = members
    if op == "tn" and payload in (b"",):
        pytest.skip("an empty TimeoutNow decodes as a valid header-only request in Go too")
    with caplog.at_level(logging.WARNING, logger="ddastate.state.raft.transport"):
        try:
            res = await a.com.request_action(
                Action(type="rpcnode-b", id=op, source="node-a", params=payload), Scope.STA, 0.5
            )
        except TimeoutError:
            res = None
    if res is not None:
        reply = codec.decode_rpc_reply(res.data, AppendEntriesResponse)
        if reply.error == "":
            # it decoded into a (strange but valid) request: the node must answer it
            rpc = b.t.consumer().get_nowait()
            assert rpc is not None
            return
        assert reply.response is None and not reply.retryable
        assert any("does not decode" in r.getMessage() for r in caplog.records)
    else:
        # dropped: it must have been logged, or delivered to the node as a valid request
        assert (
            any("does not decode" in r.getMessage() for r in caplog.records)
            or not b.t.consumer().empty()
        )
    # the transport keeps serving
    server = asyncio.create_task(serve_one(b.t, RequestVoteResponse(term=1, granted=True)))
    while not b.t.consumer().empty():
        b.t.consumer().get_nowait().respond(AppendEntriesResponse())
    assert (await a.t.request_vote("node-b", "node-b", RequestVoteRequest(term=1))).granted
    await server


async def test_unknown_rpc_op_dropped_with_log(
    members: list[Member], caplog: pytest.LogCaptureFixture
) -> None:
    a, _, _ = members
    with (
        caplog.at_level(logging.WARNING, logger="ddastate.state.raft.transport"),
        pytest.raises(TimeoutError),
    ):
        await a.com.request_action(
            Action(type="rpcnode-b", id="zz", source="node-a", params=b"\x80"), Scope.STA, 0.3
        )
    assert any("unknown rpc operation" in r.getMessage() for r in caplog.records)
    assert any("80" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("op", ["ap", "av", "rs"])
@pytest.mark.parametrize("payload", [b"\xc1", b"\x92\x01", b"\x81\xa7Command\x05", b"\xff" * 10])
async def test_garbage_lfw_answered_with_error_by_leader(
    members: list[Member], op: str, payload: bytes
) -> None:
    a, b, c = members
    on_b = leader(b.t, ApplyResponse(index=1))
    follower(c.t)
    res = await a.com.request_action(
        Action(type="lfw", id=op, source="node-a", params=payload), Scope.STA, 1.0
    )
    reply = codec.decode_rpc_reply(res.data, ApplyResponse)
    if reply.error == "":
        # unknown keys are skipped (as Go does): a valid request with empty fields reached
        # the handler, which is the binding's to refuse (see test_binding)
        assert op in ("av", "rs") and len(on_b) == 1
        return
    assert not reply.retryable and reply.response is None
    assert on_b == []


async def test_wrongly_typed_reply_is_an_error(members: list[Member]) -> None:
    a, b, _ = members

    async def bad_answer() -> None:
        sub_rpc = await b.t.consumer().get()
        del sub_rpc

    # answer the request ourselves with a reply that does not decode
    async def handler(awc: object) -> None:
        await awc.callback(ActionResult(context="x", data=b"\x81\xa5Error\x05"))  # type: ignore[attr-defined]

    from ddastate.com.api import SubscriptionFilter

    sub = await b.com.subscribe_action(SubscriptionFilter(Scope.STA, "rpcnode-zz"), handler=handler)
    try:
        with pytest.raises(RpcError, match="does not decode"):
            await a.t.request_vote("node-zz", "node-zz", RequestVoteRequest(term=1))
    finally:
        await sub.aclose()


def test_reply_envelope_round_trip() -> None:
    data = codec.encode_msgpack(
        RpcReply(error="", response=AppendEntriesResponse(term=3), retryable=False)
    )
    assert codec.decode_rpc_reply(data, AppendEntriesResponse).response == AppendEntriesResponse(
        term=3
    )


class _Outcome:
    """The one outcome a call_then reports, awaitable."""

    def __init__(self) -> None:
        self.future: asyncio.Future[object] = asyncio.get_running_loop().create_future()

    def __call__(self, resp: object, error: BaseException | None) -> None:
        assert not self.future.done(), "reported twice"
        if error is not None:
            self.future.set_exception(error)
        else:
            self.future.set_result(resp)


async def test_call_then_used_when_com_offers_request_callbacks() -> None:
    bus = LoopbackBus(seed=2)
    a_com, b_com = LoopbackBinding(bus), LoopbackBinding(bus)
    await a_com.open(make_cfg(node_id="na"))
    await b_com.open(make_cfg(node_id="nb"))
    a = RaftTransport(RaftTransportConfig(timeout=0.3), "na", a_com)
    b = RaftTransport(RaftTransportConfig(timeout=0.3), "nb", b_com)
    await a.start()
    await b.start()
    try:
        assert callable(getattr(a, "call_then", None))
        server = asyncio.create_task(serve_one(b, AppendEntriesResponse(term=2, success=True)))
        out = _Outcome()
        a.call_then("nb", ae(), out)  # type: ignore[attr-defined]
        resp = await out.future
        assert isinstance(resp, AppendEntriesResponse) and resp.success
        await server
        # an error reply and a timeout come back as the reported error
        out = _Outcome()
        a.call_then("nb", RequestVoteRequest(term=1), out)  # type: ignore[attr-defined]
        rpc = await asyncio.wait_for(b.consumer().get(), 5)
        rpc.respond(None, RaftError("no"))
        with pytest.raises(RpcError, match="no"):
            await out.future
        out = _Outcome()
        a.call_then("nobody", TimeoutNowRequest(), out)  # type: ignore[attr-defined]
        with pytest.raises(TimeoutError):
            await out.future
    finally:
        await a.close()
        await b.close()
        await a_com.close()
        await b_com.close()


class CoroutineOnlyLoopback(LoopbackBinding):
    """A loopback binding without request_action_callback, like a com binding that
    implements only the ComApi protocol: the node then sends through tasks."""

    request_action_callback = None  # type: ignore[assignment]


async def test_group_over_a_com_without_request_callbacks() -> None:
    from ddastate.state.api import Input, InputOp
    from ddastate.state.raft import RaftBinding

    bus = LoopbackBus(seed=3)
    ms: list[RaftBinding] = []
    coms: list[CoroutineOnlyLoopback] = []
    try:
        for i in range(3):
            fast = {"heartbeatTimeout": 300, "electionTimeout": 300}
            cfg = make_cfg(node_id=f"g{i}", bootstrap=i == 0, opts=fast)
            com = CoroutineOnlyLoopback(bus)
            await com.open(cfg)
            b = RaftBinding()
            await b.open(cfg, com)
            assert not callable(getattr(b._transport, "call_then", None))
            assert b._transport is not None and not b._transport.can_call_back
            ms.append(b)
            coms.append(com)
        await asyncio.gather(
            *(ms[i % 3].propose_input(Input(InputOp.SET, f"k{i}", b"v"), 30) for i in range(300))
        )
        # every proposal is in every member's state (whoever leads by now)
        assert len(await converged(ms, "k299")) == 300
    finally:
        for b in ms:
            await b.close()
        for c in coms:
            await c.close()


class RecordingLoopback(LoopbackBinding):
    """Records the timeout of every request (the real bus underneath)."""

    timeouts: list[tuple[str, float]]

    async def request_action(
        self, action: Action, scope: Scope | str = Scope.COM, timeout: float = 1.0
    ) -> ActionResult:
        self.timeouts.append((action.id, timeout))
        return await super().request_action(action, scope, timeout)


async def test_rpc_and_install_snapshot_timeouts() -> None:
    bus = LoopbackBus(seed=4)
    com = RecordingLoopback(bus)
    com.timeouts = []
    await com.open(make_cfg(node_id="ta"))
    t = RaftTransport(RaftTransportConfig(timeout=0.05, timeout_scale=1000), "ta", com)
    await t.start()
    try:
        with pytest.raises(TimeoutError):
            await t.append_entries("x", "x", ae())
        with pytest.raises(TimeoutError):  # 10 x scale: 10 x rpcTimeout
            await t.install_snapshot(
                "x", "x", InstallSnapshotRequest(size=10_500), io.BytesIO(b"z" * 10_500)
            )
        with pytest.raises(TimeoutError):  # below the scale: never under rpcTimeout
            small = InstallSnapshotRequest(size=10)
            await t.install_snapshot("x", "x", small, io.BytesIO(b"z" * 10))
        assert com.timeouts == [("ae", 0.05), ("is", pytest.approx(0.5)), ("is", 0.05)]
    finally:
        await t.close()
        await com.close()


def test_transport_defaults() -> None:
    t = RaftTransport(RaftTransportConfig(timeout=0, timeout_scale=0), "me", LoopbackBinding())
    assert t.timeout() == 1.0
    assert t._timeout_scale == 262144
    assert not t.can_pipeline and not t.can_prevote
    assert t.encode_peer("id", "addr") == b"addr" and t.decode_peer(b"addr") == "addr"
    assert t.local_addr() == "me"

"""StateService and AdminService over real gRPC, backed by real RaftBindings on the loopback bus."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from ddastate.apis.grpc.gen.dda.state.v1 import state_pb2, state_pb2_grpc
from ddastate.apis.grpc.gen.ddastate.admin.v1 import admin_pb2, admin_pb2_grpc
from ddastate.apis.grpc.server import GrpcServer
from ddastate.cli.status import collect_status
from ddastate.com.loopback import LoopbackBinding, LoopbackBus
from ddastate.config import Config
from ddastate.state.raft import RaftBinding

MAX = 1024


def member_config(name: str, bootstrap: bool) -> Config:
    cfg = Config()
    cfg.identity.id = name
    cfg.identity.name = name
    cfg.cluster = "grpctest"
    cfg.services.com.protocol = "loopback"
    cfg.services.state.disabled = False
    cfg.services.state.bootstrap = bootstrap
    cfg.services.state.opts = {"heartbeatTimeout": 300, "electionTimeout": 300}
    return cfg.validate()


@dataclass
class Served:
    name: str
    cfg: Config
    com: LoopbackBinding
    binding: RaftBinding
    server: GrpcServer
    channel: grpc.aio.Channel
    state: Any
    admin: Any

    async def close(self) -> None:
        await self.channel.close()
        await self.server.stop(0)
        await self.binding.close()
        await self.com.close()


async def serve(
    bus: LoopbackBus, name: str, bootstrap: bool, address: str = "127.0.0.1:0"
) -> Served:
    cfg = member_config(name, bootstrap)
    com = LoopbackBinding(bus)
    await com.open(cfg)
    binding = RaftBinding()
    await binding.open(cfg, com)

    async def status() -> Any:
        return collect_status(cfg, binding)

    server = GrpcServer(address, state=binding, status=status, max_value_size=MAX)
    bound = server.bind()
    await server.start()
    channel = grpc.aio.insecure_channel(bound.dial_target)
    return Served(
        name,
        cfg,
        com,
        binding,
        server,
        channel,
        state_pb2_grpc.StateServiceStub(channel),
        admin_pb2_grpc.AdminServiceStub(channel),
    )


@pytest.fixture
async def one() -> AsyncIterator[Served]:
    s = await serve(LoopbackBus(seed=3), "solo", True)
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def three() -> AsyncIterator[list[Served]]:
    bus = LoopbackBus(seed=5)
    group = [await serve(bus, "m1", True)]
    for name in ("m2", "m3"):
        group.append(await serve(bus, name, False))
    try:
        yield group
    finally:
        for s in reversed(group):
            await s.close()


def SET(key: str, value: bytes) -> state_pb2.Input:  # noqa: N802
    return state_pb2.Input(op=state_pb2.INPUT_OPERATION_SET, key=key, value=value)


def DELETE(key: str) -> state_pb2.Input:  # noqa: N802
    return state_pb2.Input(op=state_pb2.INPUT_OPERATION_DELETE, key=key)


async def expect_code(call: Any, code: grpc.StatusCode, fragment: str = "") -> str:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert info.value.code() is code, info.value
    details = info.value.details() or ""
    assert fragment in details, details
    return details


async def test_propose_and_observe(one: Served) -> None:
    await one.state.ProposeInput(SET("a", b"1"), timeout=10)
    stream = one.state.ObserveStateChange(state_pb2.ObserveStateChangeParams())
    first = await stream.read()
    assert (first.op, first.key, first.value) == (state_pb2.INPUT_OPERATION_SET, "a", b"1")
    await one.state.ProposeInput(SET("b", b""), timeout=10)
    await one.state.ProposeInput(DELETE("a"), timeout=10)
    got = [await stream.read(), await stream.read()]
    assert [(m.op, m.key, m.value) for m in got] == [
        (state_pb2.INPUT_OPERATION_SET, "b", b""),
        (state_pb2.INPUT_OPERATION_DELETE, "a", b""),
    ]
    stream.cancel()


async def test_membership_stream_and_status(one: Served) -> None:
    stream = one.state.ObserveMembershipChange(state_pb2.ObserveMembershipChangeParams())
    first = await stream.read()
    assert (first.id, first.joined) == ("solo", True)
    stream.cancel()
    status = await one.admin.Status(admin_pb2.StatusRequest(), timeout=10)
    assert status.id == "solo" and status.cluster == "grpctest"
    assert status.role == "leader" and status.leader_id == "solo"
    assert status.term >= 1 and status.commit_index >= 1
    assert status.applied_index <= status.commit_index <= status.last_log_index
    assert [(m.id, m.suffrage, m.leader) for m in status.members] == [("solo", "voter", True)]


async def test_bad_input_is_invalid_argument(one: Served) -> None:
    await expect_code(
        one.state.ProposeInput(SET("", b"x")), grpc.StatusCode.INVALID_ARGUMENT, "key"
    )
    await expect_code(
        one.state.ProposeInput(state_pb2.Input(op=7, key="k", value=b"x")),  # type: ignore[arg-type]
        grpc.StatusCode.INVALID_ARGUMENT,
        "unknown input operation 7",
    )
    await expect_code(
        one.state.ProposeInput(state_pb2.Input(key="k", value=b"x")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "unspecified",
    )
    details = await expect_code(
        one.state.ProposeInput(SET("k", b"x" * (MAX + 1))),
        grpc.StatusCode.INVALID_ARGUMENT,
        "maxValueSize",
    )
    assert str(MAX + 1) in details and str(MAX) in details
    # the largest allowed value goes through, and the member is still fine
    await one.state.ProposeInput(SET("k", b"x" * MAX), timeout=10)
    # far beyond the gRPC message limit: gRPC itself refuses, the server keeps serving
    await expect_code(
        one.state.ProposeInput(SET("k", b"x" * (6 * 1024 * 1024))),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    )
    await one.state.ProposeInput(DELETE("k"), timeout=10)
    stream = one.state.ObserveStateChange(state_pb2.ObserveStateChangeParams())
    # only "k" was ever committed, and it is deleted again: nothing of the bad inputs got in
    await one.state.ProposeInput(SET("end", b"1"), timeout=10)
    msg = await stream.read()
    assert msg.key == "end"
    stream.cancel()


async def test_closed_binding_is_unavailable(one: Served) -> None:
    await one.binding.close()
    await expect_code(one.state.ProposeInput(SET("k", b"v")), grpc.StatusCode.UNAVAILABLE)
    await expect_code(
        one.state.ObserveStateChange(state_pb2.ObserveStateChangeParams()).read(),
        grpc.StatusCode.UNAVAILABLE,
    )
    status = await one.admin.Status(admin_pb2.StatusRequest(), timeout=10)
    assert status.role in ("not open", "shutdown")


async def test_state_disabled_is_unavailable_as_in_the_reference() -> None:
    cfg = Config()

    async def status() -> Any:
        return collect_status(cfg, None)

    server = GrpcServer("127.0.0.1:0", state=None, status=status)
    bound = server.bind()
    await server.start()
    try:
        async with grpc.aio.insecure_channel(bound.dial_target) as channel:
            stub: Any = state_pb2_grpc.StateServiceStub(channel)
            await expect_code(
                stub.ProposeInput(SET("k", b"v")), grpc.StatusCode.UNAVAILABLE, "disabled"
            )
            await expect_code(
                stub.ObserveStateChange(state_pb2.ObserveStateChangeParams()).read(),
                grpc.StatusCode.UNAVAILABLE,
                "disabled",
            )
            await expect_code(
                stub.ObserveMembershipChange(state_pb2.ObserveMembershipChangeParams()).read(),
                grpc.StatusCode.UNAVAILABLE,
                "disabled",
            )
            admin: Any = admin_pb2_grpc.AdminServiceStub(channel)
            st = await admin.Status(admin_pb2.StatusRequest(), timeout=10)
            assert st.state_enabled is False and st.id == cfg.identity.id
    finally:
        await server.stop(0)


async def test_unix_socket(tmp_path: Path) -> None:
    path = tmp_path / "sock" / "dda.sock"
    s = await serve(LoopbackBus(seed=9), "unix", True, address=f"unix:{path}")
    try:
        await s.state.ProposeInput(SET("u", b"1"), timeout=10)
        st = await s.admin.Status(admin_pb2.StatusRequest(), timeout=10)
        assert st.role == "leader"
    finally:
        await s.close()
    assert not path.exists()


async def test_propose_on_follower_watch_on_another(three: list[Served]) -> None:
    m1, m2, m3 = three
    watch = m3.state.ObserveStateChange(state_pb2.ObserveStateChangeParams())
    members = m3.state.ObserveMembershipChange(state_pb2.ObserveMembershipChangeParams())
    seen = {(await members.read()).id for _ in range(3)}
    assert seen == {"m1", "m2", "m3"}
    members.cancel()
    for i in range(20):
        await m2.state.ProposeInput(SET(f"k{i:02d}", str(i).encode()), timeout=10)
    await m1.state.ProposeInput(DELETE("k00"), timeout=10)
    got = [await watch.read() for _ in range(21)]
    assert [m.key for m in got[:20]] == [f"k{i:02d}" for i in range(20)]
    assert (got[20].op, got[20].key) == (state_pb2.INPUT_OPERATION_DELETE, "k00")
    watch.cancel()
    st = await m2.admin.Status(admin_pb2.StatusRequest(), timeout=10)
    assert st.role == "follower" and st.leader_id == "m1"
    assert sorted(m.id for m in st.members) == ["m1", "m2", "m3"]


async def wait_for_leader(servers: list[Served], timeout: float = 20.0) -> str:
    """Poll the admin Status of ``servers`` until one of them reports itself leader."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        for s in servers:
            st = await s.admin.Status(admin_pb2.StatusRequest(), timeout=5)
            if st.role == "leader":
                return str(st.id)
        await asyncio.sleep(0.05)
    raise AssertionError("no leader elected")


async def test_leader_gone_others_go_on(three: list[Served]) -> None:
    m1, m2, m3 = three
    await m1.server.stop(0)
    await m1.binding.close()
    # right after the leader left: a short deadline ends in UNAVAILABLE (retryable), or succeeds
    try:
        await m2.state.ProposeInput(SET("x", b"1"), timeout=0.3)
    except grpc.aio.AioRpcError as exc:
        assert exc.code() is grpc.StatusCode.UNAVAILABLE, exc
    leader = await wait_for_leader([m2, m3])
    assert leader in ("m2", "m3")
    await m2.state.ProposeInput(SET("y", b"2"), timeout=20)
    await m3.state.ProposeInput(SET("z", b"3"), timeout=20)
    st = await m3.admin.Status(admin_pb2.StatusRequest(), timeout=5)
    assert sorted(m.id for m in st.members) == ["m2", "m3"]

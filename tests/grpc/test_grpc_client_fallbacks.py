"""The client commands against a sidecar that has only StateService (as the reference's)."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from ddastate.apis.grpc.gen.dda.state.v1 import state_pb2_grpc
from ddastate.apis.grpc.server import StateServicer
from ddastate.com.loopback import LoopbackBinding, LoopbackBus
from ddastate.config import Config
from ddastate.state.raft import RaftBinding
from ddastate.testing.sidecars import ddastate_command

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def state_only() -> AsyncIterator[str]:
    """A gRPC server with StateService only, backed by a one-member group; yields its address."""
    cfg = Config()
    cfg.identity.id = "ref-like"
    cfg.services.com.protocol = "loopback"
    cfg.services.state.disabled = False
    cfg.services.state.bootstrap = True
    cfg.validate()
    com = LoopbackBinding(LoopbackBus(seed=1))
    await com.open(cfg)
    binding = RaftBinding()
    await binding.open(cfg, com)
    server = grpc.aio.server()
    state_pb2_grpc.add_StateServiceServicer_to_server(StateServicer(binding), server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(0)
        await binding.close()
        await com.close()


async def cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *ddastate_command(*args), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_members_falls_back_to_the_membership_stream(state_only: str) -> None:
    rc, out, err = await cli("members", "--json", "--address", state_only)
    assert rc == 0, err
    members: list[dict[str, Any]] = json.loads(out)
    assert [m["id"] for m in members] == ["ref-like"]


async def test_status_names_the_missing_admin_service(state_only: str) -> None:
    rc, _out, err = await cli("status", "--address", state_only)
    assert rc == 1
    assert err.strip() == (
        f"ddastate: the sidecar at {state_only} has no admin service (not a ddastate sidecar?)"
    )


async def test_put_and_members_follow(state_only: str) -> None:
    rc, out, err = await cli("put", "k", "v", "--address", state_only)
    assert rc == 0 and out.strip() == "set k (1 bytes)", err
    proc = await asyncio.create_subprocess_exec(
        *ddastate_command("members", "--follow", "--json", "--address", state_only),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert json.loads(line) == {"id": "ref-like", "joined": True}
    proc.send_signal(signal.SIGINT)
    await asyncio.wait_for(proc.wait(), 30)
    assert proc.returncode == 0

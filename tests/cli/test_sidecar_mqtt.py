"""Three real ``ddastate run`` processes on a real Mosquitto, driven by gRPC and the CLI."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from ddastate.apis.grpc.gen.dda.state.v1 import state_pb2, state_pb2_grpc
from ddastate.apis.grpc.gen.ddastate.admin.v1 import admin_pb2, admin_pb2_grpc
from ddastate.testing.mosquitto import Mosquitto
from ddastate.testing.sidecars import Sidecar, SidecarGroup, ddastate_command

pytestmark = [pytest.mark.mqtt, pytest.mark.timeout(240)]

MAX_VALUE = 4096


@pytest.fixture(scope="module")
def group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SidecarGroup]:
    directory = tmp_path_factory.mktemp("sidecars")
    with (
        Mosquitto() as broker,
        SidecarGroup(
            directory,
            broker_url=broker.url,
            size=3,
            state_opts={"heartbeatTimeout": 500, "electionTimeout": 500},
            grpc_opts={"maxValueSize": MAX_VALUE},
        ) as g,
    ):
        g.start_all()
        yield g


def stubs(s: Sidecar) -> tuple[grpc.Channel, Any, Any]:
    channel = grpc.insecure_channel(s.address)
    return (
        channel,
        state_pb2_grpc.StateServiceStub(channel),
        admin_pb2_grpc.AdminServiceStub(channel),
    )


class Lines:
    """Reads a process's stdout lines on a thread, so the test can wait with a timeout."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: queue.Queue[str] = queue.Queue()
        self.all: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def next(self, timeout: float = 30.0) -> str:
        line = self.lines.get(timeout=timeout)
        self.all.append(line)
        return line

    def until(self, predicate: Any, timeout: float = 30.0) -> str:
        while True:
            line = self.next(timeout)
            if predicate(line):
                return line


def status_json(s: Sidecar) -> dict[str, Any]:
    p = s.cli("status", "--json")
    assert p.returncode == 0, p.stderr
    doc: dict[str, Any] = json.loads(p.stdout)
    return doc


def test_group_formed_and_grpc_propose_watch(group: SidecarGroup) -> None:
    m1, _m2, m3 = group
    st = status_json(m3)
    assert st["leader"] == "member-1"
    assert sorted(m["id"] for m in st["members"]) == ["member-1", "member-2", "member-3"]

    ch1, state1, _ = stubs(m1)
    ch3, state3, admin3 = stubs(m3)
    with ch1, ch3:
        members = state3.ObserveMembershipChange(state_pb2.ObserveMembershipChangeParams())
        seen = {next(members).id for _ in range(3)}
        members.cancel()
        assert seen == {"member-1", "member-2", "member-3"}

        watch = state3.ObserveStateChange(state_pb2.ObserveStateChangeParams(), timeout=60)
        state1.ProposeInput(
            state_pb2.Input(op=state_pb2.INPUT_OPERATION_SET, key="grpc/a", value=b"\x00\x01"),
            timeout=10,
        )
        state1.ProposeInput(
            state_pb2.Input(op=state_pb2.INPUT_OPERATION_DELETE, key="grpc/a"), timeout=10
        )
        got = []
        for msg in watch:
            if msg.key == "grpc/a":
                got.append((msg.op, msg.value))
            if len(got) == 2:
                break
        watch.cancel()
        assert got == [
            (state_pb2.INPUT_OPERATION_SET, b"\x00\x01"),
            (state_pb2.INPUT_OPERATION_DELETE, b""),
        ]
        st3 = admin3.Status(admin_pb2.StatusRequest(), timeout=10)
        assert st3.role == "follower" and st3.applied_index >= 1


def test_bad_input_over_grpc(group: SidecarGroup) -> None:
    ch, state, _ = stubs(group[1])
    with ch:
        with pytest.raises(grpc.RpcError) as info:
            state.ProposeInput(
                state_pb2.Input(op=state_pb2.INPUT_OPERATION_SET, key=""), timeout=10
            )
        assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        big = b"v" * (MAX_VALUE + 1)
        with pytest.raises(grpc.RpcError) as info:
            state.ProposeInput(
                state_pb2.Input(op=state_pb2.INPUT_OPERATION_SET, key="big", value=big), timeout=10
            )
        assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "maxValueSize" in (info.value.details() or "")
        state.ProposeInput(
            state_pb2.Input(op=state_pb2.INPUT_OPERATION_SET, key="big", value=big[:-1]),
            timeout=10,
        )
        p = group[2].cli("put", "big", "x" * (MAX_VALUE + 1))
        assert p.returncode == 1
        assert p.stderr.strip() == (
            f"ddastate: put failed: INVALID_ARGUMENT: input value is {MAX_VALUE + 1} bytes, "
            f"more than the maximum of {MAX_VALUE} bytes (apis.grpc.maxValueSize)"
        )
        with pytest.raises(grpc.RpcError) as info:
            state.ProposeInput(state_pb2.Input(op=9, key="k"), timeout=10)  # type: ignore[arg-type]
        assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        # still serving
        state.ProposeInput(
            state_pb2.Input(op=state_pb2.INPUT_OPERATION_SET, key="after-bad", value=b"ok"),
            timeout=10,
        )
    assert all(s.running for s in group)


def test_cli_put_delete_watch_members_status(group: SidecarGroup, tmp_path: Path) -> None:
    m1, m2, m3 = group
    assert m2.cli("put", "cli/x", "hello world").returncode == 0
    watch = subprocess.Popen(
        ddastate_command("watch", "--address", m3.address),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = Lines(watch)
        # the current state comes first ...
        lines.until(lambda s: "SET     cli/x = hello world" in s)
        # ... then changes made on other members, as they happen
        p = m1.cli("put", "cli/y", "from member-1")
        assert p.returncode == 0 and p.stdout.strip() == "set cli/y (13 bytes)", p
        p = m2.cli("delete", "cli/x", "--json")
        assert p.returncode == 0 and json.loads(p.stdout) == {
            "ok": True,
            "op": "delete",
            "key": "cli/x",
        }
        lines.until(lambda s: "SET     cli/y = from member-1" in s)
        lines.until(lambda s: "DELETE  cli/x" in s)
    finally:
        watch.send_signal(signal.SIGINT)
        _out, err = watch.communicate(timeout=30)
    assert watch.returncode == 0, err
    assert "Traceback" not in err
    assert "watching" in err

    p = m3.cli("members")
    assert p.returncode == 0
    assert p.stdout.splitlines()[0].split() == ["MEMBER", "SUFFRAGE", "ROLE"]
    assert "member-3  voter" in p.stdout and "(this member)" in p.stdout
    members = json.loads(m3.cli("members", "--json").stdout)
    assert sorted(m["id"] for m in members) == ["member-1", "member-2", "member-3"]
    assert [m["id"] for m in members if m["self"]] == ["member-3"]

    p = m2.cli("status")
    assert p.returncode == 0
    assert "role          follower" in p.stdout and "leader        member-1" in p.stdout


def test_sigterm_on_leader_others_go_on(group: SidecarGroup) -> None:
    leader_id = status_json(group[1])["leader"]
    leader = next(s for s in group if s.name == leader_id)
    others = [s for s in group if s is not leader]
    ch, state, _ = stubs(others[1])
    with ch:
        watch = state.ObserveStateChange(state_pb2.ObserveStateChangeParams(), timeout=120)
        assert leader.terminate() == 0
        log = leader.log()
        assert "received SIGTERM: stopping" in log
        assert "state: left the group" in log and log.rstrip().endswith("stopped")
        assert "Traceback" not in log
        p = others[0].cli("put", "after/leader", "left", "--timeout", "60")
        assert p.returncode == 0, p.stderr
        for msg in watch:
            if msg.key == "after/leader":
                assert msg.value == b"left"
                break
        watch.cancel()
    for s in others:
        st = status_json(s)
        assert st["leader"] in (o.name for o in others)
        assert sorted(m["id"] for m in st["members"]) == sorted(o.name for o in others)
        assert s.running

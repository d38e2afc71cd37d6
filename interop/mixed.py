"""Mixed state groups: reference (Go) sidecars and ddastate sidecars on one Mosquitto.

Both kinds of member run as real processes with their own ``dda.yaml`` and are driven
the same way, through the gRPC StateService (``dda.state.v1``) with our own generated
stubs (:class:`ddastate.apis.grpc.client.StateClient`):

    with Mosquitto() as broker, MixedGroup(tmp_path, broker.url) as group:
        a = group.add("go", bootstrap=True).start()
        b = group.add("py").start()          # joins through leader forwarding
        async with Watch(b) as w:
            async with a.client() as c:
                await c.put("k", b"v", 10)
            await w.wait_for(lambda seen: len(seen) == 1)

Go sidecars come from :func:`gointerop.install_reference_sidecar`; ddastate sidecars are
``python -m ddastate.cli run -c <yaml>``. Stopping is SIGTERM (a graceful leave), killing
is SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import gointerop
import yaml

from ddastate.apis.grpc.client import StateClient
from ddastate.state.api import Input, MembershipChange
from ddastate.testing.mosquitto import free_port

__all__ = ["Member", "MixedGroup", "Watch", "WatchMembers", "WireRecorder", "raw_action"]

Kind = Literal["go", "py"]

#: The log line each kind writes once it is a member and serves gRPC.
READY_TEXT: dict[str, str] = {"go": "Opened DDA", "py": " ready"}


class Member:
    """One sidecar process of either kind."""

    def __init__(
        self,
        kind: Kind,
        member_id: str,
        directory: Path,
        broker_url: str,
        *,
        bootstrap: bool,
        durable: bool,
        state_opts: Mapping[str, Any],
        cluster: str,
    ) -> None:
        self.kind = kind
        self.member_id = member_id
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.grpc_address = f"127.0.0.1:{free_port()}"
        self.store = str(directory / "store") if durable else ""
        self.log_path = directory / "sidecar.log"
        self.config_path = directory / "dda.yaml"
        self.bootstrap = bootstrap
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
        if kind == "go":
            gointerop.write_go_sidecar_config(
                self.config_path,
                member_id=member_id,
                broker_url=broker_url,
                grpc_address=self.grpc_address,
                bootstrap=bootstrap,
                store=self.store,
                cluster=cluster,
                state_opts=state_opts,
            )
        else:
            self._write_py_config(broker_url, cluster, state_opts)

    def _write_py_config(
        self, broker_url: str, cluster: str, state_opts: Mapping[str, Any]
    ) -> None:
        doc = {
            "version": "1",
            "identity": {"name": f"py-{self.member_id[:8]}", "id": self.member_id},
            "cluster": cluster,
            "apis": {"grpc": {"address": self.grpc_address}},
            "services": {
                "com": {"protocol": "mqtt5", "url": broker_url},
                "state": {
                    "protocol": "raft",
                    "store": self.store,
                    "bootstrap": self.bootstrap,
                    "disabled": False,
                    "opts": dict(state_opts),
                },
            },
        }
        self.config_path.write_text(yaml.safe_dump(doc, sort_keys=False))

    def __repr__(self) -> str:
        return f"<{self.kind} member {self.member_id[:8]}>"

    # ------------------------------------------------------------------ process

    def _argv(self) -> list[str]:
        if self.kind == "go":
            return [str(gointerop.install_reference_sidecar()), "-c", str(self.config_path)]
        return [sys.executable, "-m", "ddastate.cli", "run", "-c", str(self.config_path)]

    def start(self, *, wait: bool = True, timeout: float = 60.0) -> Member:
        """Start the process; with ``wait``, return once it is a member serving gRPC."""
        if self.running:
            raise RuntimeError(f"{self} is already running")
        self._log_offset = len(self.output())
        env = dict(os.environ)
        with open(self.log_path, "ab") as f:
            self.proc = subprocess.Popen(
                self._argv(),
                stdout=f,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        if wait:
            self.wait_ready(timeout)
        return self

    def restart(self, *, wait: bool = True, timeout: float = 60.0) -> Member:
        """Start again after a stop or kill. A rejoining member never bootstraps again."""
        return self.start(wait=wait, timeout=timeout)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def output(self) -> str:
        """The whole log of this member (every run)."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def current_output(self) -> str:
        """The log of the current run only."""
        return self.output()[self._log_offset :]

    def wait_for(self, text: str, timeout: float = 60.0) -> None:
        """Wait until ``text`` appears in the log of the current run."""
        deadline = time.monotonic() + timeout
        while True:
            if text in self.current_output():
                return
            if not self.running:
                raise RuntimeError(
                    f"{self} exited ({self.proc.returncode if self.proc else None}) "
                    f"before {text!r}:\n{self.current_output()[-4000:]}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{self}: no {text!r} within {timeout} s:\n{self.current_output()[-4000:]}"
                )
            time.sleep(0.02)

    def wait_ready(self, timeout: float = 60.0) -> None:
        self.wait_for(READY_TEXT[self.kind], timeout)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (leave the group gracefully) and wait; returns the exit code.

        A process that does not end within ``timeout`` gets SIGQUIT first when it is a
        Go sidecar (the Go runtime writes every goroutine's stack to the log and exits
        with 2, see :meth:`hung_in_transport_close`), then SIGKILL.
        """
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                if self.kind == "go":
                    self.proc.send_signal(signal.SIGQUIT)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        self.proc.wait(10)
                if self.proc.poll() is None:
                    self.proc.kill()
                    self.proc.wait()
        return self.proc.returncode

    def hung_in_transport_close(self) -> bool:
        """True when this Go sidecar's goroutine dump shows the reference's shutdown
        deadlock: RaftTransport.Close waits for its lock while an RPC handler holding
        the read lock blocks handing an RPC to the Raft loop that has already stopped
        (dda v0.43.0 services/state/raft/transport.go; a graceful close of a follower
        that receives an AppendEntries while shutting down never ends)."""
        out = self.current_output()
        return (
            self.kind == "go"
            and "SIGQUIT" in out
            and "raft.(*RaftTransport).Close" in out
            and "raft.(*RaftTransport).handleRpc" in out
        )

    def kill(self) -> None:
        """SIGKILL: the member vanishes without a goodbye."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    # --------------------------------------------------------------------- gRPC

    def client(self) -> StateClient:
        """A StateService client for this member (an async context manager)."""
        return StateClient(self.grpc_address)


class MixedGroup:
    """Members of one cluster on one broker; stops every member on exit."""

    def __init__(
        self,
        directory: Path,
        broker_url: str,
        *,
        cluster: str = "dda",
        state_opts: Mapping[str, Any] | None = None,
    ) -> None:
        self.directory = directory
        self.broker_url = broker_url
        self.cluster = cluster
        self.state_opts = dict(state_opts or {})
        self.members: list[Member] = []

    def add(
        self,
        kind: Kind,
        *,
        bootstrap: bool = False,
        durable: bool = True,
        state_opts: Mapping[str, Any] | None = None,
        member_id: str | None = None,
    ) -> Member:
        """Create (not start) a member; ``state_opts`` extend the group's options."""
        mid = member_id or str(uuid.uuid4())
        opts = {**self.state_opts, **(state_opts or {})}
        m = Member(
            kind,
            mid,
            self.directory / f"{len(self.members) + 1}-{kind}-{mid[:8]}",
            self.broker_url,
            bootstrap=bootstrap,
            durable=durable,
            state_opts=opts,
            cluster=self.cluster,
        )
        self.members.append(m)
        return m

    def stop_all(self, timeout: float = 10.0) -> None:
        """Stop members one by one, newest first (each leaves while a quorum remains).

        Leaving all at once can hang a Go leader: it removes itself with no time limit
        and waits for a quorum that is already gone. A member that does not end within
        ``timeout`` is killed.
        """
        for m in reversed(self.members):
            if m.running:
                m.stop(timeout)

    def logs(self) -> str:
        """Every member's log, for failure messages."""
        return "\n".join(
            f"===== {m} ({m.member_id}) =====\n{m.output()[-6000:]}" for m in self.members
        )

    def __enter__(self) -> MixedGroup:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()


class _Stream:
    """Collects one server stream of a member in a background task."""

    def __init__(self, member: Member) -> None:
        self.member = member
        self.seen: list[Any] = []
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client: StateClient | None = None
        self.error: BaseException | None = None

    def _iterate(self, client: StateClient) -> Any:
        raise NotImplementedError

    async def _run(self) -> None:
        assert self._client is not None
        try:
            async for item in self._iterate(self._client):
                self.seen.append(item)
                self._changed.set()
        except asyncio.CancelledError:
            raise
        except BaseException as e:  # the stream broke (member stopped): report on wait
            self.error = e
            self._changed.set()

    async def __aenter__(self) -> Any:
        self._client = self.member.client()
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._client is not None:
            await self._client.close()

    async def wait_for(self, predicate: Callable[[list[Any]], bool], timeout: float = 30.0) -> None:
        """Wait until ``predicate(seen)`` holds; TimeoutError (with what was seen) otherwise."""

        async def loop() -> None:
            while not predicate(self.seen):
                if self.error is not None:
                    raise RuntimeError(f"stream of {self.member} ended: {self.error!r}")
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(loop(), timeout)
        except TimeoutError:
            raise TimeoutError(f"{self.member}: condition not met; seen {self.seen!r}") from None


class Watch(_Stream):
    """ObserveStateChange of one member: ``seen`` is the list of Inputs in arrival order."""

    seen: list[Input]

    def _iterate(self, client: StateClient) -> Any:
        return client.state_changes()


class WatchMembers(_Stream):
    """ObserveMembershipChange of one member: ``seen`` lists MembershipChanges."""

    seen: list[MembershipChange]

    def _iterate(self, client: StateClient) -> Any:
        return client.membership_changes()

    def members(self) -> set[str]:
        """Current members according to what was seen."""
        out: set[str] = set()
        for c in self.seen:
            if c.joined:
                out.add(c.id)
            else:
                out.discard(c.id)
        return out


class WireRecorder:
    """A plain MQTT 5 client (gmqtt, not our binding) recording the ``sta`` traffic.

    :meth:`sent_by` pairs every Raft transport request published by the given members
    with its op, and every reply they published with the op of the request it answers
    (matched by correlation data), in the form ``goldengen wirecheck`` reads.
    """

    def __init__(self, port: int, cluster: str = "dda") -> None:
        self.port = port
        self.cluster = cluster
        self.requests: dict[bytes, tuple[str, str, bytes]] = {}  # corr -> (op, source, payload)
        self.replies: list[tuple[bytes, str, bytes]] = []  # (corr, context, payload)
        self._client: Any = None
        self._subscribed: asyncio.Event | None = None

    async def __aenter__(self) -> WireRecorder:
        import gmqtt
        from gmqtt.mqtt.constants import MQTTv50

        self._subscribed = asyncio.Event()
        c = gmqtt.Client(f"wire-recorder-{uuid.uuid4()}")
        c.on_message = self._on_message
        c.on_subscribe = lambda *a: self._subscribed.set() if self._subscribed else None
        await c.connect("127.0.0.1", self.port, version=MQTTv50)
        c.subscribe(f"{self.cluster}/sta/#", qos=0)
        await asyncio.wait_for(self._subscribed.wait(), 10)
        self._client = c
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.disconnect()

    def _on_message(
        self, client: Any, topic: str, payload: bytes, qos: int, props: dict[str, Any]
    ) -> int:
        user = dict(props.get("user_property", []))
        corr = (props.get("correlation_data") or [b""])[0]
        level = topic.split("/")[2] if topic.count("/") >= 3 else ""
        if level == "act":
            self.requests[corr] = (user.get("id", ""), user.get("sr", ""), payload)
        elif level == "acr":
            self.replies.append((corr, user.get("ct", ""), payload))
        return 0

    def sent_by(self, member_ids: set[str]) -> list[dict[str, str]]:
        """Messages sent by ``member_ids``: [{"op", "dir", "hex"}]."""
        out = [
            {"op": op, "dir": "request", "hex": payload.hex()}
            for op, source, payload in self.requests.values()
            if source in member_ids
        ]
        for corr, context, payload in self.replies:
            req = self.requests.get(corr)
            if context in member_ids and req is not None:
                out.append({"op": req[0], "dir": "reply", "hex": payload.hex()})
        return out


async def raw_action(
    port: int,
    *,
    type_: str,
    op: str,
    source: str,
    payload: bytes,
    cluster: str = "dda",
    timeout: float = 5.0,
) -> bytes | None:
    """Publish a hand-made ``sta`` Action with a plain MQTT 5 client (the reference's
    wire format) and return the payload of the first result, or None if none comes."""
    import gmqtt
    from gmqtt.mqtt.constants import MQTTv50

    requester = f"raw-{uuid.uuid4()}"
    response_topic = f"{cluster}/sta/acr/{type_}/{requester}"
    corr = str(uuid.uuid4()).encode()
    loop = asyncio.get_running_loop()
    result: asyncio.Future[bytes] = loop.create_future()
    subscribed = asyncio.Event()

    def on_message(client: Any, topic: str, data: bytes, qos: int, props: dict[str, Any]) -> int:
        if (props.get("correlation_data") or [b""])[0] == corr and not result.done():
            result.set_result(data)
        return 0

    c = gmqtt.Client(requester)
    c.on_message = on_message
    c.on_subscribe = lambda *a: subscribed.set()
    await c.connect("127.0.0.1", port, version=MQTTv50)
    try:
        c.subscribe(response_topic, qos=0)
        await asyncio.wait_for(subscribed.wait(), 5)
        c.publish(
            f"{cluster}/sta/act/{type_}",
            payload,
            qos=0,
            user_property=[("id", op), ("sr", source), ("dt", "")],
            response_topic=response_topic,
            correlation_data=corr,
        )
        try:
            return await asyncio.wait_for(result, timeout)
        except TimeoutError:
            return None
    finally:
        await c.disconnect()

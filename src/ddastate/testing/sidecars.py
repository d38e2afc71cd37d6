"""Run ``ddastate run`` sidecars as real processes (for tests and experiments).

    from ddastate.testing.sidecars import SidecarGroup
    with SidecarGroup(tmp_path, broker_url="tcp://127.0.0.1:1883", size=3) as group:
        group.start_all()                   # member-1 bootstraps, the others join
        group[0].cli("put", "k", "v")       # the ddastate client against that sidecar
        group[0].terminate()                # SIGTERM: leaves the group, exit 0

Each sidecar gets its own dda.yaml (written with :func:`write_sidecar_config`), its own
durable store directory and a free TCP port for gRPC; its stderr goes to a log file that
:meth:`Sidecar.wait_for` reads to know when a lifecycle step happened.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from ddastate.testing.mosquitto import free_port


class SidecarError(RuntimeError):
    """A sidecar did not reach an expected step; the message ends with its log."""


def write_sidecar_config(
    path: Path,
    *,
    member_id: str,
    broker_url: str,
    grpc_address: str,
    bootstrap: bool,
    store: str = "",
    cluster: str = "dda",
    state_opts: Mapping[str, Any] | None = None,
    com_opts: Mapping[str, Any] | None = None,
    extra_grpc: Mapping[str, Any] | None = None,
) -> Path:
    """Write a DDA YAML file for one sidecar and return its path."""
    grpc: dict[str, Any] = {"address": grpc_address}
    grpc.update(extra_grpc or {})
    doc = {
        "version": "1",
        "identity": {"name": member_id, "id": member_id},
        "cluster": cluster,
        "apis": {"grpc": grpc},
        "services": {
            "com": {"protocol": "mqtt5", "url": broker_url, "opts": dict(com_opts or {})},
            "state": {
                "protocol": "raft",
                "store": store,
                "bootstrap": bootstrap,
                "disabled": False,
                "opts": dict(state_opts or {}),
            },
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def ddastate_command(*args: str) -> list[str]:
    """argv running the ddastate command with this interpreter."""
    return [sys.executable, "-m", "ddastate.cli", *args]


class Sidecar:
    """One ``ddastate run`` process."""

    def __init__(self, name: str, config_path: Path, grpc_address: str, log_path: Path) -> None:
        self.name = name
        self.config_path = config_path
        self.address = grpc_address
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.start_offset = 0

    def start(self, env: Mapping[str, str] | None = None) -> Sidecar:
        """Start the process (stderr and stdout to the log file)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.start_offset = len(self.log())
        log = self.log_path.open("ab")
        try:
            self.proc = subprocess.Popen(
                ddastate_command("run", "-c", str(self.config_path)),
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
            )
        finally:
            log.close()
        return self

    def log(self) -> str:
        """The log written so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for(self, text: str, timeout: float = 30.0, after: int | None = None) -> int:
        """Wait until ``text`` appears in the log; returns its offset.

        Only the log of the latest start counts unless ``after`` gives another offset.

        Raises SidecarError when the process ends first or the timeout passes.
        """
        deadline = time.monotonic() + timeout
        if after is None:
            after = self.start_offset
        while True:
            content = self.log()
            pos = content.find(text, after)
            if pos >= 0:
                return pos
            if self.proc is not None and self.proc.poll() is not None:
                raise SidecarError(
                    f"{self.name} exited with {self.proc.returncode} before {text!r}:\n{content}"
                )
            if time.monotonic() > deadline:
                raise SidecarError(f"{self.name}: no {text!r} within {timeout} s:\n{content}")
            time.sleep(0.02)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait for the sidecar's "ready" line."""
        self.wait_for(" ready", timeout)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        return self._signal(signal.SIGTERM, timeout)

    def interrupt(self, timeout: float = 30.0) -> int:
        """SIGINT (Ctrl-C) and wait; returns the exit code."""
        return self._signal(signal.SIGINT, timeout)

    def _signal(self, sig: signal.Signals, timeout: float) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL and reap."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def cli(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run a ddastate client command against this sidecar."""
        return subprocess.run(
            ddastate_command(*args, "--address", self.address),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


class SidecarGroup:
    """``size`` sidecars of one cluster, each with its own yaml file, store and gRPC port."""

    def __init__(
        self,
        directory: Path,
        *,
        broker_url: str,
        size: int = 3,
        cluster: str = "dda",
        state_opts: Mapping[str, Any] | None = None,
        grpc_opts: Mapping[str, Any] | None = None,
        durable: bool = True,
    ) -> None:
        self.directory = directory
        self.sidecars: list[Sidecar] = []
        for i in range(1, size + 1):
            name = f"member-{i}"
            address = f"127.0.0.1:{free_port()}"
            store = str(directory / name / "store") if durable else ""
            cfg = write_sidecar_config(
                directory / name / "dda.yaml",
                member_id=name,
                broker_url=broker_url,
                grpc_address=address,
                bootstrap=i == 1,
                store=store,
                cluster=cluster,
                state_opts=state_opts,
                extra_grpc=grpc_opts,
            )
            self.sidecars.append(Sidecar(name, cfg, address, directory / name / "sidecar.log"))

    def __getitem__(self, i: int) -> Sidecar:
        return self.sidecars[i]

    def __iter__(self) -> Iterator[Sidecar]:
        return iter(self.sidecars)

    def __len__(self) -> int:
        return len(self.sidecars)

    def start_all(self, timeout: float = 60.0) -> None:
        """Start the bootstrapping member, wait until ready, then the others."""
        first, *rest = self.sidecars
        first.start().wait_ready(timeout)
        for s in rest:
            s.start()
        for s in rest:
            s.wait_ready(timeout)

    def stop_all(self) -> None:
        """SIGTERM every running sidecar, SIGKILL those that do not end."""
        for s in self.sidecars:
            if s.running and s.proc is not None:
                s.proc.send_signal(signal.SIGTERM)
        for s in self.sidecars:
            if s.proc is not None:
                try:
                    s.proc.wait(30)
                except subprocess.TimeoutExpired:
                    s.kill()

    def __enter__(self) -> SidecarGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

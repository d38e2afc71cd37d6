"""One ``ddastate run`` process on the in-process loopback bus (no broker): lifecycle details."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from ddastate.testing.mosquitto import free_port
from ddastate.testing.sidecars import Sidecar, ddastate_command

pytestmark = pytest.mark.timeout(120)

LIFECYCLE = [
    "sidecar starting",
    "gRPC: bound",
    "com: opening loopback",
    "com: open",
    "state: opening raft member solo",
    "state: open, role leader",
    "gRPC: serving StateService and AdminService",
    " ready",
]
SHUTDOWN = [
    "gRPC: stopped",
    "state: leaving the group",
    "state: left the group (storage kept)",
    "com: closed",
    "stopped",
]


def write_config(
    path: Path, address: str, store: str, state_disabled: bool = False, extra: str = ""
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "version: '1'\n"
        "identity: {name: solo, id: solo}\n"
        f"apis: {{grpc: {{address: '{address}'}}}}\n"
        "services:\n"
        "  com: {protocol: loopback}\n"
        f"  state: {{disabled: {str(state_disabled).lower()}, bootstrap: true, store: '{store}'}}\n"
        + extra
    )
    return path


def in_order(log: str, steps: list[str]) -> None:
    pos = 0
    for step in steps:
        found = log.find(step, pos)
        assert found >= 0, f"{step!r} missing or out of order in:\n{log}"
        pos = found + len(step)


def sidecar(tmp_path: Path, address: str | None = None, **kw: object) -> Sidecar:
    address = address or f"127.0.0.1:{free_port()}"
    cfg = write_config(tmp_path / "dda.yaml", address, str(tmp_path / "store"), **kw)  # type: ignore[arg-type]
    return Sidecar("solo", cfg, address, tmp_path / "solo.log")


def current_state(s: Sidecar) -> dict[str, str]:
    """The current state through `ddastate watch --json` (ended after the initial SETs)."""
    proc = subprocess.Popen(
        ddastate_command("watch", "--json", "--address", s.address),
        stdout=subprocess.PIPE,
        text=True,
    )
    marker = "zz-marker"
    assert s.cli("put", marker, "1").returncode == 0
    state: dict[str, str] = {}
    assert proc.stdout is not None
    for line in proc.stdout:
        doc = json.loads(line)
        if doc["key"] == marker:
            break
        if doc["op"] == "set":
            state[doc["key"]] = doc["value"]
        else:
            state.pop(doc["key"], None)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 0
    assert s.cli("delete", marker).returncode == 0
    return state


def test_lifecycle_lines_and_sigint(tmp_path: Path) -> None:
    s = sidecar(tmp_path)
    s.start().wait_ready()
    in_order(s.log(), LIFECYCLE)
    assert s.interrupt() == 0
    log = s.log()
    in_order(log, [*LIFECYCLE, "received SIGINT: stopping", *SHUTDOWN])
    assert "Traceback" not in log
    # exactly one line per step: no library chatter at the default level
    assert all(" ddastate.sidecar: " in line for line in log.splitlines()), log


def test_restart_from_durable_store(tmp_path: Path) -> None:
    s = sidecar(tmp_path)
    s.start().wait_ready()
    for i in range(5):
        assert s.cli("put", f"k{i}", f"v{i}").returncode == 0
    assert s.cli("delete", "k0").returncode == 0
    before = current_state(s)
    assert before == {f"k{i}": f"v{i}" for i in range(1, 5)}
    assert s.terminate() == 0
    s.start().wait_ready()
    try:
        assert current_state(s) == before
        status = json.loads(s.cli("status", "--json").stdout)
        assert status["role"] == "leader" and status["applied_index"] >= 7
    finally:
        assert s.terminate() == 0


def test_unix_socket_and_default_config_file(tmp_path: Path) -> None:
    sock = tmp_path / "run" / "dda.sock"
    address = f"unix:{sock}"
    write_config(tmp_path / "dda.yaml", address, str(tmp_path / "store"))
    s = Sidecar("solo", tmp_path / "unused.yaml", address, tmp_path / "solo.log")
    log = (tmp_path / "solo.log").open("wb")
    # no -c and no $DDA_CONFIGFILE: ./dda.yaml of the working directory
    env = {k: v for k, v in __import__("os").environ.items() if k != "DDA_CONFIGFILE"}
    s.proc = subprocess.Popen(
        ddastate_command("run"), cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, env=env
    )
    log.close()
    s.wait_ready()
    try:
        assert s.cli("put", "over", "unix").returncode == 0
        p = s.cli("status", "--json")
        assert json.loads(p.stdout)["role"] == "leader"
    finally:
        assert s.terminate() == 0
    assert not sock.exists()


def test_config_from_environment(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    cfg = write_config(tmp_path / "conf" / "member.yaml", address, str(tmp_path / "store"))
    s = Sidecar("solo", tmp_path / "unused.yaml", address, tmp_path / "solo.log")
    log = (tmp_path / "solo.log").open("wb")
    import os

    s.proc = subprocess.Popen(
        ddastate_command("run"),
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "DDA_CONFIGFILE": str(cfg)},
    )
    log.close()
    s.wait_ready()
    assert f"config {cfg}" in s.log()
    assert s.terminate() == 0


def test_state_disabled(tmp_path: Path) -> None:
    s = sidecar(tmp_path, state_disabled=True)
    s.start().wait_ready()
    try:
        assert "state: disabled (services.state.disabled)" in s.log()
        p = s.cli("put", "k", "v")
        assert p.returncode == 1
        assert "UNAVAILABLE" in p.stderr and "disabled" in p.stderr
        p = s.cli("status")
        assert p.returncode == 0 and "disabled in this sidecar's configuration" in p.stdout
    finally:
        assert s.terminate() == 0


def test_unknown_state_option_is_named_and_harmless(tmp_path: Path) -> None:
    """A misspelt option (unknown to the binding) does not stop the sidecar."""
    s = sidecar(tmp_path)
    text = s.config_path.read_text().replace("store: ", "opts: {heartbeatTimout: 'soon'}, store: ")
    s.config_path.write_text(text)
    s.start().wait_ready()
    try:
        assert s.cli("put", "k", "v").returncode == 0
    finally:
        assert s.terminate() == 0


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_tls(tmp_path: Path) -> None:
    """apis.cert / apis.key serve TLS; the client trusts the certificate with --ca."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    address = f"localhost:{free_port()}"
    extra = f"apis: {{grpc: {{address: '{address}'}}, cert: '{cert}', key: '{key}'}}\n"
    cfg = write_config(tmp_path / "dda.yaml", address, str(tmp_path / "store"))
    cfg.write_text(cfg.read_text().replace(f"apis: {{grpc: {{address: '{address}'}}}}\n", extra))
    s = Sidecar("solo", cfg, address, tmp_path / "solo.log")
    s.start().wait_ready()
    try:
        p = s.cli("put", "secret", "v", "--ca", str(cert))
        assert p.returncode == 0, p.stderr
        p = s.cli("status", "--json", "--ca", str(cert))
        assert json.loads(p.stdout)["role"] == "leader"
        p = s.cli("put", "plain", "v", "--timeout", "5")  # no --ca: a plaintext client fails
        assert p.returncode == 1 and "Traceback" not in p.stderr
    finally:
        assert s.terminate() == 0


def test_watch_ends_with_one_line_when_the_sidecar_stops(tmp_path: Path) -> None:
    s = sidecar(tmp_path)
    s.start().wait_ready()
    proc = subprocess.Popen(
        ddastate_command("watch", "--address", s.address),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert s.cli("put", "k", "v").returncode == 0
        assert proc.stdout is not None
        assert "SET     k = v" in proc.stdout.readline()
    finally:
        assert s.terminate() == 0
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[0].startswith("watching ")
    assert len(lines) == 2, err
    assert lines[1].startswith(f"ddastate: the sidecar at {s.address} closed the stream"), err

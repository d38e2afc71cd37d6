"""Bad input from a user: every failure is one clear line, a non-zero exit, no traceback."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from ddastate.testing.mosquitto import Mosquitto, free_port
from ddastate.testing.sidecars import Sidecar, ddastate_command, write_sidecar_config


def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> tuple[int, str]:
    import os

    p = subprocess.run(
        ddastate_command(*args),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        check=False,
    )
    assert "Traceback" not in p.stderr, p.stderr
    return p.returncode, p.stderr


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("ddastate: "), stderr
    return lines[0]


def test_missing_default_config(tmp_path: Path) -> None:
    rc, err = run("run", cwd=tmp_path, env={"DDA_CONFIGFILE": ""})
    assert rc == 2
    assert "'dda.yaml' not found" in one_line(err)


def test_missing_config_from_option_and_env(tmp_path: Path) -> None:
    rc, err = run("run", "-c", str(tmp_path / "nope.yaml"))
    assert rc == 2
    assert "nope.yaml' not found" in one_line(err)
    rc, err = run("run", env={"DDA_CONFIGFILE": str(tmp_path / "env.yaml")})
    assert rc == 2
    assert "env.yaml' not found" in one_line(err)


def test_malformed_yaml(tmp_path: Path) -> None:
    cfg = tmp_path / "dda.yaml"
    cfg.write_text('version: "1"\nservices: [\n  state: {\n')
    rc, err = run("run", "-c", str(cfg))
    assert rc == 2
    line = one_line(err)
    assert "malformed YAML" in line and "dda.yaml" in line


def test_config_that_is_not_a_mapping(tmp_path: Path) -> None:
    cfg = tmp_path / "dda.yaml"
    cfg.write_text("- just\n- a list\n")
    rc, err = run("run", "-c", str(cfg))
    assert rc == 2
    assert "configuration error" in one_line(err)


@pytest.mark.parametrize(
    ("opts", "field"),
    [
        ({"rpcTimeout": "fast"}, "services.state.opts.rpcTimeout"),
        ({"heartbeatTimeout": True}, "services.state.opts.heartbeatTimeout"),
        ({"snapshotThreshold": -5}, "services.state.opts.snapshotThreshold"),
    ],
)
def test_wrongly_typed_state_option(tmp_path: Path, opts: dict[str, object], field: str) -> None:
    cfg = write_sidecar_config(
        tmp_path / "dda.yaml",
        member_id="m1",
        broker_url="tcp://127.0.0.1:1",
        grpc_address="127.0.0.1:0",
        bootstrap=True,
        state_opts=opts,
    )
    rc, err = run("run", "-c", str(cfg))
    assert rc == 2
    assert field in one_line(err)


def test_wrongly_typed_max_value_size(tmp_path: Path) -> None:
    cfg = write_sidecar_config(
        tmp_path / "dda.yaml",
        member_id="m1",
        broker_url="tcp://127.0.0.1:1",
        grpc_address="127.0.0.1:0",
        bootstrap=True,
        extra_grpc={"maxValueSize": "big"},
    )
    rc, err = run("run", "-c", str(cfg))
    assert rc == 2
    assert "apis.grpc.maxValueSize" in one_line(err)


def test_wrong_version_and_bad_cluster(tmp_path: Path) -> None:
    cfg = tmp_path / "dda.yaml"
    cfg.write_text('version: "2"\n')
    rc, err = run("run", "-c", str(cfg))
    assert rc == 2 and "version" in one_line(err)
    cfg.write_text('version: "1"\ncluster: "no spaces allowed"\n')
    rc, err = run("run", "-c", str(cfg))
    assert rc == 2 and "cluster" in one_line(err)


def test_bad_grpc_address(tmp_path: Path) -> None:
    cfg = write_sidecar_config(
        tmp_path / "dda.yaml",
        member_id="m1",
        broker_url="tcp://127.0.0.1:1",
        grpc_address="localhost:http",
        bootstrap=True,
    )
    rc, err = run("run", "-c", str(cfg))
    assert rc == 2
    assert "apis.grpc.address" in one_line(err)


def test_port_in_use(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        cfg = write_sidecar_config(
            tmp_path / "dda.yaml",
            member_id="m1",
            broker_url="tcp://127.0.0.1:1",
            grpc_address=f"127.0.0.1:{port}",
            bootstrap=True,
        )
        rc, err = run("run", "-c", str(cfg))
    assert rc == 1
    last = err.strip().splitlines()[-1]
    assert last.startswith("ddastate: gRPC server: cannot listen on"), err
    assert f"127.0.0.1:{port}" in last and "in use" in last


def test_unreachable_broker(tmp_path: Path) -> None:
    cfg = write_sidecar_config(
        tmp_path / "dda.yaml",
        member_id="m1",
        broker_url=f"tcp://127.0.0.1:{free_port()}",
        grpc_address="127.0.0.1:0",
        bootstrap=True,
        com_opts={"connectTimeout": 1000},
    )
    rc, err = run("run", "-c", str(cfg))
    assert rc == 1
    # lifecycle lines come first, then the error as the last line
    last = err.strip().splitlines()[-1]
    assert last.startswith("ddastate: com: cannot open mqtt5 at tcp://127.0.0.1:"), err


def test_client_without_sidecar(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    for args in (("put", "k", "v"), ("delete", "k"), ("status",), ("members",)):
        rc, err = run(*args, "--address", address)
        assert rc == 1
        assert f"cannot reach a sidecar at {address}" in one_line(err)


def test_client_bad_address() -> None:
    rc, err = run("status", "--address", "nohost")
    assert rc == 2
    assert "expected host:port" in one_line(err)


def test_put_needs_a_value() -> None:
    rc, err = run("put", "k", "--address", "127.0.0.1:1")
    assert rc == 2
    assert "VALUE" in one_line(err)


@pytest.mark.mqtt
def test_sigterm_while_waiting_to_join(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """A joining member waits for a leader (as the reference does); SIGTERM ends the wait."""
    address = f"127.0.0.1:{free_port()}"
    cfg = write_sidecar_config(
        tmp_path / "dda.yaml",
        member_id="lonely",
        broker_url=mosquitto.url,
        grpc_address=address,
        bootstrap=False,
    )
    s = Sidecar("lonely", cfg, address, tmp_path / "lonely.log")
    s.start()
    s.wait_for("state: opening raft member lonely")
    assert s.terminate() == 0
    log = s.log()
    assert "received SIGTERM during startup: stopping" in log
    assert "com: closed" in log and log.rstrip().endswith("stopped")
    assert "Traceback" not in log and " ready" not in log

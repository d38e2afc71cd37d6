"""The example configurations under examples/ load, and the Mosquitto config runs."""

from __future__ import annotations

import re
import socket
import subprocess
import time
from pathlib import Path

import pytest

from ddastate.config import Config
from ddastate.testing.mosquitto import find_mosquitto, free_port

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_example_sidecar_configs_load() -> None:
    cfg = Config.load(EXAMPLES / "dda.yaml")
    assert not cfg.services.state.disabled and cfg.services.state.bootstrap
    assert cfg.identity.id == "member-1"
    assert cfg.apis.grpc.max_value_size == 1048576
    group = [Config.load(EXAMPLES / "group" / f"member-{i}.yaml") for i in (1, 2, 3)]
    assert [c.identity.id for c in group] == ["member-1", "member-2", "member-3"]
    assert [c.services.state.bootstrap for c in group] == [True, False, False]
    assert len({c.apis.grpc.address for c in group}) == 3
    assert len({c.services.state.store for c in group}) == 3
    assert {c.cluster for c in group} == {"example"}


def test_example_mosquitto_config_runs(tmp_path: Path) -> None:
    try:
        exe = find_mosquitto()
    except Exception as exc:  # pragma: no cover - mosquitto missing
        pytest.skip(str(exc))
    text = (EXAMPLES / "mosquitto.conf").read_text()
    assert re.search(r"^set_tcp_nodelay true$", text, re.M)
    queued = re.search(r"^max_queued_messages (\d+)$", text, re.M)
    assert queued is not None and int(queued.group(1)) >= 100_000
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(re.sub(r"^listener 1883 ", f"listener {port} ", text, flags=re.M))
    proc = subprocess.Popen([exe, "-c", str(conf)], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(10)
    err = proc.stderr.read() if proc.stderr else ""
    assert "Error" not in err, err

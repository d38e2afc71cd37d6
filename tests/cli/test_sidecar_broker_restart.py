"""Sidecars keep serving across a broker restart (the com binding reconnects by itself)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from ddastate.testing.mosquitto import Mosquitto
from ddastate.testing.sidecars import SidecarGroup

pytestmark = [pytest.mark.mqtt, pytest.mark.timeout(180)]


def test_broker_killed_and_restarted(tmp_path: Path, mosquitto: Mosquitto) -> None:
    with SidecarGroup(
        tmp_path,
        broker_url=mosquitto.url,
        size=3,
        state_opts={"heartbeatTimeout": 500, "electionTimeout": 500},
    ) as group:
        group.start_all()
        assert group[1].cli("put", "before", "1").returncode == 0
        mosquitto.restart(kill=True)
        # proposals succeed again once the members reconnected (retrying is the client's job)
        deadline = time.monotonic() + 60
        while True:
            p = group[2].cli("put", "after", "2", "--timeout", "10")
            if p.returncode == 0:
                break
            assert "Traceback" not in p.stderr
            assert time.monotonic() < deadline, p.stderr
        for s in group:
            assert s.running, s.log()
            st = json.loads(s.cli("status", "--json").stdout)
            assert len(st["members"]) == 3
        assert all("Traceback" not in s.log() for s in group)

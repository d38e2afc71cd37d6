"""Parsing of gRPC addresses as written in apis.grpc.address."""

from __future__ import annotations

import pytest

from ddastate.apis.grpc.address import AddressError, parse_address


@pytest.mark.parametrize(
    ("text", "bind", "dial"),
    [
        (":8900", "[::]:8900", "localhost:8900"),
        ("127.0.0.1:9000", "127.0.0.1:9000", "127.0.0.1:9000"),
        ("0.0.0.0:1", "0.0.0.0:1", "localhost:1"),
        ("localhost:0", "localhost:0", "localhost:0"),
        ("[::1]:8900", "[::1]:8900", "[::1]:8900"),
        ("unix:/tmp/dda.sock", "unix:/tmp/dda.sock", "unix:/tmp/dda.sock"),
        ("unix:rel/dda.sock", "unix:rel/dda.sock", "unix:rel/dda.sock"),
        ("unix:///tmp/x.sock", "unix:/tmp/x.sock", "unix:/tmp/x.sock"),
    ],
)
def test_parse(text: str, bind: str, dial: str) -> None:
    a = parse_address(text)
    assert a.bind_target == bind
    assert a.dial_target == dial


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("8900", "expected host:port"),
        ("host:http", "not a number"),
        (":70000", "out of range"),
        ("unix:", "path is empty"),
    ],
)
def test_bad_addresses_name_the_problem(text: str, fragment: str) -> None:
    with pytest.raises(AddressError, match=fragment):
        parse_address(text)


def test_committed_stubs_match_the_protos() -> None:
    """scripts/gen_grpc.py --check regenerates into a temporary directory and compares."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "scripts" / "gen_grpc.py"
    p = subprocess.run(
        [sys.executable, str(script), "--check"], capture_output=True, text=True, check=False
    )
    assert p.returncode == 0, p.stdout + p.stderr


def test_error_mapping() -> None:
    import grpc

    from ddastate.apis.grpc.server import status_for_error
    from ddastate.raft.errors import LeadershipLostError, NotLeaderError, RaftShutdownError
    from ddastate.state.raft.binding import BindingNotOpenError, StateBindingError

    unavailable = grpc.StatusCode.UNAVAILABLE
    for exc in (
        TimeoutError("no leader answered"),
        NotLeaderError(),
        LeadershipLostError(),
        RaftShutdownError(),
        BindingNotOpenError("binding is not open"),
    ):
        assert status_for_error(exc)[0] is unavailable, exc
    refused = status_for_error(StateBindingError("unknown op 9"))
    assert refused[0] is grpc.StatusCode.INVALID_ARGUMENT
    code, message = status_for_error(RuntimeError("boom"))
    assert code is grpc.StatusCode.INTERNAL and "boom" in message

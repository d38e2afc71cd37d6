"""Golden vectors written by the Go reference's encoder (interop/fixtures/golden.json).

Every vector must decode with ddastate's codec to the values that produced it in Go,
and those values must encode to the very same bytes. Then the Go program decodes
Python's encodings back into the reference's types and compares (``goldengen check``).

Regenerate the fixture: ``cd interop && go run ./goldengen gen > fixtures/golden.json``.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from ddastate.raft.commands import (
    AppendEntriesRequest,
    AppendEntriesResponse,
    InstallSnapshotRequest,
    InstallSnapshotResponse,
    RequestPreVoteRequest,
    RequestPreVoteResponse,
    RequestVoteRequest,
    RequestVoteResponse,
    TimeoutNowRequest,
    TimeoutNowResponse,
)
from ddastate.raft.configuration import (
    Configuration,
    Server,
    ServerSuffrage,
    decode_configuration,
    encode_configuration,
)
from ddastate.raft.log import Log, LogType
from ddastate.state.api import Input, InputOp
from ddastate.state.raft import codec
from ddastate.state.raft.messages import (
    AddVoterRequest,
    AddVoterResponse,
    ApplyRequest,
    ApplyResponse,
    FsmSnapshot,
    InstallSnapshotWithData,
    RemoveServerRequest,
    RemoveServerResponse,
    RpcReply,
)

FIXTURE = Path(__file__).resolve().parents[2] / "interop" / "fixtures" / "golden.json"
GOLDEN: dict[str, Any] = json.loads(FIXTURE.read_text())
VECTORS: list[dict[str, Any]] = GOLDEN["vectors"]

# ---------------------------------------------------------------------------------
# Deliberate differences from the Go reference (each one a value Go never sends).

#: Vectors ddastate's decoder refuses on purpose (CodecError), with the reason.
PYTHON_REJECTS = {
    "log_type_255": "an unknown log type makes a Go member panic when it commits it "
    "(hashicorp prepareLog); ddastate refuses it at decode time",
}
#: Vectors whose nil form ddastate cannot hold: it decodes them to the empty value and
#: writes the empty (safe) form instead of nil.
NO_NIL_FORM = {
    "snapshot_nil_state": "a nil State map makes a Go member panic on its next SET; "
    "ddastate reads it as {} and always writes an empty map",
    "configuration_nil_servers": "ddastate's Configuration holds a tuple; nil and empty "
    "server lists are both never sent",
}

# ---------------------------------------------------------------------------------
# Neutral JSON form (see interop/README.md) -> ddastate objects.


def _bytes(v: Any) -> bytes | None:
    return None if v is None else bytes.fromhex(v)


def _time(v: Any) -> int | None:
    return None if v is None else int(v["sec"]) * 1_000_000_000 + int(v["nsec"])


def _log_type(v: int) -> LogType:
    try:
        return LogType(v)
    except ValueError:
        return cast(LogType, v)  # out-of-range on purpose (log_type_255)


def _op(v: int) -> InputOp:
    try:
        return InputOp(v)
    except ValueError:
        return cast(InputOp, v)  # the reference carries any int; its FSM rejects it


def _hdr(v: dict[str, Any]) -> dict[str, Any]:
    return {
        "protocol_version": v["ProtocolVersion"],
        "id": _bytes(v["ID"]),
        "addr": _bytes(v["Addr"]),
    }


def build_log(v: dict[str, Any]) -> Log:
    return Log(
        index=v["Index"],
        term=v["Term"],
        type=_log_type(v["Type"]),
        data=_bytes(v["Data"]),
        extensions=_bytes(v["Extensions"]),
        appended_at=_time(v["AppendedAt"]),
    )


def build_ae(v: dict[str, Any]) -> AppendEntriesRequest:
    entries = v["Entries"]
    return AppendEntriesRequest(
        term=v["Term"],
        leader=_bytes(v["Leader"]),
        prev_log_entry=v["PrevLogEntry"],
        prev_log_term=v["PrevLogTerm"],
        entries=None if entries is None else [build_log(e) for e in entries],
        leader_commit_index=v["LeaderCommitIndex"],
        **_hdr(v),
    )


def build_ae_resp(v: dict[str, Any]) -> AppendEntriesResponse:
    return AppendEntriesResponse(
        term=v["Term"],
        last_log=v["LastLog"],
        success=v["Success"],
        no_retry_backoff=v["NoRetryBackoff"],
        **_hdr(v),
    )


def build_rv(v: dict[str, Any]) -> RequestVoteRequest:
    return RequestVoteRequest(
        term=v["Term"],
        candidate=_bytes(v["Candidate"]),
        last_log_index=v["LastLogIndex"],
        last_log_term=v["LastLogTerm"],
        leadership_transfer=v["LeadershipTransfer"],
        **_hdr(v),
    )


def build_rv_resp(v: dict[str, Any]) -> RequestVoteResponse:
    return RequestVoteResponse(
        term=v["Term"], peers=_bytes(v["Peers"]), granted=v["Granted"], **_hdr(v)
    )


def build_pv(v: dict[str, Any]) -> RequestPreVoteRequest:
    return RequestPreVoteRequest(
        term=v["Term"], last_log_index=v["LastLogIndex"], last_log_term=v["LastLogTerm"], **_hdr(v)
    )


def build_pv_resp(v: dict[str, Any]) -> RequestPreVoteResponse:
    return RequestPreVoteResponse(term=v["Term"], granted=v["Granted"], **_hdr(v))


def build_is(v: dict[str, Any]) -> InstallSnapshotRequest:
    return InstallSnapshotRequest(
        snapshot_version=v["SnapshotVersion"],
        term=v["Term"],
        leader=_bytes(v["Leader"]),
        last_log_index=v["LastLogIndex"],
        last_log_term=v["LastLogTerm"],
        peers=_bytes(v["Peers"]),
        configuration=_bytes(v["Configuration"]),
        configuration_index=v["ConfigurationIndex"],
        size=v["Size"],
        **_hdr(v),
    )


def build_is_resp(v: dict[str, Any]) -> InstallSnapshotResponse:
    return InstallSnapshotResponse(term=v["Term"], success=v["Success"], **_hdr(v))


def build_tn(v: dict[str, Any]) -> TimeoutNowRequest:
    return TimeoutNowRequest(**_hdr(v))


def build_tn_resp(v: dict[str, Any]) -> TimeoutNowResponse:
    return TimeoutNowResponse(**_hdr(v))


def build_configuration(v: dict[str, Any]) -> Configuration:
    servers = v["Servers"] or []
    return Configuration(
        tuple(
            Server(id=s["ID"], address=s["Address"], suffrage=ServerSuffrage(s["Suffrage"]))
            for s in servers
        )
    )


def build_is_data(v: dict[str, Any]) -> InstallSnapshotWithData:
    req = v["Req"]
    return InstallSnapshotWithData(
        req=None if req is None else build_is(req), data=_bytes(v["Data"])
    )


def build_av(v: dict[str, Any]) -> AddVoterRequest:
    return AddVoterRequest(
        server_id=v["ServerId"], server_address=v["ServerAddress"], timeout=v["Timeout"]
    )


def build_rs(v: dict[str, Any]) -> RemoveServerRequest:
    return RemoveServerRequest(server_id=v["ServerId"], timeout=v["Timeout"])


def build_ap(v: dict[str, Any]) -> ApplyRequest:
    return ApplyRequest(command=_bytes(v["Command"]), timeout=v["Timeout"])


def build_ap_resp(v: dict[str, Any]) -> ApplyResponse:
    r = v["Response"]
    return ApplyResponse(index=v["Index"], response=None if r is None else r["error"])


def build_input(v: dict[str, Any]) -> Input:
    return Input(op=_op(v["Op"]), key=v["Key"], value=_bytes(v["Value"]))


def build_snapshot(v: dict[str, Any]) -> FsmSnapshot:
    state = v["State"] or {}
    return FsmSnapshot(state={k: bytes.fromhex(x) for k, x in state.items()})


@dataclass(frozen=True)
class Kind:
    """How one Go type maps to ddastate: builder, decoder and encoder."""

    build: Callable[[dict[str, Any]], Any]
    decode: Callable[[bytes], Any]
    encode: Callable[[Any], bytes]


def _generic(cls: type[Any], build: Callable[[dict[str, Any]], Any]) -> Kind:
    return Kind(build, lambda b: codec.decode_msgpack(b, cls), codec.encode_msgpack)


def _reply(cls: type[Any], build: Callable[[dict[str, Any]], Any]) -> Kind:
    def b(v: dict[str, Any]) -> RpcReply:
        r = v["Response"]
        return RpcReply(
            error=v["Error"], response=None if r is None else build(r), retryable=v["Retryable"]
        )

    return Kind(b, lambda data: codec.decode_rpc_reply(data, cls), codec.encode_msgpack)


KINDS: dict[str, Kind] = {
    "raft.AppendEntriesRequest": _generic(AppendEntriesRequest, build_ae),
    "raft.AppendEntriesResponse": _generic(AppendEntriesResponse, build_ae_resp),
    "raft.RequestVoteRequest": _generic(RequestVoteRequest, build_rv),
    "raft.RequestVoteResponse": _generic(RequestVoteResponse, build_rv_resp),
    "raft.RequestPreVoteRequest": _generic(RequestPreVoteRequest, build_pv),
    "raft.RequestPreVoteResponse": _generic(RequestPreVoteResponse, build_pv_resp),
    "raft.InstallSnapshotRequest": _generic(InstallSnapshotRequest, build_is),
    "raft.InstallSnapshotResponse": _generic(InstallSnapshotResponse, build_is_resp),
    "raft.TimeoutNowRequest": _generic(TimeoutNowRequest, build_tn),
    "raft.TimeoutNowResponse": _generic(TimeoutNowResponse, build_tn_resp),
    "raft.Log": _generic(Log, build_log),
    "raft.Configuration": Kind(build_configuration, decode_configuration, encode_configuration),
    "transport.installSnapshotRequestWithData": _generic(InstallSnapshotWithData, build_is_data),
    "raft.AddVoterRequest": _generic(AddVoterRequest, build_av),
    "raft.AddVoterResponse": _generic(AddVoterResponse, lambda v: AddVoterResponse(v["Index"])),
    "raft.RemoveServerRequest": _generic(RemoveServerRequest, build_rs),
    "raft.RemoveServerResponse": _generic(
        RemoveServerResponse, lambda v: RemoveServerResponse(v["Index"])
    ),
    "raft.ApplyRequest": _generic(ApplyRequest, build_ap),
    "raft.ApplyResponse": _generic(ApplyResponse, build_ap_resp),
    "api.Input": _generic(Input, build_input),
    "raft.fsmSnapshot": _generic(FsmSnapshot, build_snapshot),
    "transport.rpcResponse[*raft.AppendEntriesResponse]": _reply(
        AppendEntriesResponse, build_ae_resp
    ),
    "transport.rpcResponse[*raft.RequestVoteResponse]": _reply(RequestVoteResponse, build_rv_resp),
    "transport.rpcResponse[*raft.InstallSnapshotResponse]": _reply(
        InstallSnapshotResponse, build_is_resp
    ),
    "transport.rpcResponse[*raft.TimeoutNowResponse]": _reply(TimeoutNowResponse, build_tn_resp),
    "transport.rpcResponse[*raft.AddVoterResponse]": _reply(
        AddVoterResponse, lambda v: AddVoterResponse(v["Index"])
    ),
    "transport.rpcResponse[*raft.RemoveServerResponse]": _reply(
        RemoveServerResponse, lambda v: RemoveServerResponse(v["Index"])
    ),
    "transport.rpcResponse[*raft.ApplyResponse]": _reply(ApplyResponse, build_ap_resp),
}


def _ids() -> list[str]:
    return [v["name"] for v in VECTORS]


def _vector(name: str) -> dict[str, Any]:
    return next(v for v in VECTORS if v["name"] == name)


# ---------------------------------------------------------------------------------


def test_fixture_covers_every_shape() -> None:
    """Every Go type of WIRE.md sections 2 and 3 has at least one vector, and we map them all."""
    types = {v["go_type"] for v in VECTORS}
    assert types == set(KINDS), types ^ set(KINDS)
    assert GOLDEN["reference"]["github.com/coatyio/dda"] == "v0.43.0"
    assert len(VECTORS) == len(set(_ids()))


def test_wire_example_is_the_documented_292_bytes() -> None:
    v = _vector("ae_wire_example")
    assert len(bytes.fromhex(v["hex"])) == 292
    assert "1d6f3454663881d9" in v["hex"]  # AppendedAt 2024-05-06T07:08:09.123456789Z


def test_appended_at_forms_as_go_writes_them() -> None:
    """The four time forms as the Go encoder chose them, in entry order (see WIRE.md 4)."""
    import msgpack

    raw = msgpack.unpackb(bytes.fromhex(_vector("ae_appended_at_forms")["hex"]), raw=True)
    forms = [e[b"AppendedAt"] for e in raw[b"Entries"]]
    assert forms[0] is None  # Go zero time
    assert forms[1] == b"\0\0\0\0"  # the Unix epoch is 4 zero bytes, not nil
    assert [len(f) for f in forms[2:]] == [4, 8, 8, 8, 12, 12, 12, 8]


@pytest.mark.parametrize("name", _ids())
def test_python_decodes_go_bytes(name: str) -> None:
    v = _vector(name)
    kind = KINDS[v["go_type"]]
    data = bytes.fromhex(v["hex"])
    if name in PYTHON_REJECTS:
        with pytest.raises(codec.CodecError):
            kind.decode(data)
        return
    got = kind.decode(data)
    if v.get("go_decode_fails"):
        # ApplyResponse with a Go error inside: its text is not on the wire (an empty
        # map), but it must read as "the leader's FSM rejected the command".
        assert isinstance(got, ApplyResponse)
        assert got.index == v["value"]["Index"]
        assert got.response is not None
        return
    assert got == kind.build(v["value"])


@pytest.mark.parametrize("name", _ids())
def test_python_encodes_go_bytes(name: str) -> None:
    """The values that produced a vector in Go encode to the very same bytes in Python."""
    v = _vector(name)
    kind = KINDS[v["go_type"]]
    if name in PYTHON_REJECTS or name in NO_NIL_FORM or v.get("go_decode_fails"):
        pytest.skip(PYTHON_REJECTS.get(name) or NO_NIL_FORM.get(name) or "Go error values")
    ours = kind.encode(kind.build(v["value"]))
    go = bytes.fromhex(v["hex"])
    if v.get("unordered_map"):
        # Go writes map keys in random order; compare by value, and the sorted instance.
        assert kind.decode(ours) == kind.decode(go)
        return
    assert ours.hex() == go.hex()


@pytest.mark.parametrize("name", _ids())
def test_python_round_trip_of_go_bytes(name: str) -> None:
    """Decoding Go's bytes and encoding the result gives Go's bytes again."""
    v = _vector(name)
    if name in PYTHON_REJECTS or name in NO_NIL_FORM or v.get("go_decode_fails"):
        pytest.skip(PYTHON_REJECTS.get(name) or NO_NIL_FORM.get(name) or "Go error values")
    kind = KINDS[v["go_type"]]
    go = bytes.fromhex(v["hex"])
    assert kind.encode(kind.decode(go)).hex() == go.hex()


def test_no_nil_forms_decode_to_empty_and_encode_safely() -> None:
    snap = codec.decode_msgpack(bytes.fromhex(_vector("snapshot_nil_state")["hex"]), FsmSnapshot)
    assert snap.state == {}
    assert codec.encode_msgpack(FsmSnapshot(state={})) == bytes.fromhex(
        _vector("snapshot_empty")["hex"]
    )
    conf = decode_configuration(bytes.fromhex(_vector("configuration_nil_servers")["hex"]))
    assert len(conf) == 0


@pytest.mark.interop
def test_go_decodes_python_encodings(goldengen: Path, tmp_path: Path) -> None:
    """``goldengen check``: the reference's decoder reads Python's bytes to the same values."""
    items = []
    for v in VECTORS:
        name = v["name"]
        if name in NO_NIL_FORM:
            continue  # Python writes the empty form here by design (checked above)
        kind = KINDS[v["go_type"]]
        items.append({"name": name, "hex": kind.encode(kind.build(v["value"])).hex()})
    src = tmp_path / "python.json"
    src.write_text(json.dumps({"vectors": items}))
    proc = subprocess.run(
        [str(goldengen), "check", "-strict-bytes", str(src)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert f"{len(items)} checked, 0 failed" in proc.stdout

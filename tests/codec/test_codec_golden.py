"""Golden tests: bytes written by the Go reference's encoder, both ways.

The vectors in interop/fixtures/golden.json were produced by coatyio/dda's
EncodeMsgPack (go-msgpack v2.1.2, hashicorp/raft v1.7.2). Every vector our types can
represent must encode to exactly the Go bytes and decode back to the same value.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from ddastate.raft import commands as rc
from ddastate.raft.configuration import decode_configuration, encode_configuration
from ddastate.raft.log import Log, LogType
from ddastate.state.api import Input, InputOp
from ddastate.state.raft import messages as m
from ddastate.state.raft.codec import (
    CodecError,
    decode_msgpack,
    decode_rpc_reply,
    encode_msgpack,
)

GOLDEN = Path(__file__).resolve().parents[2] / "interop" / "fixtures" / "golden.json"
VECTORS: list[dict[str, Any]] = json.loads(GOLDEN.read_text())["vectors"]

WIRE_EXAMPLE_HEX = (
    "89"
    "a441646472"
    "da0024"
    "31313131313131312d323232322d333333332d343434342d353535353535353535353535"
    "a7456e7472696573"
    "91"
    "86"
    "aa417070656e6465644174"
    "a8"
    "1d6f3454663881d9"
    "a444617461"
    "b7"
    "83a34b6579a3666f6fa24f7001a556616c7565a3626172"
    "aa457874656e73696f6e73"
    "c0"
    "a5496e646578"
    "05"
    "a45465726d"
    "02"
    "a454797065"
    "00"
    "a24944"
    "da0024"
    "31313131313131312d323232322d333333332d343434342d353535353535353535353535"
    "a64c6561646572"
    "da0024"
    "31313131313131312d323232322d333333332d343434342d353535353535353535353535"
    "b14c6561646572436f6d6d6974496e646578"
    "04"
    "ac507265764c6f67456e747279"
    "04"
    "ab507265764c6f675465726d"
    "02"
    "af50726f746f636f6c56657273696f6e"
    "03"
    "a45465726d"
    "02"
)

_CLASSES: dict[str, type[Any]] = {
    "raft.AppendEntriesRequest": rc.AppendEntriesRequest,
    "raft.AppendEntriesResponse": rc.AppendEntriesResponse,
    "raft.RequestVoteRequest": rc.RequestVoteRequest,
    "raft.RequestVoteResponse": rc.RequestVoteResponse,
    "raft.RequestPreVoteRequest": rc.RequestPreVoteRequest,
    "raft.RequestPreVoteResponse": rc.RequestPreVoteResponse,
    "raft.InstallSnapshotRequest": rc.InstallSnapshotRequest,
    "raft.InstallSnapshotResponse": rc.InstallSnapshotResponse,
    "raft.TimeoutNowRequest": rc.TimeoutNowRequest,
    "raft.TimeoutNowResponse": rc.TimeoutNowResponse,
    "raft.Log": Log,
    "raft.AddVoterRequest": m.AddVoterRequest,
    "raft.AddVoterResponse": m.AddVoterResponse,
    "raft.RemoveServerRequest": m.RemoveServerRequest,
    "raft.RemoveServerResponse": m.RemoveServerResponse,
    "raft.ApplyRequest": m.ApplyRequest,
    "raft.ApplyResponse": m.ApplyResponse,
    "transport.installSnapshotRequestWithData": m.InstallSnapshotWithData,
    "api.Input": Input,
    "raft.fsmSnapshot": m.FsmSnapshot,
}

_HEX_FIELDS = {
    "Addr",
    "ID",
    "Leader",
    "Candidate",
    "Peers",
    "Configuration",
    "Data",
    "Extensions",
    "Command",
    "Value",
}

# Vectors our typed dataclasses refuse on purpose (values outside the Python enums).
_REFUSED = {"log_type_255"}


def _snake(name: str) -> str:
    name = name.replace("ID", "Id")
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _time_ns(v: Any) -> int | None:
    if v is None:
        return None
    return int(v["sec"]) * 1_000_000_000 + int(v["nsec"])


def build(go_type: str, value: Any) -> Any:
    """Our object for a vector's neutral JSON value."""
    if value is None:
        return None
    rpc = re.fullmatch(r"transport\.rpcResponse\[\*(.+)\]", go_type)
    if rpc:
        return m.RpcReply(
            error=value["Error"],
            response=build(rpc.group(1), value["Response"]),
            retryable=value["Retryable"],
        )
    cls = _CLASSES[go_type]
    kw: dict[str, Any] = {}
    for k, v in value.items():
        attr = _snake(k)
        if k in _HEX_FIELDS and not (go_type == "api.Input" and k == "Key"):
            v = None if v is None else bytes.fromhex(v)
        elif k == "Entries":
            v = None if v is None else [build("raft.Log", e) for e in v]
        elif k == "AppendedAt":
            v = _time_ns(v)
        elif k == "Type":
            v = LogType(v)
        elif k == "Op":
            v = InputOp(v) if v in set(InputOp) else v  # unknown ops are the FSM's to reject
        elif k == "Req":
            v = build("raft.InstallSnapshotRequest", v)
        elif k == "State":
            v = {} if v is None else {sk: bytes.fromhex(sv) for sk, sv in v.items()}
        kw[attr] = v
    return cls(**kw)


def _response_cls(go_type: str) -> type[Any]:
    inner = re.fullmatch(r"transport\.rpcResponse\[\*(.+)\]", go_type)
    assert inner
    return _CLASSES[inner.group(1)]


def _codec_vectors() -> list[dict[str, Any]]:
    return [
        v
        for v in VECTORS
        if v["go_type"] != "raft.Configuration"
        and v["name"] not in _REFUSED
        and not v.get("go_decode_fails")
        and v["name"] != "snapshot_nil_state"
    ]


def test_wire_md_worked_example_byte_for_byte() -> None:
    lid = b"11111111-2222-3333-4444-555555555555"
    data = encode_msgpack(Input(InputOp.SET, "foo", b"bar"))
    req = rc.AppendEntriesRequest(
        term=2,
        leader=lid,
        prev_log_entry=4,
        prev_log_term=2,
        entries=[Log(5, 2, LogType.COMMAND, data, None, 1714979289 * 10**9 + 123456789)],
        leader_commit_index=4,
        id=lid,
        addr=lid,
    )
    out = encode_msgpack(req)
    assert len(out) == 292
    assert out.hex() == WIRE_EXAMPLE_HEX
    assert decode_msgpack(out, rc.AppendEntriesRequest) == req


def test_fixture_holds_the_wire_example() -> None:
    v = next(v for v in VECTORS if v["name"] == "ae_wire_example")
    assert v["hex"] == WIRE_EXAMPLE_HEX


@pytest.mark.parametrize("vec", _codec_vectors(), ids=lambda v: v["name"])
def test_golden_vector(vec: dict[str, Any]) -> None:
    go_type = vec["go_type"]
    obj = build(go_type, vec["value"])
    raw = bytes.fromhex(vec["hex"])
    if go_type.startswith("transport.rpcResponse"):
        decoded: Any = decode_rpc_reply(raw, _response_cls(go_type))
    else:
        decoded = decode_msgpack(raw, type(obj))
    assert decoded == obj
    encoded = encode_msgpack(obj)
    if vec.get("unordered_map"):
        assert len(encoded) == len(raw)
        assert decode_msgpack(encoded, type(obj)) == obj
    else:
        assert encoded.hex() == vec["hex"]


@pytest.mark.parametrize(
    "vec", [v for v in VECTORS if v["name"] in _REFUSED], ids=lambda v: v["name"]
)
def test_values_outside_our_enums_raise_codec_error(vec: dict[str, Any]) -> None:
    cls = _CLASSES[vec["go_type"]]
    with pytest.raises(CodecError, match=r"Type"):
        decode_msgpack(bytes.fromhex(vec["hex"]), cls)


def test_go_fsm_error_response_is_not_taken_for_success() -> None:
    vec = next(v for v in VECTORS if v["name"] == "ap_response_fsm_error")
    resp = decode_msgpack(bytes.fromhex(vec["hex"]), m.ApplyResponse)
    assert resp.response is not None  # a Go leader's FSM error arrives as an empty map


def test_nil_fsm_state_decodes_as_empty() -> None:
    vec = next(v for v in VECTORS if v["name"] == "snapshot_nil_state")
    assert decode_msgpack(bytes.fromhex(vec["hex"]), m.FsmSnapshot).state == {}


@pytest.mark.parametrize(
    "vec", [v for v in VECTORS if v["go_type"] == "raft.Configuration"], ids=lambda v: v["name"]
)
def test_configuration_vectors_decode(vec: dict[str, Any]) -> None:
    raw = bytes.fromhex(vec["hex"])
    servers = vec["value"]["Servers"] or []
    if not servers:
        return
    cfg = decode_configuration(raw)
    assert [(s.id, s.address, int(s.suffrage)) for s in cfg.servers] == [
        (s["ID"], s["Address"], s["Suffrage"]) for s in servers
    ]
    assert encode_configuration(cfg) == raw

"""The Go msgpack rules of WIRE.md section 4, one by one, and round trips of every shape."""

from __future__ import annotations

import dataclasses
import io
import struct
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ddastate.raft import commands as rc
from ddastate.raft.log import Log, LogType
from ddastate.state.api import Input, InputOp
from ddastate.state.raft import messages as m
from ddastate.state.raft.codec import (
    _SPECS,
    CodecError,
    decode_log,
    decode_msgpack,
    decode_msgpack_from_reader,
    decode_rpc_reply,
    encode_apply_reply,
    encode_log,
    encode_log_buffers,
    encode_logs,
    encode_msgpack,
    go_time_form,
    validate_message,
)

U64 = st.integers(0, 2**64 - 1)
I64 = st.integers(-(2**63), 2**63 - 1)
OPT_BYTES = st.none() | st.binary(max_size=300)
TEXT = st.text(max_size=40)
NS = st.none() | st.integers(-(2**62), 2**62)


def logs() -> st.SearchStrategy[Log]:
    return st.builds(
        Log,
        index=U64,
        term=U64,
        type=st.sampled_from(list(LogType)),
        data=OPT_BYTES,
        extensions=OPT_BYTES,
        appended_at=NS,
    )


HEADER: dict[str, Any] = {"protocol_version": I64, "id": OPT_BYTES, "addr": OPT_BYTES}

SHAPES: list[st.SearchStrategy[Any]] = [
    st.builds(
        rc.AppendEntriesRequest,
        term=U64,
        leader=OPT_BYTES,
        prev_log_entry=U64,
        prev_log_term=U64,
        entries=st.none() | st.lists(logs(), max_size=4),
        leader_commit_index=U64,
        **HEADER,
    ),
    st.builds(
        rc.AppendEntriesResponse,
        term=U64,
        last_log=U64,
        success=st.booleans(),
        no_retry_backoff=st.booleans(),
        **HEADER,
    ),
    st.builds(
        rc.RequestVoteRequest,
        term=U64,
        candidate=OPT_BYTES,
        last_log_index=U64,
        last_log_term=U64,
        leadership_transfer=st.booleans(),
        **HEADER,
    ),
    st.builds(rc.RequestVoteResponse, term=U64, peers=OPT_BYTES, granted=st.booleans(), **HEADER),
    st.builds(rc.RequestPreVoteRequest, term=U64, last_log_index=U64, last_log_term=U64, **HEADER),
    st.builds(rc.RequestPreVoteResponse, term=U64, granted=st.booleans(), **HEADER),
    st.builds(
        rc.InstallSnapshotRequest,
        snapshot_version=I64,
        term=U64,
        leader=OPT_BYTES,
        last_log_index=U64,
        last_log_term=U64,
        peers=OPT_BYTES,
        configuration=OPT_BYTES,
        configuration_index=U64,
        size=I64,
        **HEADER,
    ),
    st.builds(rc.InstallSnapshotResponse, term=U64, success=st.booleans(), **HEADER),
    st.builds(rc.TimeoutNowRequest, **HEADER),
    st.builds(rc.TimeoutNowResponse, **HEADER),
    logs(),
    st.builds(m.AddVoterRequest, server_id=TEXT, server_address=TEXT, timeout=I64),
    st.builds(m.AddVoterResponse, index=U64),
    st.builds(m.RemoveServerRequest, server_id=TEXT, timeout=I64),
    st.builds(m.RemoveServerResponse, index=U64),
    st.builds(m.ApplyRequest, command=OPT_BYTES, timeout=I64),
    st.builds(m.ApplyResponse, index=U64, response=st.none() | TEXT),
    st.builds(
        m.InstallSnapshotWithData,
        req=st.none() | st.builds(rc.InstallSnapshotRequest, size=I64, term=U64),
        data=OPT_BYTES,
    ),
    st.builds(m.FsmSnapshot, state=st.dictionaries(TEXT, st.binary(max_size=50), max_size=8)),
    st.builds(Input, op=st.sampled_from(list(InputOp)), key=TEXT, value=OPT_BYTES),
]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: repr(s)[:40])
def test_round_trip_every_shape(shape: st.SearchStrategy[Any]) -> None:
    @settings(max_examples=60, deadline=None)
    @given(shape)
    def run(obj: Any) -> None:
        raw = encode_msgpack(obj)
        assert decode_msgpack(raw, type(obj)) == obj
        # the checked field-by-field path writes the very same bytes as the fast path
        assert _SPECS[type(obj)].encode(obj) == raw
        validate_message(obj)
        assert decode_msgpack_from_reader(io.BytesIO(raw), type(obj)) == obj
        # Go's encoder: every map key in the raw-string family, never str8 / bin.
        assert b"\xd9" not in _markers(raw)
        assert b"\xc4" not in _markers(raw)

    run()


def _markers(raw: bytes) -> bytes:
    """The type-marker bytes of every value in ``raw`` (walks the msgpack structure)."""
    out = bytearray()

    class Walk:
        pos = 0

    def walk() -> None:
        b = raw[Walk.pos]
        out.append(b)
        Walk.pos += 1
        if b <= 0x7F or b >= 0xE0 or b in (0xC0, 0xC2, 0xC3):
            return
        if 0x80 <= b <= 0x8F:
            for _ in range(2 * (b & 0x0F)):
                walk()
        elif 0x90 <= b <= 0x9F:
            for _ in range(b & 0x0F):
                walk()
        elif 0xA0 <= b <= 0xBF:
            Walk.pos += b & 0x1F
        elif b in (0xCC, 0xD0):
            Walk.pos += 1
        elif b in (0xCD, 0xD1):
            Walk.pos += 2
        elif b in (0xCE, 0xD2, 0xCA):
            Walk.pos += 4
        elif b in (0xCF, 0xD3, 0xCB):
            Walk.pos += 8
        elif b in (0xD9, 0xC4):
            n = raw[Walk.pos]
            Walk.pos += 1 + n
        elif b in (0xDA, 0xC5):
            n = int.from_bytes(raw[Walk.pos : Walk.pos + 2], "big")
            Walk.pos += 2 + n
        elif b in (0xDB, 0xC6):
            n = int.from_bytes(raw[Walk.pos : Walk.pos + 4], "big")
            Walk.pos += 4 + n
        elif b in (0xDE, 0xDC):
            n = int.from_bytes(raw[Walk.pos : Walk.pos + 2], "big")
            Walk.pos += 2
            for _ in range(n * (2 if b == 0xDE else 1)):
                walk()
        else:
            raise AssertionError(f"unexpected marker {b:#x}")

    walk()
    assert Walk.pos == len(raw)
    return bytes(out)


def test_rpc_reply_round_trip_with_each_response_type() -> None:
    for resp in (
        rc.AppendEntriesResponse(term=3, last_log=9, success=True, id=b"a", addr=b"a"),
        rc.RequestVoteResponse(term=1, granted=True),
        rc.InstallSnapshotResponse(term=2, success=True),
        rc.TimeoutNowResponse(),
        m.AddVoterResponse(index=12),
        m.RemoveServerResponse(index=13),
        m.ApplyResponse(index=14),
    ):
        reply = m.RpcReply(error="", response=resp, retryable=False)
        assert decode_rpc_reply(encode_msgpack(reply), type(resp)) == reply
    err = m.RpcReply(error="retryable error: leadership lost", response=None, retryable=True)
    assert decode_rpc_reply(encode_msgpack(err), m.ApplyResponse) == err


def test_keys_sorted_and_every_field_written() -> None:
    raw = encode_msgpack(rc.InstallSnapshotResponse())
    obj = msgpack.unpackb(raw, raw=True)
    assert list(obj) == sorted(obj)
    assert list(obj) == [b"Addr", b"ID", b"ProtocolVersion", b"Success", b"Term"]


def test_nil_versus_empty() -> None:
    raw = encode_msgpack(rc.RequestVoteResponse(peers=None, id=b"", addr=None))
    d = msgpack.unpackb(raw, raw=True)
    assert d[b"Peers"] is None and d[b"Addr"] is None and d[b"ID"] == b""
    assert b"\xa2ID\xa0" in raw and b"\xa4Addr\xc0" in raw
    back = decode_msgpack(raw, rc.RequestVoteResponse)
    assert back.peers is None and back.id == b"" and back.addr is None
    e = rc.AppendEntriesRequest(entries=[])
    assert decode_msgpack(encode_msgpack(e), rc.AppendEntriesRequest).entries == []
    assert (
        decode_msgpack(encode_msgpack(rc.AppendEntriesRequest()), rc.AppendEntriesRequest).entries
        is None
    )


@pytest.mark.parametrize(
    ("value", "marker"),
    [
        (127, "7f"),
        (128, "d10080"),
        (32767, "d17fff"),
        (32768, "d200008000"),
        (-33, "d0df"),
        (-1, "ff"),
        (2**31, "d30000000080000000"),
    ],
)
def test_signed_fields_use_the_signed_family(value: int, marker: str) -> None:
    raw = encode_msgpack(m.ApplyRequest(command=None, timeout=value))
    assert raw.endswith(bytes.fromhex("a754696d656f7574" + marker))
    assert decode_msgpack(raw, m.ApplyRequest).timeout == value


@pytest.mark.parametrize(
    ("value", "marker"),
    [(127, "7f"), (128, "cc80"), (255, "ccff"), (256, "cd0100"), (2**32, "cf0000000100000000")],
)
def test_unsigned_fields_use_the_unsigned_family(value: int, marker: str) -> None:
    raw = encode_msgpack(m.AddVoterResponse(index=value))
    assert raw == bytes.fromhex("81a5496e646578" + marker)


def test_either_integer_family_decodes_into_either_kind() -> None:
    raw = msgpack.packb({"Index": 5}, use_bin_type=False)  # positive fixint
    assert decode_msgpack(raw, m.AddVoterResponse).index == 5
    signed = bytes.fromhex("81a5496e646578d10100")  # int16 256 into a uint field
    assert decode_msgpack(signed, m.AddVoterResponse).index == 256
    unsigned = bytes.fromhex("82a7436f6d6d616e64c0a754696d656f7574cd0100")  # uint16 in int field
    assert decode_msgpack(unsigned, m.ApplyRequest).timeout == 256


def test_negative_into_unsigned_fails_naming_the_field() -> None:
    with pytest.raises(CodecError, match=r"AddVoterResponse\.Index"):
        decode_msgpack(bytes.fromhex("81a5496e646578ff"), m.AddVoterResponse)
    with pytest.raises(CodecError, match=r"ApplyRequest\.Timeout"):
        decode_msgpack(bytes.fromhex("81a754696d656f7574cfffffffffffffffff"), m.ApplyRequest)


def test_unknown_keys_skipped_and_missing_keys_zero() -> None:
    raw = msgpack.packb({"Zzz": [1, 2, {"x": None}], "Term": 9, "Extra": b"q"}, use_bin_type=False)
    r = decode_msgpack(raw, rc.RequestVoteRequest)
    assert r.term == 9 and r.candidate is None and r.leadership_transfer is False
    assert r.protocol_version == 0 and r.id is None
    assert decode_msgpack(b"\x80", m.AddVoterRequest) == m.AddVoterRequest("", "", 0)


def test_str8_and_bin_are_accepted_on_decode() -> None:
    raw = msgpack.packb({"Command": b"abc", "Timeout": 0}, use_bin_type=True)
    assert raw.count(b"\xc4") == 1
    assert decode_msgpack(raw, m.ApplyRequest).command == b"abc"
    key = "k" * 40
    raw = msgpack.packb({"Key": key, "Op": 1, "Value": b"v" * 40}, use_bin_type=True)
    assert decode_msgpack(raw, Input) == Input(InputOp.SET, key, b"v" * 40)


# ---------------------------------------------------------------- AppendedAt

SEC = 1_000_000_000


@pytest.mark.parametrize(
    ("ns", "form"),
    [
        (None, None),
        (0, "00000000"),
        (1714979289 * SEC, (1714979289).to_bytes(4, "big").hex()),
        (1714979289 * SEC + 123456789, "1d6f3454663881d9"),
        (2**32 * SEC, "0000000100000000"),
        (
            (2**34 - 1) * SEC + 999_999_999,
            ((999_999_999 << 34) | (2**34 - 1)).to_bytes(8, "big").hex(),
        ),
        (2**34 * SEC, "00000000" + (2**34).to_bytes(8, "big").hex()),
        (-SEC // 2, "1dcd6500" + "ffffffffffffffff"),
        (-62135596800 * SEC, None),  # Go's zero time
    ],
)
def test_appended_at_forms_as_go_writes_them(ns: int | None, form: str | None) -> None:
    got = go_time_form(ns)
    assert (got.hex() if got is not None else None) == form
    entry = Log(1, 1, appended_at=ns)
    back = decode_log(encode_log(entry))
    assert back.appended_at == (None if form is None else ns)


def _log_with_time(raw_time: bytes) -> bytes:
    body: bytes = msgpack.packb({"Index": 1, "Term": 1, "Type": 0}, use_bin_type=False)
    key: bytes = msgpack.packb("AppendedAt", use_bin_type=False)
    return bytes([0x84]) + body[1:] + key + raw_time


def test_appended_at_ext_minus_one_forms() -> None:
    t = 1714979289 * SEC + 123456789
    ts = msgpack.Timestamp.from_unix_nano(t)
    for raw_time in (msgpack.packb(ts), msgpack.packb(msgpack.Timestamp(1714979289, 0))):
        got = decode_log(_log_with_time(raw_time)).appended_at
        assert got in (t, 1714979289 * SEC)
    big = msgpack.Timestamp(2**35, 5)  # 12-byte ext form
    assert msgpack.packb(big)[:3] == b"\xc7\x0c\xff"
    assert decode_log(_log_with_time(msgpack.packb(big))).appended_at == 2**35 * SEC + 5


def test_appended_at_go_binary_form() -> None:
    unix = 1714979289
    body = bytes([1]) + (unix + 62135596800).to_bytes(8, "big") + (42).to_bytes(4, "big")
    body += struct.pack(">h", -1)
    assert len(body) == 15
    raw_time = bytes([0xA0 | 15]) + body
    assert decode_log(_log_with_time(raw_time)).appended_at == unix * SEC + 42
    v2 = bytes([2]) + body[1:13] + struct.pack(">h", 60) + b"\x00"
    assert decode_log(_log_with_time(bytes([0xA0 | 16]) + v2)).appended_at == unix * SEC + 42


@pytest.mark.parametrize("n", [0, 1, 3, 5, 7, 11, 13, 20])
def test_appended_at_bad_lengths(n: int) -> None:
    with pytest.raises(CodecError, match="AppendedAt"):
        decode_log(_log_with_time(msgpack.packb(b"\x05" * n, use_bin_type=False)))


def test_appended_at_wrong_types() -> None:
    for raw_time in (b"\x05", b"\xc3", msgpack.packb(msgpack.ExtType(5, b"1234"))):
        with pytest.raises(CodecError, match="AppendedAt"):
            decode_log(_log_with_time(raw_time))


# ----------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b"", "does not decode"),
        (b"\x81", "does not decode"),
        (b"\x80\x80", None),  # trailing bytes are ignored, as by the Go decoder
        (b"\x93\x01\x02\x03", "not a map|expected a map"),
        (bytes.fromhex("81a45465726da3666f6f"), "Term"),
        (bytes.fromhex("81a7456e7472696573a3666f6f"), "Entries"),
        (bytes.fromhex("81a7456e747269657391a3666f6f"), r"Entries\[0\]"),
        (bytes.fromhex("81a7456e74726965739181a454797065cc09"), r"Entries\[0\].Type"),
        (bytes.fromhex("81a7456e74726965739281a4547970650081a45479706509"), r"Entries\[1\].Type"),
        (bytes.fromhex("81a6536f6d65496401"), None),
    ],
)
def test_bad_input_raises_codec_error_naming_the_part(raw: bytes, match: str | None) -> None:
    if match is None:
        assert decode_msgpack(raw, rc.AppendEntriesRequest).term == 0
        return
    with pytest.raises(CodecError, match=match):
        decode_msgpack(raw, rc.AppendEntriesRequest)


def test_text_fields_must_be_utf8() -> None:
    raw = bytes.fromhex("81a85365727665724964a2ff00")
    with pytest.raises(CodecError, match="ServerId"):
        decode_msgpack(raw, m.AddVoterRequest)


def test_encode_rejects_what_go_cannot_read() -> None:
    with pytest.raises(CodecError):
        encode_msgpack(m.AddVoterResponse(index=-1))
    with pytest.raises(CodecError):
        encode_msgpack(m.ApplyRequest(timeout=2**63))
    with pytest.raises(CodecError):
        encode_msgpack(object())
    with pytest.raises(CodecError):
        encode_msgpack(m.AddVoterRequest(server_id=b"x"))  # type: ignore[arg-type]


def test_not_bytes_is_a_codec_error() -> None:
    with pytest.raises(CodecError):
        decode_msgpack("text", Input)  # type: ignore[arg-type]


def test_reader_reads_one_value_from_a_stream() -> None:
    snap = m.FsmSnapshot(state={"a": b"1", "b": b""})
    assert decode_msgpack_from_reader(io.BytesIO(encode_msgpack(snap)), m.FsmSnapshot) == snap
    with pytest.raises(CodecError):
        decode_msgpack_from_reader(io.BytesIO(encode_msgpack(snap)[:-1]), m.FsmSnapshot)


def test_validate_message_catches_what_the_fast_path_would_write() -> None:
    bad_term = rc.AppendEntriesRequest(term=-1)
    assert encode_msgpack(bad_term)  # the fast path writes it (Go would refuse it) ...
    with pytest.raises(CodecError, match=r"AppendEntriesRequest\.Term"):
        validate_message(bad_term)  # ... the full check names it
    bad_entry = rc.AppendEntriesRequest(entries=[Log(1, 1), Log(-2, 1)])
    with pytest.raises(CodecError, match=r"Entries\[1\]\.Index"):
        validate_message(bad_entry)
    with pytest.raises(CodecError, match="cannot encode"):
        validate_message(3)


def test_go_leniencies_are_accepted() -> None:
    """What the Go decoder takes besides its encoder's forms: an integer for a bool, and
    trailing bytes after the message."""
    raw = msgpack.packb({"Term": 3, "LastLog": 9, "Success": 1}, use_bin_type=False)
    resp = decode_msgpack(raw + b"\xc0\x01", rc.AppendEntriesResponse)
    assert (resp.term, resp.last_log, resp.success) == (3, 9, True)
    raw = msgpack.packb({"Success": 0, "NoRetryBackoff": 7}, use_bin_type=False)
    resp = decode_msgpack(raw, rc.AppendEntriesResponse)
    assert (resp.success, resp.no_retry_backoff) == (False, True)


@pytest.mark.parametrize("n", [0, 1, 15, 16, 600, 65536])
def test_append_entries_with_entries_encoded_once(n: int) -> None:
    """A leader encodes an entry once: every AppendEntries carrying it and its own store
    write the same bytes as encoding it afresh (array headers of every size included)."""
    entries = [
        Log(i, 7, LogType.COMMAND, b"d%d" % i, None, 1_700_000_000_123_456_789 + i % 3)
        for i in range(1, n + 1)
    ]
    req = rc.AppendEntriesRequest(
        term=7, leader=b"a", prev_log_entry=0, prev_log_term=0, entries=entries, id=b"a"
    )
    first = encode_msgpack(req)
    assert first == _SPECS[rc.AppendEntriesRequest].encode(req)
    assert all(e.encoded == encode_log(e) for e in entries)
    # the second follower's request and the store reuse what the first one encoded
    assert encode_msgpack(req) == first
    assert encode_logs(entries) == [encode_log(e) for e in entries]
    assert decode_msgpack(first, rc.AppendEntriesRequest) == req
    # encoded by the store first, then sent: the same bytes again
    fresh = [Log(e.index, e.term, e.type, e.data, None, e.appended_at) for e in entries]
    assert encode_logs(fresh) == [encode_log(e) for e in entries]
    assert encode_msgpack(dataclasses.replace(req, entries=fresh)) == first


def test_batch_encoding_matches_one_by_one() -> None:
    """The store's and AppendEntries' batch encoder (pieces reused across entries of a
    term, type and time) writes what encoding each entry alone writes."""
    term = st.sampled_from([0, 1, 2**40, 2**64 - 1])
    at = st.sampled_from([None, 0, 1_700_000_000_123_456_789, -1, 2**62])
    entry = st.builds(
        Log,
        index=U64,
        term=term,
        type=st.sampled_from(list(LogType)),
        data=OPT_BYTES,
        extensions=st.none() | st.binary(max_size=5),
        appended_at=at,
    )

    @settings(max_examples=200, deadline=None)
    @given(st.lists(entry, max_size=20))
    def run(entries: list[Log]) -> None:
        want = [encode_log(e) for e in entries]
        assert encode_logs(entries) == want
        assert [bytes(b) for b in encode_log_buffers(entries)] == want
        copies = [
            Log(e.index, e.term, e.type, e.data, e.extensions, e.appended_at) for e in entries
        ]
        req = rc.AppendEntriesRequest(term=1, entries=copies)
        assert encode_msgpack(req) == _SPECS[rc.AppendEntriesRequest].encode(req)
        assert [e.encoded for e in copies] == want

    run()


@pytest.mark.parametrize(
    "index", [0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1]
)
def test_apply_reply_encoder_writes_what_the_spec_writes(index: int) -> None:
    reply = m.RpcReply(error="", response=m.ApplyResponse(index=index), retryable=False)
    assert encode_apply_reply(index) == encode_msgpack(reply)
    assert decode_rpc_reply(encode_apply_reply(index), m.ApplyResponse) == reply


@pytest.mark.parametrize("index", [-1, 2**64, True, 1.0])
def test_apply_reply_encoder_rejects_what_is_not_a_uint64(index: Any) -> None:
    with pytest.raises(CodecError, match=r"ApplyResponse\.Index"):
        encode_apply_reply(index)


@pytest.mark.parametrize(
    "inner",
    [
        {},
        {b"Index": 7},
        {b"Index": 7, b"Response": None},
        {b"Index": 7, b"Response": b"FSM error"},
        {b"Index": 7, b"Response": {}},  # a Go error value
        {b"Index": b"7"},
        {b"Index": -1},
        {b"Index": 7, b"Response": 5},
        {b"Index": 7, b"Response": b"\xff"},
    ],
)
def test_apply_reply_decoder_agrees_with_the_spec(inner: dict[bytes, Any]) -> None:
    """The fast decoder of a forwarded proposal's reply: same result, same error label."""
    raw = msgpack.packb({b"Error": b"", b"Response": inner, b"Retryable": False})
    spec = _SPECS[m.ApplyResponse]
    try:
        want: Any = spec.decode(inner, "RpcReply.Response")
    except CodecError as e:
        with pytest.raises(CodecError) as got:
            decode_rpc_reply(raw, m.ApplyResponse)
        assert str(got.value) == str(e)
        return
    assert decode_rpc_reply(raw, m.ApplyResponse).response == want


@pytest.mark.parametrize(
    "obj",
    [
        {},
        {b"Command": b"\x93\x01"},
        {b"Command": None, b"Timeout": -5},
        {b"Command": b"x", b"Timeout": 2**63},
        {b"Command": "text"},
        {b"Command": 1},
        {b"Timeout": b"1"},
    ],
)
def test_apply_request_decoder_agrees_with_the_spec(obj: dict[Any, Any]) -> None:
    raw = msgpack.packb(obj, use_bin_type=True)
    spec = _SPECS[m.ApplyRequest]
    try:
        want: Any = spec.decode(msgpack.unpackb(raw, raw=True), "ApplyRequest")
    except CodecError as e:
        with pytest.raises(CodecError) as got:
            decode_msgpack(raw, m.ApplyRequest)
        assert str(got.value) == str(e)
        return
    assert decode_msgpack(raw, m.ApplyRequest) == want

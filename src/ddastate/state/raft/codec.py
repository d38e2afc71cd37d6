"""MessagePack codec compatible with the Go reference (WIRE.md section 4).

What Go members write, and what this module writes, follows hashicorp/go-msgpack v2 with
a default ``MsgpackHandle``:

- a struct is a map keyed by the Go field names, sorted in byte order, every field written;
- strings and byte slices use the old raw-string family (fixstr, str16, str32), never
  str8 and never bin; nil slices are nil (0xc0), empty slices an empty fixstr (0xa0);
- unsigned fields use positive fixint or uint8..uint64, signed fields fixint or
  int8..int64 (so a positive value above 127 takes an int16/int32/int64 marker);
- ``time.Time`` (``Log.AppendedAt``) is nil for the zero time, else a raw string of 4
  bytes (uint32 seconds), 8 bytes (``nsec << 34 | sec``) or 12 bytes (uint32 nsec, int64
  sec); on decode the msgpack timestamp extension (-1) and Go's 15/16-byte binary time
  form are accepted too.

Decoding reads raw strings as bytes and turns text fields into ``str`` by schema.
Unknown keys are skipped and missing keys take Go's zero values (0, "", False, None).
Every failure on bad input raises :class:`CodecError`, a ``ValueError`` naming the field
that failed; nothing else escapes the decoders.

Like the Go decoder, an ``Input.Op`` outside InputOp decodes (as a plain int) for the
FSM to reject; a ``Log.Type`` outside LogType raises (a Go member panics on one).

The hot messages (AppendEntries, RequestVote, Log, Input) are encoded by building a
plain dict in sorted key order and handing it to a per-thread msgpack Packer in one C
call, and decoded by hand-written functions; every other message goes through a field
table built once per type, which also checks every value (``validate_message``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import IO, Any, TypeVar, cast

import msgpack

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
from ddastate.raft.log import Log, LogType
from ddastate.state.api import Input, InputOp

from .messages import (
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

T = TypeVar("T")

__all__ = [
    "CodecError",
    "decode_log",
    "decode_msgpack",
    "decode_msgpack_from_reader",
    "decode_rpc_reply",
    "encode_apply_reply",
    "encode_log",
    "encode_logs",
    "encode_msgpack",
    "go_time_form",
    "validate_message",
]


class CodecError(ValueError):
    """Bytes that do not decode to the expected message, or a value that cannot be encoded."""


_U64_MAX = 0xFFFF_FFFF_FFFF_FFFF
_I64_MIN = -(1 << 63)
_I64_MAX = (1 << 63) - 1
_NS = 1_000_000_000
# Seconds from 0001-01-01T00:00:00Z (Go's zero time) to the Unix epoch.
_GO_ZERO_UNIX_SEC = -62_135_596_800
_GO_ZERO_NS = _GO_ZERO_UNIX_SEC * _NS

_unpackb = msgpack.unpackb
_NIL = b"\xc0"
_tls = threading.local()


def _new_packer() -> Any:
    p = _tls.packer = msgpack.Packer(use_bin_type=False, autoreset=True)
    return p


def _pack(value: Any) -> bytes:
    """msgpack with Go's raw-string family; one reusable Packer per thread."""
    try:
        packer = _tls.packer
    except AttributeError:
        packer = _new_packer()
    out: bytes = packer.pack(value)
    return out


# ------------------------------------------------------------------------- time


_last_time: tuple[int | None, bytes | None] = (None, None)


def go_time_form(ns: int | None) -> bytes | None:
    """The raw bytes go-msgpack writes for a time given as Unix nanoseconds (None: zero time)."""
    global _last_time
    if ns is None:
        return None
    last = _last_time  # entries of one batch usually share their time
    if last[0] == ns and type(ns) is int:
        return last[1]
    form = _go_time_form(ns)
    _last_time = (ns, form)
    return form


def _go_time_form(ns: int) -> bytes | None:
    if type(ns) is not int:
        raise CodecError(f"AppendedAt must be an int of nanoseconds, not {type(ns).__name__}")
    if ns == _GO_ZERO_NS:
        return None
    sec, nsec = divmod(ns, _NS)
    if sec >= 0 and sec >> 34 == 0:
        data64 = (nsec << 34) | sec
        if data64 >> 32 == 0:
            return data64.to_bytes(4, "big")
        return data64.to_bytes(8, "big")
    if sec < _I64_MIN or sec > _I64_MAX:
        raise CodecError(f"AppendedAt {ns} ns is out of Go's time range")
    return nsec.to_bytes(4, "big") + (sec & _U64_MAX).to_bytes(8, "big")


def _time_from_go_binary(b: bytes, what: str) -> int | None:
    # Go's time.MarshalBinary: version 1 (15 bytes) or 2 (16 bytes): int64 seconds since
    # year 1, int32 nanoseconds, int16 zone offset in minutes [, int8 offset seconds].
    version = b[0]
    if (version == 1 and len(b) == 15) or (version == 2 and len(b) == 16):
        abs_sec = int.from_bytes(b[1:9], "big", signed=True)
        nsec = int.from_bytes(b[9:13], "big", signed=True)
        if not 0 <= nsec < _NS:
            raise CodecError(f"{what}: binary time has nanoseconds {nsec} out of range")
        ns = (abs_sec + _GO_ZERO_UNIX_SEC) * _NS + nsec
        return None if ns == _GO_ZERO_NS else ns
    raise CodecError(f"{what}: {len(b)}-byte time is neither 4, 8 nor 12 bytes nor Go binary time")


def _dec_time(v: Any, what: str) -> int | None:
    if v is None:
        return None
    if type(v) is bytes:
        n = len(v)
        if n == 8:
            tv = int.from_bytes(v, "big")
            ns = (tv & 0x3_FFFF_FFFF) * _NS + (tv >> 34)
        elif n == 4:
            ns = int.from_bytes(v, "big") * _NS
        elif n == 12:
            ns = int.from_bytes(v[4:], "big", signed=True) * _NS + int.from_bytes(v[:4], "big")
        elif n in (15, 16):
            return _time_from_go_binary(v, what)
        else:
            raise CodecError(f"{what}: {n}-byte time is neither 4, 8 nor 12 bytes")
    elif isinstance(v, msgpack.Timestamp):
        ns = v.seconds * _NS + v.nanoseconds
    else:
        raise CodecError(f"{what} is a {type(v).__name__}, expected a time")
    return None if ns == _GO_ZERO_NS else ns


# ----------------------------------------------------------------- field decoders


def _u64(v: Any, what: str) -> int:
    if type(v) is int and 0 <= v <= _U64_MAX:
        return v
    if v is None:
        return 0
    if type(v) is int:
        raise CodecError(f"{what} = {v} is out of the uint64 range")
    raise CodecError(f"{what} is a {type(v).__name__}, expected an unsigned integer")


def _i64(v: Any, what: str) -> int:
    if type(v) is int and _I64_MIN <= v <= _I64_MAX:
        return v
    if v is None:
        return 0
    if type(v) is int:
        raise CodecError(f"{what} = {v} is out of the int64 range")
    raise CodecError(f"{what} is a {type(v).__name__}, expected a signed integer")


def _bool(v: Any, what: str) -> bool:
    if v is True or v is False:
        return v
    if v is None:
        return False
    if type(v) is int:
        return v != 0  # the Go decoder takes an integer for a bool too
    raise CodecError(f"{what} is a {type(v).__name__}, expected a bool")


def _bytes(v: Any, what: str) -> bytes | None:
    if type(v) is bytes or v is None:
        return v
    raise CodecError(f"{what} is a {type(v).__name__}, expected bytes")


def _str(v: Any, what: str) -> str:
    if type(v) is bytes:
        try:
            return v.decode("utf-8")
        except UnicodeDecodeError as e:
            raise CodecError(f"{what} is not valid UTF-8") from e
    if v is None:
        return ""
    raise CodecError(f"{what} is a {type(v).__name__}, expected a string")


def _map(v: Any, what: str) -> dict[Any, Any]:
    if type(v) is dict:
        return v
    raise CodecError(f"{what} is a {type(v).__name__}, expected a map")


def _log_type(v: Any, what: str) -> LogType:
    t = _u64(v, what)
    try:
        return LogType(t)
    except ValueError:
        raise CodecError(f"{what} = {t} is not a known log type") from None


# ----------------------------------------------------------------- field encoders


def _pack_signed(v: Any, what: str) -> bytes:
    """Go's EncodeInt: fixint, else the smallest of int8..int64 (never the uint family)."""
    if not isinstance(v, int) or isinstance(v, bool):
        raise CodecError(f"{what} must be an int, not {type(v).__name__}")
    v = int(v)
    return _pack_signed_int(v, what)


def _pack_signed_int(v: int, what: str) -> bytes:
    if -32 <= v <= 127:
        return _pack(v)
    if v > 127:
        if v <= 0x7FFF:
            return b"\xd1" + v.to_bytes(2, "big")
        if v <= 0x7FFF_FFFF:
            return b"\xd2" + v.to_bytes(4, "big")
        if v <= _I64_MAX:
            return b"\xd3" + v.to_bytes(8, "big")
        raise CodecError(f"{what} = {v} is out of the int64 range")
    if v < _I64_MIN:
        raise CodecError(f"{what} = {v} is out of the int64 range")
    return _pack(v)  # msgpack picks int8..int64 for negatives, as Go does


def _map_header(n: int) -> bytes:
    if n < 16:
        return bytes((0x80 | n,))
    return b"\xde" + n.to_bytes(2, "big")


def _fits_fixint(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and -32 <= v <= 127


# ------------------------------------------------------------------------- Log


def _log_obj(e: Log) -> dict[str, Any]:
    at = e.appended_at
    return {
        "AppendedAt": None if at is None else go_time_form(at),
        "Data": e.data,
        "Extensions": e.extensions,
        "Index": e.index,
        "Term": e.term,
        "Type": int(e.type),
    }


_LOG_TYPES: dict[int, LogType] = {int(t): t for t in LogType}


def _dec_log(v: Any, what: str) -> Log:
    # The hot path of AppendEntries and of the log store: checks inline, labels for
    # error messages built only when a check fails.
    if type(v) is not dict:
        raise CodecError(f"{what} is a {type(v).__name__}, expected a map")
    g = v.get
    index = g(b"Index")
    if type(index) is not int or not 0 <= index <= _U64_MAX:
        index = _u64(index, what + ".Index")
    term = g(b"Term")
    if type(term) is not int or not 0 <= term <= _U64_MAX:
        term = _u64(term, what + ".Term")
    typ = g(b"Type")
    t = _LOG_TYPES.get(typ) if type(typ) is int else None
    if t is None:
        t = _log_type(typ, what + ".Type")
    data = g(b"Data")
    if data is not None and type(data) is not bytes:
        data = _bytes(data, what + ".Data")
    ext = g(b"Extensions")
    if ext is not None and type(ext) is not bytes:
        ext = _bytes(ext, what + ".Extensions")
    at = g(b"AppendedAt")
    if at is not None:
        if type(at) is bytes and len(at) == 8:  # what Go writes for a time with nanoseconds
            tv = int.from_bytes(at, "big")
            at = (tv & 0x3_FFFF_FFFF) * _NS + (tv >> 34)
        else:
            at = _dec_time(at, what + ".AppendedAt")
    return Log(index, term, t, data, ext, at)


def encode_log(log: Log) -> bytes:
    """Encode one log entry as hashicorp/raft's Log struct (the stored record form)."""
    try:
        return _pack(_log_obj(log))
    except CodecError:
        raise
    except Exception as e:
        raise CodecError(f"Log {getattr(log, 'index', '?')} does not encode: {e}") from e


def encode_logs(logs: Sequence[Log]) -> list[bytes]:
    """Encode many entries (the store's batch path: one loop, one Packer, shared times)."""
    out: list[bytes] = _encode_batch(logs, False)
    return out


def encode_log_buffers(logs: Sequence[Log]) -> list[bytearray]:
    """``encode_logs`` as bytearrays (the same bytes).

    For the SQLite log store: Python's sqlite3 binds a bytearray directly but looks for
    an adapter for every bytes parameter, which costs more than the copy here.
    """
    out: list[bytearray] = _encode_batch(logs, True)
    return out


# The fixed parts of an encoded Log (a map of 6, its keys in order): an entry without
# extensions is these pieces around its packed time, data, index, term and type.
_LOG_HEAD = b"\x86" + _pack("AppendedAt")
_LOG_DATA_KEY = _pack("Data")
_LOG_NO_EXT_INDEX_KEY = _pack("Extensions") + _NIL + _pack("Index")
_LOG_TERM_KEY = _pack("Term")
_LOG_TYPE_KEY = _pack("Type")
_NO_FORM = object()


def _encode_batch(logs: Sequence[Log], buffers: bool) -> Any:
    try:
        pack = _tls.packer.pack
    except AttributeError:
        pack = _new_packer().pack
    out: list[Any] = []
    append = out.append
    last_ns: int | None = None
    last_form: bytes | None = None
    head_form: Any = _NO_FORM
    head = b""
    tails: dict[tuple[int, LogType], bytes] = {}
    e: Any = None
    try:
        for e in logs:
            done = e.encoded
            if done is not None:  # encoded before (a leader's AppendEntries or store)
                append(bytearray(done) if buffers else done)
                continue
            at = e.appended_at
            if at is None:
                form = None
            elif at == last_ns:
                form = last_form
            else:
                form = last_form = go_time_form(at)
                last_ns = at
            t = e.type
            if type(t) is not LogType:
                t = LogType(t)
            if e.extensions is None:
                # Entries of a batch share their time, term and type: only data and
                # index are packed per entry, the rest is reused.
                if form is not head_form:
                    head = _LOG_HEAD + pack(form) + _LOG_DATA_KEY
                    head_form = form
                key = (e.term, t)
                tail = tails.get(key)
                if tail is None:
                    tail = tails[key] = _LOG_TERM_KEY + pack(e.term) + _LOG_TYPE_KEY + pack(t)
                enc = head + pack(e.data) + _LOG_NO_EXT_INDEX_KEY + pack(e.index) + tail
            else:
                # A map is its header then key, value, key, value...: packing those 12
                # as an array and swapping the array header (0x9c) for the map header
                # (0x86) gives the bytes encode_log writes, without a dict per entry.
                packed = pack(
                    (
                        "AppendedAt",
                        form,
                        "Data",
                        e.data,
                        "Extensions",
                        e.extensions,
                        "Index",
                        e.index,
                        "Term",
                        e.term,
                        "Type",
                        t,
                    )
                )
                enc = b"\x86" + packed[1:]
            e.encoded = enc
            append(bytearray(enc) if buffers else enc)
    except CodecError:
        raise
    except Exception as ex:
        raise CodecError(f"Log {getattr(e, 'index', '?')} does not encode: {ex}") from ex
    return out


def decode_log(data: bytes) -> Log:
    """Decode one stored or transmitted Log record."""
    return decode_msgpack(data, Log)


# ----------------------------------------------------------- generic struct specs
#
# A spec is a list of (go_name, attribute, kind); kinds: "u" uint64, "i" int64, "b" bool,
# "y" bytes, "s" str, plus per-spec nested types handled by callables.

_Enc = Callable[[Any, str], bytes]
_Dec = Callable[[Any, str], Any]


def _enc_u(v: Any, what: str) -> bytes:
    if type(v) is not int or not 0 <= v <= _U64_MAX:
        if isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= _U64_MAX:
            return _pack(int(v))
        raise CodecError(f"{what} must be an unsigned 64-bit int, not {v!r}")
    return _pack(v)


def _enc_b(v: Any, what: str) -> bytes:
    if v is True:
        return b"\xc3"
    if v is False:
        return b"\xc2"
    raise CodecError(f"{what} must be a bool, not {type(v).__name__}")


def _enc_y(v: Any, what: str) -> bytes:
    if v is None:
        return _NIL
    if isinstance(v, (bytes, bytearray, memoryview)):
        return _pack(bytes(v))
    raise CodecError(f"{what} must be bytes or None, not {type(v).__name__}")


def _enc_s(v: Any, what: str) -> bytes:
    if isinstance(v, str):
        return _pack(v.encode("utf-8"))
    raise CodecError(f"{what} must be a str, not {type(v).__name__}")


_KIND_ENC: dict[str, _Enc] = {"u": _enc_u, "i": _pack_signed, "b": _enc_b, "y": _enc_y, "s": _enc_s}
_KIND_DEC: dict[str, _Dec] = {"u": _u64, "i": _i64, "b": _bool, "y": _bytes, "s": _str}


class _Spec:
    """Encoder and decoder of one struct type, built once from its field list."""

    __slots__ = ("_nested_labels", "cls", "fields", "header", "labels", "name")

    def __init__(
        self,
        cls: type[Any],
        fields: list[tuple[str, str, str | tuple[_Enc, _Dec]]],
    ) -> None:
        self.cls = cls
        self.name = cls.__name__
        fields = sorted(fields, key=lambda f: f[0].encode())
        self.header = _map_header(len(fields))
        self.fields: list[tuple[bytes, bytes, str, _Enc, _Dec]] = []
        for go, attr, kind in fields:
            if isinstance(kind, str):
                enc, dec = _KIND_ENC[kind], _KIND_DEC[kind]
            else:
                enc, dec = kind
            self.fields.append((_pack(go), go.encode(), attr, enc, dec))
        self.labels = [f"{self.name}.{f[1].decode()}" for f in self.fields]
        self._nested_labels: dict[str, list[str]] = {}

    def _labels(self, what: str | None) -> list[str]:
        if what is None or what == self.name:
            return self.labels
        got = self._nested_labels.get(what)
        if got is None:
            # the paths a spec is nested under are few (a reply's Response, a
            # request's Req): built once each, a bounded number kept
            got = [f"{what}.{f[1].decode()}" for f in self.fields]
            if len(self._nested_labels) < 64:
                self._nested_labels[what] = got
        return got

    def encode(self, obj: Any, what: str | None = None) -> bytes:
        parts = [self.header]
        for (kp, _, attr, enc, _), label in zip(self.fields, self._labels(what), strict=True):
            parts.append(kp)
            parts.append(enc(getattr(obj, attr), label))
        return b"".join(parts)

    def decode(self, v: Any, what: str | None = None) -> Any:
        if v is None:
            return self.cls(**{attr: dec(None, "") for _, _, attr, _, dec in self.fields})
        g = _map(v, what or self.name).get
        kw = {}
        for (_, go, attr, _, dec), label in zip(self.fields, self._labels(what), strict=True):
            kw[attr] = dec(g(go), label)
        return self.cls(**kw)


_HEADER = [("ProtocolVersion", "protocol_version", "i"), ("ID", "id", "y"), ("Addr", "addr", "y")]


def _nested(spec_getter: Callable[[], _Spec]) -> tuple[_Enc, _Dec]:
    def enc(v: Any, what: str) -> bytes:
        if v is None:
            return _NIL
        return spec_getter().encode(v, what)

    def dec(v: Any, what: str) -> Any:
        if v is None:
            return None
        return spec_getter().decode(v, what)

    return enc, dec


def _array_header(n: int) -> bytes:
    if n < 16:
        return bytes((0x90 | n,))
    if n < 0x10000:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


def _enc_entries(v: Any, what: str) -> bytes:
    # The checked path (the fast path packs the entries as dicts in one call).
    if v is None:
        return _NIL
    if not isinstance(v, list):
        raise CodecError(f"{what} must be a list of Log or None, not {type(v).__name__}")
    parts = [_array_header(len(v))]
    for i, e in enumerate(v):
        if type(e) is not Log:
            raise CodecError(f"{what}[{i}] is a {type(e).__name__}, not a Log")
        parts.append(_LOG_SPEC.encode(e, f"{what}[{i}]"))
    return b"".join(parts)


def _dec_entries(v: Any, what: str) -> list[Log] | None:
    if v is None:
        return None
    if type(v) is not list:
        raise CodecError(f"{what} is a {type(v).__name__}, expected an array")
    try:
        return [_dec_log(e, what) for e in v]
    except CodecError:
        # the label with the entry's position is built only for the error message
        for i, e in enumerate(v):
            _dec_log(e, f"{what}[{i}]")
        raise


def _enc_time(v: Any, what: str) -> bytes:
    return _pack(go_time_form(v))


def _enc_opt_str(v: Any, what: str) -> bytes:
    if v is None:
        return _NIL
    return _enc_s(v, what)


GO_ERROR_VALUE = "error reported by the leader's FSM (a Go error value, message not transmitted)"


def _dec_apply_response(v: Any, what: str) -> str | None:
    if v is None:
        return None
    if type(v) is dict:
        # A Go leader whose FSM returned an error writes the error struct, whose fields
        # are unexported: an empty map. It is a failure, not a success.
        return GO_ERROR_VALUE
    return _str(v, what)


def _enc_op(v: Any, what: str) -> bytes:
    return _pack_signed(v, what)


_INPUT_OPS: dict[int, InputOp] = {int(o): o for o in InputOp}


def _dec_op(v: Any, what: str) -> InputOp:
    # Like the Go decoder, any int64 is accepted: an unknown op is the FSM's to reject
    # (it answers "unknown input operation ..."), so it is passed on as a plain int.
    op = _i64(v, what)
    return _INPUT_OPS.get(op, cast(InputOp, op))


def _enc_state(v: Any, what: str) -> bytes:
    if v is None:
        return _NIL
    if not isinstance(v, dict):
        raise CodecError(f"{what} must be a dict, not {type(v).__name__}")
    try:
        return _pack(v)
    except Exception as e:
        raise CodecError(f"{what} does not encode: {e}") from e


def _dec_state(v: Any, what: str) -> dict[str, bytes]:
    if v is None:
        return {}
    d = _map(v, what)
    out: dict[str, bytes] = {}
    for k, val in d.items():
        key = _str(k, f"{what} key")
        b = _bytes(val, f"{what}[{key!r}]")
        out[key] = b"" if b is None else b
    return out


_LOG_SPEC = _Spec(
    Log,
    [
        ("Index", "index", "u"),
        ("Term", "term", "u"),
        ("Type", "type", (_enc_u, _log_type)),
        ("Data", "data", "y"),
        ("Extensions", "extensions", "y"),
        ("AppendedAt", "appended_at", (_enc_time, _dec_time)),
    ],
)

_SPECS: dict[type[Any], _Spec] = {}


def _spec(cls: type[Any], fields: list[tuple[str, str, str | tuple[_Enc, _Dec]]]) -> _Spec:
    s = _Spec(cls, fields)
    _SPECS[cls] = s
    return s


_spec(
    AppendEntriesRequest,
    [
        *_HEADER,
        ("Term", "term", "u"),
        ("Leader", "leader", "y"),
        ("PrevLogEntry", "prev_log_entry", "u"),
        ("PrevLogTerm", "prev_log_term", "u"),
        ("Entries", "entries", (_enc_entries, _dec_entries)),
        ("LeaderCommitIndex", "leader_commit_index", "u"),
    ],
)
_spec(
    AppendEntriesResponse,
    [
        *_HEADER,
        ("Term", "term", "u"),
        ("LastLog", "last_log", "u"),
        ("Success", "success", "b"),
        ("NoRetryBackoff", "no_retry_backoff", "b"),
    ],
)
_spec(
    RequestVoteRequest,
    [
        *_HEADER,
        ("Term", "term", "u"),
        ("Candidate", "candidate", "y"),
        ("LastLogIndex", "last_log_index", "u"),
        ("LastLogTerm", "last_log_term", "u"),
        ("LeadershipTransfer", "leadership_transfer", "b"),
    ],
)
_spec(
    RequestVoteResponse,
    [*_HEADER, ("Term", "term", "u"), ("Peers", "peers", "y"), ("Granted", "granted", "b")],
)
_spec(
    RequestPreVoteRequest,
    [
        *_HEADER,
        ("Term", "term", "u"),
        ("LastLogIndex", "last_log_index", "u"),
        ("LastLogTerm", "last_log_term", "u"),
    ],
)
_spec(RequestPreVoteResponse, [*_HEADER, ("Term", "term", "u"), ("Granted", "granted", "b")])
_ISR = _spec(
    InstallSnapshotRequest,
    [
        *_HEADER,
        ("SnapshotVersion", "snapshot_version", "i"),
        ("Term", "term", "u"),
        ("Leader", "leader", "y"),
        ("LastLogIndex", "last_log_index", "u"),
        ("LastLogTerm", "last_log_term", "u"),
        ("Peers", "peers", "y"),
        ("Configuration", "configuration", "y"),
        ("ConfigurationIndex", "configuration_index", "u"),
        ("Size", "size", "i"),
    ],
)
_spec(InstallSnapshotResponse, [*_HEADER, ("Term", "term", "u"), ("Success", "success", "b")])
_spec(TimeoutNowRequest, list(_HEADER))
_spec(TimeoutNowResponse, list(_HEADER))
_spec(
    AddVoterRequest,
    [
        ("ServerId", "server_id", "s"),
        ("ServerAddress", "server_address", "s"),
        ("Timeout", "timeout", "i"),
    ],
)
_spec(AddVoterResponse, [("Index", "index", "u")])
_spec(RemoveServerRequest, [("ServerId", "server_id", "s"), ("Timeout", "timeout", "i")])
_spec(RemoveServerResponse, [("Index", "index", "u")])
_spec(ApplyRequest, [("Command", "command", "y"), ("Timeout", "timeout", "i")])
_spec(
    ApplyResponse,
    [("Index", "index", "u"), ("Response", "response", (_enc_opt_str, _dec_apply_response))],
)
_spec(
    InstallSnapshotWithData,
    [("Req", "req", _nested(lambda: _ISR)), ("Data", "data", "y")],
)
_spec(FsmSnapshot, [("State", "state", (_enc_state, _dec_state))])
_spec(Input, [("Key", "key", "s"), ("Op", "op", (_enc_op, _dec_op)), ("Value", "value", "y")])
_SPECS[Log] = _LOG_SPEC


def _enc_response(v: Any, what: str) -> bytes:
    if v is None:
        return _NIL
    return _encode_any(v, what)


_RPC_REPLY_FIELDS: list[tuple[str, str, str | tuple[_Enc, _Dec]]] = [
    ("Error", "error", "s"),
    ("Response", "response", (_enc_response, lambda v, w: v)),
    ("Retryable", "retryable", "b"),
]
_spec(RpcReply, _RPC_REPLY_FIELDS)


# ------------------------------------------------------------ fast dict encoders


def _fast_aer(m: AppendEntriesRequest) -> bytes | None:
    if not _fits_fixint(m.protocol_version):
        return None
    entries = m.entries
    # The map written piece by piece so that the entries go in as the bytes each one
    # encodes to (kept on the entry: every follower's request and the leader's own
    # store reuse them). A tuple packs as an array: its 1-byte header is dropped.
    head = _pack(("Addr", m.addr, "Entries"))[1:]
    tail = _pack(
        (
            "ID",
            m.id,
            "Leader",
            m.leader,
            "LeaderCommitIndex",
            m.leader_commit_index,
            "PrevLogEntry",
            m.prev_log_entry,
            "PrevLogTerm",
            m.prev_log_term,
            "ProtocolVersion",
            m.protocol_version,
            "Term",
            m.term,
        )
    )[1:]
    if entries is None:
        return b"\x89" + head + _NIL + tail
    try:
        encs: list[bytes] = _encode_batch(entries, False)
    except CodecError:
        return None  # the general encoder names what is wrong
    return b"".join((b"\x89", head, _array_header(len(entries)), *encs, tail))


def _fast_aep(m: AppendEntriesResponse) -> bytes | None:
    if not _fits_fixint(m.protocol_version):
        return None
    return _pack(
        {
            "Addr": m.addr,
            "ID": m.id,
            "LastLog": m.last_log,
            "NoRetryBackoff": m.no_retry_backoff,
            "ProtocolVersion": m.protocol_version,
            "Success": m.success,
            "Term": m.term,
        }
    )


def _fast_rvr(m: RequestVoteRequest) -> bytes | None:
    if not _fits_fixint(m.protocol_version):
        return None
    return _pack(
        {
            "Addr": m.addr,
            "Candidate": m.candidate,
            "ID": m.id,
            "LastLogIndex": m.last_log_index,
            "LastLogTerm": m.last_log_term,
            "LeadershipTransfer": m.leadership_transfer,
            "ProtocolVersion": m.protocol_version,
            "Term": m.term,
        }
    )


def _fast_rvp(m: RequestVoteResponse) -> bytes | None:
    if not _fits_fixint(m.protocol_version):
        return None
    return _pack(
        {
            "Addr": m.addr,
            "Granted": m.granted,
            "ID": m.id,
            "Peers": m.peers,
            "ProtocolVersion": m.protocol_version,
            "Term": m.term,
        }
    )


def _fast_log(m: Log) -> bytes | None:
    return _pack(_log_obj(m))


_APPLY_COMMAND_KEY = b"\x82" + _pack("Command")
_APPLY_TIMEOUT_KEY = _pack("Timeout")


def _fast_apply(m: ApplyRequest) -> bytes | None:
    command, timeout = m.command, m.timeout
    if (command is not None and type(command) is not bytes) or type(timeout) is not int:
        return None
    if not _I64_MIN <= timeout <= _I64_MAX:
        return None
    return (
        _APPLY_COMMAND_KEY
        + _pack(command)
        + _APPLY_TIMEOUT_KEY
        + _pack_signed_int(timeout, "ApplyRequest.Timeout")
    )


# RpcReply{Error: "", Response: ApplyResponse{Index: i, Response: nil}, Retryable: false}
# around the index: the leader's answer to every forwarded proposal that committed.
_APPLY_OK_HEAD = b"\x83" + _pack("Error") + _pack("") + _pack("Response") + b"\x82" + _pack("Index")
_APPLY_OK_TAIL = _pack("Response") + _NIL + _pack("Retryable") + b"\xc2"


def encode_apply_reply(index: int) -> bytes:
    """``encode_msgpack(RpcReply("", ApplyResponse(index, None), False))``, built directly."""
    if type(index) is not int or not 0 <= index <= _U64_MAX:
        raise CodecError(f"ApplyResponse.Index must be an unsigned 64-bit int, not {index!r}")
    return _APPLY_OK_HEAD + _pack(index) + _APPLY_OK_TAIL


def _fast_input(m: Input) -> bytes | None:
    if not _fits_fixint(m.op):
        return None
    return _pack({"Key": m.key.encode(), "Op": int(m.op), "Value": m.value})


def encode_input_fields(op: int, key: str, value: bytes | None) -> bytes:
    """The bytes of ``Input(op, key, value)`` for fields already checked by the caller.

    ``op`` a small non-negative int, ``key`` a str, ``value`` bytes or None: the same
    bytes as ``encode_msgpack(Input(...))`` without its dispatch (every proposal pays it).
    Raises UnicodeEncodeError for a key that is not valid text.
    """
    try:
        packer = _tls.packer
    except AttributeError:
        packer = _new_packer()
    out: bytes = packer.pack({"Key": key.encode(), "Op": op, "Value": value})
    return out


_FAST: dict[type[Any], Callable[[Any], bytes | None]] = {
    AppendEntriesRequest: _fast_aer,
    AppendEntriesResponse: _fast_aep,
    ApplyRequest: _fast_apply,
    RequestVoteRequest: _fast_rvr,
    RequestVoteResponse: _fast_rvp,
    Log: _fast_log,
    Input: _fast_input,
}


def _encode_any(obj: Any, what: str | None = None) -> bytes:
    cls = type(obj)
    spec = _SPECS.get(cls)
    if spec is None:
        raise CodecError(f"cannot encode a {cls.__name__}")
    fast = _FAST.get(cls)
    if fast is not None:
        try:
            out = fast(obj)
        except CodecError:
            raise
        except Exception:
            out = None
        if out is not None:
            return out
    return spec.encode(obj, what)


def encode_msgpack(obj: Any) -> bytes:
    """Encode a message as the Go reference does (see the module docstring).

    Accepts the raft.commands RPC dataclasses, raft.log.Log, state.api.Input and the
    dataclasses of state.raft.messages. Raises CodecError for anything else or for a
    field value it cannot write (see :func:`validate_message` for the full check).
    """
    try:
        out = _encode_any(obj)
    except CodecError:
        raise
    except Exception as e:
        raise CodecError(f"{type(obj).__name__} does not encode: {e}") from e
    return out


def validate_message(obj: Any) -> None:
    """Check every field of a message against its Go type; CodecError names the first bad one.

    ``encode_msgpack`` packs the hot messages (AppendEntries, RequestVote, Log, Input)
    without per-field checks: a value too large still fails, but a negative value in an
    unsigned field would be written as a negative number that Go refuses. Call this
    where values do not come from the consensus core.
    """
    spec = _SPECS.get(type(obj))
    if spec is None:
        raise CodecError(f"cannot encode a {type(obj).__name__}")
    spec.encode(obj)


# ------------------------------------------------------------------- decoding


def _unpack(data: Any, what: str) -> Any:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CodecError(f"{what}: expected bytes, got {type(data).__name__}")
    try:
        return _unpackb(data, raw=True, strict_map_key=True)
    except msgpack.ExtraData as e:
        return e.unpacked  # the Go decoder reads the first object and ignores the rest
    except Exception as e:  # msgpack raises several unrelated types
        raise CodecError(f"{what} does not decode: {e}") from e


# Hand-written decoders of the hot messages: fixed labels, positional construction.
# Used for maps at top level; None, errors in nesting, and the rest take the spec path.

_AE = "AppendEntriesRequest."
_AR = "AppendEntriesResponse."
_VQ = "RequestVoteRequest."
_VR = "RequestVoteResponse."


def _fast_dec_aer(d: dict[Any, Any]) -> AppendEntriesRequest:
    g = d.get
    return AppendEntriesRequest(
        _u64(g(b"Term"), _AE + "Term"),
        _bytes(g(b"Leader"), _AE + "Leader"),
        _u64(g(b"PrevLogEntry"), _AE + "PrevLogEntry"),
        _u64(g(b"PrevLogTerm"), _AE + "PrevLogTerm"),
        _dec_entries(g(b"Entries"), _AE + "Entries"),
        _u64(g(b"LeaderCommitIndex"), _AE + "LeaderCommitIndex"),
        _i64(g(b"ProtocolVersion"), _AE + "ProtocolVersion"),
        _bytes(g(b"ID"), _AE + "ID"),
        _bytes(g(b"Addr"), _AE + "Addr"),
    )


def _fast_dec_aep(d: dict[Any, Any]) -> AppendEntriesResponse:
    g = d.get
    return AppendEntriesResponse(
        _u64(g(b"Term"), _AR + "Term"),
        _u64(g(b"LastLog"), _AR + "LastLog"),
        _bool(g(b"Success"), _AR + "Success"),
        _bool(g(b"NoRetryBackoff"), _AR + "NoRetryBackoff"),
        _i64(g(b"ProtocolVersion"), _AR + "ProtocolVersion"),
        _bytes(g(b"ID"), _AR + "ID"),
        _bytes(g(b"Addr"), _AR + "Addr"),
    )


def _fast_dec_rvq(d: dict[Any, Any]) -> RequestVoteRequest:
    g = d.get
    return RequestVoteRequest(
        _u64(g(b"Term"), _VQ + "Term"),
        _bytes(g(b"Candidate"), _VQ + "Candidate"),
        _u64(g(b"LastLogIndex"), _VQ + "LastLogIndex"),
        _u64(g(b"LastLogTerm"), _VQ + "LastLogTerm"),
        _bool(g(b"LeadershipTransfer"), _VQ + "LeadershipTransfer"),
        _i64(g(b"ProtocolVersion"), _VQ + "ProtocolVersion"),
        _bytes(g(b"ID"), _VQ + "ID"),
        _bytes(g(b"Addr"), _VQ + "Addr"),
    )


def _fast_dec_rvp(d: dict[Any, Any]) -> RequestVoteResponse:
    g = d.get
    return RequestVoteResponse(
        _u64(g(b"Term"), _VR + "Term"),
        _bytes(g(b"Peers"), _VR + "Peers"),
        _bool(g(b"Granted"), _VR + "Granted"),
        _i64(g(b"ProtocolVersion"), _VR + "ProtocolVersion"),
        _bytes(g(b"ID"), _VR + "ID"),
        _bytes(g(b"Addr"), _VR + "Addr"),
    )


def _fast_dec_input(d: dict[Any, Any]) -> Input:
    g = d.get
    return Input(
        _dec_op(g(b"Op"), "Input.Op"),
        _str(g(b"Key"), "Input.Key"),
        _bytes(g(b"Value"), "Input.Value"),
    )


_MISSING = object()


def decode_input_fields(data: bytes) -> tuple[int, str, bytes | None] | None:
    """``(op, key, value)`` of an Input in the form encoders write, else None.

    The fast path of applying an entry: a map of exactly Key, Op and Value with the
    expected types. Anything else (other field spellings, trailing bytes, wrong
    types, damage) gives None: decode it with ``decode_msgpack(data, Input)``,
    which accepts what the Go decoder accepts and names what is wrong.
    """
    try:
        d = _unpackb(data, raw=True, strict_map_key=True)
    except Exception:
        return None
    if type(d) is not dict or len(d) != 3:
        return None
    op = d.get(b"Op")
    key = d.get(b"Key")
    value = d.get(b"Value", _MISSING)
    if (
        type(op) is not int
        or type(key) is not bytes
        or not (value is None or type(value) is bytes)
        or not _I64_MIN <= op <= _I64_MAX
    ):
        return None
    try:
        return op, key.decode("utf-8"), value
    except UnicodeDecodeError:
        return None


def _fast_dec_log(d: dict[Any, Any]) -> Log:
    return _dec_log(d, "Log")


_AQ = "ApplyRequest."
_AP = "RpcReply.Response."


def _fast_dec_apq(d: dict[Any, Any]) -> ApplyRequest:
    g = d.get
    return ApplyRequest(
        _bytes(g(b"Command"), _AQ + "Command"), _i64(g(b"Timeout"), _AQ + "Timeout")
    )


def _dec_apply_reply_response(d: dict[Any, Any]) -> ApplyResponse:
    g = d.get
    return ApplyResponse(
        _u64(g(b"Index"), _AP + "Index"), _dec_apply_response(g(b"Response"), _AP + "Response")
    )


_FAST_DEC: dict[type[Any], Callable[[dict[Any, Any]], Any]] = {
    ApplyRequest: _fast_dec_apq,
    AppendEntriesRequest: _fast_dec_aer,
    AppendEntriesResponse: _fast_dec_aep,
    RequestVoteRequest: _fast_dec_rvq,
    RequestVoteResponse: _fast_dec_rvp,
    Input: _fast_dec_input,
    Log: _fast_dec_log,
}


def _decode_obj(obj: Any, cls: type[T], what: str) -> T:
    try:
        if type(obj) is dict and what == getattr(cls, "__name__", None):
            fast = _FAST_DEC.get(cls)
            if fast is not None:
                return cast(T, fast(obj))
        spec = _SPECS.get(cls)
        if spec is None:
            raise CodecError(f"cannot decode into a {getattr(cls, '__name__', cls)!r}")
        if cls is Log:
            if obj is None:
                return cast(T, Log(index=0, term=0))
            return cast(T, _dec_log(obj, what))
        return cast(T, spec.decode(obj, what))
    except CodecError:
        raise
    except Exception as e:
        raise CodecError(f"{what} does not decode: {e}") from e


def decode_msgpack(data: bytes, cls: type[T]) -> T:
    """Decode ``data`` into an instance of ``cls`` (a type ``encode_msgpack`` accepts).

    For RpcReply use :func:`decode_rpc_reply`, which knows the payload type.
    """
    name = getattr(cls, "__name__", "message")
    return _decode_obj(_unpack(data, name), cls, name)


def decode_msgpack_from_reader(reader: IO[bytes], cls: type[T]) -> T:
    """Decode one message of type ``cls`` from a binary stream (e.g. an FSM snapshot)."""
    name = getattr(cls, "__name__", "message")
    try:
        unpacker = msgpack.Unpacker(reader, raw=True, strict_map_key=True, max_buffer_size=0)
        obj = unpacker.unpack()
    except Exception as e:
        raise CodecError(f"{name} does not decode from stream: {e}") from e
    return _decode_obj(obj, cls, name)


def decode_rpc_reply(data: bytes, response_cls: type[Any]) -> RpcReply:
    """Decode the reply envelope {Error, Response, Retryable} with a typed Response."""
    obj = _unpack(data, "RpcReply")
    try:
        d = _map(obj, "RpcReply") if obj is not None else {}
        g = d.get
        raw_resp = g(b"Response")
        if raw_resp is None:
            response = None
        elif response_cls is ApplyResponse and type(raw_resp) is dict:
            response = _dec_apply_reply_response(raw_resp)  # one per forwarded proposal
        else:
            response = _decode_obj(raw_resp, response_cls, "RpcReply.Response")
        return RpcReply(
            error=_str(g(b"Error"), "RpcReply.Error"),
            response=response,
            retryable=_bool(g(b"Retryable"), "RpcReply.Retryable"),
        )
    except CodecError:
        raise
    except Exception as e:
        raise CodecError(f"RpcReply does not decode: {e}") from e

"""The proposal fast paths of the codec give what the general encoder and decoder give.

``encode_input_fields`` (every proposal) must write the bytes of ``encode_msgpack(Input)``;
``decode_input_fields`` (every applied entry) must either agree with
``decode_msgpack(data, Input)`` or step aside (None) so the general decoder decides.
"""

from __future__ import annotations

import os

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from ddastate.state.api import Input, InputOp
from ddastate.state.raft.codec import (
    CodecError,
    decode_input_fields,
    decode_msgpack,
    encode_input_fields,
    encode_msgpack,
)

EXAMPLES = int(os.environ.get("DDASTATE_FUZZ_EXAMPLES", "300"))

keys = st.text(max_size=40)
values = st.none() | st.binary(max_size=300)
ops = st.sampled_from([0, 1, 2])


@settings(max_examples=EXAMPLES, deadline=None)
@given(ops, keys, values)
def test_encode_input_fields_writes_the_general_encoders_bytes(
    op: int, key: str, value: bytes | None
) -> None:
    assert encode_input_fields(op, key, value) == encode_msgpack(Input(InputOp(op), key, value))


def _agrees(data: bytes) -> None:
    fast = decode_input_fields(data)
    if fast is None:
        return
    inp = decode_msgpack(data, Input)  # must not raise when the fast path accepted
    assert fast == (int(inp.op), inp.key, inp.value)


@settings(max_examples=EXAMPLES, deadline=None)
@given(ops, keys, values)
def test_decode_input_fields_reads_what_encoders_write(
    op: int, key: str, value: bytes | None
) -> None:
    data = encode_msgpack(Input(InputOp(op), key, value))
    assert decode_input_fields(data) == (op, key, value)


@settings(max_examples=EXAMPLES, deadline=None)
@given(ops, keys, values, st.data())
def test_decode_input_fields_on_damaged_bytes_agrees_or_steps_aside(
    op: int, key: str, value: bytes | None, data: st.DataObject
) -> None:
    raw = bytearray(encode_msgpack(Input(InputOp(op), key, value)))
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    _agrees(bytes(raw))
    _agrees(bytes(raw[: data.draw(st.integers(0, len(raw)))]))


def test_decode_input_fields_steps_aside_for_other_spellings() -> None:
    def pack(obj: object) -> bytes:
        return msgpack.packb(obj, use_bin_type=False)

    cases = [
        pack({"key": b"k", "op": 1, "value": b"v"}),  # field names in another case
        pack({"Key": b"k", "Op": 1}),  # Value missing
        pack({"Key": b"k", "Op": 1, "Value": b"v", "X": 1}),  # an extra field
        pack({"Key": b"k", "Op": 1, "Value": b"v"}) + b"\x00",  # trailing bytes
        pack({"Key": b"\xff", "Op": 1, "Value": b"v"}),  # key not UTF-8
        pack({"Key": b"k", "Op": 2**64 - 1, "Value": b"v"}),  # op outside int64
        pack([1, 2, 3]),
        b"",
    ]
    for data in cases:
        assert decode_input_fields(data) is None, data
        try:
            decode_msgpack(data, Input)
        except CodecError:
            pass  # the general decoder names the problem; the FSM reports it
    # a bin-family value (newer encoders) reads as bytes on both paths
    _agrees(msgpack.packb({"Key": "k", "Op": 1, "Value": b"v"}, use_bin_type=True))

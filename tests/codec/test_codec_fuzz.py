"""Fuzzing every decoder with random and mutated bytes: only CodecError may come out.

CI runs a few hundred examples. The long run (at least 100,000 examples, every
example fed to every decoder) is::

    DDASTATE_FUZZ_EXAMPLES=100000 .venv/bin/pytest tests/codec/test_codec_fuzz.py -q

A decoder that accepts its input must return a value that encodes again and decodes
to itself (so nothing out of range or of the wrong type slips through).
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ddastate.raft import commands as rc
from ddastate.raft.log import Log
from ddastate.state.api import Input
from ddastate.state.raft import messages as m
from ddastate.state.raft.codec import (
    CodecError,
    decode_log,
    decode_msgpack,
    decode_msgpack_from_reader,
    decode_rpc_reply,
    encode_msgpack,
)

EXAMPLES = int(os.environ.get("DDASTATE_FUZZ_EXAMPLES", "300"))

CLASSES: list[type[Any]] = [
    rc.AppendEntriesRequest,
    rc.AppendEntriesResponse,
    rc.RequestVoteRequest,
    rc.RequestVoteResponse,
    rc.RequestPreVoteRequest,
    rc.RequestPreVoteResponse,
    rc.InstallSnapshotRequest,
    rc.InstallSnapshotResponse,
    rc.TimeoutNowRequest,
    rc.TimeoutNowResponse,
    Log,
    m.AddVoterRequest,
    m.AddVoterResponse,
    m.RemoveServerRequest,
    m.RemoveServerResponse,
    m.ApplyRequest,
    m.ApplyResponse,
    m.InstallSnapshotWithData,
    m.FsmSnapshot,
    Input,
]
REPLY_TYPES: list[type[Any]] = [
    rc.AppendEntriesResponse,
    rc.RequestVoteResponse,
    rc.InstallSnapshotResponse,
    rc.TimeoutNowResponse,
    m.AddVoterResponse,
    m.RemoveServerResponse,
    m.ApplyResponse,
]

GOLDEN = Path(__file__).resolve().parents[2] / "interop" / "fixtures" / "golden.json"
SEEDS: list[bytes] = [
    bytes.fromhex(v["hex"])
    for v in json.loads(GOLDEN.read_text())["vectors"]
    if len(v["hex"]) < 4000
]


def _check(raw: bytes) -> None:
    for cls in CLASSES:
        try:
            obj = decode_msgpack(raw, cls)
        except CodecError:
            pass
        else:
            again = encode_msgpack(obj)
            assert decode_msgpack(again, cls) == obj
        try:
            decode_msgpack_from_reader(io.BytesIO(raw), cls)
        except CodecError:
            pass
    for resp in REPLY_TYPES:
        try:
            reply = decode_rpc_reply(raw, resp)
        except CodecError:
            pass
        else:
            assert decode_rpc_reply(encode_msgpack(reply), resp) == reply
    try:
        decode_log(raw)
    except CodecError:
        pass


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    base = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        if not base:
            break
        op = draw(st.sampled_from(["flip", "set", "cut", "insert", "delete", "dup"]))
        i = draw(st.integers(0, len(base) - 1))
        if op == "flip":
            base[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            base[i] = draw(
                st.sampled_from(
                    [
                        0x00,
                        0x7F,
                        0x80,
                        0xC0,
                        0xC1,
                        0xC4,
                        0xD9,
                        0xDB,
                        0xDE,
                        0xDF,
                        0xD6,
                        0xD7,
                        0xC7,
                        0xFF,
                        0xA0,
                        0xCF,
                        0xD3,
                    ]
                )
            )
        elif op == "cut":
            del base[i:]
        elif op == "insert":
            base[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del base[i : i + draw(st.integers(1, 8))]
        else:
            j = draw(st.integers(i, len(base)))
            base[j:j] = base[i:j]
    return bytes(base)


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FUZZ
@given(st.binary(max_size=512))
def test_random_bytes_raise_only_codec_error(raw: bytes) -> None:
    _check(raw)


@FUZZ
@given(mutated())
def test_mutated_messages_raise_only_codec_error(raw: bytes) -> None:
    _check(raw)


def test_seeds_themselves() -> None:
    for raw in SEEDS:
        _check(raw)

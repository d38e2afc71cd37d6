"""RaftFsm: apply, observers, snapshot and restore."""

from __future__ import annotations

import io
import logging
import threading

import msgpack
import pytest

from ddastate.raft.log import Log
from ddastate.state.api import Input, InputOp
from ddastate.state.raft import codec
from ddastate.state.raft.fsm import FsmError, RaftFsm


def entry(index: int, inp: Input) -> Log:
    return Log(index=index, term=1, data=codec.encode_msgpack(inp))


class BytesSink:
    """A SnapshotSink that keeps what was written (stands in for a snapshot store's sink)."""

    def __init__(self, fail_on_write: bool = False) -> None:
        self.buf = io.BytesIO()
        self.closed = False
        self.cancelled = False
        self.fail_on_write = fail_on_write

    def write(self, data: bytes) -> int:
        if self.fail_on_write:
            raise OSError("disk full")
        return self.buf.write(data)

    def close(self) -> None:
        self.closed = True

    def cancel(self) -> None:
        self.cancelled = True

    def id(self) -> str:
        return "test"


def test_set_delete_undefined() -> None:
    fsm = RaftFsm()
    assert fsm.apply(entry(1, Input(InputOp.SET, "a", b"1"))) is None
    assert fsm.apply(entry(2, Input(InputOp.SET, "b", b"2"))) is None
    assert fsm.apply(entry(3, Input(InputOp.UNDEFINED, "a", b"x"))) is None
    assert fsm.state() == {"a": b"1", "b": b"2"}
    assert fsm.apply(entry(4, Input(InputOp.DELETE, "a"))) is None
    assert fsm.apply(entry(5, Input(InputOp.DELETE, "missing"))) is None
    assert fsm.state() == {"b": b"2"}


def test_set_empty_and_nil_value() -> None:
    fsm = RaftFsm()
    fsm.apply(entry(1, Input(InputOp.SET, "e", b"")))
    fsm.apply(entry(2, Input(InputOp.SET, "n", None)))
    assert fsm.state() == {"e": b"", "n": b""}


def test_unknown_op_is_error_response() -> None:
    fsm = RaftFsm()
    data = msgpack.packb({"Key": b"k", "Op": 7, "Value": b"v"}, use_bin_type=False)
    resp = fsm.apply(Log(index=9, term=1, data=data))
    assert isinstance(resp, FsmError)
    assert fsm.state() == {}
    # the FSM keeps working
    assert fsm.apply(entry(10, Input(InputOp.SET, "k", b"v"))) is None
    assert fsm.state() == {"k": b"v"}


@pytest.mark.parametrize(
    "data",
    [b"", b"\xc1", b"\x93\x01\x02", b"\x83\xa3Key\x01\xa2Op\x01\xa5Value\xa1v", b"\xde\xff"],
)
def test_undecodable_input_is_error_response_and_logged(
    data: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    fsm = RaftFsm()
    seen: list[Input] = []
    fsm.add_state_change_observer(seen.append)
    with caplog.at_level(logging.WARNING, logger="ddastate.state.raft.fsm"):
        resp = fsm.apply(Log(index=3, term=1, data=data))
    assert isinstance(resp, FsmError)
    assert "3" in str(resp)
    assert any("does not decode" in r.getMessage() for r in caplog.records)
    assert seen == []
    assert fsm.state() == {}


def test_observer_gets_current_state_then_changes_in_order() -> None:
    fsm = RaftFsm()
    fsm.apply(entry(1, Input(InputOp.SET, "a", b"1")))
    fsm.apply(entry(2, Input(InputOp.SET, "b", b"2")))
    seen: list[Input] = []
    oid = fsm.add_state_change_observer(seen.append)
    assert sorted(seen, key=lambda i: i.key) == [
        Input(InputOp.SET, "a", b"1"),
        Input(InputOp.SET, "b", b"2"),
    ]
    seen.clear()
    fsm.apply(entry(3, Input(InputOp.DELETE, "a")))
    fsm.apply(entry(4, Input(InputOp.UNDEFINED, "zz")))
    fsm.apply(entry(5, Input(InputOp.SET, "c", b"3")))
    assert seen == [Input(InputOp.DELETE, "a"), Input(InputOp.SET, "c", b"3")]
    fsm.remove_state_change_observer(oid)
    fsm.apply(entry(6, Input(InputOp.SET, "d", b"4")))
    assert len(seen) == 2
    fsm.remove_state_change_observer(oid)  # unknown id: ignored


def test_empty_state_gives_no_synthetic_changes() -> None:
    fsm = RaftFsm()
    seen: list[Input] = []
    fsm.add_state_change_observer(seen.append)
    assert seen == []


def test_failing_observer_is_removed_others_continue() -> None:
    fsm = RaftFsm()
    good: list[Input] = []

    def bad(_: Input) -> None:
        raise RuntimeError("boom")

    fsm.add_state_change_observer(bad)
    fsm.add_state_change_observer(good.append)
    assert fsm.apply(entry(1, Input(InputOp.SET, "a", b"1"))) is None
    assert fsm.apply(entry(2, Input(InputOp.SET, "b", b"1"))) is None
    assert [i.key for i in good] == ["a", "b"]


def test_snapshot_is_isolated_and_persists_reference_format() -> None:
    fsm = RaftFsm()
    fsm.apply(entry(1, Input(InputOp.SET, "a", b"1")))
    fsm.apply(entry(2, Input(InputOp.SET, "b", b"\x00\xff")))
    snap = fsm.snapshot()
    # changes after the capture do not reach the snapshot
    fsm.apply(entry(3, Input(InputOp.SET, "a", b"changed")))
    fsm.apply(entry(4, Input(InputOp.DELETE, "b")))
    sink = BytesSink()
    snap.persist(sink)
    snap.release()
    assert sink.closed and not sink.cancelled
    raw = msgpack.unpackb(sink.buf.getvalue(), raw=True)
    assert raw == {b"State": {b"a": b"1", b"b": b"\x00\xff"}}


def test_persist_failure_cancels_sink() -> None:
    fsm = RaftFsm()
    fsm.apply(entry(1, Input(InputOp.SET, "a", b"1")))
    sink = BytesSink(fail_on_write=True)
    with pytest.raises(OSError):
        fsm.snapshot().persist(sink)
    assert sink.cancelled and not sink.closed


def test_restore_replaces_state_and_tells_observers_the_difference() -> None:
    src = RaftFsm()
    src.apply(entry(1, Input(InputOp.SET, "keep", b"same")))
    src.apply(entry(2, Input(InputOp.SET, "new", b"n")))
    src.apply(entry(3, Input(InputOp.SET, "chg", b"after")))
    sink = BytesSink()
    src.snapshot().persist(sink)

    dst = RaftFsm()
    dst.apply(entry(1, Input(InputOp.SET, "keep", b"same")))
    dst.apply(entry(2, Input(InputOp.SET, "gone", b"g")))
    dst.apply(entry(3, Input(InputOp.SET, "chg", b"before")))
    seen: list[Input] = []
    dst.add_state_change_observer(seen.append)
    seen.clear()
    dst.restore(io.BytesIO(sink.buf.getvalue()))
    assert dst.state() == src.state()
    assert sorted(seen, key=lambda i: (i.key, i.op)) == [
        Input(InputOp.SET, "chg", b"after"),
        Input(InputOp.DELETE, "gone"),
        Input(InputOp.SET, "new", b"n"),
    ]


def test_restore_of_go_encoded_snapshot() -> None:
    # The Go encoder writes {State: {key: raw string}} with raw strings (no bin family).
    data = (
        bytes.fromhex("81a5537461746582a1")
        + b"x"
        + bytes.fromhex("a3")
        + b"abc"
        + bytes.fromhex("a1")
        + b"y"
        + bytes.fromhex("a0")
    )
    fsm = RaftFsm()
    fsm.restore(io.BytesIO(data))
    assert fsm.state() == {"x": b"abc", "y": b""}


def test_restore_garbage_raises_codec_error_and_keeps_state() -> None:
    fsm = RaftFsm()
    fsm.apply(entry(1, Input(InputOp.SET, "a", b"1")))
    with pytest.raises(codec.CodecError):
        fsm.restore(io.BytesIO(b"\x81\xa5State\x93"))
    assert fsm.state() == {"a": b"1"}


def test_apply_and_snapshot_from_threads_are_consistent() -> None:
    fsm = RaftFsm()
    stop = threading.Event()
    snaps: list[dict[str, bytes]] = []

    def snapper() -> None:
        while not stop.is_set():
            sink = BytesSink()
            fsm.snapshot().persist(sink)
            snaps.append(msgpack.unpackb(sink.buf.getvalue(), raw=False)["State"])

    t = threading.Thread(target=snapper)
    t.start()
    for i in range(2000):
        fsm.apply(entry(i + 1, Input(InputOp.SET, f"k{i}", str(i).encode())))
    stop.set()
    t.join()
    assert len(fsm.state()) == 2000
    for s in snaps:  # every snapshot is a prefix of the applied sequence
        n = len(s)
        assert all(f"k{i}" in s for i in range(n))


def test_apply_batch_matches_apply_one_by_one() -> None:
    logs = [
        entry(1, Input(InputOp.SET, "a", b"1")),
        entry(2, Input(InputOp.SET, "b", b"2")),
        Log(index=3, term=1, data=b"\xc1"),
        entry(4, Input(InputOp.DELETE, "a")),
        entry(5, Input(InputOp.UNDEFINED, "z")),
        Log(index=6, term=1, data=msgpack.packb({"Key": b"k", "Op": 9}, use_bin_type=False)),
        entry(7, Input(InputOp.SET, "c", None)),
        # forms the batch's fast path leaves to the general decoder
        Log(index=8, term=1, data=msgpack.packb({"key": b"d", "op": 1, "value": b"4"})),
        Log(index=9, term=1, data=msgpack.packb({"Key": b"e", "Op": 1}, use_bin_type=False)),
        Log(index=10, term=1, data=entry(0, Input(InputOp.SET, "f", b"5")).data + b"\x00"),
        Log(index=11, term=1, data=msgpack.packb({"Key": b"\xff", "Op": 1, "Value": b""})),
        Log(index=12, term=1, data=None),
    ]
    one, batch = RaftFsm(), RaftFsm()
    seen_one: list[Input] = []
    seen_batch: list[Input] = []
    one.add_state_change_observer(seen_one.append)
    batch.add_state_change_observer(seen_batch.append)
    r1 = [one.apply(log) for log in logs]
    r2 = batch.apply_batch(logs)
    assert [type(r) for r in r1] == [type(r) for r in r2]
    assert [str(r) for r in r1] == [str(r) for r in r2]
    assert one.state() == batch.state()
    assert {"b": b"2", "c": b""}.items() <= one.state().items()
    assert seen_one == seen_batch

"""RaftStore: LogStore, StableStore, snapshot store choice, membership observers."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ddastate.raft.configuration import Configuration, Server, ServerSuffrage, encode_configuration
from ddastate.raft.errors import KeyNotFoundError, LogNotFoundError
from ddastate.raft.log import Log, LogType
from ddastate.raft.snapshot_file import FileSnapshotStore
from ddastate.raft.snapshot_inmem import InmemSnapshotStore
from ddastate.state.api import MembershipChange
from ddastate.state.raft.codec import CodecError, encode_log
from ddastate.state.raft.store import LOG_SEQ, LogRecordError, RaftStore, StableRecordError
from ddastate.store import StoreLockedError

MAX = 2**64 - 1


@pytest.fixture(params=["memory", "sqlite"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return "" if request.param == "memory" else str(tmp_path / "raft")


@pytest.fixture
def rs(location: str) -> Iterator[RaftStore]:
    s = RaftStore(location)
    yield s
    s.close()


def entries(lo: int, hi: int, term: int = 1) -> list[Log]:
    return [
        Log(i, term, LogType.COMMAND, f"e{i}".encode(), None, i * 1000) for i in range(lo, hi + 1)
    ]


def test_empty_log(rs: RaftStore) -> None:
    assert (rs.first_index(), rs.last_index()) == (0, 0)
    with pytest.raises(LogNotFoundError):
        rs.get_log(1)
    with pytest.raises(LogNotFoundError):
        rs.get_log(0)
    rs.delete_range(0, MAX)
    assert (rs.first_index(), rs.last_index()) == (0, 0)


def test_store_and_get(rs: RaftStore) -> None:
    rs.store_log(Log(1, 1, LogType.NOOP))
    rs.store_logs(entries(2, 10))
    assert (rs.first_index(), rs.last_index()) == (1, 10)
    assert rs.get_log(1) == Log(1, 1, LogType.NOOP)
    assert rs.get_log(7) == entries(7, 7)[0]
    with pytest.raises(LogNotFoundError):
        rs.get_log(11)
    rs.store_logs([])
    assert rs.last_index() == 10


def test_every_log_field_survives(rs: RaftStore) -> None:
    e = [
        Log(
            1, 3, LogType.CONFIGURATION, encode_configuration(Configuration.of([Server("a", "a")]))
        ),
        Log(2, 3, LogType.BARRIER, b"", b"ext", -5),
        Log(3, 3, LogType.COMMAND, None, None, None),
        Log(4, 2**64 - 1, LogType.NOOP, b"\x00\xff" * 500, b"", 2**40 * 10**9 + 7),
    ]
    rs.store_logs(e)
    assert [rs.get_log(i) for i in range(1, 5)] == e


def test_overwrite_and_gaps(rs: RaftStore) -> None:
    rs.store_logs(entries(5, 8))
    rs.store_logs(entries(7, 9, term=2))  # conflicting suffix rewritten
    assert rs.get_log(7).term == 2 and rs.get_log(6).term == 1
    rs.store_logs(entries(20, 21))  # a gap, as after a restored snapshot
    assert (rs.first_index(), rs.last_index()) == (5, 21)
    rs.store_logs(entries(2, 2))
    assert rs.first_index() == 2


def test_delete_range_inclusive(rs: RaftStore) -> None:
    rs.store_logs(entries(1, 10))
    rs.delete_range(1, 3)
    assert (rs.first_index(), rs.last_index()) == (4, 10)
    with pytest.raises(LogNotFoundError):
        rs.get_log(3)
    rs.delete_range(9, 10)
    assert (rs.first_index(), rs.last_index()) == (4, 8)
    rs.delete_range(6, 6)
    assert (rs.first_index(), rs.last_index()) == (4, 8)
    with pytest.raises(LogNotFoundError):
        rs.get_log(6)
    rs.delete_range(7, MAX)
    assert (rs.first_index(), rs.last_index()) == (4, 5)
    rs.delete_range(0, MAX)
    assert (rs.first_index(), rs.last_index()) == (0, 0)


def test_indexes_up_to_max_uint64(rs: RaftStore) -> None:
    rs.store_logs([Log(MAX - 1, 1), Log(MAX, 1), Log(2**63, 1), Log(255, 1), Log(256, 1)])
    assert (rs.first_index(), rs.last_index()) == (255, MAX)
    assert rs.get_log(MAX).index == MAX
    rs.delete_range(2**63, MAX)
    assert (rs.first_index(), rs.last_index()) == (255, 256)
    rs.store_log(Log(MAX, 1))
    rs.delete_range(MAX, MAX)
    assert rs.last_index() == 256
    with pytest.raises(ValueError):
        rs.store_log(Log(MAX + 1, 1))
    with pytest.raises(ValueError):
        rs.get_log(-1)


def test_stable_store(rs: RaftStore) -> None:
    with pytest.raises(KeyNotFoundError) as ei:
        rs.get(b"LastVoteCand")
    assert str(ei.value) == "not found"
    with pytest.raises(KeyNotFoundError) as ei2:
        rs.get_uint64(b"CurrentTerm")
    assert str(ei2.value) == "not found"
    rs.set(b"LastVoteCand", b"node-1")
    assert rs.get(b"LastVoteCand") == b"node-1"
    rs.set(b"LastVoteCand", b"")
    assert rs.get(b"LastVoteCand") == b""
    for v in (0, 1, 2**32, MAX):
        rs.set_uint64(b"CurrentTerm", v)
        assert rs.get_uint64(b"CurrentTerm") == v
    with pytest.raises(ValueError):
        rs.set_uint64(b"CurrentTerm", -1)
    rs.set(b"Odd", b"123")
    with pytest.raises(StableRecordError, match="3 bytes"):
        rs.get_uint64(b"Odd")


def test_log_and_stable_keys_do_not_mix(rs: RaftStore) -> None:
    rs.set(b"L" + (5).to_bytes(8, "big"), b"not a log")
    rs.set_uint64(b"\xff" * 9, 1)
    assert (rs.first_index(), rs.last_index()) == (0, 0)
    rs.store_logs(entries(1, 2))
    rs.delete_range(0, MAX)
    assert rs.get(b"L" + (5).to_bytes(8, "big")) == b"not a log"


def test_damaged_record_names_its_index(rs: RaftStore) -> None:
    rs.store_logs(entries(1, 3))
    rs.kv.seq_put_many(LOG_SEQ, [(2, b"\x92\xc1garbage")])
    with pytest.raises(LogRecordError, match="index 2") as ei:
        rs.get_log(2)
    assert ei.value.index == 2 and isinstance(ei.value, CodecError)
    rs.kv.seq_put_many(LOG_SEQ, [(3, encode_log(Log(9, 1)))])
    with pytest.raises(LogRecordError, match=r"index 3.*holds index 9"):
        rs.get_log(3)
    assert rs.get_log(1).index == 1


def test_snapshot_store_kind(location: str) -> None:
    s = RaftStore(location)
    try:
        if location:
            assert isinstance(s.snapshot_store, FileSnapshotStore)
            assert s.snapshot_store.retain == 2
            assert s.snapshot_store.dir == str(Path(location, "snapshots").resolve())
        else:
            assert isinstance(s.snapshot_store, InmemSnapshotStore)
    finally:
        s.close()


def test_reopen_keeps_everything(tmp_path: Path) -> None:
    loc = str(tmp_path / "r")
    s = RaftStore(loc)
    s.store_logs(entries(3, 40))
    s.delete_range(3, 9)
    s.set_uint64(b"CurrentTerm", 7)
    with pytest.raises(StoreLockedError):
        RaftStore(loc)
    s.close()
    s = RaftStore(loc)
    try:
        assert (s.first_index(), s.last_index()) == (10, 40)
        assert s.get_log(40) == entries(40, 40)[0]
        assert s.get_uint64(b"CurrentTerm") == 7
    finally:
        s.close()


def test_close_with_and_without_removing_storage(tmp_path: Path) -> None:
    loc = tmp_path / "r"
    s = RaftStore(str(loc))
    s.store_logs(entries(1, 2))
    sink = s.snapshot_store.create(1, 2, 1, Configuration.of([Server("a", "a")]), 1)
    sink.write(b"x")
    sink.close()
    s.close()
    assert (loc / "store").is_dir() and (loc / "snapshots").is_dir()
    s = RaftStore(str(loc))
    assert len(s.snapshot_store.list()) == 1
    s.close(remove_storage=True)
    assert not loc.exists()
    RaftStore("").close(remove_storage=True)


# ---------------------------------------------------------- membership observers


def conf_entry(index: int, *ids: str) -> Log:
    cfg = Configuration.of([Server(i, i, ServerSuffrage.VOTER) for i in ids])
    return Log(index, 1, LogType.CONFIGURATION, encode_configuration(cfg))


def joined(i: str) -> MembershipChange:
    return MembershipChange(i, True)


def left(i: str) -> MembershipChange:
    return MembershipChange(i, False)


def test_observers_with_callbacks(rs: RaftStore) -> None:
    rs.store_logs([conf_entry(1, "a")])  # before any observer: ignored
    current = Configuration.of([Server("a", "a"), Server("b", "b")])
    got1: list[MembershipChange] = []
    o1 = rs.add_membership_change_observer(got1.append, lambda: current)
    assert got1 == [joined("a"), joined("b")]
    rs.store_logs([Log(2, 1), conf_entry(3, "a", "b", "c"), conf_entry(4, "a", "b", "c")])
    assert got1 == [joined("a"), joined("b"), joined("c")]
    got2: list[MembershipChange] = []
    o2 = rs.add_membership_change_observer(got2.append, lambda: None)
    assert got2 == [joined("a"), joined("b"), joined("c")]  # late observer: members known so far
    rs.store_logs([conf_entry(5, "a", "c", "d")])
    assert got1[3:] == [left("b"), joined("d")] and got2[3:] == [left("b"), joined("d")]
    rs.remove_membership_change_observer(o1)
    rs.store_log(conf_entry(6, "a", "d"))
    assert got1[5:] == [] and got2[5:] == [left("c")]
    rs.remove_membership_change_observer(o2)
    rs.remove_membership_change_observer(12345)
    got3: list[MembershipChange] = []
    rs.add_membership_change_observer(got3.append, lambda: Configuration.of([Server("z", "z")]))
    assert got3 == [joined("z")]  # members were cleared with the last observer


def test_provider_failure_does_not_register(
    rs: RaftStore, caplog: pytest.LogCaptureFixture
) -> None:
    got: list[MembershipChange] = []

    def boom() -> Configuration:
        raise RuntimeError("no raft")

    oid = rs.add_membership_change_observer(got.append, boom)
    assert oid >= 1 and "could not be retrieved" in caplog.text
    rs.store_log(conf_entry(1, "a"))
    assert got == []


def test_bad_configuration_entry_is_logged_not_fatal(
    rs: RaftStore, caplog: pytest.LogCaptureFixture
) -> None:
    got: list[MembershipChange] = []
    rs.add_membership_change_observer(got.append, lambda: Configuration.of([Server("a", "a")]))
    with caplog.at_level(logging.ERROR):
        rs.store_log(Log(1, 1, LogType.CONFIGURATION, b"\xc1"))
    assert "configuration entry 1 does not decode" in caplog.text
    assert rs.get_log(1).data == b"\xc1"
    assert got == [joined("a")]


def test_callback_errors_are_contained(rs: RaftStore, caplog: pytest.LogCaptureFixture) -> None:
    def bad(_: MembershipChange) -> None:
        raise ValueError("observer bug")

    rs.add_membership_change_observer(bad, lambda: Configuration.of([Server("a", "a")]))
    rs.store_log(conf_entry(1, "a", "b"))
    assert "observer callback failed" in caplog.text
    assert rs.last_index() == 1


async def test_queue_observer_fed_from_a_worker_thread(rs: RaftStore) -> None:
    q: asyncio.Queue[MembershipChange] = asyncio.Queue()
    rs.add_membership_change_observer(q, lambda: Configuration.of([Server("a", "a")]))
    assert await q.get() == joined("a")
    writer_threads: set[int] = set()

    def write() -> None:
        writer_threads.add(threading.get_ident())
        rs.store_logs([conf_entry(1, "a", "b"), conf_entry(2, "b")])

    await asyncio.to_thread(write)
    assert threading.get_ident() not in writer_threads
    assert [await q.get() for _ in range(2)] == [joined("b"), left("a")]
    assert q.empty()


async def test_full_queue_drops_with_a_log_line(
    rs: RaftStore, caplog: pytest.LogCaptureFixture
) -> None:
    q: asyncio.Queue[MembershipChange] = asyncio.Queue(maxsize=1)
    rs.add_membership_change_observer(q, lambda: Configuration.of([Server("a", "a")]))
    await asyncio.to_thread(rs.store_log, conf_entry(1, "a", "b", "c"))
    # The puts were scheduled on the loop before to_thread's completion, so they ran.
    assert q.qsize() == 1 and "queue full" in caplog.text


def test_queue_observer_needs_a_loop(rs: RaftStore) -> None:
    q: asyncio.Queue[MembershipChange] = asyncio.Queue()
    with pytest.raises(ValueError, match="event loop"):
        rs.add_membership_change_observer(q, lambda: None)


def test_get_logs_reads_a_range(rs: RaftStore) -> None:
    assert rs.get_logs(0, MAX) == []
    rs.store_logs(entries(1, 600))
    rs.delete_range(300, 310)
    got = rs.get_logs(250, 599)
    assert [e.index for e in got] == [*range(250, 300), *range(311, 600)]
    assert got[0] == entries(250, 250)[0]
    rs.kv.seq_put_many(LOG_SEQ, [(400, b"\xc1")])
    with pytest.raises(LogRecordError, match="index 400"):
        rs.get_logs(1, MAX)


def test_failed_open_releases_the_location(tmp_path: Path) -> None:
    loc = tmp_path / "r"
    loc.mkdir()
    (loc / "snapshots").write_text("a file where the snapshot directory belongs")
    with pytest.raises(OSError):
        RaftStore(str(loc))
    (loc / "snapshots").unlink()
    RaftStore(str(loc)).close()  # not locked by the failed attempt


def test_implements_the_raft_interfaces() -> None:
    from ddastate.raft.interfaces import LogStore, SnapshotStore, StableStore

    s = RaftStore("")
    log_store: LogStore = s  # checked by mypy: the Protocols are structural
    stable_store: StableStore = s
    snaps: SnapshotStore = s.snapshot_store
    file_snaps: SnapshotStore = FileSnapshotStore.__new__(FileSnapshotStore)
    assert log_store.last_index() == 0 and stable_store is not None
    assert snaps.list() == [] and file_snaps is not None
    s.close()

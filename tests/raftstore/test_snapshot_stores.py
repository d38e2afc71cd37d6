"""FileSnapshotStore and InmemSnapshotStore."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ddastate.raft.configuration import Configuration, Server, ServerSuffrage
from ddastate.raft.snapshot_file import (
    FileSnapshotStore,
    SnapshotDamagedError,
    SnapshotNotFoundError,
    UnsupportedSnapshotVersionError,
)
from ddastate.raft.snapshot_inmem import InmemSnapshotStore

CFG = Configuration.of(
    [
        Server("a", "a"),
        Server("b", "b", ServerSuffrage.NONVOTER),
        Server("c", "c", ServerSuffrage.STAGING),
    ]
)


def save(
    store: FileSnapshotStore | InmemSnapshotStore, index: int, data: bytes, term: int = 1
) -> str:
    sink = store.create(1, index, term, CFG, index - 1)
    for i in range(0, len(data), 1000):
        assert sink.write(data[i : i + 1000]) == len(data[i : i + 1000])
    sink.close()
    return sink.id()


@pytest.fixture(params=["file", "inmem"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> FileSnapshotStore | InmemSnapshotStore:
    if request.param == "file":
        return FileSnapshotStore(str(tmp_path / "snaps"), retain=2)
    return InmemSnapshotStore()


def test_create_list_open(store: FileSnapshotStore | InmemSnapshotStore) -> None:
    assert store.list() == []
    data = os.urandom(5000)
    sid = save(store, 10, data, term=3)
    [meta] = store.list()
    assert (meta.id, meta.index, meta.term, meta.size, meta.version) == (sid, 10, 3, 5000, 1)
    assert meta.configuration == CFG and meta.configuration_index == 9
    m2, f = store.open(sid)
    with f:
        assert f.read() == data
    assert m2 == meta


def test_newest_first_and_retention(store: FileSnapshotStore | InmemSnapshotStore) -> None:
    ids = [save(store, i, f"snap{i}".encode()) for i in (5, 7, 9)]
    listed = [m.id for m in store.list()]
    if isinstance(store, FileSnapshotStore):
        assert listed == [ids[2], ids[1]]
        assert sorted(os.listdir(store.dir)) == sorted(ids[1:])
    else:
        assert listed == [ids[2]]
    with pytest.raises(SnapshotNotFoundError):
        store.open(ids[0])


def test_cancel_leaves_nothing(store: FileSnapshotStore | InmemSnapshotStore) -> None:
    first = save(store, 3, b"keep")
    sink = store.create(1, 4, 1, CFG, 3)
    sink.write(b"partial")
    sink.cancel()
    sink.cancel()
    assert [m.id for m in store.list()] == [first]
    if isinstance(store, FileSnapshotStore):
        assert os.listdir(store.dir) == [first]


def test_unsupported_version(store: FileSnapshotStore | InmemSnapshotStore) -> None:
    with pytest.raises(UnsupportedSnapshotVersionError):
        store.create(2, 1, 1, CFG, 1)


def test_empty_snapshot(store: FileSnapshotStore | InmemSnapshotStore) -> None:
    sid = save(store, 1, b"")
    meta, f = store.open(sid)
    with f:
        assert meta.size == 0 and f.read() == b""


# --------------------------------------------------------------- damage (file)


def file_store(tmp_path: Path) -> FileSnapshotStore:
    return FileSnapshotStore(str(tmp_path / "snaps"), retain=3)


def test_damaged_data_fails_open_naming_the_id(tmp_path: Path) -> None:
    s = file_store(tmp_path)
    old = save(s, 1, b"old state")
    new = save(s, 2, b"new state")
    p = Path(s.dir, new, "state.bin")
    p.write_bytes(b"NEW state")  # same size, other bytes
    assert [m.id for m in s.list()] == [new, old]  # list only reads metadata
    with pytest.raises(SnapshotDamagedError, match=new):
        s.open(new)
    _, f = s.open(old)
    with f:
        assert f.read() == b"old state"


@pytest.mark.parametrize(
    "damage", ["truncate_data", "remove_data", "bad_json", "flip_meta", "no_meta"]
)
def test_damaged_snapshots_are_skipped_by_list(tmp_path: Path, damage: str) -> None:
    s = file_store(tmp_path)
    old = save(s, 1, b"old state")
    new = save(s, 2, b"new state")
    d = Path(s.dir, new)
    if damage == "truncate_data":
        (d / "state.bin").write_bytes(b"new")
    elif damage == "remove_data":
        (d / "state.bin").unlink()
    elif damage == "bad_json":
        (d / "meta.json").write_text("{not json")
    elif damage == "flip_meta":
        doc = json.loads((d / "meta.json").read_text())
        doc["meta"]["index"] = 3
        (d / "meta.json").write_text(json.dumps(doc))
    else:
        (d / "meta.json").unlink()
    assert [m.id for m in s.list()] == [old]
    with pytest.raises(SnapshotDamagedError, match=new):
        s.open(new)


def test_unknown_ids(tmp_path: Path) -> None:
    s = file_store(tmp_path)
    for bad in ("nope", "", "../x", ".hidden"):
        with pytest.raises(SnapshotNotFoundError):
            s.open(bad)


def test_leftover_temporary_directories_are_ignored_and_removed(tmp_path: Path) -> None:
    s = file_store(tmp_path)
    good = save(s, 1, b"x")
    tmp = Path(s.dir, "1-2-99.tmp")
    tmp.mkdir()
    (tmp / "state.bin").write_bytes(b"half")
    assert [m.id for m in s.list()] == [good]
    s2 = FileSnapshotStore(s.dir, retain=3)
    assert not tmp.exists() and [m.id for m in s2.list()] == [good]


def test_retain_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        FileSnapshotStore(str(tmp_path), retain=0)


def test_reap_keeps_the_newest_loadable(tmp_path: Path) -> None:
    s = FileSnapshotStore(str(tmp_path / "snaps"), retain=1)
    a = save(s, 1, b"a")
    b = save(s, 2, b"b")
    assert os.listdir(s.dir) == [b]
    Path(s.dir, b, "state.bin").unlink()
    c = save(s, 3, b"c")
    assert [m.id for m in s.list()] == [c]
    assert a not in os.listdir(s.dir)


def test_write_cut_off_by_sigkill_is_ignored(tmp_path: Path) -> None:
    """A process killed while writing a snapshot leaves the previous one in use."""
    d = tmp_path / "snaps"
    s = FileSnapshotStore(str(d), retain=2)
    prev = save(s, 5, b"previous")
    code = textwrap.dedent(
        f"""
        import sys
        from ddastate.raft.configuration import Configuration, Server
        from ddastate.raft.snapshot_file import FileSnapshotStore
        s = FileSnapshotStore({str(d)!r}, retain=2)
        sink = s.create(1, 9, 2, Configuration.of([Server("a", "a")]), 8)
        sink.write(b"x" * 100000)
        print("writing", flush=True)
        while True:
            sink.write(b"y" * 4096)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "writing"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert any(n.endswith(".tmp") for n in os.listdir(d))
    s2 = FileSnapshotStore(str(d), retain=2)
    assert [m.id for m in s2.list()] == [prev]
    _, f = s2.open(prev)
    with f:
        assert f.read() == b"previous"

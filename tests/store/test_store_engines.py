"""Every call of the storage service API on both engines."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from ddastate.store import (
    MemoryStore,
    SqliteStore,
    Store,
    StoreClosedError,
    StoreError,
    StoreLockedError,
    WriteBatch,
    key_upper_bound,
    normalize_engine,
    open_store,
)


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    s = open_store(request.param, str(tmp_path / "kv") if request.param == "sqlite" else "")
    assert s.engine == request.param
    yield s
    s.close()


def fill(s: Store, keys: list[bytes]) -> None:
    for k in keys:
        s.set(k, b"v" + k)


def test_get_set_overwrite_delete(store: Store) -> None:
    assert store.get(b"a") is None
    store.set(b"a", b"1")
    assert store.get(b"a") == b"1"
    store.set(b"a", b"")
    assert store.get(b"a") == b""
    store.delete(b"a")
    assert store.get(b"a") is None
    store.delete(b"never-there")


def test_values_must_be_bytes(store: Store) -> None:
    with pytest.raises(StoreError):
        store.set(b"a", None)  # type: ignore[arg-type]
    with pytest.raises(StoreError):
        store.set("a", b"x")  # type: ignore[arg-type]


def test_binary_keys_order_by_bytes(store: Store) -> None:
    keys = [b"\x00", b"\x00\x00", b"\x01", b"\x7f", b"\x80", b"\xff", b"\xff\xff", b"a", b"ab"]
    fill(store, list(reversed(keys)))
    assert [k for k, _ in store.scan_range(None, None)] == sorted(keys)
    assert [k for k, _ in store.scan_range_reverse(None, None)] == sorted(keys, reverse=True)


def test_scan_range_bounds_and_limit(store: Store) -> None:
    fill(store, [b"a", b"b", b"c", b"d", b"e"])
    assert [k for k, _ in store.scan_range(b"b", b"d")] == [b"b", b"c"]
    assert [k for k, _ in store.scan_range(b"b", None)] == [b"b", b"c", b"d", b"e"]
    assert [k for k, _ in store.scan_range(None, b"c")] == [b"a", b"b"]
    assert [k for k, _ in store.scan_range(b"bb", b"dd")] == [b"c", b"d"]
    assert [k for k, _ in store.scan_range(b"a", None, limit=2)] == [b"a", b"b"]
    assert [k for k, _ in store.scan_range_reverse(b"b", b"e")] == [b"d", b"c", b"b"]
    assert [k for k, _ in store.scan_range_reverse(None, None, limit=2)] == [b"e", b"d"]
    assert list(store.scan_range(b"x", b"z")) == []
    assert list(store.scan_range(b"d", b"b")) == []
    assert dict(store.scan_range(None, None))[b"c"] == b"vc"


def test_scans_cross_chunk_boundaries(store: Store) -> None:
    keys = [i.to_bytes(4, "big") for i in range(1000)]
    store.set_many([(k, k) for k in keys])
    assert [k for k, _ in store.scan_range(None, None)] == keys
    assert [k for k, _ in store.scan_range_reverse(None, None)] == keys[::-1]
    assert [k for k, _ in store.scan_range(keys[100], keys[900], limit=600)] == keys[100:700]
    assert [k for k, _ in store.scan_range_reverse(keys[100], keys[900], limit=300)] == keys[
        600:900
    ][::-1]


def test_scan_prefix(store: Store) -> None:
    fill(store, [b"a", b"ab", b"abc", b"abd", b"ac", b"b", b"a\xff", b"a\xff\xff", b"b\x00"])
    assert [k for k, _ in store.scan_prefix(b"ab")] == [b"ab", b"abc", b"abd"]
    assert [k for k, _ in store.scan_prefix(b"a\xff")] == [b"a\xff", b"a\xff\xff"]
    assert len(list(store.scan_prefix(b""))) == 9
    assert [k for k, _ in store.scan_prefix(b"a", limit=2)] == [b"a", b"ab"]


def test_delete_prefix(store: Store) -> None:
    fill(store, [b"a", b"ab", b"abc", b"ac", b"b", b"\xff", b"\xff\xff"])
    store.delete_prefix(b"ab")
    assert [k for k, _ in store.scan_range(None, None)] == [b"a", b"ac", b"b", b"\xff", b"\xff\xff"]
    store.delete_prefix(b"\xff")
    assert [k for k, _ in store.scan_range(None, None)] == [b"a", b"ac", b"b"]
    store.delete_prefix(b"")
    assert list(store.scan_range(None, None)) == []


def test_delete_range(store: Store) -> None:
    fill(store, [b"a", b"b", b"c", b"d", b"e"])
    store.delete_range(b"b", b"d")
    assert [k for k, _ in store.scan_range(None, None)] == [b"a", b"d", b"e"]
    store.delete_range(b"e", None)
    assert [k for k, _ in store.scan_range(None, None)] == [b"a", b"d"]
    store.delete_range(None, b"b")
    assert [k for k, _ in store.scan_range(None, None)] == [b"d"]
    store.delete_range(b"z", b"a")
    assert store.get(b"d") == b"vd"


def test_delete_all(store: Store) -> None:
    fill(store, [b"a", b"b"])
    store.delete_all()
    assert list(store.scan_range(None, None)) == []


def test_uint64_keys_up_to_max(store: Store) -> None:
    idx = [0, 1, 255, 256, 2**32, 2**63, 2**64 - 2, 2**64 - 1]
    store.set_many([(b"L" + i.to_bytes(8, "big"), b"x") for i in idx])
    got = [int.from_bytes(k[1:], "big") for k, _ in store.scan_prefix(b"L")]
    assert got == idx
    store.delete_range(b"L" + (256).to_bytes(8, "big"), key_upper_bound(b"L"))
    assert [int.from_bytes(k[1:], "big") for k, _ in store.scan_prefix(b"L")] == [0, 1, 255]


def test_write_batch_in_order(store: Store) -> None:
    fill(store, [b"a", b"b", b"c"])
    batch = WriteBatch().set(b"x", b"1").delete(b"a").delete_range(b"b", b"c").set(b"b", b"2")
    batch.delete_prefix(b"x")
    assert len(batch) == 5
    store.write(batch)
    assert dict(store.scan_range(None, None)) == {b"b": b"2", b"c": b"vc"}


def test_set_many(store: Store) -> None:
    store.set_many([(b"k1", b"1"), (b"k2", b"2"), (b"k1", b"3")])
    assert store.get(b"k1") == b"3" and store.get(b"k2") == b"2"
    store.set_many([])
    store.set_many(iter([(b"k3", b"x")]))
    assert store.get(b"k3") == b"x"


def test_string_helpers(store: Store) -> None:
    store.set_str("schlüssel/1", b"a")
    store.set_str("schlüssel/2", b"b")
    store.set_str("t", b"c")
    assert store.get_str("schlüssel/1") == b"a"
    assert list(store.scan_prefix_str("schlüssel/")) == [
        ("schlüssel/1", b"a"),
        ("schlüssel/2", b"b"),
    ]
    assert [k for k, _ in store.scan_range_str("schlüssel/2", None)] == ["schlüssel/2", "t"]
    store.delete_range_str("schlüssel/2", "u")
    store.delete_str("nothing")
    assert [k for k, _ in store.scan_range_str(None, None)] == ["schlüssel/1"]
    store.delete_prefix_str("schl")
    assert store.get_str("schlüssel/1") is None


def test_closed_store_raises(store: Store) -> None:
    store.close()
    store.close()
    assert store.closed
    with pytest.raises(StoreClosedError):
        store.get(b"a")
    with pytest.raises(StoreClosedError):
        store.set(b"a", b"b")
    with pytest.raises(StoreClosedError):
        list(store.scan_range(None, None))


def test_key_upper_bound() -> None:
    assert key_upper_bound(b"ab") == b"ac"
    assert key_upper_bound(b"a\xff") == b"b"
    assert key_upper_bound(b"\xff\xff") is None
    assert key_upper_bound(b"") is None


# ------------------------------------------------------------------ engines


def test_sqlite_persists_and_creates_its_directory(tmp_path: Path) -> None:
    loc = tmp_path / "a" / "b"
    with SqliteStore(str(loc)) as s:
        s.set(b"k", b"v")
    assert (loc / "store.sqlite").exists()
    with open_store("sqlite", str(loc)) as s:
        assert s.get(b"k") == b"v"


def test_sqlite_uses_wal_and_full_sync(tmp_path: Path) -> None:
    s = SqliteStore(str(tmp_path))
    try:
        assert s._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert s._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    finally:
        s.close()


def test_second_open_in_process_is_refused(tmp_path: Path) -> None:
    s = SqliteStore(str(tmp_path))
    try:
        with pytest.raises(StoreLockedError, match="in use"):
            SqliteStore(str(tmp_path))
    finally:
        s.close()
    SqliteStore(str(tmp_path)).close()


def test_location_held_by_another_live_process(tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import sys
        from ddastate.store import open_store
        s = open_store("sqlite", {str(tmp_path)!r})
        s.set(b"k", b"child")
        print("ready", flush=True)
        sys.stdin.read()
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        with pytest.raises(
            StoreLockedError, match=rf"in use by another process \(pid {child.pid}\)"
        ):
            open_store("sqlite", str(tmp_path))
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    with open_store("sqlite", str(tmp_path)) as s:  # the lock died with its holder
        assert s.get(b"k") == b"child"


def test_open_store_engine_names(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert isinstance(open_store("sqlite", ""), MemoryStore)
    assert isinstance(open_store("memory", str(tmp_path)), MemoryStore)
    with caplog.at_level(logging.WARNING, logger="ddastate.store"):
        s = open_store("pebble", str(tmp_path / "p"))
    try:
        assert isinstance(s, SqliteStore)
        assert any("pebble" in r.getMessage() for r in caplog.records)
    finally:
        s.close()
    assert normalize_engine(None) == "sqlite"
    assert normalize_engine("SQLite") == "sqlite"
    with pytest.raises(StoreError, match="unknown store engine 'rocks'"):
        open_store("rocks", str(tmp_path))


def test_sqlite_location_that_is_a_file(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(StoreError, match="cannot create store directory"):
        SqliteStore(str(f))


def test_sqlite_refuses_a_damaged_database(tmp_path: Path) -> None:
    (tmp_path / "store.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="cannot open store"):
        SqliteStore(str(tmp_path))
    (tmp_path / "store.sqlite").unlink()
    SqliteStore(str(tmp_path)).close()  # the lock was released on failure


# ----------------------------------------------------------------- sequences

MAX = 2**64 - 1


def test_sequence_calls(store: Store) -> None:
    assert store.seq_bounds("log") is None
    assert store.seq_get("log", 1) is None
    store.seq_delete_range("log", 0, MAX)
    idx = [0, 1, 255, 256, 2**32, 2**63 - 1, 2**63, 2**64 - 2, MAX]
    store.seq_put_many("log", [(i, i.to_bytes(8, "big")) for i in reversed(idx)])
    assert store.seq_bounds("log") == (0, MAX)
    assert [i for i, _ in store.seq_scan("log", 0, MAX)] == idx
    assert [i for i, _ in store.seq_scan("log", 2, 2**63, limit=3)] == [255, 256, 2**32]
    assert all(store.seq_get("log", i) == i.to_bytes(8, "big") for i in idx)
    store.seq_put_many("log", [(256, b"new")])
    assert store.seq_get("log", 256) == b"new"
    store.seq_delete_range("log", 2**63, MAX)
    assert store.seq_bounds("log") == (0, 2**63 - 1)
    store.seq_delete_range("log", 0, 1)
    store.seq_delete_range("log", 300, 200)
    assert store.seq_bounds("log") == (255, 2**63 - 1)
    store.seq_put_many("log", [])
    assert store.seq_bounds("other") is None  # sequences are separate keyspaces
    assert list(store.scan_range(None, None)) == []  # ... and apart from byte keys


def test_sequence_scan_crosses_chunks(store: Store) -> None:
    store.seq_put_many("s", [(i, b"x") for i in range(1, 1001)])
    assert [i for i, _ in store.seq_scan("s", 0, MAX)] == list(range(1, 1001))
    assert [i for i, _ in store.seq_scan("s", 100, 900, limit=500)] == list(range(100, 600))


def test_sequence_bad_names_and_indexes(store: Store) -> None:
    for bad in ("", "Log", "1x", "a-b", "x; DROP TABLE kv", "a" * 50):
        with pytest.raises(StoreError, match="sequence name"):
            store.seq_get(bad, 1)
    for idx in (-1, 2**64, "1", 1.0):
        with pytest.raises(StoreError, match="not an unsigned 64-bit"):
            store.seq_put_many("log", [(idx, b"x")])  # type: ignore[list-item]


def test_sequences_persist(tmp_path: Path) -> None:
    with SqliteStore(str(tmp_path)) as s:
        s.seq_put_many("log", [(7, b"seven"), (MAX, b"max")])
    with SqliteStore(str(tmp_path)) as s:
        assert s.seq_bounds("log") == (7, MAX) and s.seq_get("log", MAX) == b"max"


def test_open_store_from_config(tmp_path: Path) -> None:
    from ddastate.config import Config
    from ddastate.store import open_store_from_config

    cfg = Config()
    assert isinstance(open_store_from_config(cfg), MemoryStore)  # default location is ""
    cfg.services.store.location = str(tmp_path / "s")
    cfg.services.store.engine = "pebble"
    with open_store_from_config(cfg) as s:
        assert isinstance(s, SqliteStore)


def test_sequence_overwrites_within_and_across_calls(store: Store) -> None:
    store.seq_put_many("log", [(i, b"old") for i in range(250, 300)])
    # 600 rows in several statements; some exist already, one repeats inside the call
    batch = [(i, b"new%d" % i) for i in range(1, 601)] + [(5, b"last")]
    store.seq_put_many("log", batch)
    got = dict(store.seq_scan("log", 0, MAX))
    assert len(got) == 600 and got[5] == b"last" and got[260] == b"new260"
    assert store.seq_bounds("log") == (1, 600)

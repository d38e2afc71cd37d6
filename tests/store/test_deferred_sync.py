"""Deferred syncs: the SQLite engine's unsynced commits and the kernel-side fdatasync."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from ddastate._fdatasync import AsyncFdatasync
from ddastate.store import SqliteStore, StoreClosedError, StoreError
from ddastate.store.sqlite import CHECKPOINT_PAGES


def _traced_fdatasync(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = os.fdatasync

    def traced(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", traced)
    return calls


def test_deferred_commits_wait_for_sync_and_checkpoints_reuse_the_wal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = SqliteStore(str(tmp_path / "s"))
    with pytest.raises(StoreError, match="not deferred"):
        s.sync_fd()
    s.defer_sync(True)
    wal = str(tmp_path / "s" / "store.sqlite-wal")
    assert os.path.samefile(f"/proc/self/fd/{s.sync_fd()}", wal)
    calls = _traced_fdatasync(monkeypatch)
    i = 0
    while not s.checkpoint_due:
        i += 1
        s.seq_put_columns("log", [i], [b"x" * 100])
        assert i < 10 * CHECKPOINT_PAGES
    assert calls == []  # no commit synced itself
    size = os.path.getsize(wal)
    s.sync()
    assert calls == [s.sync_fd()] and not s.checkpoint_due
    for j in range(i + 1, 2 * i + 1):  # as many again: the checkpointed WAL is reused
        s.seq_put_columns("log", [j], [b"y" * 100])
    assert os.path.getsize(wal) <= size
    s.defer_sync(False)  # syncs what it holds
    assert len(calls) == 2
    s.sync()  # FULL again: every commit synced itself, nothing to flush
    assert len(calls) == 2
    with pytest.raises(StoreError, match="not deferred"):
        s.sync_fd()
    s.close()
    s2 = SqliteStore(str(tmp_path / "s"))
    assert s2.seq_bounds("log") == (1, 2 * i)
    assert s2.seq_get("log", 2 * i) == b"y" * 100
    s2.close()
    with pytest.raises(StoreClosedError):
        s2.sync()


async def test_async_fdatasync_shares_one_flush_among_waiters(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    try:
        fs = AsyncFdatasync(loop, fd)
    except OSError as e:
        os.close(fd)
        pytest.skip(f"no asynchronous fdatasync here: {e}")
    try:
        results: list[tuple[int, OSError | None]] = []
        done = asyncio.Event()

        def cb(tag: int) -> object:
            def report(err: OSError | None) -> None:
                results.append((tag, err))
                if len(results) == 3:
                    done.set()

            return report

        os.write(fd, b"a" * 4096)
        fs.sync_then(cb(1))  # in flight at once
        fs.sync_then(cb(2))  # these two wait for, and share, the next flush
        fs.sync_then(cb(3))
        assert fs._in_flight is not None and len(fs._waiting) == 2
        await done.wait()
        assert results == [(1, None), (2, None), (3, None)]
        assert fs._in_flight is None and not fs._waiting
    finally:
        fs.close()
        os.close(fd)
    errs: list[OSError | None] = []
    fs.sync_then(errs.append)  # closed: refused at once
    assert len(errs) == 1 and isinstance(errs[0], OSError)


async def test_async_fdatasync_reports_a_failed_flush(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    r, w = os.pipe()  # a pipe cannot be flushed: the probe fails
    try:
        with pytest.raises(OSError):
            AsyncFdatasync(loop, r)
    finally:
        os.close(r)
        os.close(w)

"""SQLite engine: one database file in a directory, WAL journal, ``synchronous=FULL``.

Every commit ends with an fsync of the write-ahead log, so a write that returned is on
disk. The directory holds ``store.sqlite`` (plus SQLite's ``-wal`` file; locking mode
EXCLUSIVE keeps the WAL index in memory, so there is no ``-shm`` file) and a ``LOCK``
file that the owning process holds with ``flock``: opening a location that another
live process holds fails with StoreLockedError instead of sharing it.
The kernel drops the lock when the process dies, so a crashed owner never blocks a restart.

An owner that makes writes durable itself (a Raft node batching many writes behind one
flush) calls ``defer_sync(True)``: commits then leave the WAL unsynced
(``synchronous=NORMAL``: SQLite syncs only around checkpoints) and automatic
checkpoints stop; ``sync()``, or an fdatasync of ``sync_fd()`` from anywhere, makes
every committed write durable, and ``sync()`` also runs the checkpoint once the WAL has
grown by ``CHECKPOINT_PAGES`` pages (so a checkpoint's fsyncs never run inside a commit).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence

from .api import (
    Store,
    StoreClosedError,
    StoreError,
    StoreLockedError,
    WriteBatch,
    _check_kv,
    check_index,
    check_seq,
)

log = logging.getLogger(__name__)

DB_NAME = "store.sqlite"
LOCK_NAME = "LOCK"
_CHUNK = 256

_SET = "INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)"
# Sequence indexes are unsigned 64-bit; SQLite's integer keys are signed: shift by 2**63,
# which keeps the order.
_SHIFT = 1 << 63
_ROWS_PER_INSERT = 256  # SQLite allows 32766 parameters per statement
CHECKPOINT_PAGES = 1000  # SQLite's own automatic checkpoint threshold
_PAGE = 4096


def _makedirs_durably(path: str) -> None:
    """Create ``path`` and missing parents, fsyncing each parent of a new directory."""
    missing: list[str] = []
    p = path
    while not os.path.isdir(p):
        missing.append(p)
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    for d in reversed(missing):
        try:
            os.mkdir(d)
        except FileExistsError:
            if not os.path.isdir(d):
                raise
        fd = os.open(os.path.dirname(d), os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class SqliteStore(Store):
    """A durable key-value store in ``<location>/store.sqlite``."""

    engine = "sqlite"

    def __init__(self, location: str) -> None:
        if not location:
            raise StoreError("sqlite store needs a directory location")
        self.location = os.path.abspath(location)
        try:
            _makedirs_durably(self.location)
        except OSError as e:
            raise StoreError(f"cannot create store directory {self.location!r}: {e}") from e
        self._lock_fd = self._acquire_lock()
        self._lock = threading.Lock()
        self._closed = False
        self._seq_sql: dict[str, tuple[str, str, str, str, str]] = {}
        self._insert_cache: dict[tuple[str, int, bool], str] = {}
        self._deferred = False
        self._wal_pages = 0  # pages written to the WAL since the last checkpoint (estimate)
        self._wal_fd = -1
        path = os.path.join(self.location, DB_NAME)
        try:
            # Implicit transactions (the sqlite3 default): a write statement opens one and
            # commit() ends it, so set_many is executemany + commit: one fsync.
            self._db = sqlite3.connect(path, check_same_thread=False, cached_statements=128)
            # This process alone may use the file (the flock above), so SQLite's file
            # locks can be held for the connection's life: set before the first WAL
            # access, EXCLUSIVE mode also keeps the WAL index in heap memory instead of
            # the -shm file, which saves several system calls per commit (durability is
            # unchanged: the WAL is still fsynced at every commit).
            self._db.execute("PRAGMA locking_mode=EXCLUSIVE").fetchone()
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"store {path!r}: cannot switch to WAL journal (got {mode})")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY NOT NULL, v BLOB NOT NULL) "
                "WITHOUT ROWID"
            )
            self._db.commit()
        except sqlite3.Error as e:
            self._release_lock()
            raise StoreError(f"cannot open store {path!r}: {e}") from e
        except StoreError:
            self._release_lock()
            raise

    # ----------------------------------------------------------------- locking

    def _acquire_lock(self) -> int:
        path = os.path.join(self.location, LOCK_NAME)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise StoreError(f"cannot open lock file {path!r}: {e}") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = ""
            try:
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            except OSError:
                pass
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                who = f" (pid {holder})" if holder else ""
                raise StoreLockedError(
                    f"store location {self.location!r} is in use by another process{who}"
                ) from None
            raise StoreError(f"cannot lock {path!r}: {e}") from e
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass  # the pid is informational only
        return fd

    def _release_lock(self) -> None:
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        finally:
            os.close(self._lock_fd)

    # ------------------------------------------------------------------- engine

    @property
    def closed(self) -> bool:
        return self._closed

    def _fail(self, what: str, e: sqlite3.Error) -> StoreError:
        return StoreError(f"store {self.location!r}: {what} failed: {e}")

    def get(self, key: bytes) -> bytes | None:
        with self._lock:
            if self._closed:
                raise StoreClosedError(f"store {self.location!r} is closed")
            try:
                row = self._db.execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()
            except sqlite3.Error as e:
                raise self._fail("get", e) from e
        return None if row is None else bytes(row[0])

    def set_many(self, items: Iterable[tuple[bytes, bytes]]) -> None:
        pairs = items if isinstance(items, (list, tuple)) else list(items)
        for k, v in pairs:
            _check_kv(k, v)
        with self._lock:
            if self._closed:
                raise StoreClosedError(f"store {self.location!r} is closed")
            db = self._db
            try:
                db.executemany(_SET, pairs)
                self._commit(lambda: sum(len(k) + len(v) for k, v in pairs))
            except sqlite3.Error as e:
                self._rollback()
                raise self._fail("set", e) from e

    def write(self, batch: WriteBatch) -> None:
        with self._lock:
            if self._closed:
                raise StoreClosedError(f"store {self.location!r} is closed")
            db = self._db
            try:
                db.execute("BEGIN IMMEDIATE")
                for op, a, b in batch.ops:
                    if op == "set":
                        db.execute(_SET, (a, b))
                    elif op == "delete":
                        db.execute("DELETE FROM kv WHERE k = ?", (a,))
                    else:
                        self._exec_delete_range(a, b)
                self._commit(lambda: sum(len(a or b"") + len(b or b"") for _, a, b in batch.ops))
            except sqlite3.Error as e:
                self._rollback()
                raise self._fail("write", e) from e

    def _exec_delete_range(self, start: bytes | None, end: bytes | None) -> None:
        if start is None and end is None:
            self._db.execute("DELETE FROM kv")
        elif start is None:
            self._db.execute("DELETE FROM kv WHERE k < ?", (end,))
        elif end is None:
            self._db.execute("DELETE FROM kv WHERE k >= ?", (start,))
        else:
            self._db.execute("DELETE FROM kv WHERE k >= ? AND k < ?", (start, end))

    def _commit(self, size: Callable[[], int] | None = None) -> None:
        """Commit the open transaction (call with the lock held); with deferred syncs,
        count the WAL pages it wrote from ``size()``, its bytes (asked for only then)."""
        self._db.commit()
        if self._deferred:
            nbytes = size() if size is not None else 0
            self._wal_pages += 3 + nbytes // _PAGE  # a small commit writes about 3 frames

    # ------------------------------------------------------------ durability

    def defer_sync(self, on: bool) -> None:
        """Leave commits unsynced (``on``) until ``sync()``; off syncs and restores FULL."""
        with self._lock:
            if self._closed:
                raise StoreClosedError(f"store {self.location!r} is closed")
            if on == self._deferred:
                return
            try:
                if on:
                    if self._wal_fd < 0:
                        self._wal_fd = os.open(
                            os.path.join(self.location, DB_NAME) + "-wal", os.O_RDWR | os.O_CLOEXEC
                        )
                    self._db.execute("PRAGMA wal_autocheckpoint=0").fetchone()
                    self._db.execute("PRAGMA synchronous=NORMAL")
                else:
                    self._sync_locked()
                    self._db.execute("PRAGMA synchronous=FULL")
                    self._db.execute(f"PRAGMA wal_autocheckpoint={CHECKPOINT_PAGES}").fetchone()
            except OSError as e:
                raise StoreError(f"store {self.location!r}: cannot open its WAL: {e}") from e
            except sqlite3.Error as e:
                raise self._fail("switching durability mode", e) from e
            self._deferred = on

    def sync_fd(self) -> int:
        """A descriptor of the WAL: its fdatasync makes every committed write durable
        (valid while the store is open and syncs are deferred)."""
        if not self._deferred:
            raise StoreError(f"store {self.location!r}: syncs are not deferred")
        return self._wal_fd

    @property
    def checkpoint_due(self) -> bool:
        """The WAL has grown enough that the next ``sync()`` checkpoints it."""
        return self._wal_pages >= CHECKPOINT_PAGES

    def sync(self) -> None:
        """Make every committed write durable (and checkpoint when it is due)."""
        with self._lock:
            if self._closed:
                raise StoreClosedError(f"store {self.location!r} is closed")
            self._sync_locked()

    def _sync_locked(self) -> None:
        if not self._deferred:
            return  # synchronous=FULL: every commit was synced
        try:
            os.fdatasync(self._wal_fd)
        except OSError as e:
            raise StoreError(f"store {self.location!r}: fdatasync of the WAL failed: {e}") from e
        if self._wal_pages >= CHECKPOINT_PAGES:
            try:
                # synchronous=NORMAL: the WAL, then the database, is fsynced before the
                # WAL may be reused by a later commit
                self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            except sqlite3.Error as e:
                raise self._fail("checkpoint", e) from e
            self._wal_pages = 0

    def _rollback(self) -> None:
        try:
            self._db.rollback()
        except sqlite3.Error:
            log.exception("store %s: rollback failed", self.location)

    def _scan(
        self, start: bytes | None, end: bytes | None, reverse: bool, limit: int | None
    ) -> Iterator[tuple[bytes, bytes]]:
        remaining = limit
        lo, hi = start, end
        lo_incl = True
        order = "DESC" if reverse else "ASC"
        while remaining is None or remaining > 0:
            n = _CHUNK if remaining is None else min(_CHUNK, remaining)
            cond: list[str] = []
            args: list[object] = []
            if lo is not None:
                cond.append("k >= ?" if lo_incl else "k > ?")
                args.append(lo)
            if hi is not None:
                cond.append("k < ?")
                args.append(hi)
            where = (" WHERE " + " AND ".join(cond)) if cond else ""
            sql = f"SELECT k, v FROM kv{where} ORDER BY k {order} LIMIT ?"
            args.append(n)
            with self._lock:
                if self._closed:
                    raise StoreClosedError(f"store {self.location!r} is closed")
                try:
                    rows = self._db.execute(sql, args).fetchall()
                except sqlite3.Error as e:
                    raise self._fail("scan", e) from e
            if not rows:
                return
            for k, v in rows:
                yield bytes(k), bytes(v)
            if remaining is not None:
                remaining -= len(rows)
            if reverse:
                hi = bytes(rows[-1][0])
            else:
                lo = bytes(rows[-1][0])
                lo_incl = False
            if len(rows) < n:
                return

    # --------------------------------------------------------------- sequences

    def _seq(self, seq: str) -> tuple[str, str, str, str, str]:
        """SQL of a sequence's table (created on first use); call with the lock held."""
        if self._closed:
            raise StoreClosedError(f"store {self.location!r} is closed")
        sql = self._seq_sql.get(seq)
        if sql is None:
            t = "seq_" + check_seq(seq)
            try:
                self._db.execute(
                    f"CREATE TABLE IF NOT EXISTS {t} (i INTEGER PRIMARY KEY, v BLOB NOT NULL)"
                )
                self._db.commit()
            except sqlite3.Error as e:
                raise self._fail(f"create sequence {seq}", e) from e
            sql = self._seq_sql[seq] = (
                f"INTO {t} (i, v) VALUES ",
                f"SELECT v FROM {t} WHERE i = ?",
                f"DELETE FROM {t} WHERE i >= ? AND i <= ?",
                f"SELECT min(i), max(i) FROM {t}",
                f"SELECT i, v FROM {t} WHERE i >= ? AND i <= ? ORDER BY i LIMIT ?",
            )
        return sql

    def _insert_sql(self, seq: str, rows: int, replace: bool) -> str:
        """One INSERT of ``rows`` rows (call with the lock held); cached by size."""
        key = (seq, rows, replace)
        sql = self._insert_cache.get(key)
        if sql is None:
            verb = "INSERT OR REPLACE " if replace else "INSERT "
            sql = verb + self._seq(seq)[0] + ",".join(("(?,?)",) * rows)
            if len(self._insert_cache) > 512:
                self._insert_cache.clear()
            self._insert_cache[key] = sql
        return sql

    def seq_put_many(self, seq: str, items: Sequence[tuple[int, bytes]]) -> None:
        self.seq_put_columns(seq, [i for i, _ in items], [v for _, v in items])

    def seq_put_columns(
        self, seq: str, indexes: Sequence[int], values: Sequence[bytes | bytearray]
    ) -> None:
        """``seq_put_many`` given the indexes and the values as two equally long sequences.

        bytearray values are bound faster than bytes (Python's sqlite3 looks for an
        adapter for each bytes parameter, not for a bytearray); both store a BLOB.

        One multi-row INSERT per chunk of rows: about half the CPU of executemany,
        which steps the statement once per row. A plain INSERT is cheaper than
        INSERT OR REPLACE; overwriting existing records is rare (a log is appended
        to), so the transaction is retried with REPLACE when a key already exists.
        """
        n = len(indexes)
        if len(values) != n:
            raise ValueError(f"{n} indexes but {len(values)} values")
        if not n:
            return
        shift = _SHIFT
        # the row parameters i0, v0, i1, v1, ... built by slice assignment (C loops)
        args: list[object] = [None] * (2 * n)
        try:
            args[0::2] = [i - shift for i in indexes]
        except TypeError:
            for i in indexes:
                check_index(i)
            raise
        args[1::2] = values
        with self._lock:
            if self._closed:
                raise StoreClosedError(f"store {self.location!r} is closed")
            try:
                try:
                    self._insert_rows(seq, args, n, replace=False)
                except sqlite3.IntegrityError:
                    self._db.rollback()
                    self._insert_rows(seq, args, n, replace=True)
            except (OverflowError, sqlite3.Error) as e:
                # indexes are checked here, on failure only: one outside 0..2**64-1 does
                # not fit SQLite's shifted int64 key, a float is a datatype mismatch
                self._rollback()
                for i in indexes:
                    check_index(i)
                if isinstance(e, sqlite3.Error):
                    raise self._fail(f"append to {seq}", e) from e
                raise

    def _insert_rows(self, seq: str, args: list[object], n: int, replace: bool) -> None:
        db = self._db
        for lo in range(0, n, _ROWS_PER_INSERT):
            rows = min(_ROWS_PER_INSERT, n - lo)
            sql = self._insert_sql(seq, rows, replace)
            db.execute(sql, args[2 * lo : 2 * (lo + rows)] if rows != n else args)
        self._commit(lambda: n * 8 + sum(map(len, args[1::2])))  # type: ignore[arg-type]

    def seq_get(self, seq: str, index: int) -> bytes | None:
        key = check_index(index) - _SHIFT
        with self._lock:
            sql = self._seq(seq)[1]
            try:
                row = self._db.execute(sql, (key,)).fetchone()
            except sqlite3.Error as e:
                raise self._fail(f"get from {seq}", e) from e
        return None if row is None else bytes(row[0])

    def seq_delete_range(self, seq: str, first: int, last: int) -> None:
        args = (check_index(first) - _SHIFT, check_index(last) - _SHIFT)
        with self._lock:
            sql = self._seq(seq)[2]
            try:
                self._db.execute(sql, args)
                self._commit()
            except sqlite3.Error as e:
                self._rollback()
                raise self._fail(f"delete from {seq}", e) from e

    def seq_bounds(self, seq: str) -> tuple[int, int] | None:
        with self._lock:
            sql = self._seq(seq)[3]
            try:
                lo, hi = self._db.execute(sql).fetchone()
            except sqlite3.Error as e:
                raise self._fail(f"bounds of {seq}", e) from e
        if lo is None:
            return None
        return int(lo) + _SHIFT, int(hi) + _SHIFT

    def seq_scan(
        self, seq: str, first: int, last: int, limit: int | None = None
    ) -> Iterator[tuple[int, bytes]]:
        lo = check_index(first) - _SHIFT
        hi = check_index(last) - _SHIFT
        remaining = limit
        while remaining is None or remaining > 0:
            n = _CHUNK if remaining is None else min(_CHUNK, remaining)
            with self._lock:
                sql = self._seq(seq)[4]
                try:
                    rows = self._db.execute(sql, (lo, hi, n)).fetchall()
                except sqlite3.Error as e:
                    raise self._fail(f"scan of {seq}", e) from e
            if not rows:
                return
            for i, v in rows:
                yield int(i) + _SHIFT, bytes(v)
            if remaining is not None:
                remaining -= len(rows)
            lo = int(rows[-1][0]) + 1
            if len(rows) < n:
                return

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._wal_fd >= 0:
                os.close(self._wal_fd)
                self._wal_fd = -1
            try:
                # the last connection checkpoints the WAL (synced, FULL or NORMAL) and
                # removes it
                self._db.close()
            except sqlite3.Error:
                log.exception("store %s: close failed", self.location)
            finally:
                self._release_lock()

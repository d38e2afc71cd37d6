"""RaftStore: a member's Raft log, stable store and snapshots on the store service.

``RaftStore(location)`` keeps the log and the stable store in one key-value store (the
``sqlite`` engine in ``<location>/store``, or the memory engine when ``location`` is
empty) and snapshots in a FileSnapshotStore under ``<location>/snapshots`` keeping 2 (or
an in-memory snapshot store keeping the latest).

Log entries live in the store's sequence ``raft_log``, keyed by their uint64 index
(ordered as 8-byte big-endian keys; the SQLite engine keeps a sequence in an
integer-keyed table, its fastest append path); stable-store keys live in the byte-keyed
space under ``b"S"`` + the key, in the same database file. Entries are stored in the
codec's Log form (the msgpack hashicorp/raft's Go encoder writes). ``store_logs`` is
one durable transaction. First and last index are cached in memory.

Membership-change observers are fed from configuration entries as they are stored,
as the reference does: a new first observer gets the current members (from the
configuration provider) as joined; later observers get the members known so far; then
every observer gets each server that appears (joined) or disappears (left) in a stored
configuration entry, deduplicated by server id.

All methods are thread-safe. The Raft node calls a durable store from its writer thread
and an in-memory one (``inline_safe``) on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import threading
from collections.abc import Callable, Sequence
from typing import Union

from ddastate.raft.configuration import Configuration, ConfigurationError, decode_configuration
from ddastate.raft.errors import KeyNotFoundError, LogNotFoundError
from ddastate.raft.log import Log, LogType
from ddastate.raft.snapshot_file import FileSnapshotStore
from ddastate.raft.snapshot_inmem import InmemSnapshotStore
from ddastate.state.api import MembershipChange
from ddastate.store import MemoryStore, SqliteStore, Store, StoreError

from .codec import CodecError, decode_log, encode_log_buffers, encode_logs

log = logging.getLogger(__name__)

__all__ = [
    "RETAIN_SNAPSHOTS",
    "LogRecordError",
    "MembershipSink",
    "RaftStore",
    "StableRecordError",
]

RETAIN_SNAPSHOTS = 2
MAX_INDEX = 0xFFFF_FFFF_FFFF_FFFF

LOG_SEQ = "raft_log"
_STABLE = b"S"

MembershipSink = Union["asyncio.Queue[MembershipChange]", Callable[[MembershipChange], None]]
ConfigurationProvider = Callable[[], Configuration | None]


class LogRecordError(CodecError):
    """A stored log record does not decode (or holds another index); names the index."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(f"log record at index {index} is damaged: {reason}")
        self.index = index


class StableRecordError(CodecError):
    """A stable-store value is not what it must be (e.g. not 8 bytes for a uint64)."""


def _check_index(index: int) -> int:
    if type(index) is not int or not 0 <= index <= MAX_INDEX:
        raise ValueError(f"log index {index!r} is not a uint64")
    return index


def _put(queue: asyncio.Queue[MembershipChange], change: MembershipChange) -> None:
    try:
        queue.put_nowait(change)
    except asyncio.QueueFull:
        log.warning("membership observer queue full; dropped %s", change)


class _Observer:
    __slots__ = ("deliver",)

    def __init__(self, sink: MembershipSink, loop: asyncio.AbstractEventLoop | None) -> None:
        if isinstance(sink, asyncio.Queue):
            if loop is None:
                try:
                    loop = asyncio.get_running_loop()
                except RuntimeError:
                    raise ValueError(
                        "a queue membership observer needs an event loop: add it from a "
                        "coroutine or pass loop="
                    ) from None
            q, lp = sink, loop

            def deliver(change: MembershipChange) -> None:
                try:
                    lp.call_soon_threadsafe(_put, q, change)
                except RuntimeError:
                    log.debug("membership observer loop closed; dropped %s", change)

        else:
            fn = sink

            def deliver(change: MembershipChange) -> None:
                try:
                    fn(change)
                except Exception:
                    log.exception("membership observer callback failed")

        self.deliver = deliver


class RaftStore:
    """LogStore and StableStore of a member, plus its snapshot store."""

    def __init__(self, location: str) -> None:
        self.location = location
        # In memory, a write is a few dict inserts: the node then calls the store on the
        # event loop instead of handing each write to its writer thread.
        self.inline_safe = not location
        # On disk, the node may write on the loop and make the writes durable itself
        # with one flush per batch (defer_sync, sync, sync_fd, checkpoint_due).
        self.can_defer_sync = bool(location)
        self._kv: Store
        self.snapshot_store: FileSnapshotStore | InmemSnapshotStore
        self._lock = threading.Lock()
        self._first = 0
        self._last = 0
        self._empty = True
        if location:
            self._kv = SqliteStore(os.path.join(location, "store"))
            try:
                self.snapshot_store = FileSnapshotStore(
                    os.path.join(location, "snapshots"), retain=RETAIN_SNAPSHOTS
                )
                self._load_bounds()
            except BaseException:
                self._kv.close()  # release the location for a retry
                raise
        else:
            self._kv = MemoryStore()
            self.snapshot_store = InmemSnapshotStore()
        self._obs_lock = threading.Lock()
        self._observers: dict[int, _Observer] = {}
        self._next_observer_id = 0
        self._member_ids: dict[str, None] = {}

    # ------------------------------------------------------------------ helpers

    @property
    def kv(self) -> Store:
        """The underlying key-value store."""
        return self._kv

    def _load_bounds(self) -> None:
        bounds = self._kv.seq_bounds(LOG_SEQ)
        self._empty = bounds is None
        self._first, self._last = (0, 0) if bounds is None else bounds

    # ---------------------------------------------------------------- LogStore

    def first_index(self) -> int:
        """The first index stored, 0 for an empty log."""
        return self._first

    def last_index(self) -> int:
        """The last index stored, 0 for an empty log."""
        return self._last

    def get_log(self, index: int) -> Log:
        """The entry at ``index``; LogNotFoundError if absent, LogRecordError if damaged."""
        raw = self._kv.seq_get(LOG_SEQ, _check_index(index))
        if raw is None:
            raise LogNotFoundError()
        try:
            entry = decode_log(raw)
        except CodecError as e:
            raise LogRecordError(index, str(e)) from e
        if entry.index != index:
            raise LogRecordError(index, f"record holds index {entry.index}")
        return entry

    def get_logs(self, first: int, last: int) -> list[Log]:
        """The entries held with ``first <= index <= last``, ascending, read in chunks.

        Not part of hashicorp's LogStore: a fast way to load a range (one query per 256
        entries instead of one per entry). A damaged record raises LogRecordError.
        """
        out: list[Log] = []
        for index, raw in self._kv.seq_scan(LOG_SEQ, _check_index(first), _check_index(last)):
            try:
                entry = decode_log(raw)
            except CodecError as e:
                raise LogRecordError(index, str(e)) from e
            if entry.index != index:
                raise LogRecordError(index, f"record holds index {entry.index}")
            out.append(entry)
        return out

    def store_log(self, entry: Log) -> None:
        """Store one entry durably."""
        self.store_logs((entry,))

    def store_logs(self, logs: Sequence[Log]) -> None:
        """Store entries durably in one transaction (gaps allowed, as in hashicorp)."""
        if not logs:
            return
        idx = [e.index for e in logs]
        lo = min(idx)
        hi = max(idx)
        _check_index(lo)
        _check_index(hi)
        kv = self._kv
        with self._lock:
            if isinstance(kv, SqliteStore):
                kv.seq_put_columns(LOG_SEQ, idx, encode_log_buffers(logs))
            else:
                kv.seq_put_many(LOG_SEQ, list(zip(idx, encode_logs(logs), strict=True)))
            if self._empty:
                self._first, self._last, self._empty = lo, hi, False
            else:
                if lo < self._first:
                    self._first = lo
                if hi > self._last:
                    self._last = hi
        if self._observers:  # checked again under the lock; skips the loop when none
            for e in logs:
                if e.type == LogType.CONFIGURATION:
                    self._on_configuration(e)

    def delete_range(self, min_index: int, max_index: int) -> None:
        """Delete entries with ``min_index <= index <= max_index`` (max may be 2**64-1)."""
        _check_index(min_index)
        _check_index(max_index)
        with self._lock:
            self._kv.seq_delete_range(LOG_SEQ, min_index, max_index)
            self._load_bounds()

    # ------------------------------------------------------------- StableStore

    def set(self, key: bytes, value: bytes) -> None:
        self._kv.set(_STABLE + key, value)

    def get(self, key: bytes) -> bytes:
        """The value of ``key``; KeyNotFoundError ("not found") if absent."""
        v = self._kv.get(_STABLE + key)
        if v is None:
            raise KeyNotFoundError()
        return v

    def set_uint64(self, key: bytes, value: int) -> None:
        if type(value) is not int or not 0 <= value <= MAX_INDEX:
            raise ValueError(f"stable value for {key!r} is not a uint64: {value!r}")
        self._kv.set(_STABLE + key, value.to_bytes(8, "big"))

    def get_uint64(self, key: bytes) -> int:
        """The value of ``key``; KeyNotFoundError ("not found") if absent."""
        v = self.get(key)
        if len(v) != 8:
            raise StableRecordError(f"stable value for {key!r} is {len(v)} bytes, not 8")
        return int.from_bytes(v, "big")

    # --------------------------------------------------------------- durability

    def _sqlite(self) -> SqliteStore:
        if not isinstance(self._kv, SqliteStore):
            raise StoreError("an in-memory store has no deferred syncs")
        return self._kv

    def defer_sync(self, on: bool) -> None:
        """Leave writes unsynced until ``sync()`` (``on``); off syncs and makes every
        later write durable when it returns, the default."""
        self._sqlite().defer_sync(on)

    def sync(self) -> None:
        """Make every write so far durable; checkpoints the database when it is due."""
        if isinstance(self._kv, SqliteStore):
            self._kv.sync()

    def sync_fd(self) -> int:
        """A descriptor whose fdatasync makes every write so far durable (while deferred)."""
        return self._sqlite().sync_fd()

    @property
    def checkpoint_due(self) -> bool:
        """The next ``sync()`` also checkpoints (slow: leave it to a thread)."""
        return isinstance(self._kv, SqliteStore) and self._kv.checkpoint_due

    # ----------------------------------------------------------------- lifecycle

    def close(self, remove_storage: bool = False) -> None:
        """Close the store; with ``remove_storage`` delete its files and snapshots."""
        self._kv.close()
        if remove_storage and self.location:
            shutil.rmtree(os.path.join(self.location, "store"), ignore_errors=True)
            shutil.rmtree(os.path.join(self.location, "snapshots"), ignore_errors=True)
            try:
                os.rmdir(self.location)
            except OSError:
                pass  # not empty: other files live there

    def __enter__(self) -> RaftStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------- membership observers

    def add_membership_change_observer(
        self,
        sink: MembershipSink,
        configuration_provider: ConfigurationProvider,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> int:
        """Register an observer of members joining and leaving; returns its id.

        ``sink`` is an asyncio.Queue (fed thread-safely on ``loop``, by default the
        running loop) or a callable (called from the storing thread; keep it quick).
        The first observer gets the members of ``configuration_provider()`` as joined,
        later ones the members known so far. If the provider fails, the observer is
        not registered (logged), as in the reference.
        """
        obs = _Observer(sink, loop)
        with self._obs_lock:
            self._next_observer_id += 1
            oid = self._next_observer_id
            if not self._observers:
                try:
                    cfg = configuration_provider()
                except Exception:
                    log.exception("configuration could not be retrieved for membership changes")
                    return oid
                for s in cfg.servers if cfg is not None else ():
                    if s.id not in self._member_ids:
                        self._member_ids[s.id] = None
                        obs.deliver(MembershipChange(id=s.id, joined=True))
            else:
                for mid in self._member_ids:
                    obs.deliver(MembershipChange(id=mid, joined=True))
            self._observers[oid] = obs
        return oid

    def remove_membership_change_observer(self, observer_id: int) -> None:
        """Deregister an observer (a queue is not closed)."""
        with self._obs_lock:
            self._observers.pop(observer_id, None)
            if not self._observers:
                self._member_ids.clear()

    def _on_configuration(self, entry: Log) -> None:
        with self._obs_lock:
            if not self._observers:
                return
        try:
            cfg = decode_configuration(entry.data)
        except ConfigurationError as e:
            log.error("configuration entry %d does not decode: %s", entry.index, e)
            return
        ids = [s.id for s in cfg.servers]
        with self._obs_lock:
            if not self._observers:
                return
            current = set(ids)
            for mid in [m for m in self._member_ids if m not in current]:
                del self._member_ids[mid]
                for o in self._observers.values():
                    o.deliver(MembershipChange(id=mid, joined=False))
            for sid in ids:
                if sid not in self._member_ids:
                    self._member_ids[sid] = None
                    for o in self._observers.values():
                        o.deliver(MembershipChange(id=sid, joined=True))

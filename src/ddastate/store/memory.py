"""In-memory engine: a sorted key list beside a dict; nothing survives the process."""

from __future__ import annotations

import threading
from bisect import bisect_left, insort
from collections.abc import Iterable, Iterator

from .api import Store, StoreClosedError, WriteBatch, _check_kv

_CHUNK = 256


class MemoryStore(Store):
    """A thread-safe ordered in-memory key-value store."""

    engine = "memory"

    def __init__(self) -> None:
        self.location = ""
        self._data: dict[bytes, bytes] = {}
        self._keys: list[bytes] = []
        self._lock = threading.Lock()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError("memory store is closed")

    def get(self, key: bytes) -> bytes | None:
        with self._lock:
            self._check_open()
            return self._data.get(bytes(key))

    def _set(self, k: bytes, v: bytes) -> None:
        if k not in self._data:
            keys = self._keys
            if not keys or keys[-1] < k:
                keys.append(k)
            else:
                insort(keys, k)
        self._data[k] = v

    def _delete_range(self, start: bytes | None, end: bytes | None) -> None:
        keys = self._keys
        i = 0 if start is None else bisect_left(keys, start)
        j = len(keys) if end is None else bisect_left(keys, end)
        if j <= i:
            return
        data = self._data
        for k in keys[i:j]:
            del data[k]
        del keys[i:j]

    def set_many(self, items: Iterable[tuple[bytes, bytes]]) -> None:
        pairs = [(bytes(k), bytes(v)) for k, v in items]
        for k, v in pairs:
            _check_kv(k, v)
        with self._lock:
            self._check_open()
            for k, v in pairs:
                self._set(k, v)

    def write(self, batch: WriteBatch) -> None:
        with self._lock:
            self._check_open()
            for op, a, b in batch.ops:
                if op == "set":
                    assert a is not None and b is not None
                    self._set(a, b)
                elif op == "delete":
                    assert a is not None
                    if self._data.pop(a, None) is not None:
                        del self._keys[bisect_left(self._keys, a)]
                else:
                    self._delete_range(a, b)

    def _scan(
        self, start: bytes | None, end: bytes | None, reverse: bool, limit: int | None
    ) -> Iterator[tuple[bytes, bytes]]:
        remaining = limit
        lo = start
        hi = end
        while remaining is None or remaining > 0:
            n = _CHUNK if remaining is None else min(_CHUNK, remaining)
            with self._lock:
                self._check_open()
                keys = self._keys
                i = 0 if lo is None else bisect_left(keys, lo)
                j = len(keys) if hi is None else bisect_left(keys, hi)
                chunk = keys[max(i, j - n) : j][::-1] if reverse else keys[i : min(j, i + n)]
                rows = [(k, self._data[k]) for k in chunk]
            if not rows:
                return
            yield from rows
            if remaining is not None:
                remaining -= len(rows)
            if reverse:
                hi = rows[-1][0]
            else:
                lo = rows[-1][0] + b"\x00"
            if len(rows) < n:
                return

    def close(self) -> None:
        with self._lock:
            self._closed = True

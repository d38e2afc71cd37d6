"""In-memory engine: a sorted key list beside a dict; nothing survives the process."""

from __future__ import annotations

import threading
from bisect import bisect_left, insort
from collections.abc import Iterable, Iterator, Sequence

from .api import Store, StoreClosedError, WriteBatch, _check_kv, check_index, check_seq

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
        self._seqs: dict[str, tuple[dict[int, bytes], list[int]]] = {}

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

    # --------------------------------------------------------------- sequences

    def _seq(self, seq: str) -> tuple[dict[int, bytes], list[int]]:
        self._check_open()
        s = self._seqs.get(seq)
        if s is None:
            s = self._seqs[check_seq(seq)] = ({}, [])
        return s

    def seq_put_many(self, seq: str, items: Sequence[tuple[int, bytes]]) -> None:
        pairs = [(check_index(i), bytes(v)) for i, v in items]
        with self._lock:
            data, keys = self._seq(seq)
            for i, v in pairs:
                if i not in data:
                    if not keys or keys[-1] < i:
                        keys.append(i)
                    else:
                        insort(keys, i)
                data[i] = v

    def seq_get(self, seq: str, index: int) -> bytes | None:
        with self._lock:
            return self._seq(seq)[0].get(index)

    def seq_delete_range(self, seq: str, first: int, last: int) -> None:
        check_index(first)
        check_index(last)
        with self._lock:
            data, keys = self._seq(seq)
            i = bisect_left(keys, first)
            j = bisect_left(keys, last + 1)
            for k in keys[i:j]:
                del data[k]
            del keys[i:j]

    def seq_bounds(self, seq: str) -> tuple[int, int] | None:
        with self._lock:
            keys = self._seq(seq)[1]
            return (keys[0], keys[-1]) if keys else None

    def seq_scan(
        self, seq: str, first: int, last: int, limit: int | None = None
    ) -> Iterator[tuple[int, bytes]]:
        check_index(first)
        check_index(last)
        lo = first
        remaining = limit
        while remaining is None or remaining > 0:
            n = _CHUNK if remaining is None else min(_CHUNK, remaining)
            with self._lock:
                data, keys = self._seq(seq)
                i = bisect_left(keys, lo)
                j = bisect_left(keys, last + 1)
                rows = [(k, data[k]) for k in keys[i : min(j, i + n)]]
            if not rows:
                return
            yield from rows
            if remaining is not None:
                remaining -= len(rows)
            lo = rows[-1][0] + 1
            if len(rows) < n:
                return

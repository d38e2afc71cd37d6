"""The local key-value storage service API (the reference's ``services/store/api``).

Keys and values are bytes; keys are ordered by their bytes (so string keys by their
UTF-8 encoding). Ranges are right-open, ``[start, end)``; a ``None`` bound means "from
the first key" / "to the last key". Every write is durable when the call returns.
``write(batch)`` and ``set_many`` apply many changes in ONE durable transaction.

String-key helpers (``get_str`` ...) encode keys as UTF-8.

Sequences (``seq_*``) are separate keyspaces of records keyed by unsigned 64-bit
integers, ordered as their 8-byte big-endian forms; they are the fast path for logs
(the SQLite engine keeps each in its own integer-keyed table, about twice as fast to
append to as byte keys). A sequence name matches ``[a-z][a-z0-9_]{0,40}``.

Stores are thread-safe; a single writer thread gives the best throughput. Scans return
iterators that read in chunks, so a caller may write to the store between chunks; the
iterator then sees a mix of old and new keys past its position, as in the reference
(which forbids writes from inside the scan callback).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "Store",
    "StoreClosedError",
    "StoreError",
    "StoreLockedError",
    "WriteBatch",
    "key_upper_bound",
]


class StoreError(Exception):
    """A storage operation failed; the message names the store and the cause."""


class StoreLockedError(StoreError):
    """The store location is held by another live process (or another open store)."""


class StoreClosedError(StoreError):
    """The store has been closed."""


def key_upper_bound(key: bytes) -> bytes | None:
    """The smallest key greater than every key that starts with ``key``; None if there is none."""
    b = bytearray(key)
    while b:
        if b[-1] != 0xFF:
            b[-1] += 1
            return bytes(b)
        b.pop()
    return None


Op = (
    tuple[Literal["set"], bytes, bytes]
    | tuple[Literal["delete"], bytes, None]
    | tuple[Literal["delete_range"], bytes | None, bytes | None]
)


@dataclass(slots=True)
class WriteBatch:
    """Changes applied in order, all or nothing, by ``Store.write``."""

    ops: list[Op] = field(default_factory=list)

    def set(self, key: bytes, value: bytes) -> WriteBatch:
        _check_kv(key, value)
        self.ops.append(("set", bytes(key), bytes(value)))
        return self

    def delete(self, key: bytes) -> WriteBatch:
        _check_key(key)
        self.ops.append(("delete", bytes(key), None))
        return self

    def delete_range(self, start: bytes | None, end: bytes | None) -> WriteBatch:
        self.ops.append(("delete_range", start, end))
        return self

    def delete_prefix(self, prefix: bytes) -> WriteBatch:
        return self.delete_range(prefix or None, key_upper_bound(prefix))

    def __len__(self) -> int:
        return len(self.ops)


U64_MAX = 0xFFFF_FFFF_FFFF_FFFF
_SEQ_NAME = re.compile(r"[a-z][a-z0-9_]{0,40}")


def check_seq(name: str) -> str:
    """The sequence name, or StoreError if it is not a valid one."""
    if not isinstance(name, str) or not _SEQ_NAME.fullmatch(name):
        raise StoreError(f"bad sequence name {name!r} (expected [a-z][a-z0-9_]{{0,40}})")
    return name


def check_index(index: object) -> int:
    if type(index) is not int or not 0 <= index <= U64_MAX:
        raise StoreError(f"sequence index {index!r} is not an unsigned 64-bit integer")
    return index


def _check_key(key: object) -> None:
    if not isinstance(key, (bytes, bytearray, memoryview)):
        raise StoreError(f"key must be bytes, not {type(key).__name__}")


def _check_kv(key: object, value: object) -> None:
    _check_key(key)
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise StoreError(f"value must be bytes, not {type(value).__name__}")


class Store(ABC):
    """A local key-value store. Use ``ddastate.store.open_store`` to get one."""

    engine: str = ""
    location: str = ""

    # ----------------------------------------------------------- engine methods

    @abstractmethod
    def get(self, key: bytes) -> bytes | None:
        """The value of ``key``, or None if absent."""

    @abstractmethod
    def write(self, batch: WriteBatch) -> None:
        """Apply a batch in one durable transaction."""

    @abstractmethod
    def set_many(self, items: Iterable[tuple[bytes, bytes]]) -> None:
        """Set many keys in one durable transaction (the fast path of log appends)."""

    @abstractmethod
    def _scan(
        self, start: bytes | None, end: bytes | None, reverse: bool, limit: int | None
    ) -> Iterator[tuple[bytes, bytes]]: ...

    @abstractmethod
    def close(self) -> None:
        """Close the store; a second call does nothing."""

    # --------------------------------------------------------------- sequences

    @abstractmethod
    def seq_put_many(self, seq: str, items: Sequence[tuple[int, bytes]]) -> None:
        """Set records of sequence ``seq`` in one durable transaction."""

    @abstractmethod
    def seq_get(self, seq: str, index: int) -> bytes | None:
        """The record at ``index``, or None."""

    @abstractmethod
    def seq_delete_range(self, seq: str, first: int, last: int) -> None:
        """Delete records with ``first <= index <= last`` (inclusive, up to 2**64-1)."""

    @abstractmethod
    def seq_bounds(self, seq: str) -> tuple[int, int] | None:
        """The lowest and highest index held, or None when the sequence is empty."""

    @abstractmethod
    def seq_scan(
        self, seq: str, first: int, last: int, limit: int | None = None
    ) -> Iterator[tuple[int, bytes]]:
        """Records with ``first <= index <= last``, ascending."""

    @property
    @abstractmethod
    def closed(self) -> bool: ...

    # --------------------------------------------------------- derived methods

    def set(self, key: bytes, value: bytes) -> None:
        """Set ``key`` to ``value`` (overwriting); value must be bytes (not None)."""
        _check_kv(key, value)
        self.set_many(((bytes(key), bytes(value)),))

    def delete(self, key: bytes) -> None:
        """Delete ``key`` (absent keys are fine)."""
        self.write(WriteBatch().delete(key))

    def delete_all(self) -> None:
        """Delete every key."""
        self.write(WriteBatch().delete_range(None, None))

    def delete_prefix(self, prefix: bytes) -> None:
        """Delete every key starting with ``prefix``."""
        _check_key(prefix)
        self.write(WriteBatch().delete_prefix(bytes(prefix)))

    def delete_range(self, start: bytes | None, end: bytes | None) -> None:
        """Delete every key in ``[start, end)``."""
        self.write(WriteBatch().delete_range(start, end))

    def scan_prefix(self, prefix: bytes, limit: int | None = None) -> Iterator[tuple[bytes, bytes]]:
        """Key-value pairs whose key starts with ``prefix``, ascending."""
        _check_key(prefix)
        return self._scan(bytes(prefix) or None, key_upper_bound(bytes(prefix)), False, limit)

    def scan_range(
        self, start: bytes | None, end: bytes | None, limit: int | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        """Key-value pairs in ``[start, end)``, ascending."""
        return self._scan(start, end, False, limit)

    def scan_range_reverse(
        self, start: bytes | None, end: bytes | None, limit: int | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        """Key-value pairs in ``[start, end)``, descending."""
        return self._scan(start, end, True, limit)

    # ------------------------------------------------------- string-key helpers

    def get_str(self, key: str) -> bytes | None:
        return self.get(key.encode())

    def set_str(self, key: str, value: bytes) -> None:
        self.set(key.encode(), value)

    def delete_str(self, key: str) -> None:
        self.delete(key.encode())

    def delete_prefix_str(self, prefix: str) -> None:
        self.delete_prefix(prefix.encode())

    def delete_range_str(self, start: str | None, end: str | None) -> None:
        self.delete_range(
            None if start is None else start.encode(), None if end is None else end.encode()
        )

    def scan_prefix_str(self, prefix: str, limit: int | None = None) -> Iterator[tuple[str, bytes]]:
        for k, v in self.scan_prefix(prefix.encode(), limit):
            yield k.decode("utf-8", "surrogateescape"), v

    def scan_range_str(
        self, start: str | None, end: str | None, limit: int | None = None
    ) -> Iterator[tuple[str, bytes]]:
        s = None if start is None else start.encode()
        e = None if end is None else end.encode()
        for k, v in self.scan_range(s, e, limit):
            yield k.decode("utf-8", "surrogateescape"), v

    # ------------------------------------------------------------------ misc

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

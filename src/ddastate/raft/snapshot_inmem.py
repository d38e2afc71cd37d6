"""An in-memory snapshot store that keeps only the latest snapshot."""

from __future__ import annotations

import io
import threading
from typing import IO

from .configuration import Configuration
from .interfaces import SnapshotMeta
from .snapshot_file import SnapshotError, SnapshotNotFoundError, UnsupportedSnapshotVersionError

__all__ = ["InmemSnapshotSink", "InmemSnapshotStore", "SnapshotNotFoundError"]


class InmemSnapshotSink:
    """Collects snapshot bytes; ``close()`` makes them the store's latest snapshot."""

    def __init__(self, store: InmemSnapshotStore, meta: SnapshotMeta) -> None:
        self._store = store
        self.meta = meta
        self._buf: io.BytesIO | None = io.BytesIO()

    def id(self) -> str:
        return self.meta.id

    def write(self, data: bytes) -> int:
        if self._buf is None:
            raise SnapshotError(f"snapshot {self.meta.id}: write after close or cancel")
        return self._buf.write(data)

    def close(self) -> None:
        if self._buf is None:
            return
        data = self._buf.getvalue()
        self._buf = None
        self.meta.size = len(data)
        self._store._publish(self.meta, data)

    def cancel(self) -> None:
        self._buf = None


class InmemSnapshotStore:
    """SnapshotStore keeping the latest closed snapshot in memory."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: tuple[SnapshotMeta, bytes] | None = None
        self._seq = 0

    def create(
        self,
        version: int,
        index: int,
        term: int,
        configuration: Configuration,
        configuration_index: int,
    ) -> InmemSnapshotSink:
        if version != 1:
            raise UnsupportedSnapshotVersionError(f"unsupported snapshot version {version}")
        with self._lock:
            self._seq += 1
            sid = f"{term}-{index}-{self._seq}"
        meta = SnapshotMeta(
            id=sid,
            index=index,
            term=term,
            configuration=configuration,
            configuration_index=configuration_index,
            size=0,
            version=version,
        )
        return InmemSnapshotSink(self, meta)

    def _publish(self, meta: SnapshotMeta, data: bytes) -> None:
        with self._lock:
            self._latest = (meta, data)

    def list(self) -> list[SnapshotMeta]:
        with self._lock:
            return [] if self._latest is None else [self._latest[0]]

    def open(self, snapshot_id: str) -> tuple[SnapshotMeta, IO[bytes]]:
        with self._lock:
            latest = self._latest
        if latest is None or latest[0].id != snapshot_id:
            raise SnapshotNotFoundError(f"snapshot {snapshot_id} not found")
        return latest[0], io.BytesIO(latest[1])

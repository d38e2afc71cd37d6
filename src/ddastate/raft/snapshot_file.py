"""A durable snapshot store in a directory, keeping the newest N snapshots.

Layout: one directory per snapshot, named ``<term>-<index>-<msec>``, holding
``state.bin`` (the FSM data) and ``meta.json`` (what ``SnapshotMeta`` says, the size and
a CRC-32 of the data, and a CRC-32 of the metadata itself). A snapshot is written under
``<id>.tmp``; ``close()`` fsyncs the data and the metadata, renames the directory to its
final name and fsyncs the parent, so a snapshot is either complete and visible or absent.
Leftover ``.tmp`` directories (a writer that died) are ignored and removed on start.

``list()`` returns the loadable snapshots newest first and skips, with a log line, any
whose metadata does not parse or whose data file is missing or has the wrong size.
``open()`` also verifies the data checksum and raises SnapshotDamagedError on mismatch,
so a caller can fall back to the next snapshot of ``list()``.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import threading
import time
import zlib
from typing import IO, Any

from .configuration import Configuration, Server, ServerSuffrage
from .errors import RaftError
from .interfaces import SnapshotMeta

log = logging.getLogger(__name__)

STATE_FILE = "state.bin"
META_FILE = "meta.json"
TMP_SUFFIX = ".tmp"
_READ_CHUNK = 1 << 20


class SnapshotError(RaftError):
    message = "snapshot error"


class SnapshotNotFoundError(SnapshotError):
    message = "snapshot not found"


class SnapshotDamagedError(SnapshotError):
    """A snapshot's metadata or data is damaged or incomplete; the message names its id."""

    message = "snapshot damaged"


class UnsupportedSnapshotVersionError(SnapshotError):
    message = "unsupported snapshot version"


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def configuration_to_json(c: Configuration) -> list[dict[str, Any]]:
    return [{"id": s.id, "address": s.address, "suffrage": int(s.suffrage)} for s in c.servers]


def configuration_from_json(v: Any) -> Configuration:
    if not isinstance(v, list):
        raise ValueError("configuration is not a list")
    servers = []
    for s in v:
        if not isinstance(s, dict):
            raise ValueError("configuration server is not an object")
        sid, addr, suff = s.get("id"), s.get("address"), s.get("suffrage")
        if not isinstance(sid, str) or not isinstance(addr, str) or not isinstance(suff, int):
            raise ValueError("configuration server has bad fields")
        servers.append(Server(id=sid, address=addr, suffrage=ServerSuffrage(suff)))
    return Configuration(tuple(servers))


def _meta_body(meta: SnapshotMeta, crc: int) -> dict[str, Any]:
    return {
        "version": meta.version,
        "id": meta.id,
        "index": meta.index,
        "term": meta.term,
        "configuration": configuration_to_json(meta.configuration),
        "configuration_index": meta.configuration_index,
        "size": meta.size,
        "crc32": crc,
    }


def _meta_crc(body: dict[str, Any]) -> int:
    return zlib.crc32(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())


def _parse_meta(raw: bytes, snapshot_id: str) -> tuple[SnapshotMeta, int]:
    try:
        doc = json.loads(raw)
        if not isinstance(doc, dict):
            raise ValueError("not an object")
        body = doc.get("meta")
        if not isinstance(body, dict) or doc.get("meta_crc32") != _meta_crc(body):
            raise ValueError("metadata checksum mismatch")
        ints = ("version", "index", "term", "configuration_index", "size", "crc32")
        for k in ints:
            if not isinstance(body.get(k), int) or isinstance(body.get(k), bool) or body[k] < 0:
                raise ValueError(f"field {k} is not a non-negative integer")
        if body.get("id") != snapshot_id:
            raise ValueError(f"metadata names snapshot {body.get('id')!r}")
        meta = SnapshotMeta(
            id=snapshot_id,
            index=body["index"],
            term=body["term"],
            configuration=configuration_from_json(body.get("configuration")),
            configuration_index=body["configuration_index"],
            size=body["size"],
            version=body["version"],
        )
        return meta, body["crc32"]
    except (ValueError, TypeError, KeyError) as e:
        raise SnapshotDamagedError(f"snapshot {snapshot_id}: metadata is damaged: {e}") from e


class FileSnapshotSink:
    """Writes one snapshot; ``close()`` makes it durable and visible, ``cancel()`` drops it."""

    def __init__(self, store: FileSnapshotStore, meta: SnapshotMeta) -> None:
        self._store = store
        self.meta = meta
        self._tmp = os.path.join(store.dir, meta.id + TMP_SUFFIX)
        os.makedirs(self._tmp)
        self._file: io.BufferedWriter | None = open(os.path.join(self._tmp, STATE_FILE), "wb")  # noqa: SIM115
        self._crc = 0
        self._size = 0
        self._done = False

    def id(self) -> str:
        return self.meta.id

    def write(self, data: bytes) -> int:
        if self._file is None:
            raise SnapshotError(f"snapshot {self.meta.id}: write after close or cancel")
        n = self._file.write(data)
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)
        return n

    def close(self) -> None:
        """Flush, fsync, write the metadata, rename into place, and drop old snapshots."""
        if self._done:
            return
        self._done = True
        f = self._file
        self._file = None
        try:
            assert f is not None
            f.flush()
            os.fsync(f.fileno())
            f.close()
            self.meta.size = self._size
            body = _meta_body(self.meta, self._crc)
            doc = {"meta": body, "meta_crc32": _meta_crc(body)}
            meta_path = os.path.join(self._tmp, META_FILE)
            with open(meta_path, "wb") as mf:
                mf.write(json.dumps(doc, indent=1).encode())
                mf.flush()
                os.fsync(mf.fileno())
            _fsync_dir(self._tmp)
            final = os.path.join(self._store.dir, self.meta.id)
            os.rename(self._tmp, final)
            _fsync_dir(self._store.dir)
        except BaseException:
            if f is not None and not f.closed:
                f.close()
            shutil.rmtree(self._tmp, ignore_errors=True)
            raise
        log.info(
            "snapshot %s saved (index %d, %d bytes)", self.meta.id, self.meta.index, self._size
        )
        self._store._reap()

    def cancel(self) -> None:
        """Drop the partial snapshot."""
        if self._done:
            return
        self._done = True
        if self._file is not None:
            self._file.close()
            self._file = None
        shutil.rmtree(self._tmp, ignore_errors=True)


class FileSnapshotStore:
    """SnapshotStore keeping the newest ``retain`` snapshots in directory ``dir``."""

    def __init__(self, dir: str, retain: int = 2) -> None:
        if retain < 1:
            raise ValueError("retain must be at least 1")
        self.dir = os.path.abspath(dir)
        self.retain = retain
        self._lock = threading.Lock()
        self._last_msec = 0
        if not os.path.isdir(self.dir):
            os.makedirs(self.dir, exist_ok=True)
            _fsync_dir(os.path.dirname(self.dir))  # make the new directory's entry durable
        for name in os.listdir(self.dir):
            if name.endswith(TMP_SUFFIX):
                log.warning("removing incomplete snapshot %s", name)
                shutil.rmtree(os.path.join(self.dir, name), ignore_errors=True)

    def _new_id(self, term: int, index: int) -> str:
        with self._lock:
            msec = max(int(time.time() * 1000), self._last_msec + 1)
            self._last_msec = msec
        return f"{term}-{index}-{msec}"

    def create(
        self,
        version: int,
        index: int,
        term: int,
        configuration: Configuration,
        configuration_index: int,
    ) -> FileSnapshotSink:
        """Start a new snapshot; only version 1 is supported."""
        if version != 1:
            raise UnsupportedSnapshotVersionError(f"unsupported snapshot version {version}")
        meta = SnapshotMeta(
            id=self._new_id(term, index),
            index=index,
            term=term,
            configuration=configuration,
            configuration_index=configuration_index,
            size=0,
            version=version,
        )
        return FileSnapshotSink(self, meta)

    @staticmethod
    def _order_key(name: str) -> tuple[int, int, int, str]:
        parts = name.split("-")
        try:
            return (int(parts[0]), int(parts[1]), int(parts[2]), name)
        except (ValueError, IndexError):
            return (-1, -1, -1, name)

    def _names(self) -> list[str]:
        try:
            names = [n for n in os.listdir(self.dir) if not n.endswith(TMP_SUFFIX)]
        except FileNotFoundError:
            return []
        names = [n for n in names if os.path.isdir(os.path.join(self.dir, n))]
        names.sort(key=self._order_key, reverse=True)
        return names

    def _read_meta(self, snapshot_id: str) -> tuple[SnapshotMeta, int]:
        d = os.path.join(self.dir, snapshot_id)
        try:
            with open(os.path.join(d, META_FILE), "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            if not os.path.isdir(d):
                raise SnapshotNotFoundError(f"snapshot {snapshot_id} not found") from None
            raise SnapshotDamagedError(f"snapshot {snapshot_id}: metadata is missing") from None
        except OSError as e:
            raise SnapshotDamagedError(f"snapshot {snapshot_id}: metadata unreadable: {e}") from e
        meta, crc = _parse_meta(raw, snapshot_id)
        try:
            size = os.path.getsize(os.path.join(d, STATE_FILE))
        except OSError:
            raise SnapshotDamagedError(f"snapshot {snapshot_id}: data file is missing") from None
        if size != meta.size:
            raise SnapshotDamagedError(
                f"snapshot {snapshot_id}: data is {size} bytes, metadata says {meta.size}"
            )
        return meta, crc

    def list(self) -> list[SnapshotMeta]:
        """Loadable snapshots, newest first; damaged ones are skipped with a log line."""
        out: list[SnapshotMeta] = []
        for name in self._names():
            try:
                meta, _ = self._read_meta(name)
            except SnapshotError as e:
                log.warning("skipping snapshot: %s", e)
                continue
            out.append(meta)
        return out

    def open(self, snapshot_id: str) -> tuple[SnapshotMeta, IO[bytes]]:
        """Open a snapshot after verifying its data checksum; the caller closes the stream."""
        if not snapshot_id or "/" in snapshot_id or snapshot_id.startswith("."):
            raise SnapshotNotFoundError(f"snapshot {snapshot_id!r} not found")
        meta, crc = self._read_meta(snapshot_id)
        path = os.path.join(self.dir, snapshot_id, STATE_FILE)
        f = open(path, "rb")  # noqa: SIM115
        try:
            actual = 0
            n = 0
            while chunk := f.read(_READ_CHUNK):
                actual = zlib.crc32(chunk, actual)
                n += len(chunk)
            if n != meta.size or actual != crc:
                raise SnapshotDamagedError(
                    f"snapshot {snapshot_id}: data checksum mismatch ({n} bytes read)"
                )
            f.seek(0)
        except BaseException:
            f.close()
            raise
        return meta, f

    def _reap(self) -> None:
        """Delete snapshots older than the newest ``retain`` loadable ones."""
        kept = 0
        for name in self._names():
            if kept >= self.retain:
                log.info("removing old snapshot %s", name)
                shutil.rmtree(os.path.join(self.dir, name), ignore_errors=True)
                continue
            try:
                self._read_meta(name)
            except SnapshotError:
                continue
            kept += 1

"""fdatasync of one file, completed on an asyncio loop without a thread hand-off.

Linux AIO (``io_submit`` with ``IOCB_CMD_FDSYNC``, Linux 4.18 and later) hands the
flush to the kernel, which signals its completion on an eventfd the loop watches.
Against a writer thread doing the same flush this saves two cross-CPU wake-ups and the
GIL hand-offs around them per flush (``benchmarks/disk_floor.py`` compares the two).

``AsyncFdatasync(loop, fd)`` raises OSError when the kernel, the platform or the file
does not support it (it probes with one real flush), so callers can fall back to a
thread. The constructor blocks for that flush and may run in any thread; ``aclose()``
waits for a flush in flight off the loop. At most one flush is in flight: callbacks
registered meanwhile share the next.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import os
import platform
import struct
from collections.abc import Callable

__all__ = ["AsyncFdatasync", "SyncCallback"]

SyncCallback = Callable[[OSError | None], None]

# (io_setup, io_destroy, io_getevents, io_submit) per machine
_SYSCALLS = {
    "x86_64": (206, 207, 208, 209),
    "aarch64": (0, 1, 4, 2),
}
_IOCB_CMD_FDSYNC = 3
_IOCB_FLAG_RESFD = 1
# struct iocb (64 bytes, little-endian): data, key, rw_flags, opcode, reqprio, fildes,
# buf, nbytes, offset, reserved2, flags, resfd
_IOCB = struct.Struct("<QIIHhIQQqQII")
# struct io_event: data, obj, res, res2
_EVENT = struct.Struct("<QQqq")
_MAX_EVENTS = 4


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


class AsyncFdatasync:
    """fdatasync(fd) through Linux AIO; completions are delivered on ``loop``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int) -> None:
        calls = _SYSCALLS.get(platform.machine())
        if calls is None or not hasattr(os, "eventfd"):
            raise OSError(errno.ENOSYS, f"no Linux AIO on {platform.machine()}")
        self._setup, self._destroy, self._getevents, self._submit = calls
        self._sys = _libc().syscall
        self._loop = loop
        self._fd = fd
        self._ctx = ctypes.c_ulong(0)
        if self._sys(self._setup, _MAX_EVENTS, ctypes.byref(self._ctx)) != 0:
            e = ctypes.get_errno()
            raise OSError(e, f"io_setup: {os.strerror(e)}")
        self._efd = -1
        try:
            self._efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            self._iocb = ctypes.create_string_buffer(_IOCB.size)
            _IOCB.pack_into(
                self._iocb, 0, 0, 0, 0, _IOCB_CMD_FDSYNC, 0, fd, 0, 0, 0, 0,
                _IOCB_FLAG_RESFD, self._efd,
            )  # fmt: skip
            self._iocbs = (ctypes.c_void_p * 1)(ctypes.addressof(self._iocb))
            self._events = ctypes.create_string_buffer(_EVENT.size * _MAX_EVENTS)
            self._probe()
        except BaseException:
            self._release()
            raise
        self._in_flight: list[SyncCallback] | None = None
        self._waiting: list[SyncCallback] = []
        self._closed = False
        # from any thread: a completion signalled before the loop watches stays pending
        # on the eventfd, which is level-triggered
        loop.call_soon_threadsafe(self._watch)

    def _watch(self) -> None:
        if not self._closed:
            self._loop.add_reader(self._efd, self._on_ready)

    def _probe(self) -> None:
        """One flush submitted and awaited here: the kernel and the file both support it."""
        self._submit_one()
        n = self._sys(self._getevents, self._ctx, 1, _MAX_EVENTS, self._events, None)
        if n != 1:
            e = ctypes.get_errno() if n < 0 else errno.EIO
            raise OSError(e, f"io_getevents: {os.strerror(e)}")
        res = _EVENT.unpack_from(self._events, 0)[2]
        if res < 0:
            raise OSError(-res, f"asynchronous fdatasync: {os.strerror(-res)}")
        os.eventfd_read(self._efd)

    def _submit_one(self) -> None:
        if self._sys(self._submit, self._ctx, 1, self._iocbs) != 1:
            e = ctypes.get_errno() or errno.EIO
            raise OSError(e, f"io_submit: {os.strerror(e)}")

    def sync_then(self, callback: SyncCallback) -> None:
        """Call ``callback(None)`` on the loop once everything written to the file before
        this call is durable, or ``callback(error)`` if the flush failed."""
        if self._closed:
            callback(OSError(errno.EBADF, "asynchronous fdatasync is closed"))
            return
        self._waiting.append(callback)
        if self._in_flight is None:
            self._start()

    def _start(self) -> None:
        batch, self._waiting = self._waiting, []
        try:
            self._submit_one()
        except OSError as e:
            for cb in batch:
                cb(e)
            return
        self._in_flight = batch

    def _on_ready(self) -> None:
        try:
            os.eventfd_read(self._efd)
        except BlockingIOError:
            return
        n = self._sys(self._getevents, self._ctx, 0, _MAX_EVENTS, self._events, None)
        if n <= 0 or self._in_flight is None:
            return
        res = _EVENT.unpack_from(self._events, 0)[2]
        done, self._in_flight = self._in_flight, None
        if self._waiting:
            self._start()
        err = None if res >= 0 else OSError(-res, f"fdatasync: {os.strerror(-res)}")
        for cb in done:
            cb(err)

    def close(self) -> None:
        """Stop watching and release; blocks while a flush is in flight. Callbacks not yet
        called are dropped. Call on the loop."""
        if self._detach():
            self._release()

    async def aclose(self) -> None:
        """``close()`` that waits for a flush in flight in a thread, not on the loop."""
        if self._detach():
            await asyncio.to_thread(self._release)

    def _detach(self) -> bool:
        if self._closed:
            return False
        self._closed = True
        self._loop.remove_reader(self._efd)
        self._in_flight = None
        self._waiting = []
        return True

    def _release(self) -> None:
        self._sys(self._destroy, self._ctx)  # waits for an operation in flight
        if self._efd >= 0:
            os.close(self._efd)
            self._efd = -1

"""Member processes (``python -m ddastate.state.raft._member``) driven over stdin/stdout."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import sys
from typing import Any


class MemberProc:
    """One member process; ``await call({...})`` sends a command and returns its answer."""

    def __init__(
        self,
        url: str,
        cluster: str,
        node_id: str,
        store: str = "",
        bootstrap: bool = False,
        opts: dict[str, Any] | None = None,
        log_path: str | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        self.args = [
            sys.executable,
            "-m",
            "ddastate.state.raft._member",
            "--url",
            url,
            "--cluster",
            cluster,
            "--id",
            node_id,
            "--store",
            store,
            "--opts",
            json.dumps(opts or {}),
            *(["--bootstrap"] if bootstrap else []),
            "--log",
            os.environ.get("DDASTATE_MEMBER_LOG", "WARNING"),
            *(extra_args or []),
        ]
        self.id = node_id
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None
        self._tags = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._opened: asyncio.Future[dict[str, Any]] | None = None
        self._reader: asyncio.Task[None] | None = None
        self.acked: list[str] = []
        self.failed: list[str] = []

    async def start(self, timeout: float = 60) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        self._opened = loop.create_future()
        stderr: Any = asyncio.subprocess.DEVNULL
        if self.log_path:
            stderr = open(self.log_path, "ab")  # noqa: SIM115, ASYNC230
        env = dict(os.environ)
        self.proc = await asyncio.create_subprocess_exec(
            *self.args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            env=env,
            limit=1 << 24,
        )
        self._reader = asyncio.create_task(self._read())
        return await asyncio.wait_for(asyncio.shield(self._opened), timeout)

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                break
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if "tag" in msg:
                f = self._waiting.pop(msg["tag"], None)
                if f is not None and not f.done():
                    f.set_result(msg)
            elif "acked" in msg:
                self.acked.append(msg["acked"])
            elif "failed" in msg:
                self.failed.append(msg["failed"])
            elif (
                msg.get("event") == "open" and self._opened is not None and not self._opened.done()
            ):
                self._opened.set_result(msg)
        err = ConnectionError(f"member {self.id} exited")
        if self._opened is not None and not self._opened.done():
            self._opened.set_exception(err)
        for f in self._waiting.values():
            if not f.done():
                f.set_exception(err)
        self._waiting.clear()

    def send(self, cmd: dict[str, Any]) -> asyncio.Future[dict[str, Any]]:
        """Send a command; the future resolves with its answer."""
        assert self.proc is not None and self.proc.stdin is not None
        tag = next(self._tags)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[tag] = fut
        self.proc.stdin.write((json.dumps({**cmd, "tag": tag}) + "\n").encode())
        return fut

    async def call(self, cmd: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
        return await asyncio.wait_for(self.send(cmd), timeout)

    def kill(self) -> None:
        """SIGKILL the process."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)

    async def wait(self) -> int:
        assert self.proc is not None
        rc = await self.proc.wait()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await self._reader
        return rc

    async def stop(self) -> None:
        """Close gracefully if alive (falls back to SIGKILL)."""
        if self.proc is None or self.proc.returncode is not None:
            return
        try:
            await self.call({"cmd": "close"}, 15)
        except Exception:
            pass
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            self.kill()
            await self.proc.wait()

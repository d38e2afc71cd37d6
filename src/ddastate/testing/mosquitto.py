"""Run a Mosquitto broker on a free loopback port (tests, benchmarks, by hand).

    with Mosquitto() as broker:          # or: async with / broker.start() ... broker.stop()
        cfg.services.com.url = broker.url

The broker runs with ``set_tcp_nodelay true`` (without it QoS 1 round trips stall
for tens of milliseconds), a large ``max_queued_messages`` (the default 1000
silently drops QoS 0 messages for a subscriber that falls behind), persistence
off, and one listener on 127.0.0.1. ``restart()`` brings it back on the same port.

By hand: ``python -m ddastate.testing.mosquitto [--port N]`` runs one until Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

__all__ = ["Mosquitto", "MosquittoError", "find_mosquitto", "free_port"]


class MosquittoError(RuntimeError):
    """Mosquitto is missing or failed to start."""


def find_mosquitto() -> str:
    """Path of the mosquitto executable (PATH, then /usr/sbin)."""
    exe = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None
    )
    if exe is None:
        raise MosquittoError(
            "mosquitto not found; install it (Debian/Ubuntu: apt-get install mosquitto)"
        )
    return exe


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Mosquitto:
    """One Mosquitto process on 127.0.0.1:<port>."""

    def __init__(
        self,
        port: int | None = None,
        *,
        extra_config: str = "",
        allow_anonymous: bool = True,
        max_queued_messages: int = 1_000_000,
        log_dir: str | None = None,
    ) -> None:
        self.port = port or free_port()
        self.extra_config = extra_config
        self.allow_anonymous = allow_anonymous
        self.max_queued_messages = max_queued_messages
        self._dir = Path(log_dir or tempfile.mkdtemp(prefix="ddastate-mosquitto-"))
        self._own_dir = log_dir is None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Broker URL for services.com.url."""
        return f"tcp://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """Process id of the running broker."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        """True while the broker process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def config_path(self) -> Path:
        """The generated mosquitto.conf."""
        return self._dir / "mosquitto.conf"

    @property
    def log_path(self) -> Path:
        """Where the broker's output goes."""
        return self._dir / "mosquitto.log"

    def _write_config(self) -> None:
        self.config_path.write_text(
            "\n".join(
                [
                    f"listener {self.port} 127.0.0.1",
                    f"allow_anonymous {'true' if self.allow_anonymous else 'false'}",
                    "persistence false",
                    "set_tcp_nodelay true",
                    f"max_queued_messages {self.max_queued_messages}",
                    "max_inflight_messages 0",
                    "log_dest stderr",
                    # as root, mosquitto would switch to user "mosquitto", which cannot read
                    # test files (certificates, password files) in private temp dirs
                    f"user {getpass.getuser()}" if os.geteuid() == 0 else "",
                    "log_type error",
                    "log_type warning",
                    self.extra_config,
                    "",
                ]
            )
        )

    def start(self, timeout: float = 10.0) -> Mosquitto:
        """Start the broker and wait until it accepts connections."""
        if self.running:
            return self
        self._write_config()
        exe = find_mosquitto()
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        try:
            self._proc = subprocess.Popen(
                [exe, "-c", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise MosquittoError(
                    f"mosquitto exited with {self._proc.returncode}: {self._tail()}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.01)
        self.kill()
        raise MosquittoError(f"mosquitto did not listen on port {self.port}: {self._tail()}")

    def _tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def stop(self, timeout: float = 5.0) -> None:
        """Stop gracefully (SIGTERM), then SIGKILL if it lingers."""
        p = self._proc
        if p is None:
            return
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self._proc = None

    def kill(self) -> None:
        """Kill with SIGKILL (a crash) and reap."""
        p = self._proc
        if p is None:
            return
        if p.poll() is None:
            p.kill()
        p.wait()
        self._proc = None

    def restart(self, kill: bool = True, timeout: float = 10.0) -> Mosquitto:
        """Kill (or stop) and start again on the same port."""
        if kill:
            self.kill()
        else:
            self.stop()
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.start(timeout=max(0.5, deadline - time.monotonic()))
            except MosquittoError:
                # the port can linger briefly after a kill
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def cleanup(self) -> None:
        """Stop and remove the temporary directory."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()

    async def __aenter__(self) -> Mosquitto:
        return self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()


def main(argv: list[str] | None = None) -> int:
    """Run a broker in the foreground until interrupted."""
    ap = argparse.ArgumentParser(description="Run Mosquitto configured for ddastate.")
    ap.add_argument("--port", type=int, default=1883)
    args = ap.parse_args(argv)

    def _term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)
    broker = Mosquitto(args.port).start()
    print(f"mosquitto running at {broker.url} (pid {broker.pid}); config {broker.config_path}")
    print("Ctrl-C to stop")
    try:
        while broker.running:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        with contextlib.suppress(Exception):
            broker.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

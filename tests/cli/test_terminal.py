"""What a person sees: ``ddastate demo`` and ``ddastate watch`` output, captured as text.

The live views run in a real terminal (tmux, read with ``tmux capture-pane``; skipped
without tmux) and in a pseudo-terminal read through a tiny VT100 screen (always);
plain output is captured from a pipe. Set ``DDASTATE_SAVE_SAMPLES=<dir>`` to keep the
captures (docs/ holds the ones shown in the README).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ddastate.testing.mosquitto import free_port
from ddastate.testing.sidecars import Sidecar, ddastate_command

pytestmark = pytest.mark.timeout(180)

needs_tmux = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def save_sample(name: str, text: str) -> None:
    directory = os.environ.get("DDASTATE_SAVE_SAMPLES")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        (Path(directory) / name).write_text(text.rstrip() + "\n")


class Tmux:
    """One detached tmux session running a shell command in a fixed-size window."""

    def __init__(self, command: str, width: int = 110, height: int = 45) -> None:
        self.name = f"ddastate-test-{uuid.uuid4().hex[:8]}"
        # the shell survives Ctrl-C (trap) so that the exit code can be read afterwards
        wrapped = f"trap true INT; {command}; echo EXIT=$?; sleep 600"
        subprocess.run(
            [
                "tmux",
                "new-session",
                "-d",
                "-s",
                self.name,
                "-x",
                str(width),
                "-y",
                str(height),
                "-c",
                os.getcwd(),
                "sh",
                "-c",
                wrapped,
            ],
            check=True,
        )

    def capture(self) -> str:
        p = subprocess.run(
            ["tmux", "capture-pane", "-p", "-t", self.name],
            capture_output=True,
            text=True,
            check=True,
        )
        return p.stdout

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.capture()
            if predicate(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"screen never matched; last screen:\n{screen}")
            time.sleep(0.05)

    def keys(self, *keys: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, *keys], check=True)

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], check=False)


@pytest.fixture
def tmux_session() -> Iterator[list[Tmux]]:
    sessions: list[Tmux] = []
    yield sessions
    for s in sessions:
        s.close()


def shell_ddastate(*args: str) -> str:
    return " ".join(shlex.quote(a) for a in ddastate_command(*args))


def test_demo_plain_output() -> None:
    p = subprocess.run(
        ddastate_command("demo", "--plain", "--writes", "5"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    out = p.stdout
    save_sample("demo-plain.txt", out)
    for text in (
        "== start three members (member-1 bootstraps, 2 and 3 join)",
        "member-1 is leader (term",
        "== write from every member",
        "15 writes committed, 5 from each member",
        "== stop the leader (member-1), elect a new one",
        "member-1 stopped",
        "== restart member-1 from its store",
        "MEMBER    ROLE      TERM  LAST LOG  COMMIT  APPLIED  LEADER    KEYS",
        "Summary",
        "result: all three states are equal",
    ):
        assert text in out, text
    # a new leader other than member-1, in a later term
    leaders = [line for line in out.splitlines() if " is leader (term " in line]
    assert len(leaders) >= 2 and "member-1" not in leaders[-1]
    # the member table at the end: three members, equal digests, member-1 started twice
    rows = out.split("MEMBER    KEYS  STATE DIGEST  STARTS")[1].strip().splitlines()[:3]
    digests = {row.split()[2] for row in rows}
    assert len(digests) == 1
    assert rows[0].split()[0] == "member-1" and rows[0].split()[3] == "2"
    assert "\x1b[" not in out  # plain: no cursor movement


@needs_tmux
def test_demo_live_view_in_a_terminal(tmux_session: list[Tmux]) -> None:
    t = Tmux(shell_ddastate("demo"))
    tmux_session.append(t)
    # while it runs: the redrawn frame with a phase line and the member table
    during = t.wait_for(lambda s: "phase: stop the leader" in s and "down" in s)
    assert "ddastate demo - 3 members, loopback bus, SQLite stores" in during
    assert "MEMBER    ROLE      TERM  LAST LOG  COMMIT  APPLIED  LEADER    KEYS" in during
    final = t.wait_for(lambda s: "EXIT=" in s, timeout=90)
    assert "EXIT=0" in final
    assert "result: all three states are equal" in final
    # the frame was redrawn in place: one header on the screen, not one per frame
    assert final.count("ddastate demo - 3 members") == 1
    save_sample("demo-live-during.txt", during)
    save_sample("demo-live-final.txt", final)


def _single_sidecar(tmp_path: Path) -> Sidecar:
    """A one-member sidecar on the in-process loopback bus (no broker needed)."""
    address = f"127.0.0.1:{free_port()}"
    cfg = tmp_path / "dda.yaml"
    cfg.write_text(
        "version: '1'\n"
        "identity: {name: solo, id: solo}\n"
        f"apis: {{grpc: {{address: '{address}'}}}}\n"
        "services:\n"
        "  com: {protocol: loopback}\n"
        f"  state: {{disabled: false, bootstrap: true, store: '{tmp_path / 'store'}'}}\n"
    )
    return Sidecar("solo", cfg, address, tmp_path / "solo.log")


@needs_tmux
def test_watch_in_a_terminal(tmp_path: Path, tmux_session: list[Tmux]) -> None:
    side = _single_sidecar(tmp_path)
    side.start().wait_ready()
    try:
        assert side.cli("put", "greeting", "hello").returncode == 0
        t = Tmux(shell_ddastate("watch", "--address", side.address))
        tmux_session.append(t)
        t.wait_for(lambda s: "SET     greeting = hello" in s)
        assert side.cli("put", "greeting", "hello again").returncode == 0
        blob = tmp_path / "blob.bin"
        blob.write_bytes(b"\x7fELF\x02\x01\xff\xfe")
        assert side.cli("put", "binary", "--file", str(blob)).returncode == 0
        assert side.cli("delete", "greeting").returncode == 0
        screen = t.wait_for(lambda s: "DELETE  greeting" in s)
        lines = [line for line in screen.splitlines() if line.strip()]
        assert lines[0].startswith("watching ")
        events = [line.split(None, 1)[1] for line in lines[1:] if line[:2].isdigit()]
        assert events[0] == "SET     greeting = hello"
        assert events[1] == "SET     greeting = hello again"
        assert events[2] == "SET     binary = 0x7f454c460201fffe"  # not valid UTF-8: hex
        assert events[3] == "DELETE  greeting"
        t.keys("C-c")
        final = t.wait_for(lambda s: "EXIT=" in s)
        assert "EXIT=0" in final and "Traceback" not in final
        save_sample("watch.txt", final)
    finally:
        assert side.terminate() == 0


class Screen:
    """A tiny terminal: enough of VT100 for the demo's redrawing (CPL ``ESC[nF``, ED ``ESC[J``)."""

    def __init__(self) -> None:
        self.lines: list[str] = [""]
        self.row = 0
        self.col = 0
        self._pending = ""

    def feed(self, text: str) -> None:
        text = self._pending + text
        self._pending = ""
        i = 0
        while i < len(text):
            ch = text[i]
            if ch == "\x1b":
                m = re.match(r"\x1b\[(\d*)([A-Za-z])", text[i:])
                if m is None:
                    self._pending = text[i:]  # an escape cut by the read: wait for the rest
                    return
                n = int(m.group(1) or 1)
                if m.group(2) == "F":
                    self.row, self.col = max(0, self.row - n), 0
                elif m.group(2) == "J":
                    del self.lines[self.row + 1 :]
                    self.lines[self.row] = self.lines[self.row][: self.col]
                i += m.end()
                continue
            if ch == "\n":
                self.row, self.col = self.row + 1, 0
                while len(self.lines) <= self.row:
                    self.lines.append("")
            elif ch == "\r":
                self.col = 0
            else:
                line = self.lines[self.row].ljust(self.col)
                self.lines[self.row] = line[: self.col] + ch + line[self.col + 1 :]
                self.col += 1
            i += 1

    def text(self) -> str:
        return "\n".join(self.lines)


def test_demo_live_view_in_a_pty() -> None:
    """The live view, read through a pseudo-terminal (no tmux needed)."""
    import pty

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        ddastate_command("demo"),
        stdout=slave,
        stderr=slave,
        env={**os.environ, "TERM": "xterm"},
    )
    os.close(slave)
    screen = Screen()
    seen_during = ""
    try:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            screen.feed(chunk.decode("utf-8", errors="replace"))
            now = screen.text()
            if not seen_during and "phase: stop the leader" in now and "  down  " in now:
                seen_during = now
    finally:
        os.close(master)
        rc = proc.wait(60)
    final = screen.text()
    assert rc == 0, final
    assert seen_during, final
    assert "MEMBER    ROLE      TERM  LAST LOG  COMMIT  APPLIED  LEADER    KEYS" in seen_during
    assert final.count("ddastate demo - 3 members") == 1  # redrawn in place
    assert "result: all three states are equal" in final

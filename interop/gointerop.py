"""Helpers to run the Go side of the interoperability tests.

- :func:`find_go` locates the Go toolchain (``$GO``, then ``go`` on PATH, then
  ``/usr/local/go/bin/go``); :func:`go_binary` builds one of our Go programs under
  ``interop/`` (for example ``goldengen``) into a cache directory outside the
  repository and returns its path, rebuilding only when its sources change.
- :func:`install_reference_sidecar` builds the reference's sidecar
  (``github.com/coatyio/dda/cmd/dda`` at the pinned version) into the same cache.
- :class:`GoSidecar` runs one reference sidecar from a generated ``dda.yaml``.

The cache directory is ``$DDASTATE_INTEROP_CACHE`` or ``<tmp>/ddastate-interop-build``.
Modules come from the Go module proxy (``go.sum`` pins them).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "INTEROP_DIR",
    "REFERENCE_MODULE",
    "REFERENCE_VERSION",
    "GoSidecar",
    "GoUnavailable",
    "build_cache_dir",
    "find_go",
    "go_binary",
    "install_reference_sidecar",
    "write_go_sidecar_config",
]

INTEROP_DIR = Path(__file__).resolve().parent
REFERENCE_MODULE = "github.com/coatyio/dda"
REFERENCE_VERSION = "v0.43.0"


class GoUnavailable(RuntimeError):
    """Go is not installed, or a Go build or install failed."""


def find_go() -> str | None:
    """The go executable, or None when Go is not installed."""
    env = os.environ.get("GO")
    if env and os.access(env, os.X_OK):
        return env
    exe = shutil.which("go")
    if exe:
        return exe
    if os.access("/usr/local/go/bin/go", os.X_OK):
        return "/usr/local/go/bin/go"
    return None


def build_cache_dir() -> Path:
    """Where built Go binaries are kept (outside the repository)."""
    d = Path(
        os.environ.get("DDASTATE_INTEROP_CACHE")
        or Path(tempfile.gettempdir()) / "ddastate-interop-build"
    )
    d.mkdir(parents=True, exist_ok=True)
    return d


def _go_env(go: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = str(Path(go).parent) + os.pathsep + env.get("PATH", "")
    env.setdefault("GOFLAGS", "-mod=readonly")
    return env


def _sources_digest(program: str) -> str:
    h = hashlib.sha256()
    for rel in ("go.mod", "go.sum"):
        h.update((INTEROP_DIR / rel).read_bytes())
    for p in sorted((INTEROP_DIR / program).rglob("*.go")):
        h.update(str(p.relative_to(INTEROP_DIR)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def go_binary(program: str, *, timeout: float = 900.0) -> Path:
    """Build ``interop/<program>`` (once per source version) and return the binary's path."""
    go = find_go()
    if go is None:
        raise GoUnavailable("Go is not installed (no $GO, no go on PATH, no /usr/local/go/bin/go)")
    out = build_cache_dir() / f"{program}-{_sources_digest(program)}"
    if out.exists():
        return out
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    proc = subprocess.run(
        [go, "build", "-o", str(tmp), f"./{program}"],
        cwd=INTEROP_DIR,
        env=_go_env(go),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise GoUnavailable(f"go build ./{program} failed:\n{proc.stderr[-4000:]}")
    os.replace(tmp, out)
    return out


def install_reference_sidecar(*, timeout: float = 1200.0) -> Path:
    """Build the reference sidecar (``github.com/coatyio/dda/cmd/dda``) and return its path.

    It is built from this module, which pins it in ``refsidecar/tools.go`` with exactly
    the reference's own dependency versions. (``go install ...@v0.43.0`` would do the
    same, but it needs the proxy's version list, which some proxies refuse.)
    """
    go = find_go()
    if go is None:
        raise GoUnavailable("Go is not installed (no $GO, no go on PATH, no /usr/local/go/bin/go)")
    h = hashlib.sha256((INTEROP_DIR / "go.sum").read_bytes()).hexdigest()[:12]
    exe = build_cache_dir() / f"dda-{REFERENCE_VERSION}-{h}" / "dda"
    if exe.exists():
        return exe
    exe.parent.mkdir(parents=True, exist_ok=True)
    tmp = exe.with_name(f"dda.tmp{os.getpid()}")
    proc = subprocess.run(
        [go, "build", "-o", str(tmp), f"{REFERENCE_MODULE}/cmd/dda"],
        cwd=INTEROP_DIR,
        env=_go_env(go),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise GoUnavailable(f"building the reference sidecar failed:\n{proc.stderr[-4000:]}")
    os.replace(tmp, exe)
    return exe


def write_go_sidecar_config(
    path: Path,
    *,
    member_id: str,
    broker_url: str,
    grpc_address: str,
    bootstrap: bool,
    store: str = "",
    cluster: str = "dda",
    state_opts: Mapping[str, Any] | None = None,
    com_opts: Mapping[str, Any] | None = None,
) -> Path:
    """Write a dda.yaml for the reference sidecar: com over MQTT 5, state on, store off.

    The reference reads ``services.state.store`` as the Raft storage directory ("" keeps
    everything in memory) and the option values in ``services.state.opts`` as YAML
    integers (milliseconds); a value of another type is silently ignored by it.
    """
    doc = {
        "version": "1",
        "identity": {"name": f"go-{member_id[:8]}", "id": member_id},
        "cluster": cluster,
        "apis": {
            "grpc": {"address": grpc_address, "disabled": False},
            "grpc-web": {"disabled": True},
        },
        "services": {
            "com": {
                "protocol": "mqtt5",
                "url": broker_url,
                "opts": dict(com_opts or {}),
                "disabled": False,
            },
            "store": {"engine": "pebble", "location": "", "disabled": True},
            "state": {
                "protocol": "raft",
                "store": store,
                "bootstrap": bootstrap,
                "opts": dict(state_opts or {}),
                "disabled": False,
            },
        },
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


class GoSidecar:
    """One reference sidecar process (``dda -c <yaml>``), its output in a log file."""

    def __init__(self, exe: Path, config: Path, log: Path, *, member_id: str, grpc_address: str):
        self.exe = exe
        self.config = config
        self.log = log
        self.member_id = member_id
        self.grpc_address = grpc_address
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> GoSidecar:
        """Start the process; see :meth:`wait_for` to know when it is ready."""
        with open(self.log, "ab") as f:
            self.proc = subprocess.Popen(
                [str(self.exe), "-c", str(self.config)],
                stdout=f,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def wait_for(self, text: str, timeout: float = 30.0) -> None:
        """Wait until ``text`` appears in the sidecar's output (polling its log file)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return
            if not self.running:
                raise GoUnavailable(
                    f"reference sidecar {self.member_id} exited before {text!r}:\n"
                    f"{self.output()[-3000:]}"
                )
            time.sleep(0.05)
        raise TimeoutError(f"reference sidecar {self.member_id}: no {text!r} within {timeout} s")

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM (graceful leave), then SIGKILL after ``timeout``; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL, no goodbye."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

"""``ddastate demo``: three members in one process on the loopback bus.

No broker and no configuration: three RaftBindings share an in-process LoopbackBus,
each with a durable SQLite store in a temporary directory. The demo writes from every
member, stops the leader, waits for the new election, writes more, restarts the old
leader from its store, and checks that all three replicated states are equal. A live
view (roles, terms, indexes, keys) is redrawn while it runs; a summary ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from ddastate import __version__
from ddastate.apis.grpc.status import StatusInfo
from ddastate.cli import CliError
from ddastate.cli.render import table
from ddastate.cli.status import node_status
from ddastate.state.api import Input, InputOp

MEMBERS = ("member-1", "member-2", "member-3")
FRAME_INTERVAL = 0.1
PHASE_PAUSE = 0.8
WRITE_PAUSE = 0.02

log = logging.getLogger("ddastate.demo")


@dataclass
class Member:
    """One demo member: its config, com binding, state binding and observed state."""

    name: str
    cfg: Any
    bus: Any
    com: Any = None
    binding: Any = None
    observed: dict[str, bytes] = field(default_factory=dict)
    observed_changes: int = 0
    observer: asyncio.Task[None] | None = None
    up: bool = False
    starts: int = 0
    opened_with: tuple[int, int] = (0, 0)

    async def start(self) -> None:
        from ddastate.com.loopback import LoopbackBinding
        from ddastate.state.raft import RaftBinding

        self.com = LoopbackBinding(self.bus)
        await self.com.open(self.cfg)
        self.binding = RaftBinding()
        await self.binding.open(self.cfg, self.com)
        node = self.binding.node()
        self.opened_with = (
            node.last_index() if node is not None else 0,
            len(self.replicated_state()),
        )
        self.observed = {}
        changes = await self.binding.observe_state_change()
        self.observer = asyncio.create_task(self._observe(changes), name=f"observe {self.name}")
        self.up = True
        self.starts += 1

    async def _observe(self, changes: Any) -> None:
        async with contextlib.aclosing(changes):
            async for change in changes:
                inp: Input = change
                self.observed_changes += 1
                if inp.op is InputOp.SET:
                    self.observed[inp.key] = inp.value or b""
                elif inp.op is InputOp.DELETE:
                    self.observed.pop(inp.key, None)

    async def stop(self) -> None:
        self.up = False
        if self.binding is not None:
            await self.binding.close()
        if self.observer is not None:
            with contextlib.suppress(asyncio.CancelledError):
                async with asyncio.timeout(5.0):
                    await self.observer
            self.observer = None
        if self.com is not None:
            await self.com.close()

    def status(self) -> StatusInfo | None:
        if not self.up or self.binding is None:
            return None
        node = self.binding.node()
        if node is None:
            return None
        return node_status(node, id=self.name)

    def replicated_state(self) -> dict[str, bytes]:
        """The FSM's dictionary (what the member applied)."""
        fsm = self.binding.fsm() if self.binding is not None else None
        return dict(fsm.state()) if fsm is not None else {}


def state_digest(state: dict[str, bytes]) -> str:
    """A short digest of a state (equal states have equal digests)."""
    h = hashlib.sha256()
    for key in sorted(state):
        h.update(key.encode() + b"\0" + state[key] + b"\0")
    return h.hexdigest()[:12]


class View:
    """The live view: a frame redrawn in place on a terminal, or event lines when plain."""

    def __init__(self, members: list[Member], out: TextIO, live: bool) -> None:
        self.members = members
        self.out = out
        self.live = live
        self.t0 = time.monotonic()
        self.phase = "starting"
        self.events: list[str] = []
        self._drawn = 0
        self._last_role: dict[str, tuple[str, int]] = {}
        self.leaders: list[tuple[int, str, float]] = []

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def event(self, text: str) -> None:
        line = f"[{self.elapsed():6.2f}s] {text}"
        self.events.append(line)
        if not self.live:
            print(line, file=self.out, flush=True)

    def set_phase(self, text: str) -> None:
        self.phase = text
        self.event(f"== {text}")

    def watch_roles(self) -> None:
        """Turn role and term changes into events (called every frame)."""
        for m in self.members:
            info = m.status()
            now = ("down", 0) if info is None else (info.role, info.term)
            before = self._last_role.get(m.name)
            if before == now:
                continue
            self._last_role[m.name] = now
            if info is None:
                if before is not None:
                    self.event(f"{m.name} is down")
                continue
            if info.role == "leader" and (before is None or before[0] != "leader"):
                self.leaders.append((info.term, m.name, self.elapsed()))
                self.event(f"{m.name} is leader (term {info.term})")

    def table_text(self) -> str:
        rows: list[tuple[object, ...]] = []
        for m in self.members:
            info = m.status()
            if info is None:
                rows.append((m.name, "down", "-", "-", "-", "-", "-", "-"))
                continue
            rows.append(
                (
                    m.name,
                    info.role,
                    info.term,
                    info.last_log_index,
                    info.commit_index,
                    info.applied_index,
                    info.leader_id or "-",
                    len(m.observed),
                )
            )
        return table(
            ("MEMBER", "ROLE", "TERM", "LAST LOG", "COMMIT", "APPLIED", "LEADER", "KEYS"), rows
        )

    def frame(self) -> str:
        lines = [
            f"ddastate demo - 3 members, loopback bus, SQLite stores   {self.elapsed():6.2f}s",
            f"phase: {self.phase}",
            "",
            self.table_text(),
            "",
            *self.events[-9:],
        ]
        return "\n".join(lines)

    def draw(self) -> None:
        self.watch_roles()
        if not self.live:
            return
        text = self.frame()
        if self._drawn:
            self.out.write(f"\x1b[{self._drawn}F\x1b[J")
        self.out.write(text + "\n")
        self.out.flush()
        self._drawn = text.count("\n") + 1

    def snapshot(self) -> None:
        """In plain mode, print the table once (at the end of a phase)."""
        self.watch_roles()
        if not self.live:
            print(self.table_text(), file=self.out, flush=True)

    async def run(self) -> None:
        while True:
            self.draw()
            await asyncio.sleep(FRAME_INTERVAL)


def _member_config(name: str, root: Path, bootstrap: bool) -> Any:
    from ddastate.config import Config

    cfg = Config()
    cfg.identity.id = name
    cfg.identity.name = name
    cfg.cluster = "demo"
    cfg.apis.grpc.disabled = True
    cfg.services.com.protocol = "loopback"
    cfg.services.state.disabled = False
    cfg.services.state.bootstrap = bootstrap
    cfg.services.state.store = str(root / name)
    cfg.services.state.opts = {
        "heartbeatTimeout": 500,
        "electionTimeout": 500,
        "startupTimeout": 15000,
        "lfwTimeout": 10000,
        "snapshotThreshold": 40,
        "snapshotInterval": 1000,
    }
    return cfg.validate()


async def _until(check: Callable[[], bool], what: str, view: View, timeout: float = 20.0) -> None:
    """Wait (redrawing) until ``check()`` is true."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise CliError(f"demo: timed out waiting until {what}")
        await asyncio.sleep(0.02)


def _peek_store(location: str) -> tuple[int, int]:
    """Last log index and current term persisted in a member's store (member stopped)."""
    from ddastate.state.raft.store import RaftStore

    store = RaftStore(location)
    try:
        try:
            term = store.get_uint64(b"CurrentTerm")
        except KeyError:
            term = 0
        return store.last_index(), term
    finally:
        store.close()


def _leader(members: list[Member]) -> Member | None:
    for m in members:
        info = m.status()
        if info is not None and info.role == "leader":
            return m
    return None


async def _writes(view: View, writers: list[Member], count: int, prefix: str) -> int:
    """``count`` SETs from each writer, in flight together; returns how many were done."""

    async def from_member(m: Member) -> int:
        for i in range(count):
            key = f"{prefix}/{m.name}/{i:03d}"
            value = f"written by {m.name} at {view.elapsed():.3f}s".encode()
            await m.binding.propose_input(Input(InputOp.SET, key, value), timeout=20.0)
            if view.live:
                await asyncio.sleep(WRITE_PAUSE)  # slow enough to watch the indexes move
        return count

    done = await asyncio.gather(*(from_member(m) for m in writers))
    return sum(done)


async def _demo(out: TextIO, live: bool, root: Path, writes: int, keep: bool) -> int:
    from ddastate.com.loopback import LoopbackBus

    bus = LoopbackBus(seed=7)
    members = [Member(n, _member_config(n, root, i == 0), bus) for i, n in enumerate(MEMBERS)]
    view = View(members, out, live)
    drawer = asyncio.create_task(view.run(), name="live view")
    phases: list[tuple[str, float]] = []
    total_writes = 0

    async def phase(name: str, body: Callable[[], Awaitable[None]]) -> None:
        view.set_phase(name)
        t = time.monotonic()
        await body()
        phases.append((name, time.monotonic() - t))
        view.snapshot()
        if live:
            await asyncio.sleep(PHASE_PAUSE)  # let a human read the live view

    try:

        async def start_group() -> None:
            await members[0].start()
            view.event("member-1 bootstrapped a new group")
            for m in members[1:]:
                await m.start()
                view.event(f"{m.name} joined")

        await phase("start three members (member-1 bootstraps, 2 and 3 join)", start_group)

        async def first_writes() -> None:
            nonlocal total_writes
            total_writes += await _writes(view, members, writes, "a")
            view.event(f"{3 * writes} writes committed, {writes} from each member")

        await phase("write from every member", first_writes)

        old_leader = _leader(members)
        if old_leader is None:
            raise CliError("demo: no leader after the first writes")
        old_term = old_leader.status().term  # type: ignore[union-attr]

        async def stop_leader() -> None:
            await old_leader.stop()
            view.event(f"{old_leader.name} stopped (it left the group, its store is kept)")
            await _until(
                lambda: (
                    (lead := _leader(members)) is not None
                    and lead is not old_leader
                    and (lead.status() or StatusInfo("")).term > old_term
                ),
                "a new leader is elected",
                view,
            )

        await phase(f"stop the leader ({old_leader.name}), elect a new one", stop_leader)
        survivors = [m for m in members if m is not old_leader]

        async def writes_without() -> None:
            nonlocal total_writes
            total_writes += await _writes(view, survivors, writes, "b")
            view.event(f"{2 * writes} writes committed while {old_leader.name} was down")

        await phase("write while the old leader is down", writes_without)

        async def restart() -> None:
            disk_last, disk_term = _peek_store(old_leader.cfg.services.state.store)
            view.event(
                f"{old_leader.name}'s store on disk: log to index {disk_last}, term {disk_term}"
            )
            await old_leader.start()
            log_index, keys = old_leader.opened_with
            view.event(
                f"{old_leader.name} reopened its store and rejoined (log to index {log_index}, "
                f"{keys} keys)"
            )
            others = [m for m in members if m is not old_leader]
            await _until(
                lambda: old_leader.observed == others[0].observed,
                f"{old_leader.name} caught up",
                view,
            )
            info = old_leader.status()
            view.event(
                f"{old_leader.name} caught up: applied index "
                f"{info.applied_index if info else '?'}, {len(old_leader.observed)} keys"
            )

        await phase(f"restart {old_leader.name} from its store", restart)

        async def final() -> None:
            nonlocal total_writes
            total_writes += await _writes(view, [old_leader], 1, "c")
            marker = "demo/done"
            await members[1].binding.propose_input(Input(InputOp.SET, marker, b"yes"), timeout=20.0)
            total_writes += 1
            await _until(
                lambda: all(m.observed.get(marker) == b"yes" for m in members),
                "every member observed the last write",
                view,
            )
            await _until(
                lambda: len({state_digest(m.replicated_state()) for m in members}) == 1,
                "all states are equal",
                view,
                timeout=10.0,
            )

        await phase("compare the three states", final)
    finally:
        drawer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await drawer
        view.draw()

    digests = {m.name: state_digest(m.replicated_state()) for m in members}
    observed = {m.name: state_digest(m.observed) for m in members}
    sizes = {m.name: len(m.replicated_state()) for m in members}
    equal = len(set(digests.values())) == 1 and observed == digests
    _summary(out, view, phases, members, digests, sizes, total_writes, equal, root, keep)
    for m in members:
        await m.stop()
    return 0 if equal else 1


def _summary(
    out: TextIO,
    view: View,
    phases: list[tuple[str, float]],
    members: list[Member],
    digests: dict[str, str],
    sizes: dict[str, int],
    total_writes: int,
    equal: bool,
    root: Path,
    keep: bool,
) -> None:
    p = print
    p("", file=out)
    p("Summary", file=out)
    p("-------", file=out)
    p(table(("PHASE", "SECONDS"), [(n, f"{s:.2f}") for n, s in phases]), file=out)
    p("", file=out)
    p(
        "leaders: "
        + ", ".join(f"{name} (term {term}, at {t:.2f}s)" for term, name, t in view.leaders),
        file=out,
    )
    p(f"writes committed: {total_writes}", file=out)
    p("", file=out)
    rows = [(m.name, sizes[m.name], digests[m.name], m.starts) for m in members]
    p(table(("MEMBER", "KEYS", "STATE DIGEST", "STARTS"), rows), file=out)
    p("", file=out)
    kept = "kept" if keep else "removed at exit; --keep keeps them"
    p(f"stores: {root} ({kept})", file=out)
    verdict = "all three states are equal" if equal else "STATES DIFFER"
    p(f"result: {verdict} ({view.elapsed():.1f} s)", file=out, flush=True)


def run_demo(*, plain: bool = False, keep: bool = False, writes: int = 20) -> int:
    """Run the demo; returns the exit code (0 when all states are equal)."""
    if writes < 1:
        raise CliError("--writes must be at least 1", 2)
    out = sys.stdout
    live = not plain and out.isatty() and os.environ.get("TERM", "") != "dumb"
    root = Path(tempfile.mkdtemp(prefix="ddastate-demo-"))
    logging.basicConfig(
        filename=str(root / "demo.log"),
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    print(f"ddastate {__version__} demo: stores and log in {root}", file=out, flush=True)
    try:
        return asyncio.run(_demo(out, live, root, writes, keep))
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)

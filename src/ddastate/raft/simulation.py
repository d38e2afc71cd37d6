"""Deterministic simulation of a Raft group built from :class:`~.core.RaftCore`.

N members run in one thread on virtual time. A seeded network loses, delays,
duplicates and reorders messages and cuts links (partitions); members crash, keeping
only what their "disk" made durable (writes complete after a simulated fsync delay),
and restart from it. A key-value FSM serves client operations whose histories are
recorded and checked for linearizability. Invariants are checked after every step:

- at most one leader per term;
- log matching (one entry per (index, term), and equal prefixes, checked periodically);
- leader completeness (a new leader holds every entry committed before its term);
- state machine safety (no two members apply different entries at one index);
- acknowledged writes survive (on a quorum of disks while running; in every member's
  state at the end).

Everything depends only on the seed: a failure names the seed and
``Simulation(seed=...).run()`` replays it exactly. Command line::

    python -m ddastate.raft.simulation --seeds 20000 --processes 2   # long run
    python -m ddastate.raft.simulation --seed 1234 --verbose  # replay one seed

Users can pass their own FSM factory (see :class:`SimFSM`).
"""

from __future__ import annotations

import argparse
import heapq
import logging
import random
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgpack

from .commands import (
    AppendEntriesRequest,
    AppendEntriesResponse,
    InstallSnapshotRequest,
    Request,
    RequestPreVoteResponse,
    RequestVoteResponse,
    Response,
)
from .configuration import Configuration, Server, ServerSuffrage
from .core import RaftCore
from .errors import RaftError
from .linearizability import Operation, check_history
from .log import Log, LogType
from .ready import (
    ChangeKind,
    ConfigurationChange,
    CoreConfig,
    HardState,
    Ready,
    Role,
    SnapshotInfo,
)

logger = logging.getLogger(__name__)


class SimulationError(AssertionError):
    """An invariant was violated; the message names the seed to replay."""


class SimFSM(Protocol):
    """A deterministic state machine usable in the simulation."""

    def apply(self, log: Log) -> Any: ...

    def snapshot(self) -> bytes: ...

    def restore(self, data: bytes) -> None: ...


class KVFsm:
    """The simulation's key-value FSM: commands are msgpack ``[op, opid, key, value]``."""

    def __init__(self) -> None:
        self.state: dict[str, str] = {}

    def apply(self, log: Log) -> Any:
        if log.type != LogType.COMMAND or not log.data:
            return None
        op, _opid, key, value = msgpack.unpackb(log.data)
        if op == "put":
            self.state[key] = value
            return None
        return self.state.get(key)

    def snapshot(self) -> bytes:
        out: bytes = msgpack.packb(self.state)
        return out

    def restore(self, data: bytes) -> None:
        self.state = dict(msgpack.unpackb(data))


@dataclass
class Faults:
    """Which faults a run mixes in, and how hard."""

    loss: float = 0.02
    duplicate: float = 0.02
    min_delay: float = 0.0005
    max_delay: float = 0.004
    spike_delay: float = 0.05
    spike: float = 0.02
    partitions: bool = True
    crashes: bool = True
    membership: bool = True
    transfers: bool = True
    snapshots: bool = True
    fault_interval: float = 0.25


@dataclass
class _Write:
    hard_state: HardState | None
    compact_to: int
    truncate_from: int
    entries: list[Log]
    deferred: list[tuple[str, Any]]


@dataclass
class Disk:
    """What a member has made durable."""

    hard_state: HardState = field(default_factory=HardState)
    log: list[Log] = field(default_factory=list)
    snapshot: SnapshotInfo | None = None
    snapshot_data: bytes = b""

    def apply(self, w: _Write) -> None:
        if w.hard_state is not None:
            self.hard_state = w.hard_state
        if w.compact_to:
            self.log = [e for e in self.log if e.index > w.compact_to]
        if w.truncate_from:
            self.log = [e for e in self.log if e.index < w.truncate_from]
        if w.entries:
            if self.log and self.log[-1].index + 1 != w.entries[0].index:
                raise SimulationError(
                    f"disk append not contiguous: {self.log[-1].index} then {w.entries[0].index}"
                )
            self.log.extend(w.entries)

    def term_at(self, index: int) -> int | None:
        if self.log and self.log[0].index <= index <= self.log[-1].index:
            return self.log[index - self.log[0].index].term
        if self.snapshot is not None and index <= self.snapshot.index:
            return -1  # covered by the snapshot
        return None


@dataclass
class _Pending:
    op: Operation
    data: bytes


class Member:
    """One simulated member: a core, a disk, an FSM and the driver logic around them."""

    def __init__(self, sim: Simulation, mid: str) -> None:
        self.sim = sim
        self.id = mid
        self.disk = Disk()
        self.up = False
        self.inc = 0
        self.core: RaftCore | None = None
        self.fsm: SimFSM = sim.fsm_factory()
        self.applied = 0
        self.writes: list[_Write] = []
        self.batch = 0
        self.disk_busy = False
        self.tick_at = float("inf")
        self.outstanding: dict[int, tuple[str, Request]] = {}
        self.pending: dict[int, _Pending] = {}
        self.installing = False

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        sim = self.sim
        self.inc += 1
        self.up = True
        self.writes = []
        self.disk_busy = False
        self.outstanding = {}
        self.pending = {}
        self.fsm = sim.fsm_factory()
        snap = self.disk.snapshot
        if snap is not None:
            self.fsm.restore(self.disk.snapshot_data)
            self.applied = snap.index
        else:
            self.applied = 0
        self.core = RaftCore(
            sim.core_config(self.id),
            random.Random(sim.rng.getrandbits(64)),
            sim.now,
            hard_state=self.disk.hard_state,
            snapshot=snap,
            entries=list(self.disk.log),
        )
        self.tick_at = float("inf")
        self.process()

    def crash(self) -> None:
        for p in self.pending.values():
            self.sim.complete_unknown(p.op)
        self.pending = {}
        self.up = False
        self.core = None
        self.writes = []
        self.outstanding = {}
        self.inc += 1

    # -------------------------------------------------------------- driving
    def process(self) -> None:
        core = self.core
        if core is None:
            return
        sim = self.sim
        while core.has_ready():
            rd = core.ready()
            self._handle(rd)
            sim.check_member(self)
            if self.core is None:
                return
        d = max(core.next_deadline(), sim.now + 0.0005)
        if d < self.tick_at:
            self.tick_at = d
            sim.schedule(d, "tick", (self.id, self.inc, d))

    def _handle(self, rd: Ready) -> None:
        sim = self.sim
        core = self.core
        assert core is not None
        hs_pending = rd.hard_state is not None or any(w.hard_state is not None for w in self.writes)
        needs_write = bool(
            rd.hard_state is not None or rd.entries or rd.compact_to or rd.truncate_from
        )
        deferred: list[tuple[str, Any]] = []
        for m in rd.messages:
            if isinstance(m.request, AppendEntriesRequest) and not hs_pending:
                self.send_request(m.to_id, m.request)
            else:
                deferred.append(("msg", m))
        for r in rd.replies:
            # what the node sends without waiting for the disk (core contract): replies
            # to heartbeats and refused votes
            resp = r.response
            tok = r.token
            assert isinstance(tok, _Token)
            if (
                isinstance(resp, AppendEntriesResponse)
                and isinstance(tok.req, AppendEntriesRequest)
                and tok.req.is_heartbeat()
            ) or (
                isinstance(resp, RequestVoteResponse | RequestPreVoteResponse) and not resp.granted
            ):
                sim.send_response(self.id, tok, resp)
            else:
                deferred.append(("reply", r))
        if rd.entries:
            sim.note_entries(self, rd.entries)
        if needs_write or self.writes:
            self.writes.append(
                _Write(rd.hard_state, rd.compact_to, rd.truncate_from, rd.entries, deferred)
            )
            if not self.disk_busy:
                self._start_fsync()
        else:
            self._release(deferred)
        for e in rd.committed:
            if e.index != self.applied + 1:
                raise sim.fail(f"{self.id} applies {e.index} after {self.applied}")
            self.applied = e.index
            sim.note_applied(self, e)
            result = self.fsm.apply(e)
            sim.note_result(e, result)
            p = self.pending.pop(e.index, None)
            if p is not None:
                if e.data == p.data:
                    sim.complete_ok(p.op, result, e)
                else:
                    sim.complete_unknown(p.op)
        if rd.soft_state is not None and rd.soft_state.role is Role.LEADER:
            sim.note_leader(self, rd.soft_state.term)
        lost = rd.leadership_lost_from or 0
        if rd.truncated_from and (not lost or rd.truncated_from < lost):
            lost = rd.truncated_from
        if lost:
            for idx in [i for i in self.pending if i >= lost]:
                sim.complete_unknown(self.pending.pop(idx).op)
        for _token, res in rd.configuration_results:
            if isinstance(res, BaseException):
                sim.log(f"{self.id}: configuration change failed: {res}")
        if rd.removed:
            sim.log(f"{self.id}: removed from the configuration, shutting down")
            sim.schedule(sim.now, "shutdown", (self.id, self.inc))
        for inst in rd.snapshot_installs:
            self._install(inst.token, inst.request)
        if sim.faults.snapshots and self.applied - (
            core.snapshot.index if core.snapshot else 0
        ) >= (sim.snapshot_threshold):
            self._take_snapshot()

    def _install(self, token: object, req: Request) -> None:
        core = self.core
        assert core is not None and isinstance(req, InstallSnapshotRequest)
        assert isinstance(token, _Token)
        data = token.data
        ok = data is not None and len(data) == req.size
        if ok:
            assert data is not None
            self.fsm = self.sim.fsm_factory()
            self.fsm.restore(data)
            # the snapshot is made durable before the core hears of it
            info = SnapshotInfo(
                req.last_log_index,
                req.last_log_term,
                core.committed_configuration,
                req.configuration_index,
            )
            self.disk.snapshot = info
            self.disk.snapshot_data = data
            self.applied = req.last_log_index
            for idx in [i for i in self.pending if i <= req.last_log_index]:
                self.sim.complete_unknown(self.pending.pop(idx).op)
        core.on_snapshot_installed(token, ok)
        if ok and core.snapshot is not None:
            self.disk.snapshot = core.snapshot
            self.sim.note_snapshot_install(self, core.snapshot)

    def _take_snapshot(self) -> None:
        core = self.core
        assert core is not None
        try:
            info = core.snapshot_point(self.applied)
        except RaftError:
            return
        self.disk.snapshot = info
        self.disk.snapshot_data = self.fsm.snapshot()
        core.on_snapshot_taken(info)
        self.sim.stats["snapshots"] += 1

    def _release(self, deferred: list[tuple[str, Any]]) -> None:
        for kind, item in deferred:
            if kind == "msg":
                self.send_request(item.to_id, item.request)
            else:
                tok = item.token
                assert isinstance(tok, _Token)
                self.sim.send_response(self.id, tok, item.response)

    def _start_fsync(self) -> None:
        self.disk_busy = True
        self.batch = len(self.writes)
        self.sim.schedule(self.sim.now + self.sim.disk_delay(), "disk", (self.id, self.inc))

    def disk_done(self) -> None:
        core = self.core
        if core is None or not self.writes:
            self.disk_busy = False
            return
        # one fsync made every write queued when it started durable (group commit)
        batch = self.writes[: self.batch]
        del self.writes[: self.batch]
        for w in batch:
            self.disk.apply(w)
            self._release(w.deferred)
            if w.entries:
                core.on_persisted(w.entries[-1].index, w.entries[-1].term)
        if self.writes:
            self._start_fsync()
        else:
            self.disk_busy = False
        self.process()

    def send_request(self, to: str, req: Request) -> None:
        sim = self.sim
        sim.rpc_seq += 1
        rid = sim.rpc_seq
        self.outstanding[rid] = (to, req)
        data = None
        if isinstance(req, InstallSnapshotRequest):
            snap = self.disk.snapshot
            if snap is None:
                self.outstanding.pop(rid)
                assert self.core is not None
                self.core.on_failure(to, req, sim.now)
                return
            req.last_log_index = snap.index
            req.last_log_term = snap.term
            req.configuration_index = snap.configuration_index
            data = self.disk.snapshot_data
            req.size = len(data)
        tok = _Token(self.id, self.inc, rid, data, req)
        sim.transmit(self.id, to, ("req", tok, req))
        sim.schedule(sim.now + sim.rpc_timeout, "rpc_timeout", (self.id, self.inc, rid))

    def on_reply(self, rid: int, resp: Response) -> None:
        ent = self.outstanding.pop(rid, None)
        if ent is None or self.core is None:
            return
        to, req = ent
        self.core.on_response(to, req, resp, self.sim.now)
        self.process()

    def on_timeout(self, rid: int) -> None:
        ent = self.outstanding.pop(rid, None)
        if ent is None or self.core is None:
            return
        to, req = ent
        self.core.on_failure(to, req, self.sim.now)
        self.process()


@dataclass(eq=False)
class _Token:
    sender: str
    inc: int
    rid: int
    data: bytes | None
    req: Request


class Simulation:
    """A simulated group; see the module docstring. ``run()`` raises SimulationError."""

    def __init__(
        self,
        seed: int,
        members: int = 3,
        spares: int = 2,
        faults: Faults | None = None,
        duration: float = 2.0,
        clients: int = 3,
        keys: int = 3,
        pre_vote: bool | None = None,
        pipeline: bool | None = None,
        fsm_factory: Callable[[], SimFSM] = KVFsm,
        verbose: bool = False,
        check_linearizability: bool = True,
        command_factory: Callable[[random.Random, int], bytes] | None = None,
    ) -> None:
        """Set up a run; nothing happens before :meth:`run`.

        ``fsm_factory`` makes each member's state machine; ``command_factory(rng, n)``
        makes the n-th client command for it (default: the KV workload of
        :class:`KVFsm`, whose histories are checked for linearizability; with a
        command factory of yours every other invariant is checked, and the FSMs must end
        with equal ``snapshot()`` bytes).
        """
        self.seed = seed
        self.rng = random.Random(seed)
        self.faults = faults or Faults()
        self.duration = duration
        self.fsm_factory = fsm_factory
        self.command_factory = command_factory
        self.verbose = verbose
        self.check_lin = check_linearizability
        self.now = 0.0
        self.seq = 0
        self.rpc_seq = 0
        self.events: list[tuple[float, int, str, Any]] = []
        self.pre_vote = self.rng.random() < 0.5 if pre_vote is None else pre_vote
        self.pipeline = self.rng.random() < 0.7 if pipeline is None else pipeline
        self.snapshot_threshold = self.rng.choice([10, 25, 60])
        self.trailing_logs = self.rng.choice([0, 3, 10])
        self.rpc_timeout = 0.05
        self.window = self.rng.choice([1, 8, 128])
        self.max_disk_delay = self.rng.choice([0.002, 0.002, 0.01])
        ids = [f"m{i}" for i in range(members + spares)]
        self.members: dict[str, Member] = {i: Member(self, i) for i in ids}
        self.initial = ids[:members]
        self.cut: set[tuple[str, str]] = set()
        self.clients = clients
        self.keys = [f"k{i}" for i in range(keys)]
        # invariant bookkeeping
        self.leaders: dict[int, str] = {}
        self.entries: dict[tuple[int, int], tuple[int, bytes | None]] = {}
        self.applied: dict[int, tuple[int, int, bytes | None]] = {}
        self.committed_max = 0
        self.history: list[Operation] = []
        self.acked: list[tuple[Operation, int, int]] = []
        self.op_seq = 0
        self.ops_by_data: dict[bytes, Operation] = {}
        self.steps = 0
        self.stats: dict[str, int] = defaultdict(int)

    # ----------------------------------------------------------- utilities
    def log(self, text: str) -> None:
        if self.verbose:
            print(f"[{self.now:9.4f}] {text}")

    def fail(self, what: str) -> SimulationError:
        return SimulationError(
            f"seed {self.seed}: {what} (t={self.now:.4f}, step {self.steps}); replay with "
            f"python -m ddastate.raft.simulation --seed {self.seed} --verbose"
        )

    def schedule(self, t: float, kind: str, payload: Any) -> None:
        self.seq += 1
        heapq.heappush(self.events, (t, self.seq, kind, payload))

    def disk_delay(self) -> float:
        return self.rng.uniform(0.0002, self.max_disk_delay)

    def core_config(self, mid: str) -> CoreConfig:
        return CoreConfig(
            local_id=mid,
            local_addr=mid,
            heartbeat_timeout=0.1,
            election_timeout=0.1,
            commit_timeout=0.01,
            leader_lease_timeout=0.05,
            max_append_entries=self.rng.choice([1, 4, 64]),
            pipeline=self.pipeline,
            pipeline_window=self.window,
            pre_vote=self.pre_vote,
            trailing_logs=self.trailing_logs,
        )

    # -------------------------------------------------------------- network
    def transmit(self, frm: str, to: str, msg: Any) -> None:
        f = self.faults
        if (frm, to) in self.cut or self.rng.random() < f.loss:
            self.stats["lost"] += 1
            return
        copies = 2 if self.rng.random() < f.duplicate else 1
        self.stats["messages"] += 1
        if copies == 2:
            self.stats["duplicates"] += 1
        for _ in range(copies):
            d = self.rng.uniform(f.min_delay, f.max_delay)
            if self.rng.random() < f.spike:
                d += self.rng.uniform(0, f.spike_delay)
            self.schedule(self.now + d, "deliver", (frm, to, msg))

    def send_response(self, frm: str, tok: _Token, resp: Response) -> None:
        self.transmit(frm, tok.sender, ("resp", tok, resp))

    def _deliver(self, frm: str, to: str, msg: Any) -> None:
        m = self.members[to]
        if not m.up or m.core is None:
            return
        kind, tok, body = msg
        if kind == "req":
            m.core.step(body, tok, self.now)
            m.process()
        else:
            if tok.inc != m.inc:
                return
            m.on_reply(tok.rid, body)

    # ------------------------------------------------------------- checking
    def note_leader(self, m: Member, term: int) -> None:
        other = self.leaders.get(term)
        if other is not None and other != m.id:
            raise self.fail(f"two leaders in term {term}: {other} and {m.id}")
        self.leaders[term] = m.id
        self.log(f"{m.id} is leader in term {term}")
        self.stats["elections"] += 1
        # leader completeness: every committed entry of an earlier term is in its log
        core = m.core
        assert core is not None
        for idx in range(self.committed_max, 0, -1):
            t, _, _ = self.applied[idx]
            if t >= term:
                continue
            have = core.term_at(idx)
            if have is None:
                if core.snapshot is not None and idx <= core.snapshot.index:
                    break
                raise self.fail(f"leader {m.id} of term {term} lacks committed entry {idx}")
            if have != t:
                raise self.fail(
                    f"leader {m.id} of term {term} has term {have} at committed {idx}, not {t}"
                )
            if idx < core.commit_index:
                break

    def note_entries(self, m: Member, entries: list[Log]) -> None:
        for e in entries:
            key = (e.index, e.term)
            val = (int(e.type), e.data)
            have = self.entries.get(key)
            if have is None:
                self.entries[key] = val
            elif have != val:
                raise self.fail(f"log matching: two different entries at {key}")

    def note_applied(self, m: Member, e: Log) -> None:
        have = self.applied.get(e.index)
        val = (e.term, int(e.type), e.data)
        if have is None:
            self.applied[e.index] = val
            if e.index > self.committed_max:
                self.committed_max = e.index
        elif have != val:
            raise self.fail(f"{m.id} applied a different entry at {e.index}")

    def note_result(self, e: Log, result: Any) -> None:
        """The first application of an entry anywhere is when its operation took effect."""
        if e.data is None:
            return
        op = self.ops_by_data.pop(e.data, None)
        if op is not None and op.status != "ok":
            op.status = "ok"
            op.result = result
            op.complete = self.now

    def note_snapshot_install(self, m: Member, snap: SnapshotInfo) -> None:
        self.stats["snapshot_installs"] += 1
        have = self.applied.get(snap.index)
        if have is not None and have[0] != snap.term:
            raise self.fail(f"{m.id} installed a snapshot that disagrees at {snap.index}")

    def check_member(self, m: Member) -> None:
        core = m.core
        if core is None:
            return
        if core.commit_index > self.committed_max:
            # entries committed but not yet applied anywhere: check they agree later
            pass
        if core.role is Role.LEADER:
            other = self.leaders.get(core.term)
            if other is not None and other != m.id:
                raise self.fail(f"two leaders in term {core.term}: {other} and {m.id}")

    def check_logs(self) -> None:
        """Log matching on whole logs: equal (index, term) means equal prefixes."""
        live = [m for m in self.members.values() if m.core is not None]
        for i, a in enumerate(live):
            for b in live[i + 1 :]:
                ca, cb = a.core, b.core
                assert ca is not None and cb is not None
                hi = min(ca.last_index, cb.last_index)
                lo = max(ca.first_index, cb.first_index)
                # find the highest common index with equal terms, then compare below
                j = hi
                while j >= lo and ca.term_at(j) != cb.term_at(j):
                    j -= 1
                while j >= lo:
                    ea, eb = ca.entry(j), cb.entry(j)
                    if ea is None or eb is None:
                        break
                    if ea.term != eb.term or ea.data != eb.data or ea.type != eb.type:
                        raise self.fail(f"log matching broken between {a.id} and {b.id} at {j}")
                    j -= 1

    def check_durable(self) -> None:
        """Acknowledged writes are on a majority of the initial members' disks."""
        need = 1 if self.faults.membership else len(self.initial) // 2 + 1
        for op, idx, term in self.acked[-20:]:
            n = 0
            for m in self.members.values():
                t = m.disk.term_at(idx)
                if t == term or t == -1:
                    n += 1
            if n < need:
                raise self.fail(f"acknowledged {op} at {idx} is on {n} disks only")

    # -------------------------------------------------------------- clients
    def complete_ok(self, op: Operation, result: Any, e: Log) -> None:
        self.acked.append((op, e.index, e.term))
        if op.status == "ok":
            if op.result != result:
                raise self.fail(
                    f"{op} acknowledged with {result!r}, first applied as {op.result!r}"
                )
            return
        op.status = "ok"
        op.result = result
        op.complete = self.now

    def complete_unknown(self, op: Operation) -> None:
        if op.status == "pending":
            op.status = "unknown"

    def _client(self, cid: int) -> None:
        if self.now > self.duration:
            return
        leaders = [m for m in self.members.values() if m.core and m.core.role is Role.LEADER]
        if leaders and self.rng.random() < 0.9:
            m = self.rng.choice(leaders)
        else:
            m = self.members[self.rng.choice(list(self.members))]
        self.op_seq += 1
        data: bytes
        if self.command_factory is not None:
            data = self.command_factory(self.rng, self.op_seq)
            op = Operation(process=cid, kind="cmd", key="", invoke=self.now, op_id=self.op_seq)
        else:
            key = self.rng.choice(self.keys)
            if self.rng.random() < 0.5:
                kind, value = "put", f"v{self.op_seq}"
            else:
                kind, value = "get", None
            data = msgpack.packb([kind, self.op_seq, key, value])
            op = Operation(
                process=cid, kind=kind, key=key, value=value, invoke=self.now, op_id=self.op_seq
            )
            self.ops_by_data[data] = op
        self.history.append(op)
        if m.core is None:
            op.status = "fail"
            op.complete = self.now
        else:
            try:
                idx = m.core.propose(data)
            except RaftError:
                op.status = "fail"
                op.complete = self.now
            else:
                m.pending[idx] = _Pending(op, data)
                m.process()
        self.schedule(self.now + self.rng.uniform(0.002, 0.02), "client", cid)

    # --------------------------------------------------------------- faults
    def _fault(self) -> None:
        if self.now > self.duration:
            return
        f = self.faults
        choices = []
        if f.partitions:
            choices += ["partition", "heal"]
        if f.crashes:
            choices += ["crash", "restart"]
        if f.membership:
            choices += ["membership"]
        if f.transfers:
            choices += ["transfer"]
        down = [m for m in self.members.values() if not m.up and m.id in self._known()]
        if down and f.crashes and self.rng.random() < 0.5:
            choices = ["restart"]
        elif self.cut and self.rng.random() < 0.5:
            choices = ["heal"]
        if choices:
            getattr(self, "_f_" + self.rng.choice(choices))()
        self.schedule(self.now + self.rng.uniform(0.3, 1.7) * f.fault_interval, "fault", None)

    def _f_partition(self) -> None:
        ids = list(self.members)
        self.rng.shuffle(ids)
        k = self.rng.randint(1, len(ids) - 1)
        a, b = set(ids[:k]), set(ids[k:])
        one_way = self.rng.random() < 0.2
        self.cut = set()
        for x in a:
            for y in b:
                self.cut.add((x, y))
                if not one_way:
                    self.cut.add((y, x))
        self.log(f"partition {sorted(a)} | {sorted(b)}{' one-way' if one_way else ''}")
        self.stats["partitions"] += 1

    def _f_heal(self) -> None:
        self.cut = set()
        self.log("heal")

    def _f_crash(self) -> None:
        up = [m for m in self.members.values() if m.up]
        if len(up) <= 2:
            return
        ld = self._leader()
        m = ld if ld is not None and self.rng.random() < 0.5 else self.rng.choice(up)
        self.log(f"crash {m.id}")
        self.stats["crashes"] += 1
        m.crash()

    def _f_restart(self) -> None:
        down = [m for m in self.members.values() if not m.up and m.id in self._known()]
        if not down:
            return
        m = self.rng.choice(down)
        self.log(f"restart {m.id}")
        m.start()

    def _known(self) -> set[str]:
        """Members that are, or once were, in some configuration."""
        ids = set(self.initial)
        for m in self.members.values():
            if m.core is not None:
                ids.update(s.id for s in m.core.latest_configuration.servers)
        return ids

    def _leader(self) -> Member | None:
        for m in self.members.values():
            if m.core is not None and m.core.role is Role.LEADER:
                return m
        return None

    def _f_membership(self) -> None:
        ld = self._leader()
        if ld is None or ld.core is None:
            return
        cfg = ld.core.latest_configuration
        in_cfg = [s.id for s in cfg.servers]
        out = [i for i in self.members if i not in in_cfg]
        r = self.rng.random()
        if out and r < 0.5:
            target = self.rng.choice(out)
            kind = ChangeKind.ADD_VOTER if self.rng.random() < 0.7 else ChangeKind.ADD_NONVOTER
            tm = self.members[target]
            if not tm.up:
                tm.start()
        elif len(in_cfg) > 1 and r < 0.8:
            target = self.rng.choice(in_cfg)
            kind = ChangeKind.REMOVE_SERVER
        elif len(in_cfg) > 1:
            target = self.rng.choice(in_cfg)
            kind = ChangeKind.DEMOTE_VOTER if cfg.is_voter(target) else ChangeKind.ADD_VOTER
        else:
            return
        if kind is ChangeKind.REMOVE_SERVER and len(cfg.voters()) <= 2 and cfg.is_voter(target):
            return
        self.log(f"{ld.id}: {kind.value} {target}")
        self.stats["membership_changes"] += 1
        try:
            ld.core.change_configuration(ConfigurationChange(kind, target, target), object())
        except RaftError as e:
            self.log(f"membership change refused: {e}")
        ld.process()

    def _f_transfer(self) -> None:
        ld = self._leader()
        if ld is None or ld.core is None:
            return
        self.stats["transfers"] += 1
        try:
            ld.core.transfer_leadership(object(), self.now)
        except RaftError as e:
            self.log(f"transfer refused: {e}")
        ld.process()

    # ------------------------------------------------------------------ run
    def _bootstrap(self) -> None:
        cfg = Configuration(tuple(Server(i, i, ServerSuffrage.VOTER) for i in self.initial))
        from .configuration import encode_configuration

        for i in self.initial:
            m = self.members[i]
            m.disk.hard_state = HardState(1, 0, b"")
            m.disk.log = [Log(1, 1, LogType.CONFIGURATION, encode_configuration(cfg))]
            m.start()

    def _step(self) -> bool:
        if not self.events:
            return False
        t, _, kind, payload = heapq.heappop(self.events)
        if t > self.now:
            self.now = t
        self.steps += 1
        if kind == "deliver":
            self._deliver(*payload)
        elif kind == "tick":
            mid, inc, at = payload
            m = self.members[mid]
            if m.inc == inc and m.core is not None and m.tick_at == at:
                m.tick_at = float("inf")
                m.core.tick(self.now)
                m.process()
        elif kind == "disk":
            mid, inc = payload
            m = self.members[mid]
            if m.inc == inc:
                m.disk_done()
        elif kind == "rpc_timeout":
            mid, inc, rid = payload
            m = self.members[mid]
            if m.inc == inc:
                m.on_timeout(rid)
        elif kind == "client":
            self._client(payload)
        elif kind == "fault":
            self._fault()
        elif kind == "shutdown":
            mid, inc = payload
            m = self.members[mid]
            if m.inc == inc:
                m.crash()
        if self.steps % 200 == 0:
            self.check_logs()
            self.check_durable()
        return True

    def run(self) -> Simulation:
        """Run the scenario and the final checks; raise SimulationError on a violation."""
        self._bootstrap()
        for c in range(self.clients):
            self.schedule(self.rng.uniform(0.2, 0.3), "client", c)
        self.schedule(0.3, "fault", None)
        while self.events and self.now <= self.duration:
            self._step()
        self._settle()
        self._final_checks()
        return self

    def _settle(self) -> None:
        """Heal everything, restart members of the configuration, let the group converge."""
        self.cut = set()
        f = self.faults
        f.loss = f.duplicate = f.spike = 0.0
        end = self.now + 5.0
        while self.events and self.now < end:
            if self.steps % 50 == 0:
                for mid in sorted(self._configured()):
                    m = self.members[mid]
                    if not m.up:
                        m.start()
            self._step()
            if self.steps % 50 == 0 and self._converged():
                break
        if not self._converged():
            raise self.fail("group did not converge after healing")

    def _configured(self) -> set[str]:
        ld = self._leader()
        if ld is not None and ld.core is not None:
            return {s.id for s in ld.core.latest_configuration.servers}
        return set(self._known())

    def _converged(self) -> bool:
        ld = self._leader()
        if ld is None or ld.core is None:
            return False
        core = ld.core
        if core.commit_index < core.last_index or ld.applied < core.commit_index:
            return False
        if core.latest_configuration_index > core.commit_index:
            return False
        for s in core.latest_configuration.servers:
            m = self.members[s.id]
            if not m.up or m.applied < core.commit_index:
                return False
        return True

    def _final_checks(self) -> None:
        self.check_logs()
        ld = self._leader()
        assert ld is not None and ld.core is not None
        states = {}
        for s in ld.core.latest_configuration.servers:
            m = self.members[s.id]
            states[s.id] = m.fsm.snapshot()
        if len(set(states.values())) > 1:
            raise self.fail("members' FSMs differ after convergence")
        for op, idx, term in self.acked:
            have = self.applied.get(idx)
            if have is None or have[0] != term:
                raise self.fail(f"acknowledged {op} at {idx} was lost")
        if self.check_lin and self.command_factory is None:
            # the simulation knows what happened to every operation: one never applied
            # anywhere after convergence did not take effect
            for op in self.history:
                if op.status in ("pending", "unknown"):
                    op.status = "fail"
            res = check_history(self.history)
            if not res.ok:
                raise self.fail(f"history not linearizable for key {res.key}: {res.reason}")


@dataclass
class SweepResult:
    """Outcome of :func:`run_seeds`: failures (seed, message) and summed statistics."""

    seeds: int = 0
    failures: list[tuple[int, str]] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def _run_chunk(args: tuple[list[int], bool, dict[str, Any]]) -> SweepResult:
    seeds, stop, kwargs = args
    return run_seeds(seeds, stop_on_failure=stop, **kwargs)


def run_seeds(
    seeds: range | list[int],
    stop_on_failure: bool = True,
    processes: int = 1,
    **kwargs: Any,
) -> SweepResult:
    """Run the simulation for each seed; collect failures and fault statistics.

    ``processes`` > 1 spreads the seeds over that many worker processes (each seed
    still runs alone and replays the same way).
    """
    if processes > 1:
        import multiprocessing

        seeds = list(seeds)
        chunks = [seeds[i::processes] for i in range(processes)]
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(processes) as pool:
            parts = pool.map(_run_chunk, [(c, stop_on_failure, kwargs) for c in chunks])
        total = SweepResult()
        for part in parts:
            total.seeds += part.seeds
            total.failures.extend(part.failures)
            for k, v in part.stats.items():
                total.stats[k] += v
        total.failures.sort()
        return total
    out = SweepResult()
    for s in seeds:
        out.seeds += 1
        sim = Simulation(seed=s, **kwargs)
        try:
            sim.run()
        except SimulationError as e:
            out.failures.append((s, str(e)))
            if stop_on_failure:
                break
        finally:
            for k, v in sim.stats.items():
                out.stats[k] += v
            out.stats["operations"] += len(sim.history)
            out.stats["acknowledged"] += len(sim.acked)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Run the Raft simulation over many seeds.")
    p.add_argument("--seeds", type=int, default=500, help="number of seeds to run")
    p.add_argument("--start", type=int, default=0, help="first seed")
    p.add_argument("--seed", type=int, default=None, help="replay one seed")
    p.add_argument("--members", type=int, default=3)
    p.add_argument("--duration", type=float, default=2.0, help="virtual seconds of faults")
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--keep-going", action="store_true", help="do not stop at the first failure")
    p.add_argument("--processes", type=int, default=1, help="worker processes")
    a = p.parse_args(argv)
    if a.verbose:
        logging.basicConfig(level=logging.DEBUG)
    # Injected faults make the members log warnings by the thousand; keep them quiet unless
    # asked, without touching logging state outside this package (main() runs in tests too).
    package_logger = logging.getLogger("ddastate")
    saved_level = package_logger.level
    if not a.verbose:
        package_logger.setLevel(logging.ERROR)
    seeds = [a.seed] if a.seed is not None else range(a.start, a.start + a.seeds)
    t0 = time.monotonic()
    try:
        res = run_seeds(
            seeds,
            stop_on_failure=not a.keep_going,
            processes=a.processes,
            members=a.members,
            duration=a.duration,
            verbose=a.verbose,
        )
    finally:
        package_logger.setLevel(saved_level)
    dt = time.monotonic() - t0
    for s, msg in res.failures:
        print(f"FAIL seed {s}: {msg}")
    print(", ".join(f"{k} {v}" for k, v in sorted(res.stats.items())))
    print(f"{res.seeds} seeds, {len(res.failures)} failures, {dt:.1f}s")
    return 1 if res.failures else 0


if __name__ == "__main__":
    sys.exit(main())

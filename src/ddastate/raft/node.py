"""``Raft``: the asyncio node that drives the deterministic core (hashicorp's api.go).

How the node works:

- Every input (an incoming RPC, a response to one of our requests, a proposal, a timer)
  is fed to :class:`~ddastate.raft.core.RaftCore` synchronously on the event loop, and a
  *flush* is scheduled with ``call_soon``. The flush takes all queued proposals into the
  core in one ``propose_batch`` (group commit) and executes the core's :class:`Ready`:
  persist, send, apply, notify. Inputs arriving in the same loop iteration share one
  flush, one log write and one AppendEntries per follower.
- Storage: one long-lived writer thread fed by a queue executes every write in order
  (hard state, compaction, truncation, appends); consecutive appends are merged into one
  ``store_logs`` (one fsync). Messages that must not leave before a write is durable are
  held until the writer reports back (one ``call_soon_threadsafe`` per drained batch of
  writes). Stores that declare ``inline_safe = True`` (the in-memory ones: a dict insert
  cannot block) are called directly on the loop instead: a thread hand-off would cost
  more than the write. Stores that can defer their syncs (``can_defer_sync``, the
  durable RaftStore) take plain writes on the loop too, unsynced, and each batch is
  made durable by one fdatasync done by the kernel (``Config.async_fsync``); the thread
  then runs only what may take long (compaction, truncation, checkpoints) and anything
  queued behind it.
- AppendEntries requests from a leader leave at once; the leader counts itself only
  after its own write is durable (``on_persisted``). Replies wait for earlier writes,
  except heartbeat replies and refused votes, which never wait for the disk.
- Committed entries are applied to the FSM on the loop, in order; futures resolve then.
- Timers: one loop timer armed at the core's ``next_deadline()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import queue
import random
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import IO, TYPE_CHECKING, Any, cast

from .._fdatasync import AsyncFdatasync
from .commands import (
    PROTOCOL_VERSION,
    AppendEntriesRequest,
    AppendEntriesResponse,
    InstallSnapshotRequest,
    InstallSnapshotResponse,
    Request,
    RequestPreVoteRequest,
    RequestPreVoteResponse,
    RequestVoteRequest,
    RequestVoteResponse,
    Response,
    TimeoutNowRequest,
)
from .config import Config, ReloadableConfig
from .configuration import (
    Configuration,
    ConfigurationError,
    Server,
    ServerSuffrage,
    encode_configuration,
)
from .core import RaftCore
from .errors import (
    AbortedByRestoreError,
    CantBootstrapError,
    EnqueueTimeoutError,
    KeyNotFoundError,
    LeadershipLostError,
    NotLeaderError,
    RaftError,
    RaftShutdownError,
    TransportShutdownError,
)
from .futures import (
    ApplyFuture,
    CallbackApplyFuture,
    ConfigurationFuture,
    IndexFuture,
    RaftFuture,
    SnapshotFuture,
    fail_quietly,
    resolve,
)
from .interfaces import (
    FSM,
    RPC,
    LogStore,
    SnapshotMeta,
    SnapshotStore,
    StableStore,
    Transport,
)
from .log import Log, LogType
from .observer import (
    FailedHeartbeatObservation,
    LeaderChanges,
    LeaderObservation,
    Observation,
    Observer,
    PeerObservation,
    RaftState,
    RequestVoteObservation,
    ResumedHeartbeatObservation,
)
from .ready import (
    ChangeKind,
    ConfigurationChange,
    CoreConfig,
    HardState,
    Message,
    Ready,
    Reply,
    Role,
    SnapshotInfo,
    SnapshotInstall,
)

if TYPE_CHECKING:
    from types import TracebackType

logger = logging.getLogger(__name__)

KEY_CURRENT_TERM = b"CurrentTerm"
KEY_LAST_VOTE_TERM = b"LastVoteTerm"
KEY_LAST_VOTE_CAND = b"LastVoteCand"

_MAX_U64 = (1 << 64) - 1
_ROLE_STATE = {
    Role.FOLLOWER: RaftState.FOLLOWER,
    Role.CANDIDATE: RaftState.CANDIDATE,
    Role.LEADER: RaftState.LEADER,
}


# ---------------------------------------------------------------- writer thread


@dataclass(slots=True)
class _Job:
    """One Ready's writes, executed in order by the writer."""

    seq: int = 0
    hard_state: HardState | None = None
    compact_to: int = 0
    truncate_from: int = 0
    entries: list[Log] = field(default_factory=list)
    fn: Callable[[], None] | None = None


def _write_hard_state(stable: StableStore, hs: HardState) -> None:
    stable.set_uint64(KEY_CURRENT_TERM, hs.current_term)
    stable.set_uint64(KEY_LAST_VOTE_TERM, hs.last_vote_term)
    stable.set(KEY_LAST_VOTE_CAND, hs.last_vote_cand)


def _execute(jobs: Sequence[_Job], logs: LogStore, stable: StableStore) -> None:
    """Run jobs in order; consecutive plain appends become one store_logs call."""
    pending: list[Log] = []
    for job in jobs:
        if job.hard_state is not None or job.compact_to or job.truncate_from or job.fn:
            if pending:
                logs.store_logs(pending)
                pending = []
            if job.hard_state is not None:
                _write_hard_state(stable, job.hard_state)
            if job.compact_to:
                first = logs.first_index()
                if first and first <= job.compact_to:
                    logs.delete_range(first, job.compact_to)
            if job.truncate_from:
                last = logs.last_index()
                if last >= job.truncate_from:
                    logs.delete_range(job.truncate_from, last)
            if job.fn is not None:
                job.fn()
        if job.entries:
            if pending:
                pending.extend(job.entries)
            else:
                pending = list(job.entries)
    if pending:
        logs.store_logs(pending)


class _Writer:
    """A long-lived thread executing write jobs in order; reports completion on the loop."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        logs: LogStore,
        stable: StableStore,
        on_done: Callable[[int, BaseException | None], None],
        sync: Callable[[], None] | None = None,
    ) -> None:
        self._loop = loop
        self._logs = logs
        self._stable = stable
        self._on_done = on_done
        self._sync = sync  # a store with deferred syncs: make each batch durable
        self._q: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="raft-writer", daemon=True)
        self._thread.start()

    def submit(self, job: _Job) -> None:
        self._q.put(job)

    def stop(self) -> None:
        self._q.put(None)

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        q = self._q
        failed = False
        while True:
            item = q.get()
            jobs: list[_Job] = []
            stop = False
            while True:
                if item is None:
                    stop = True
                    break
                jobs.append(item)
                try:
                    item = q.get_nowait()
                except queue.Empty:
                    break
            if jobs and not failed:
                err: BaseException | None = None
                try:
                    _execute(jobs, self._logs, self._stable)
                    if self._sync is not None:
                        self._sync()
                except BaseException as e:  # reported to the node, which shuts down
                    err = e
                    failed = True
                try:
                    self._loop.call_soon_threadsafe(self._on_done, jobs[-1].seq, err)
                except RuntimeError:  # loop closed
                    return
            if stop:
                return


# ----------------------------------------------------------------- validation


def _u64(v: object) -> bool:
    return isinstance(v, int) and type(v) is not bool and 0 <= v <= _MAX_U64


def _opt_bytes(v: object) -> bool:
    return v is None or isinstance(v, bytes | bytearray)


def _validate_header(cmd: Any) -> str | None:
    if cmd.protocol_version != PROTOCOL_VERSION:
        return f"unsupported protocol version {cmd.protocol_version!r}"
    if not _opt_bytes(cmd.id) or not _opt_bytes(cmd.addr):
        return "header id/addr are not bytes"
    return None


def _validate_request(cmd: object) -> str | None:
    """Why ``cmd`` cannot be stepped, or None. Cheap type and range checks only."""
    t = type(cmd)
    if t is AppendEntriesRequest:
        ae = cast(AppendEntriesRequest, cmd)
        if not (
            _u64(ae.term)
            and _u64(ae.prev_log_entry)
            and _u64(ae.prev_log_term)
            and _u64(ae.leader_commit_index)
        ):
            return "term or index out of range"
        if not _opt_bytes(ae.leader):
            return "leader is not bytes"
        ents = ae.entries
        if ents is not None:
            if type(ents) is not list:
                return "entries is not a list"
            expect = ae.prev_log_entry + 1
            top = ae.term
            for e in ents:
                if type(e) is not Log:
                    return "entry is not a Log"
                et = e.term
                if e.index != expect or type(et) is not int or not 0 <= et <= top:
                    return f"entry index/term out of order at {e.index!r}"
                if type(e.type) is not LogType:
                    return f"entry {e.index} has a bad type"
                d = e.data
                if d is not None and type(d) is not bytes and not isinstance(d, bytes | bytearray):
                    return f"entry {e.index} data is not bytes"
                expect += 1
        return _validate_header(ae)
    if t is RequestVoteRequest:
        rv = cast(RequestVoteRequest, cmd)
        if not (_u64(rv.term) and _u64(rv.last_log_index) and _u64(rv.last_log_term)):
            return "term or index out of range"
        if not _opt_bytes(rv.candidate) or type(rv.leadership_transfer) is not bool:
            return "bad candidate or leadership_transfer"
        return _validate_header(rv)
    if t is RequestPreVoteRequest:
        pv = cast(RequestPreVoteRequest, cmd)
        if not (_u64(pv.term) and _u64(pv.last_log_index) and _u64(pv.last_log_term)):
            return "term or index out of range"
        return _validate_header(pv)
    if t is InstallSnapshotRequest:
        isr = cast(InstallSnapshotRequest, cmd)
        if not (
            _u64(isr.term)
            and _u64(isr.last_log_index)
            and _u64(isr.last_log_term)
            and _u64(isr.configuration_index)
            and _u64(isr.size)
        ):
            return "term, index or size out of range"
        if not _opt_bytes(isr.configuration) or not _opt_bytes(isr.leader):
            return "configuration or leader is not bytes"
        return _validate_header(isr)
    if t is TimeoutNowRequest:
        return _validate_header(cmd)
    return f"unknown request type {t.__name__}"


# ----------------------------------------------------------------- loading


@dataclass(slots=True)
class _Loaded:
    hard_state: HardState
    entries: list[Log]
    snapshot: SnapshotInfo | None
    restored: bool


def _get_u64(stable: StableStore, key: bytes) -> int:
    try:
        return stable.get_uint64(key)
    except KeyNotFoundError:
        return 0


def _load_hard_state(stable: StableStore) -> HardState:
    try:
        cand = stable.get(KEY_LAST_VOTE_CAND)
    except KeyNotFoundError:
        cand = b""
    return HardState(
        current_term=_get_u64(stable, KEY_CURRENT_TERM),
        last_vote_term=_get_u64(stable, KEY_LAST_VOTE_TERM),
        last_vote_cand=bytes(cand),
    )


def _load_entries(logs: LogStore) -> list[Log]:
    first, last = logs.first_index(), logs.last_index()
    if last == 0:
        return []
    return [logs.get_log(i) for i in range(max(first, 1), last + 1)]


def has_existing_state_sync(
    logs: LogStore, stable: StableStore, snaps: SnapshotStore | None
) -> bool:
    """hashicorp's HasExistingState, synchronous (call it off the event loop)."""
    if _get_u64(stable, KEY_CURRENT_TERM) > 0:
        return True
    if logs.last_index() > 0:
        return True
    return bool(snaps is not None and snaps.list())


async def has_existing_state(
    logs: LogStore, stable: StableStore, snaps: SnapshotStore | None = None
) -> bool:
    """True if the stores hold Raft state (term, log entries or snapshots)."""
    return await asyncio.to_thread(has_existing_state_sync, logs, stable, snaps)


def _bootstrap_sync(
    logs: LogStore, stable: StableStore, snaps: SnapshotStore | None, configuration: Configuration
) -> None:
    if has_existing_state_sync(logs, stable, snaps):
        raise CantBootstrapError()
    entry = Log(
        index=1,
        term=1,
        type=LogType.CONFIGURATION,
        data=encode_configuration(configuration),
    )
    stable.set_uint64(KEY_CURRENT_TERM, 1)
    logs.store_logs([entry])
    sync = getattr(logs, "sync", None)
    if callable(sync):  # a store whose syncs a running node defers
        sync()


async def bootstrap_cluster(
    config: Config,
    logs: LogStore,
    stable: StableStore,
    snaps: SnapshotStore | None,
    transport: Transport | None,
    configuration: Configuration,
) -> None:
    """Write the initial configuration into fresh stores (hashicorp's BootstrapCluster).

    Raises ConfigError / ConfigurationError for bad input and CantBootstrapError when the
    stores already hold state.
    """
    config.validate()
    configuration.validate()
    await asyncio.to_thread(_bootstrap_sync, logs, stable, snaps, configuration)


# ------------------------------------------------------------------- the node


class Raft:
    """One Raft member (hashicorp's ``*raft.Raft``); see the module docstring.

    ``Raft(config, fsm, log_store, stable_store, snapshot_store, transport)`` validates
    ``config`` (ConfigError) and does no I/O; ``await start()`` (or ``async with``) loads
    the stores and runs the node until ``await shutdown()``.
    """

    def __init__(
        self,
        config: Config,
        fsm: FSM,
        log_store: LogStore,
        stable_store: StableStore,
        snapshot_store: SnapshotStore | None,
        transport: Transport,
        *,
        local_id: str | None = None,
        seed: int | None = None,
    ) -> None:
        if local_id is not None:
            config = config.copy(local_id=local_id)
        config.validate()
        self._config = config
        self.local_id = config.local_id
        self._fsm = fsm
        self._logs = log_store
        self._stable = stable_store
        self._snaps = snapshot_store
        self._transport = transport
        self.local_addr = transport.local_addr()
        self._seed = seed
        self._inline = bool(getattr(log_store, "inline_safe", False)) and bool(
            getattr(stable_store, "inline_safe", False)
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._core: RaftCore | None = None
        self._state = RaftState.FOLLOWER
        self._started = False
        self._shutdown = False
        self._shutdown_done: asyncio.Future[None] | None = None
        # proposals waiting for the next flush: (type, data, future, deadline)
        self._proposals: deque[tuple[LogType, bytes | None, ApplyFuture, float]] = deque()
        self._futures: dict[int, IndexFuture[Any]] = {}
        self._others: set[asyncio.Future[Any]] = set()  # verify/transfer/config futures
        self._flush_scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when = float("inf")
        # writes
        self._writer: _Writer | None = None
        self._fsync: AsyncFdatasync | None = None
        self._thread_seq = 0  # last write seq handed to the writer thread
        self._thread_done = 0  # last one it reported
        self._write_seq = 0
        self._done_seq = 0
        self._hs_seq = 0  # seq of the last job with a hard state
        self._persist_marks: deque[tuple[int, int, int]] = deque()  # (seq, index, term)
        self._unstarted_jobs: list[_Job] = []  # numbered, not yet run or submitted
        self._writes_scheduled = False
        self._held_msgs: deque[tuple[int, Message]] = deque()
        self._held_replies: list[tuple[int, Reply]] = []
        self._failed: BaseException | None = None
        # incoming
        self._reader_task: asyncio.Task[None] | None = None
        ct = getattr(transport, "call_then", None)
        self._call_then: Callable[[str, Request, Callable[..., None]], None] | None = (
            ct if callable(ct) else None
        )
        self._in_flush = False
        self._installing = False
        # While a user restore runs, the core must get no input: inputs wait here.
        self._core_paused = False
        self._paused_inputs: list[Callable[[], None]] = []
        self._deferred_rpcs: deque[RPC] = deque()
        self._tasks: set[asyncio.Task[Any]] = set()
        # apply
        self._applied_index = 0
        self._shutdown_after = 0  # removed: shut down once applied through this index
        self._applying_paused = False
        self._apply_backlog: deque[Log] = deque()
        ab = getattr(fsm, "apply_batch", None)
        self._apply_batch: Callable[[list[Log]], Sequence[Any]] | None = (
            ab if callable(ab) else None
        )
        # observation
        self._observers: dict[int, Observer] = {}
        self._leader_changes: list[LeaderChanges] = []
        self._leader = ("", "")
        self._last_contact: float | None = None
        self._hb_failed: dict[str, float] = {}
        self._known_servers: dict[str, Server] = {}
        # snapshots
        self._snapshotting = False
        self._last_snapshot: SnapshotInfo | None = None
        self._auto_snapshot_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Load the stores (off the loop), restore the newest snapshot, and run."""
        if self._started:
            return
        self._started = True
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._shutdown_done = loop.create_future()
        loaded = await asyncio.to_thread(self._load_sync)
        if not self._inline:
            # before the core exists, so that nothing is written meanwhile; the store's
            # mode switch and the probe flush block: off the loop
            self._fsync = await asyncio.to_thread(self._start_async_fsync, loop)
        self._build_core(loaded)
        if not self._inline:
            sw = self._config.gil_switch_interval
            if sw is not None and sys.getswitchinterval() > sw:
                logger.info(
                    "raft %s: lowering the interpreter's GIL switch interval to %gs "
                    "(Config.gil_switch_interval)",
                    self.local_id,
                    sw,
                )
                sys.setswitchinterval(sw)
            sync = cast(Any, self._logs).sync if self._fsync else None
            self._writer = _Writer(loop, self._logs, self._stable, self._on_thread_written, sync)
        self._transport.set_heartbeat_handler(self._on_rpc)
        set_handler = getattr(self._transport, "set_rpc_handler", None)
        if callable(set_handler):
            set_handler(self._on_rpc)
        self._reader_task = loop.create_task(self._read_rpcs(), name=f"raft-rpc-{self.local_id}")
        self._auto_snapshot_task = loop.create_task(
            self._auto_snapshots(), name=f"raft-snap-{self.local_id}"
        )
        self._arm_timer()
        self._schedule_flush()  # the first Ready may repair the log (truncate / compact)
        logger.info(
            "raft %s started: term %d, last index %d, applied %d",
            self.local_id,
            self._c.term,
            self._c.last_index,
            self._applied_index,
        )

    def _load_sync(self) -> _Loaded:
        hs = _load_hard_state(self._stable)
        snap_info: SnapshotInfo | None = None
        restored = False
        if self._snaps is not None:
            for meta in self._snaps.list():
                try:
                    m, reader = self._snaps.open(meta.id)
                except Exception as e:
                    logger.warning(
                        "raft %s: snapshot %s not loadable: %s", self.local_id, meta.id, e
                    )
                    continue
                try:
                    if not self._config.no_snapshot_restore_on_start:
                        self._fsm.restore(reader)
                        restored = True
                except Exception as e:
                    logger.warning(
                        "raft %s: restore of snapshot %s failed: %s", self.local_id, m.id, e
                    )
                    continue
                finally:
                    with contextlib.suppress(Exception):
                        reader.close()
                snap_info = SnapshotInfo(m.index, m.term, m.configuration, m.configuration_index)
                break
        entries = _load_entries(self._logs)
        return _Loaded(hs, entries, snap_info, restored)

    def _core_config(self) -> CoreConfig:
        c = self._config
        return CoreConfig(
            local_id=self.local_id,
            local_addr=self.local_addr,
            heartbeat_timeout=c.heartbeat_timeout,
            election_timeout=c.election_timeout,
            commit_timeout=c.commit_timeout,
            leader_lease_timeout=c.leader_lease_timeout,
            max_append_entries=c.max_append_entries,
            pipeline=bool(self._transport.can_pipeline),
            pipeline_window=c.pipeline_window,
            pre_vote=bool(self._transport.can_prevote) and not c.pre_vote_disabled,
            trailing_logs=c.trailing_logs,
            shutdown_on_remove=c.shutdown_on_remove,
        )

    def _build_core(self, loaded: _Loaded) -> None:
        assert self._loop is not None
        rng = random.Random(self._seed)
        self._core = RaftCore(
            self._core_config(),
            rng,
            self._loop.time(),
            hard_state=loaded.hard_state,
            snapshot=loaded.snapshot,
            entries=loaded.entries,
        )
        self._last_snapshot = loaded.snapshot
        if loaded.snapshot is not None and loaded.restored:
            self._applied_index = loaded.snapshot.index
        self._known_servers = {s.id: s for s in self._core.latest_configuration.servers}

    @property
    def _c(self) -> RaftCore:
        core = self._core
        if core is None:
            raise RaftError("raft node is not started")
        return core

    async def __aenter__(self) -> Raft:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.shutdown()

    async def shutdown(self) -> None:
        """Stop the node (idempotent). Pending operations fail with RaftShutdownError.

        Queued writes are finished first. The transport is left open (it is the caller's).
        """
        if not self._started:
            self._shutdown = True
            self._state = RaftState.SHUTDOWN
            return
        assert self._shutdown_done is not None
        if self._shutdown:
            await asyncio.shield(self._shutdown_done)
            return
        self._shutdown = True
        old_state = self._state
        self._state = RaftState.SHUTDOWN
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._transport.set_heartbeat_handler(None)
        set_handler = getattr(self._transport, "set_rpc_handler", None)
        if callable(set_handler):
            set_handler(None)
        err = RaftShutdownError()
        while self._proposals:
            fail_quietly(self._proposals.popleft()[2], err)
        for f in list(self._futures.values()):
            fail_quietly(f, err)
        self._futures.clear()
        for of in list(self._others):
            fail_quietly(of, err)
        self._others.clear()
        # Answer what we still hold so that peers do not wait for a timeout.
        tse = TransportShutdownError()
        for _, rep in self._held_replies:
            cast(RPC, rep.token).respond(None, tse)
        self._held_replies.clear()
        self._held_msgs.clear()
        while self._deferred_rpcs:
            self._deferred_rpcs.popleft().respond(None, tse)
        current = asyncio.current_task()
        for t in [self._reader_task, self._auto_snapshot_task, *self._tasks]:
            if t is not None and t is not current and not t.done():
                t.cancel()
        self._run_writes()  # what was numbered is written before the store is let go
        if self._writer is not None:
            self._writer.stop()
            await asyncio.to_thread(self._writer.join)
        await self._stop_async_fsync()
        if old_state is RaftState.LEADER:
            for lc in self._leader_changes:
                lc.push(False)
        self._observe(RaftState.SHUTDOWN)
        for lc in list(self._leader_changes):
            lc.end()
        self._leader = ("", "")
        logger.info("raft %s shut down", self.local_id)
        resolve(self._shutdown_done, None)

    def _start_async_fsync(self, loop: asyncio.AbstractEventLoop) -> AsyncFdatasync | None:
        """Defer the store's syncs to one kernel-side fdatasync per batch, if possible
        (blocking: run in a thread)."""
        if not self._config.async_fsync or cast(object, self._logs) is not self._stable:
            return None
        logs: Any = self._logs
        if not getattr(logs, "can_defer_sync", False):
            return None
        try:
            logs.defer_sync(True)
        except Exception as e:
            logger.info("raft %s: store cannot defer syncs (%s): writer thread", self.local_id, e)
            return None
        try:
            return AsyncFdatasync(loop, logs.sync_fd())
        except OSError as e:
            logger.info("raft %s: no asynchronous fdatasync (%s): writer thread", self.local_id, e)
            logs.defer_sync(False)
            return None

    async def _stop_async_fsync(self) -> None:
        """Close the kernel flush; the store syncs what it holds and syncs every write again."""
        fsync, self._fsync = self._fsync, None
        if fsync is None:
            return
        await fsync.aclose()
        logs: Any = self._logs
        try:
            await asyncio.to_thread(logs.defer_sync, False)
        except Exception:
            logger.exception("raft %s: final sync of the store failed", self.local_id)

    # --------------------------------------------------------------- inputs

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            assert self._loop is not None
            self._loop.call_soon(self._flush)

    def _flush_now_or_soon(self) -> None:
        """Flush at once (an answer or a commit goes out in this loop pass) unless a
        flush is pending anyway (it batches this input) or we are inside one (a peer
        answered synchronously): never re-enter."""
        if self._flush_scheduled or self._in_flush:
            self._schedule_flush()
        else:
            self._flush()

    async def _read_rpcs(self) -> None:
        q = self._transport.consumer()
        while True:
            rpc = await q.get()
            self._on_rpc(rpc)

    def _on_rpc(self, rpc: RPC) -> None:
        if self._shutdown:
            rpc.respond(None, RaftShutdownError())
            return
        if self._installing:
            self._deferred_rpcs.append(rpc)
            return
        cmd = rpc.command
        why = _validate_request(cmd)
        if why is not None:
            logger.warning(
                "raft %s: dropping malformed request from transport: %s", self.local_id, why
            )
            rpc.respond(None, RaftError(f"malformed request: {why}"))
            if rpc.reader is not None:
                self._spawn(self._drain(rpc.reader))
            return
        if self._observers and isinstance(cmd, RequestVoteRequest | RequestPreVoteRequest):
            self._observe(RequestVoteObservation(cmd))
        assert self._loop is not None
        now = self._loop.time()
        if type(cmd) is AppendEntriesRequest:
            self._last_contact = now  # hashicorp's LastContact: last AppendEntries seen
        try:
            self._c.step(cmd, rpc, now)
        except Exception:
            logger.exception("raft %s: request %s could not be processed", self.local_id, cmd)
            rpc.respond(None, RaftError("request could not be processed"))
            if rpc.reader is not None:
                self._spawn(self._drain(rpc.reader))
        self._flush_now_or_soon()

    async def _drain(self, reader: IO[bytes]) -> None:
        def drain() -> None:
            try:
                while reader.read(1 << 20):
                    pass
            except Exception:
                pass
            with contextlib.suppress(Exception):
                reader.close()

        await asyncio.to_thread(drain)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        assert self._loop is not None
        t = self._loop.create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)
        return t

    # ---------------------------------------------------------------- timer

    def _arm_timer(self) -> None:
        if self._shutdown or self._core is None:
            return
        assert self._loop is not None
        when = self._core.next_deadline()
        if when >= self._timer_when - 1e-4 and self._timer is not None:
            return
        if self._timer is not None:
            self._timer.cancel()
        now = self._loop.time()
        if when == float("inf"):
            when = now + 1.0
        self._timer_when = when
        self._timer = self._loop.call_at(max(when, now), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_when = float("inf")
        if self._shutdown:
            return
        assert self._loop is not None
        if self._core_paused:
            self._paused_inputs.append(self._on_timer)
            return
        self._c.tick(self._loop.time())
        self._flush()
        self._arm_timer()

    # ---------------------------------------------------------------- flush

    def _take_proposals(self) -> None:
        props = self._proposals
        core = self._c
        assert self._loop is not None
        now = self._loop.time()
        n = min(len(props), self._config.max_batch_proposals)
        batch: list[tuple[LogType, bytes | None, ApplyFuture, float]] = []
        for _ in range(n):
            p = props.popleft()
            if p[3] and now > p[3]:
                fail_quietly(p[2], EnqueueTimeoutError())
                continue
            if p[2].done():  # cancelled by the caller before it reached the log
                continue
            batch.append(p)
        if props:
            self._schedule_flush()
        if not batch:
            return
        try:
            first = core.propose_batch([(p[0], p[1]) for p in batch], appended_at=time.time_ns())
        except RaftError as e:
            for p in batch:
                fail_quietly(p[2], type(e)(str(e)))
            return
        futs = self._futures
        i = first
        for p in batch:
            futs[i] = p[2]
            i += 1

    def _flush(self) -> None:
        if self._in_flush:
            self._flush_scheduled = False
            self._schedule_flush()
            return
        self._flush_scheduled = False
        if self._shutdown or self._core is None or self._core_paused:
            return
        if self._proposals:
            self._take_proposals()
        core = self._core
        rounds = 0
        self._in_flush = True
        try:
            while core.has_ready() and not self._shutdown:
                self._handle_ready(core.ready())
                rounds += 1
                if rounds > 1000:  # defensive: never spin forever on the loop
                    self._schedule_flush()
                    break
        finally:
            self._in_flush = False
        self._arm_timer()

    def _handle_ready(self, rd: Ready) -> None:
        # 1-2: writes
        has_writes = rd.hard_state is not None or rd.compact_to or rd.truncate_from or rd.entries
        job: _Job | None = None
        if has_writes:
            job = _Job(
                hard_state=rd.hard_state,
                compact_to=rd.compact_to,
                truncate_from=rd.truncate_from,
                entries=rd.entries,
            )
            self._number_write(job)
        # 3: send (what needs this write is held until it is done)
        if rd.messages:
            self._send_messages(rd.messages)
        if rd.replies:
            self._send_replies(rd.replies)
        if job is not None:
            self._start_write(job, soon=bool(rd.messages))
        # 4: on_persisted happens in _on_written, once the write is done (inline or thread)
        # 6 (part): soft state before apply so futures see the right errors
        if rd.soft_state is not None:
            self._on_soft_state(rd)
        if rd.leadership_lost_from:
            self._fail_from(rd.leadership_lost_from, LeadershipLostError)
        if rd.truncated_from:
            self._fail_from(rd.truncated_from, LeadershipLostError)
        if rd.restored_from:
            self._fail_from(rd.restored_from, AbortedByRestoreError)
        # a membership change's future waits for its entry: registered before the apply,
        # which may hold that entry already
        for token, res in rd.configuration_results:
            f = cast(IndexFuture[Any], token)
            self._others.discard(f)
            if isinstance(res, BaseException):
                fail_quietly(f, res)
            elif not f.done():
                self._futures[res] = f
        # 5: apply
        if rd.committed:
            if self._applying_paused:
                self._apply_backlog.extend(rd.committed)
            else:
                self._apply(rd.committed)
        # 6: notifications
        for token, ok in rd.verify_results:
            vf = cast(RaftFuture[None], token)
            self._others.discard(vf)
            if ok:
                resolve(vf, None)
            else:
                fail_quietly(vf, NotLeaderError())
        for token, terr in rd.transfer_results:
            tf = cast(RaftFuture[None], token)
            self._others.discard(tf)
            if terr is None:
                resolve(tf, None)
            else:
                fail_quietly(tf, terr)
        if rd.configuration_changed:
            self._on_configuration_changed()
        for inst in rd.snapshot_installs:
            self._start_install(inst)
        if rd.snapshot_installed is not None:
            self._last_snapshot = rd.snapshot_installed
        if rd.removed and self._config.shutdown_on_remove:
            # Not before the removal is applied here: the other voters may have
            # committed it before this node's own write of it was done, and the
            # future of the membership change would fail with the shutdown.
            self._shutdown_after = max(self._c.commit_index, 1)
        if self._shutdown_after and self._applied_index >= self._shutdown_after:
            self._shutdown_after = 0
            logger.info("raft %s removed from the configuration: shutting down", self.local_id)
            self._spawn(self.shutdown())

    # -------------------------------------------------------------- writing

    def _number_write(self, job: _Job) -> None:
        """Give the job its sequence number (before the messages that depend on it)."""
        self._write_seq += 1
        job.seq = seq = self._write_seq
        if job.hard_state is not None:
            self._hs_seq = seq
        if job.entries:
            last = job.entries[-1]
            self._persist_marks.append((seq, last.index, last.term))

    def _start_write(self, job: _Job, soon: bool) -> None:
        """Run the job (inline stores) or hand it to the writer thread, now or soon.

        Soon (``soon``: the Ready had messages to send) is a later callback of this
        loop iteration, after the com layer has written those messages (a leader's
        AppendEntries) to its socket: a writer thread woken earlier would take the
        GIL from the loop while they are sent, an inline write would hold them back
        for its fsync. Messages that need this write are held until it is done; with
        nothing else to send (a follower appending), the write starts at once.
        """
        self._unstarted_jobs.append(job)
        if not soon:
            self._run_writes()
        elif not self._writes_scheduled:
            self._writes_scheduled = True
            assert self._loop is not None
            self._loop.call_soon(self._run_scheduled_writes)

    def _run_scheduled_writes(self) -> None:
        self._writes_scheduled = False
        self._run_writes()

    def _run_writes(self) -> None:
        jobs = self._unstarted_jobs
        if not jobs:
            return
        self._unstarted_jobs = []
        if self._writer is not None and not self._writes_inline(jobs):
            self._thread_seq = jobs[-1].seq
            for job in jobs:
                self._writer.submit(job)
            return
        try:
            _execute(jobs, self._logs, self._stable)
        except BaseException as e:
            self._storage_failed(e)
            return
        if self._fsync is not None:
            self._fsync.sync_then(partial(self._on_written, jobs[-1].seq))
        else:
            self._on_written(jobs[-1].seq, None)

    def _writes_inline(self, jobs: list[_Job]) -> bool:
        """With deferred syncs: plain writes run on the loop unless the thread still has
        work (order) or the store's next sync checkpoints (slow: the thread's job)."""
        if self._fsync is None or self._thread_done < self._thread_seq:
            return False
        if getattr(self._logs, "checkpoint_due", False):
            return False
        return not any(j.compact_to or j.truncate_from or j.fn for j in jobs)

    def _on_thread_written(self, seq: int, err: BaseException | None) -> None:
        self._thread_done = seq
        self._on_written(seq, err)

    def _on_written(self, seq: int, err: BaseException | None) -> None:
        if err is not None:
            self._storage_failed(err)
            return
        if self._shutdown:
            return
        if self._core_paused:
            self._paused_inputs.append(partial(self._on_written, seq, None))
            return
        if seq <= self._done_seq:
            return  # a flush that a later one (of the writer thread) already covered
        self._done_seq = seq
        marks = self._persist_marks
        last: tuple[int, int, int] | None = None
        while marks and marks[0][0] <= seq:
            last = marks.popleft()
        if last is not None:
            self._c.on_persisted(last[1], last[2])
        self._release_held()
        self._schedule_flush()

    def _storage_failed(self, err: BaseException) -> None:
        if self._failed is not None:
            return
        self._failed = err
        logger.error("raft %s: storage write failed, shutting down: %r", self.local_id, err)
        self._spawn(self.shutdown())

    def _release_held(self) -> None:
        done = self._done_seq
        msgs = self._held_msgs
        while msgs and msgs[0][0] <= done:
            self._send(msgs.popleft()[1])
        if self._held_replies:
            keep: list[tuple[int, Reply]] = []
            for need, rep in self._held_replies:
                if need <= done:
                    cast(RPC, rep.token).respond(rep.response)
                else:
                    keep.append((need, rep))
            self._held_replies = keep

    # -------------------------------------------------------------- sending

    def _send_messages(self, messages: list[Message]) -> None:
        done = self._done_seq
        held = self._held_msgs
        for m in messages:
            need = self._hs_seq if type(m.request) is AppendEntriesRequest else self._write_seq
            if held:
                need = max(need, held[-1][0])
            if need <= done:
                self._send(m)
            else:
                held.append((need, m))

    def _send_replies(self, replies: list[Reply]) -> None:
        done = self._done_seq
        for r in replies:
            resp = r.response
            rpc = cast(RPC, r.token)
            early = False
            t = type(resp)
            if t is AppendEntriesResponse:
                cmd = rpc.command
                early = type(cmd) is AppendEntriesRequest and cmd.is_heartbeat()
            elif t is RequestVoteResponse or t is RequestPreVoteResponse:
                early = not cast(RequestVoteResponse, resp).granted
            elif t is InstallSnapshotResponse and rpc.reader is not None:
                self._spawn(self._drain(rpc.reader))  # always drain what the sender streams
            need = self._hs_seq if early else self._write_seq
            if need <= done:
                rpc.respond(resp)
            else:
                self._held_replies.append((need, r))

    def _send(self, m: Message) -> None:
        if self._call_then is not None and self._send_nowait(m):
            return
        req = m.request
        t = type(req)
        tr = self._transport
        call: Any
        if t is AppendEntriesRequest:
            call = tr.append_entries
        elif t is RequestVoteRequest:
            call = tr.request_vote
        elif t is RequestPreVoteRequest:
            call = tr.request_pre_vote
        elif t is TimeoutNowRequest:
            call = tr.timeout_now
        elif t is InstallSnapshotRequest:
            self._spawn(self._send_snapshot(m))
            return
        else:
            logger.error("raft %s: core produced unknown request %r", self.local_id, req)
            return
        # Tasks start in creation order, so a transport that hands the request over
        # before its first await keeps per-peer order (needed for pipelining).
        self._spawn(self._rpc(m, call))

    def _send_nowait(self, m: Message) -> bool:
        """Send through the transport's ``call_then`` (no task per request); False
        for what goes through the coroutine methods (InstallSnapshot streams)."""
        if type(m.request) is InstallSnapshotRequest:
            return False
        assert self._call_then is not None
        try:
            self._call_then(m.to_addr, m.request, partial(self._on_call_result, m))
        except Exception as e:
            self._on_send_failed(m, e)
        return True

    def _on_call_result(self, m: Message, resp: Any, error: BaseException | None) -> None:
        if error is not None:
            self._on_send_failed(m, error)
        else:
            self._on_send_ok(m, resp)

    async def _rpc(self, m: Message, call: Any) -> None:
        try:
            resp = await call(m.to_id, m.to_addr, m.request)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self._on_send_failed(m, e)
            return
        self._on_send_ok(m, resp)

    def _on_send_ok(self, m: Message, resp: Response) -> None:
        if self._shutdown:
            return
        if self._core_paused:
            self._paused_inputs.append(partial(self._on_send_ok, m, resp))
            return
        assert self._loop is not None
        now = self._loop.time()
        if self._hb_failed and m.to_id in self._hb_failed:
            del self._hb_failed[m.to_id]
            self._observe(ResumedHeartbeatObservation(m.to_id))
        try:
            self._c.on_response(m.to_id, m.request, resp, now)
        except Exception:
            logger.exception("raft %s: bad response from %s dropped", self.local_id, m.to_id)
        self._flush_now_or_soon()

    def _on_send_failed(self, m: Message, e: BaseException) -> None:
        if self._shutdown:
            return
        if self._core_paused:
            self._paused_inputs.append(partial(self._on_send_failed, m, e))
            return
        assert self._loop is not None
        now = self._loop.time()
        logger.debug(
            "raft %s: %s to %s failed: %r", self.local_id, type(m.request).__name__, m.to_id, e
        )
        if (
            self._state is RaftState.LEADER
            and type(m.request) is AppendEntriesRequest
            and m.to_id not in self._hb_failed
        ):
            self._hb_failed[m.to_id] = now
            try:
                last = self._c.last_contact(m.to_id) or 0.0
            except Exception:
                last = 0.0
            self._observe(FailedHeartbeatObservation(m.to_id, last))
        self._c.on_failure(m.to_id, m.request, now)
        self._schedule_flush()

    # ------------------------------------------------------------- applying

    def _apply(self, entries: list[Log]) -> None:
        if self._apply_batch is not None and len(entries) > 1:
            self._apply_batched(entries)
            return
        fsm_apply = self._fsm.apply
        futs = self._futures
        for log in entries:
            t = log.type
            if t is LogType.COMMAND:
                try:
                    resp = fsm_apply(log)
                except Exception as e:
                    logger.exception(
                        "raft %s: FSM.apply raised at index %d", self.local_id, log.index
                    )
                    resp = e
                f = futs.pop(log.index, None) if futs else None
                if f is not None and not f.done():
                    f.index = log.index
                    f.set_result(resp)
            else:
                f = futs.pop(log.index, None) if futs else None
                if f is not None and not f.done():
                    f.index = log.index
                    f.set_result(log.index if type(f) is IndexFuture else None)
            self._applied_index = log.index

    def _apply_batched(self, entries: list[Log]) -> None:
        """hashicorp's BatchingFSM: runs of COMMAND entries go to ``apply_batch`` at once."""
        assert self._apply_batch is not None
        futs = self._futures
        run: list[Log] = []

        def flush_run() -> None:
            if not run:
                return
            try:
                resps = list(self._apply_batch(run))  # type: ignore[misc]
                if len(resps) != len(run):
                    raise RaftError(
                        f"FSM.apply_batch returned {len(resps)} responses for {len(run)} entries"
                    )
            except Exception as e:
                logger.exception("raft %s: FSM.apply_batch raised", self.local_id)
                resps = [e] * len(run)
            for log, resp in zip(run, resps, strict=True):
                f = futs.pop(log.index, None) if futs else None
                if f is not None and not f.done():
                    f.index = log.index
                    f.set_result(resp)
                self._applied_index = log.index
            run.clear()

        for log in entries:
            if log.type is LogType.COMMAND:
                run.append(log)
                continue
            flush_run()
            f = futs.pop(log.index, None) if futs else None
            if f is not None and not f.done():
                f.index = log.index
                f.set_result(log.index if type(f) is IndexFuture else None)
            self._applied_index = log.index
        flush_run()

    def _fail_from(self, index: int, exc_type: type[RaftError]) -> None:
        futs = self._futures
        if not futs:
            return
        for i in [i for i in futs if i >= index]:
            fail_quietly(futs.pop(i), exc_type())

    # ---------------------------------------------------------- observation

    def _observe(self, data: Any) -> None:
        if not self._observers:
            return
        obs = Observation(self, data)
        for o in list(self._observers.values()):
            o.deliver(obs)

    def _on_soft_state(self, rd: Ready) -> None:
        ss = rd.soft_state
        assert ss is not None
        new_state = _ROLE_STATE[ss.role]
        old_state = self._state
        if new_state is not old_state:
            self._state = new_state
            logger.info(
                "raft %s: %s -> %s in term %d", self.local_id, old_state, new_state, ss.term
            )
            self._observe(new_state)
            if new_state is RaftState.LEADER:
                self._hb_failed.clear()
                for lc in self._leader_changes:
                    lc.push(True)
            elif old_state is RaftState.LEADER:
                for lc in self._leader_changes:
                    lc.push(False)
                err = NotLeaderError
                while self._proposals:
                    fail_quietly(self._proposals.popleft()[2], err())
        leader = (ss.leader_addr, ss.leader_id)
        if leader != self._leader:
            self._leader = leader
            self._observe(LeaderObservation(leader_addr=leader[0], leader_id=leader[1]))

    def _on_configuration_changed(self) -> None:
        latest = {s.id: s for s in self._c.latest_configuration.servers}
        old = self._known_servers
        self._known_servers = latest
        if not self._observers:
            return
        for sid, s in latest.items():
            if old.get(sid) != s:
                self._observe(PeerObservation(removed=False, peer=s))
        for sid, s in old.items():
            if sid not in latest:
                self._observe(PeerObservation(removed=True, peer=s))

    def register_observer(self, observer: Observer) -> None:
        """Start delivering observations to ``observer`` (hashicorp's RegisterObserver)."""
        self._observers[observer.id] = observer
        observer._deregister = self.deregister_observer

    def deregister_observer(self, observer: Observer) -> None:
        """Stop delivering observations to ``observer``."""
        self._observers.pop(observer.id, None)
        observer.close()

    def observe(
        self,
        filter_fn: Callable[[Observation], bool] | None = None,
        *,
        blocking: bool = False,
        maxsize: int = 1024,
    ) -> Observer:
        """A registered Observer; iterate it, and leave its ``async with`` to deregister."""
        o = Observer(None, blocking, filter_fn, maxsize=maxsize)
        self.register_observer(o)
        return o

    def leader_changes(self) -> LeaderChanges:
        """Async iterator of bools: True when this node becomes leader, False when not."""
        lc = LeaderChanges(self._leader_changes.remove)
        self._leader_changes.append(lc)
        if self._shutdown:
            lc.end()
        return lc

    # ------------------------------------------------------------ public API

    def _new_future(self, cls: type[Any]) -> Any:
        return cls(loop=self._loop or asyncio.get_running_loop())

    def _check_running(self, f: asyncio.Future[Any]) -> bool:
        if self._shutdown:
            fail_quietly(f, RaftShutdownError())
            return False
        if self._core_paused:
            fail_quietly(f, RaftError("a snapshot restore is in progress, retry later"))
            return False
        if self._core is None:
            fail_quietly(f, RaftError("raft node is not started"))
            return False
        return True

    def apply(self, data: bytes, timeout: float | None = None) -> ApplyFuture:
        """Propose a command; the future resolves to the FSM's response once applied.

        ``timeout`` bounds the time until the command is taken into the log (hashicorp's
        enqueue timeout: EnqueueTimeoutError); None waits as long as it takes.
        """
        return self._propose(LogType.COMMAND, data, timeout)

    def apply_then(
        self,
        data: bytes,
        on_done: Callable[[ApplyFuture], None],
        timeout: float | None = None,
    ) -> ApplyFuture:
        """``apply`` that calls ``on_done(future)`` as soon as the future completes.

        The call comes from inside the node (even before this returns, for a proposal
        refused at once), not one event-loop round later as with ``add_done_callback``:
        for a caller answering many proposals from callbacks. Keep ``on_done`` short.
        """
        return self._propose(LogType.COMMAND, data, timeout, on_done)

    def apply_log(self, log: Log, timeout: float | None = None) -> ApplyFuture:
        """Like apply, with a Log's data (the index/term/type of ``log`` are ignored)."""
        return self._propose(LogType.COMMAND, log.data, timeout)

    def barrier(self, timeout: float | None = None) -> ApplyFuture:
        """Resolves (to None) when everything before it is applied on this leader."""
        return self._propose(LogType.BARRIER, None, timeout)

    def _propose(
        self,
        t: LogType,
        data: bytes | None,
        timeout: float | None,
        on_done: Callable[[ApplyFuture], None] | None = None,
    ) -> ApplyFuture:
        loop = self._loop or asyncio.get_running_loop()
        f: ApplyFuture
        if on_done is None:
            f = ApplyFuture(loop=loop)
        else:
            f = CallbackApplyFuture(loop=loop)
            f.on_done = on_done
        if self._loop is None:
            fail_quietly(f, RaftShutdownError() if self._shutdown else RaftError("not started"))
            return f
        if self._shutdown:
            fail_quietly(f, RaftShutdownError())
            return f
        if self._state is not RaftState.LEADER:
            fail_quietly(f, NotLeaderError())
            return f
        if data is not None and not isinstance(data, bytes | bytearray | memoryview):
            fail_quietly(f, TypeError(f"apply data must be bytes, not {type(data).__name__}"))
            return f
        deadline = loop.time() + timeout if timeout else 0.0
        self._proposals.append(
            (t, bytes(data) if type(data) is not bytes and data is not None else data, f, deadline)
        )
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return f

    def verify_leader(self) -> RaftFuture[None]:
        """Resolves when a quorum confirms this node is still leader (else NotLeaderError)."""
        f: RaftFuture[None] = self._new_future(RaftFuture)
        if not self._check_running(f):
            return f
        if self._state is not RaftState.LEADER:
            fail_quietly(f, NotLeaderError())
            return f
        assert self._loop is not None
        self._others.add(f)
        self._c.verify_leader(f, self._loop.time())
        self._schedule_flush()
        return f

    def _change(
        self, kind: ChangeKind, server_id: str, address: str, prev_index: int, timeout: float | None
    ) -> IndexFuture[int]:
        f: IndexFuture[int] = self._new_future(IndexFuture)
        if not self._check_running(f):
            return f
        if not isinstance(server_id, str) or not server_id:
            fail_quietly(
                f, ConfigurationError(f"server id must be a non-empty string, got {server_id!r}")
            )
            return f
        if kind in (ChangeKind.ADD_VOTER, ChangeKind.ADD_NONVOTER) and (
            not isinstance(address, str) or not address
        ):
            fail_quietly(
                f, ConfigurationError(f"server address must be a non-empty string, got {address!r}")
            )
            return f
        if not _u64(prev_index):
            fail_quietly(
                f,
                ConfigurationError(
                    f"prev_index must be a non-negative integer, got {prev_index!r}"
                ),
            )
            return f
        try:
            idx = self._c.change_configuration(
                ConfigurationChange(kind, server_id, address, prev_index), f
            )
        except RaftError as e:
            fail_quietly(f, e)
            return f
        except ConfigurationError as e:
            fail_quietly(f, e)
            return f
        if idx is None:
            self._others.add(f)
        else:
            self._futures[idx] = f
        self._schedule_flush()
        return f

    def add_voter(
        self, server_id: str, address: str, prev_index: int = 0, timeout: float | None = None
    ) -> IndexFuture[int]:
        """Add (or promote) a voter; resolves to the configuration entry's index."""
        return self._change(ChangeKind.ADD_VOTER, server_id, address, prev_index, timeout)

    def add_nonvoter(
        self, server_id: str, address: str, prev_index: int = 0, timeout: float | None = None
    ) -> IndexFuture[int]:
        """Add a server that replicates but does not vote."""
        return self._change(ChangeKind.ADD_NONVOTER, server_id, address, prev_index, timeout)

    def remove_server(
        self, server_id: str, prev_index: int = 0, timeout: float | None = None
    ) -> IndexFuture[int]:
        """Remove a server from the configuration."""
        return self._change(ChangeKind.REMOVE_SERVER, server_id, "", prev_index, timeout)

    def demote_voter(
        self, server_id: str, prev_index: int = 0, timeout: float | None = None
    ) -> IndexFuture[int]:
        """Turn a voter into a nonvoter."""
        return self._change(ChangeKind.DEMOTE_VOTER, server_id, "", prev_index, timeout)

    def get_configuration(self) -> ConfigurationFuture:
        """Resolves to the latest configuration (``.index`` its log index)."""
        f: ConfigurationFuture = self._new_future(ConfigurationFuture)
        if self._core is None:
            fail_quietly(f, RaftShutdownError() if self._shutdown else RaftError("not started"))
            return f
        f.index = self._core.latest_configuration_index
        f.set_result(self._core.latest_configuration)
        return f

    def bootstrap_cluster(self, configuration: Configuration) -> RaftFuture[None]:
        """Start a new cluster with ``configuration`` (CantBootstrapError if state exists)."""
        f: RaftFuture[None] = self._new_future(RaftFuture)
        if not self._check_running(f):
            return f
        try:
            configuration.validate()
        except ConfigurationError as e:
            fail_quietly(f, e)
            return f
        core = self._c
        if core.term > 0 or core.last_index > 0 or core.snapshot is not None:
            fail_quietly(f, CantBootstrapError())
            return f
        self._others.add(f)
        self._spawn(self._bootstrap(configuration, f))
        return f

    async def _bootstrap(self, configuration: Configuration, f: RaftFuture[None]) -> None:
        try:
            await asyncio.to_thread(
                _bootstrap_sync, self._logs, self._stable, self._snaps, configuration
            )
            if self._shutdown:
                raise RaftShutdownError()
            loaded = await asyncio.to_thread(self._load_sync)
            self._build_core(loaded)
            self._on_configuration_changed()
            self._timer_when = float("inf")
            self._arm_timer()
            self._schedule_flush()
        except BaseException as e:
            self._others.discard(f)
            fail_quietly(f, e)
            if isinstance(e, asyncio.CancelledError):
                raise
            return
        self._others.discard(f)
        resolve(f, None)

    # --------------------------------------------------------------- status

    @property
    def state(self) -> RaftState:
        """FOLLOWER, CANDIDATE, LEADER or SHUTDOWN."""
        return self._state

    def leader(self) -> tuple[str, str]:
        """(address, id) of the known leader; empty strings when none is known."""
        return self._leader

    def applied_index(self) -> int:
        return self._applied_index

    def last_index(self) -> int:
        return self._core.last_index if self._core is not None else 0

    def commit_index(self) -> int:
        return self._core.commit_index if self._core is not None else 0

    def current_term(self) -> int:
        return self._core.term if self._core is not None else 0

    def last_contact(self) -> float | None:
        """Loop time of the last AppendEntries (or heartbeat) received; None if never."""
        return self._last_contact

    def stats(self) -> dict[str, str]:
        """hashicorp's Stats(): a map of strings."""
        core = self._core
        if core is None:
            return {"state": str(self._state)}
        cfg = core.latest_configuration
        snap = self._last_snapshot
        return {
            "state": str(self._state),
            "term": str(core.term),
            "last_log_index": str(core.last_index),
            "last_log_term": str(core.last_term),
            "commit_index": str(core.commit_index),
            "applied_index": str(self._applied_index),
            "fsm_pending": str(len(self._apply_backlog)),
            "last_snapshot_index": str(snap.index if snap else 0),
            "last_snapshot_term": str(snap.term if snap else 0),
            "latest_configuration": repr([(s.id, s.address, s.suffrage.name) for s in cfg]),
            "latest_configuration_index": str(core.latest_configuration_index),
            "num_peers": str(
                sum(1 for s in cfg if s.id != self.local_id and s.suffrage == ServerSuffrage.VOTER)
            ),
            "last_contact": self._last_contact_text(),
            "protocol_version": str(PROTOCOL_VERSION),
            "protocol_version_min": str(PROTOCOL_VERSION),
            "protocol_version_max": str(PROTOCOL_VERSION),
            "snapshot_version_min": "1",
            "snapshot_version_max": "1",
            "pending_proposals": str(len(self._proposals) + len(self._futures)),
        }

    def _last_contact_text(self) -> str:
        if self._state is RaftState.LEADER:
            return "0"
        if self._last_contact is None or self._loop is None:
            return "never"
        return f"{(self._loop.time() - self._last_contact) * 1e3:.3f}ms"

    # ------------------------------------------------------------- config

    def reloadable_config(self) -> ReloadableConfig:
        return self._config.reloadable()

    def reload_config(self, rc: ReloadableConfig) -> None:
        """Change the five reloadable settings on the running node (ConfigError if invalid)."""
        new = self._config.with_reloadable(rc)
        old = self._config
        self._config = new
        if (
            new.snapshot_interval != old.snapshot_interval
            and self._auto_snapshot_task is not None
            and not self._auto_snapshot_task.done()
            and self._loop is not None
        ):
            self._auto_snapshot_task.cancel()
            self._auto_snapshot_task = self._loop.create_task(
                self._auto_snapshots(), name=f"raft-snap-{self.local_id}"
            )
        core = self._core
        if core is not None:
            reload = getattr(core, "reload", None)
            if callable(reload):
                reload(
                    heartbeat_timeout=new.heartbeat_timeout,
                    election_timeout=new.election_timeout,
                    trailing_logs=new.trailing_logs,
                )
                return
            cc = getattr(core, "cfg", None)
            if isinstance(cc, CoreConfig):
                cc.heartbeat_timeout = new.heartbeat_timeout
                cc.election_timeout = new.election_timeout
                cc.trailing_logs = new.trailing_logs

    # -------------------------------------------------- leadership transfer

    def leadership_transfer(self) -> RaftFuture[None]:
        """Hand leadership to the most up-to-date voter; resolves when it took over."""
        return self._transfer(None)

    def leadership_transfer_to_server(self, server_id: str, address: str = "") -> RaftFuture[None]:
        """Hand leadership to ``server_id``; resolves when it took over."""
        if not isinstance(server_id, str) or not server_id:
            f: RaftFuture[None] = self._new_future(RaftFuture)
            fail_quietly(
                f, ConfigurationError(f"server id must be a non-empty string, got {server_id!r}")
            )
            return f
        return self._transfer(server_id)

    def _transfer(self, target: str | None) -> RaftFuture[None]:
        f: RaftFuture[None] = self._new_future(RaftFuture)
        if not self._check_running(f):
            return f
        if self._state is not RaftState.LEADER:
            fail_quietly(f, NotLeaderError())
            return f
        assert self._loop is not None
        self._others.add(f)
        try:
            self._c.transfer_leadership(f, self._loop.time(), target)
        except RaftError as e:
            self._others.discard(f)
            fail_quietly(f, e)
            return f
        self._schedule_flush()
        return f

    # -------------------------------------------------------------- restore

    async def restore(
        self, meta: SnapshotMeta, reader: IO[bytes], timeout: float | None = None
    ) -> None:
        """Replace the cluster's state with a user-supplied snapshot (hashicorp's Restore).

        Leader only. The snapshot is stored past the current log, the FSM restored from
        it, and the followers catch up through InstallSnapshot. Operations pending at that
        moment fail with AbortedByRestoreError. Returns once a no-op appended after the
        restore is applied (``timeout`` bounds that wait: TimeoutError).
        """
        if self._shutdown:
            raise RaftShutdownError()
        if self._core_paused or self._installing:
            raise RaftError("a snapshot restore is in progress, retry later")
        if self._state is not RaftState.LEADER:
            raise NotLeaderError()
        snaps = self._snaps
        if snaps is None:
            raise RaftError("no snapshot store configured")
        core = self._c
        self._flush()  # hand everything queued so far to the core first
        info: SnapshotInfo = core.user_snapshot_point(int(meta.index))
        self._core_paused = True
        self._installing = True  # incoming requests wait in arrival order
        self._applying_paused = True
        ok = False
        try:

            def store_and_restore() -> None:
                sink = snaps.create(
                    1, info.index, info.term, info.configuration, info.configuration_index
                )
                try:
                    while True:
                        chunk = reader.read(1 << 20)
                        if not chunk:
                            break
                        sink.write(chunk)
                except BaseException:
                    with contextlib.suppress(Exception):
                        sink.cancel()
                    raise
                sink.close()
                _m, r2 = snaps.open(sink.id())
                try:
                    self._fsm.restore(r2)
                finally:
                    r2.close()

            await asyncio.to_thread(store_and_restore)
            ok = True
        finally:
            self._core_paused = False
            self._installing = False
            self._applying_paused = False
            if ok and not self._shutdown:
                self._applied_index = info.index
                self._last_snapshot = info
                self._apply_backlog.clear()  # the restored state supersedes it
                core.on_user_snapshot_restored(info)
            elif not ok:
                logger.error(
                    "raft %s: user restore failed; the FSM may be partly restored", self.local_id
                )
                if self._apply_backlog:
                    backlog = list(self._apply_backlog)
                    self._apply_backlog.clear()
                    self._apply(backlog)
            queued, self._paused_inputs = self._paused_inputs, []
            for fn in queued:
                fn()
            if not self._shutdown:
                self._flush()
                while self._deferred_rpcs and not self._installing:
                    self._on_rpc(self._deferred_rpcs.popleft())
        if self._shutdown:
            raise RaftShutdownError()
        logger.info("raft %s: user snapshot restored at index %d", self.local_id, info.index)
        noop = self._propose(LogType.NOOP, None, None)
        if timeout is None:
            await noop
        else:
            async with asyncio.timeout(timeout):
                await asyncio.shield(noop)

    # ------------------------------------------------------------ snapshots

    def snapshot(self) -> SnapshotFuture:
        """Take a snapshot now; resolves to its meta (NothingNewToSnapshotError if none)."""
        opener = self._snaps.open if self._snaps is not None else None
        f = SnapshotFuture(self._loop or asyncio.get_running_loop(), opener)
        if not self._check_running(f):
            return f
        if self._snaps is None:
            fail_quietly(f, RaftError("no snapshot store configured"))
            return f
        if self._snapshotting:
            fail_quietly(f, RaftError("snapshot already in progress"))
            return f
        try:
            info = self._c.snapshot_point(self._applied_index)
        except RaftError as e:
            fail_quietly(f, e)
            return f
        try:
            fsm_snap = self._fsm.snapshot()
        except Exception as e:
            fail_quietly(f, RaftError(f"failed to snapshot the FSM: {e}"))
            return f
        self._snapshotting = True
        self._others.add(f)
        self._spawn(self._persist_snapshot(info, fsm_snap, f))
        return f

    async def _persist_snapshot(self, info: SnapshotInfo, fsm_snap: Any, f: SnapshotFuture) -> None:
        snaps = self._snaps
        assert snaps is not None

        def persist() -> SnapshotMeta:
            sink = snaps.create(
                1, info.index, info.term, info.configuration, info.configuration_index
            )
            try:
                fsm_snap.persist(sink)
            except BaseException:
                with contextlib.suppress(Exception):
                    sink.cancel()
                raise
            finally:
                with contextlib.suppress(Exception):
                    fsm_snap.release()
            sid = sink.id()
            for m in snaps.list():
                if m.id == sid:
                    return m
            return SnapshotMeta(
                sid, info.index, info.term, info.configuration, info.configuration_index
            )

        try:
            meta = await asyncio.to_thread(persist)
        except BaseException as e:
            self._snapshotting = False
            self._others.discard(f)
            logger.warning("raft %s: snapshot at %d failed: %r", self.local_id, info.index, e)
            fail_quietly(f, e if isinstance(e, RaftError) else RaftError(f"snapshot failed: {e}"))
            if isinstance(e, asyncio.CancelledError):
                raise
            return
        self._snapshotting = False
        self._others.discard(f)
        if self._shutdown:
            fail_quietly(f, RaftShutdownError())
            return
        self._last_snapshot = info
        try:
            self._c.on_snapshot_taken(info)
        except Exception:
            logger.exception("raft %s: core refused snapshot at %d", self.local_id, info.index)
        self._schedule_flush()
        logger.info("raft %s: snapshot %s taken at index %d", self.local_id, meta.id, info.index)
        resolve(f, meta)

    async def _auto_snapshots(self) -> None:
        rng = random.Random(self._seed)
        while not self._shutdown:
            interval = self._config.snapshot_interval
            await asyncio.sleep(interval * (1.0 + rng.random()))
            if self._shutdown or self._snaps is None or self._snapshotting:
                continue
            base = self._last_snapshot.index if self._last_snapshot else 0
            if self._applied_index - base < self._config.snapshot_threshold:
                continue
            f = self.snapshot()
            err = await f.error()
            if err is not None and not isinstance(err, RaftShutdownError):
                logger.info("raft %s: automatic snapshot skipped: %s", self.local_id, err)

    async def _send_snapshot(self, m: Message) -> None:
        req = cast(InstallSnapshotRequest, m.request)
        snaps = self._snaps
        if snaps is None:
            self._on_send_failed(m, RaftError("no snapshot store"))
            return

        def open_newest() -> tuple[SnapshotMeta, IO[bytes]]:
            for meta in snaps.list():
                try:
                    return snaps.open(meta.id)
                except Exception as e:
                    logger.warning("raft: snapshot %s not loadable: %s", meta.id, e)
            raise RaftError("no loadable snapshot to send")

        try:
            meta, reader = await asyncio.to_thread(open_newest)
        except Exception as e:
            self._on_send_failed(m, e)
            return
        try:
            if meta.index != req.last_log_index:
                req.last_log_index = meta.index
                req.last_log_term = meta.term
                req.configuration = encode_configuration(meta.configuration)
                req.configuration_index = meta.configuration_index
            req.size = meta.size
            resp = await self._transport.install_snapshot(m.to_id, m.to_addr, req, reader)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self._on_send_failed(m, e)
            return
        finally:
            with contextlib.suppress(Exception):
                reader.close()
        self._on_send_ok(m, resp)

    def _start_install(self, inst: SnapshotInstall) -> None:
        self._installing = True
        self._spawn(self._install(inst))

    async def _install(self, inst: SnapshotInstall) -> None:
        rpc = cast(RPC, inst.token)
        req = cast(InstallSnapshotRequest, inst.request)
        reader = rpc.reader
        snaps = self._snaps
        ok = False
        try:
            if reader is None:
                raise RaftError("install snapshot without data")
            if snaps is None:
                await self._drain(reader)
                raise RaftError("no snapshot store")
            from .configuration import decode_configuration

            configuration = decode_configuration(req.configuration)
            # Wait until every committed entry already handed to us is applied.
            self._applying_paused = True

            def store() -> SnapshotMeta:
                sink = snaps.create(
                    1, req.last_log_index, req.last_log_term, configuration, req.configuration_index
                )
                n = 0
                try:
                    while True:
                        chunk = reader.read(1 << 20)
                        if not chunk:
                            break
                        n += len(chunk)
                        sink.write(chunk)
                except BaseException:
                    with contextlib.suppress(Exception):
                        sink.cancel()
                    raise
                if n != req.size:
                    with contextlib.suppress(Exception):
                        sink.cancel()
                    raise RaftError(f"snapshot size mismatch: got {n} bytes, expected {req.size}")
                sink.close()
                sid = sink.id()
                meta, r2 = snaps.open(sid)
                try:
                    self._fsm.restore(r2)
                finally:
                    r2.close()
                return meta

            try:
                await asyncio.to_thread(store)
            finally:
                if not isinstance(reader, io.BytesIO):
                    await self._drain(reader)
            ok = True
        except asyncio.CancelledError:
            raise
        except Exception as e:
            logger.warning("raft %s: install snapshot failed: %s", self.local_id, e)
            if reader is not None:
                await self._drain(reader)
        finally:
            self._installing = False
        if self._shutdown:
            return
        if ok:
            self._applied_index = req.last_log_index
            self._apply_backlog = deque(
                e for e in self._apply_backlog if e.index > req.last_log_index
            )
        self._applying_paused = False
        try:
            self._c.on_snapshot_installed(rpc, ok)
        except Exception:
            logger.exception("raft %s: core refused installed snapshot", self.local_id)
        if self._apply_backlog:
            backlog = list(self._apply_backlog)
            self._apply_backlog.clear()
            self._apply(backlog)
        self._flush()
        while self._deferred_rpcs and not self._installing:
            self._on_rpc(self._deferred_rpcs.popleft())

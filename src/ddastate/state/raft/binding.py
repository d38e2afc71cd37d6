"""RaftBinding: the state synchronization binding of the seed, over ddastate.raft.

A member's Raft id and address are its identity id. ``open`` bootstraps a new group
(``services.state.bootstrap`` on a store without state) and waits for leadership, or
restarts from a store that holds state, or joins a running group by leader-forwarding
AddVoter (``av``) every 100 ms until a leader answers. ``propose_input`` applies on the
leader directly and leader-forwards (``ap``) from anywhere else, retrying retryable
errors every 100 ms until the caller's timeout. Observers are async iterators that never
block the node (see :mod:`ddastate.state.raft._observe`).

Leader-forwarded requests from other members are served by :meth:`_on_lfw` on the
leader, concurrently: an ``ap`` is proposed at once (so forwarded proposals share the
leader's group commit) and answered when the node's apply future resolves, which
happens only after the entry *and everything before it* is applied to the leader's FSM,
the reference's barrier condition, without a barrier entry per request. An ``av`` is
answered after an explicit barrier, as the reference does.

Differences from the reference, all in the caller's favour and invisible on the wire:

- a forwarded proposal whose leader changes (this member included) is retried at once
  instead of waiting out lfwTimeout. As in the reference, a retried proposal may be
  applied twice if the old leader committed it before it failed to answer; SET and
  DELETE are idempotent on the state, but observers then see the change twice;
- ``open`` returns only after a joining or restarting member applied the log it was
  given (up to startupTimeout), so its observers start from the group's state;
- a restarting member with stored state never bootstraps (the reference fails there);
- option values of the wrong type are errors (the reference silently takes defaults).

ddastate extensions (Go peers neither need nor notice them except ``pipeline`` and
``preVote``, which are for all-Python groups only and off by default): ``trailingLogs``,
``maxAppendEntries`` (entries per AppendEntries, 1..1024; 512 by default where the
reference leaves hashicorp's 64: a leader without pipelining has one AppendEntries in
flight per follower, so under load its batch size bounds the throughput; Go followers
accept any batch), ``pipeline``, ``preVote`` and ``asyncFsync`` (true by default: a
durable store is written on the event loop and each batch made durable by one
fdatasync the kernel does (Linux AIO), instead of a writer-thread hand-off per write;
false, or a kernel without it, keeps every write in the writer thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from ddastate._deadlines import DeadlineBuckets
from ddastate.raft.configuration import Configuration, Server, ServerSuffrage
from ddastate.raft.errors import (
    NotLeaderError,
    RaftError,
    RaftShutdownError,
    TransportShutdownError,
)
from ddastate.raft.observer import LeaderObservation, RaftState
from ddastate.state.api import Input, InputOp, MembershipChange

from . import codec
from ._observe import Observation
from .fsm import RaftFsm
from .messages import (
    AddVoterRequest,
    AddVoterResponse,
    ApplyRequest,
    ApplyResponse,
    RemoveServerRequest,
    RemoveServerResponse,
)
from .transport import (
    LfwRejectedError,
    LfwRPC,
    RaftTransport,
    RaftTransportConfig,
    RpcError,
)

if TYPE_CHECKING:
    from ddastate.com.api import ComApi
    from ddastate.config import Config
    from ddastate.raft.node import Raft

    from .store import RaftStore

logger = logging.getLogger(__name__)

RETRY_DELAY = 0.1
"""Seconds between attempts of a retried operation (the reference's backoff: 100 ms)."""

_NS = 1_000_000_000

T = TypeVar("T")


class StateBindingError(Exception):
    """A state binding operation failed (the message says why)."""


class BindingNotOpenError(StateBindingError):
    """The binding is not open (never opened, or closed)."""


@dataclass(slots=True)
class BindingOptions:
    """The options of ``services.state.opts`` in seconds/bytes (the YAML gives milliseconds)."""

    debug: bool = False
    startup_timeout: float = 10.0
    lfw_timeout: float = 20.0
    rpc_timeout: float = 1.0
    heartbeat_timeout: float = 1.0
    election_timeout: float = 1.0
    install_snapshot_timeout_scale: int = 256 * 1024
    snapshot_interval: float = 120.0
    snapshot_threshold: int = 8192
    trailing_logs: int = 10240
    max_append_entries: int = 512
    pipeline: bool = False
    pre_vote: bool = False
    async_fsync: bool = True

    @classmethod
    def from_opts(cls, opts: Mapping[str, Any] | None) -> BindingOptions:
        """Read the reference's option names; a wrong type or value raises StateBindingError.

        Durations are integer milliseconds as in the reference; 0 for rpcTimeout,
        installSnapshotTimeoutScale, startupTimeout and lfwTimeout means the default.
        """
        o = cls()
        if not opts:
            return o

        def ms(name: str, default: float, zero_default: bool) -> float:
            v = opts.get(name)
            if v is None:
                return default
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise StateBindingError(
                    f"services.state.opts.{name}: expected milliseconds as an integer, got {v!r}"
                )
            if v < 0:
                raise StateBindingError(
                    f"services.state.opts.{name}: must not be negative, got {v}"
                )
            if v == 0 and zero_default:
                return default
            return float(v) / 1000.0

        def count(name: str, default: int, zero_default: bool) -> int:
            v = opts.get(name)
            if v is None:
                return default
            if isinstance(v, bool) or not isinstance(v, int):
                raise StateBindingError(
                    f"services.state.opts.{name}: expected an integer, got {v!r}"
                )
            if v < 0:
                raise StateBindingError(
                    f"services.state.opts.{name}: must not be negative, got {v}"
                )
            if v == 0 and zero_default:
                return default
            return v

        def flag(name: str, default: bool = False) -> bool:
            v = opts.get(name, default)
            if v is None:
                return default
            if not isinstance(v, bool):
                raise StateBindingError(
                    f"services.state.opts.{name}: expected true or false, got {v!r}"
                )
            return v

        o.debug = flag("debug")
        o.pipeline = flag("pipeline")
        o.pre_vote = flag("preVote")
        o.async_fsync = flag("asyncFsync", True)
        o.startup_timeout = ms("startupTimeout", o.startup_timeout, True)
        o.lfw_timeout = ms("lfwTimeout", o.lfw_timeout, True)
        o.rpc_timeout = ms("rpcTimeout", o.rpc_timeout, True)
        o.heartbeat_timeout = ms("heartbeatTimeout", o.heartbeat_timeout, False)
        o.election_timeout = ms("electionTimeout", o.election_timeout, False)
        o.snapshot_interval = ms("snapshotInterval", o.snapshot_interval, False)
        o.install_snapshot_timeout_scale = count(
            "installSnapshotTimeoutScale", o.install_snapshot_timeout_scale, True
        )
        o.snapshot_threshold = count("snapshotThreshold", o.snapshot_threshold, False)
        o.trailing_logs = count("trailingLogs", o.trailing_logs, False)
        o.max_append_entries = count("maxAppendEntries", o.max_append_entries, True)
        return o


def _encode_input(inp: Input) -> bytes:
    """The proposal's bytes; StateBindingError names what is wrong with a bad Input."""
    if type(inp) is Input:
        op, key, value = inp.op, inp.key, inp.value
        if (
            type(key) is str
            and (value is None or type(value) is bytes)
            and (op == 1 or op == 2)
            and isinstance(op, int)
        ):
            try:
                return codec.encode_input_fields(int(op), key, value)
            except UnicodeEncodeError:
                pass  # the general path below reports it
    _check_input(inp)
    return codec.encode_msgpack(inp)


class _LeaderChange:
    """The forwarded requests waiting under one known leader; fired when it changes.

    A set rather than callbacks on a future: 1024 forwarded proposals in flight made
    ``remove_done_callback`` (a scan of every callback) a fifth of a follower's CPU.
    """

    __slots__ = ("waiting",)

    def __init__(self) -> None:
        self.waiting: set[Callable[[], None]] = set()

    def fire(self) -> None:
        for abort in list(self.waiting):
            abort()
        self.waiting.clear()


class _DeadlineTimers(DeadlineBuckets[asyncio.Future[Any]]):
    """Cancels each proposal's future at its deadline unless done (1 ms buckets)."""

    def __init__(self) -> None:
        super().__init__(self._expire)
        self._expired: set[asyncio.Future[Any]] = set()

    def expired(self, fut: asyncio.Future[Any]) -> bool:
        """True (once) when ``fut`` was cancelled because its deadline passed."""
        if fut in self._expired:
            self._expired.discard(fut)
            return True
        return False

    def _expire(self, fut: asyncio.Future[Any]) -> None:
        if not fut.done():
            self._expired.add(fut)
            fut.cancel()


def _check_input(inp: Input) -> None:
    if not isinstance(inp, Input):
        raise StateBindingError(f"propose_input expects an Input, got {type(inp).__name__}")
    if not isinstance(inp.key, str):
        raise StateBindingError(f"Input.key must be a str, got {type(inp.key).__name__}")
    if not isinstance(inp.op, int) or int(inp.op) not in (0, 1, 2):
        raise StateBindingError(f"Input.op must be an InputOp, got {inp.op!r}")
    if inp.value is not None and not isinstance(inp.value, bytes | bytearray | memoryview):
        raise StateBindingError(
            f"Input.value must be bytes or None, got {type(inp.value).__name__}"
        )


class RaftBinding:
    """The Raft state synchronization binding (implements ``ddastate.state.api.StateApi``)."""

    def __init__(self) -> None:
        self._id = ""
        self._raft: Raft | None = None
        self._store: RaftStore | None = None
        self._fsm: RaftFsm | None = None
        self._transport: RaftTransport | None = None
        self._opts = BindingOptions()
        self._open_lock = asyncio.Lock()
        self._closing = False
        self._state_obs: dict[Observation[Input], int] = {}
        self._member_obs: dict[Observation[MembershipChange], int] = {}
        self._lfw_tasks: set[asyncio.Task[None]] = set()
        self._leader_change: _LeaderChange | None = None
        self._leader_watch: asyncio.Task[None] | None = None
        self._deadlines = _DeadlineTimers()

    # ------------------------------------------------------------------ accessors

    def node(self) -> Raft | None:
        """The Raft node (for tests and status displays); None unless open."""
        return self._raft

    def node_id(self) -> str:
        """This member's Raft id (its identity id); "" before the first open."""
        return self._id

    @property
    def is_open(self) -> bool:
        return self._raft is not None and not self._closing

    def fsm(self) -> RaftFsm | None:
        """The replicated dictionary (for tests)."""
        return self._fsm

    def transport(self) -> RaftTransport | None:
        return self._transport

    def options(self) -> BindingOptions:
        return self._opts

    # ----------------------------------------------------------------- open/close

    async def open(self, cfg: Config, com: ComApi) -> None:
        """Bootstrap, restart or join, and return once this member is part of the group."""
        async with self._open_lock:
            if self._raft is not None and not self._closing:
                return
            await self._open(cfg, com)

    async def _open(self, cfg: Config, com: ComApi) -> None:
        from ddastate.raft.config import Config as RaftConfig
        from ddastate.raft.node import Raft, has_existing_state

        from .store import RaftStore

        st = cfg.services.state
        opts = BindingOptions.from_opts(st.opts)
        self._opts = opts
        node_id = cfg.identity.id
        if not node_id:
            raise StateBindingError("identity.id must not be empty")
        if opts.debug:
            for name in ("ddastate.raft", "ddastate.state"):
                logging.getLogger(name).setLevel(logging.DEBUG)
        logger.info("opening Raft state synchronization binding %s", node_id)

        rc = RaftConfig(
            local_id=node_id,
            heartbeat_timeout=opts.heartbeat_timeout,
            election_timeout=opts.election_timeout,
            # As the reference: fewer commit-only AppendEntries to idle followers.
            commit_timeout=opts.heartbeat_timeout / 10,
            snapshot_interval=opts.snapshot_interval,
            snapshot_threshold=opts.snapshot_threshold,
            trailing_logs=opts.trailing_logs,
            max_append_entries=opts.max_append_entries,
            # hashicorp's 500 ms, but never above the heartbeat timeout (its validation rule).
            leader_lease_timeout=min(0.5, opts.heartbeat_timeout),
            async_fsync=opts.async_fsync,
        )
        try:
            rc.validate()
        except RaftError as e:
            raise StateBindingError(f"services.state.opts: {e}") from e

        store = await asyncio.to_thread(RaftStore, st.store)
        try:
            existing = await has_existing_state(store, store, store.snapshot_store)
            transport = RaftTransport(
                RaftTransportConfig(
                    timeout=opts.rpc_timeout,
                    timeout_scale=opts.install_snapshot_timeout_scale,
                    pipeline=opts.pipeline,
                    prevote=opts.pre_vote,
                ),
                node_id,
                com,
            )
            fsm = RaftFsm()
            raft = Raft(rc, fsm, store, store, store.snapshot_store, transport)
        except BaseException:
            await asyncio.to_thread(store.close, False)
            raise

        self._id = node_id
        self._store = store
        self._fsm = fsm
        self._transport = transport
        self._closing = False
        try:
            await transport.start()
            transport.set_lfw_handler(self._on_lfw, gate=self._is_leader)
            await raft.start()
            self._raft = raft
            self._leader_change = _LeaderChange()
            self._leader_watch = asyncio.create_task(self._watch_leader(raft))
            await asyncio.sleep(0)  # let the watcher register before anything waits on it
            if existing:
                await self._rejoin(raft)
            elif st.bootstrap:
                await self._bootstrap(raft)
            else:
                await self._join()
        except BaseException:
            self._raft = raft
            with contextlib.suppress(Exception):
                await self._teardown()
            raise
        logger.info("opened Raft state synchronization binding %s", node_id)

    async def _watch_leader(self, raft: Raft) -> None:
        """Fire (and renew) ``_leader_change`` whenever the known leader changes.

        A forwarded proposal waits for the leader's answer or for this, so a change of
        leader (this member included) retries at once instead of after lfwTimeout.
        """
        try:
            async with raft.observe(lambda o: isinstance(o.data, LeaderObservation)) as obs:
                async for _ in obs:
                    change, self._leader_change = self._leader_change, _LeaderChange()
                    if change is not None:
                        change.fire()
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.warning("leader-change watch ended", exc_info=True)

    def _is_leader(self) -> bool:
        raft = self._raft
        return raft is not None and raft.state is RaftState.LEADER

    async def _bootstrap(self, raft: Raft) -> None:
        conf = Configuration((Server(self._id, self._id, ServerSuffrage.VOTER),))
        try:
            async with asyncio.timeout(self._opts.startup_timeout):
                async with raft.leader_changes() as changes:
                    await raft.bootstrap_cluster(conf)
                    if raft.state is not RaftState.LEADER:
                        async for became_leader in changes:
                            if became_leader:
                                break
                            if raft.state is RaftState.SHUTDOWN:
                                raise StateBindingError("Raft node shut down while bootstrapping")
        except TimeoutError:
            raise StateBindingError(
                f"timeout on bootstrapping Raft node as a leader "
                f"(startupTimeout {self._opts.startup_timeout * 1000:.0f} ms)"
            ) from None

    async def _rejoin(self, raft: Raft) -> None:
        conf = await raft.get_configuration()
        if conf.get(self._id) is not None:
            logger.info("restarted from stored state; member of %d-server group", len(conf))
            # Its stored configuration says it is a member, but it may have been removed
            # without learning it (a member that left gracefully): it asks to be added
            # again unless a leader contacts it first (or it becomes the leader itself).
            await self._join(until_led=True)
            # Apply what the log already holds before returning, so that observers start
            # from the restored state rather than replaying history from an empty one.
            await self._catch_up(raft.last_index())
            return
        logger.info("restarted from stored state but not in the configuration; joining")
        await self._join()

    def _led(self) -> bool:
        """This member is the leader or hears from one (so it is in the configuration)."""
        raft = self._raft
        if raft is None:
            return False
        return raft.state is RaftState.LEADER or bool(raft.leader()[1])

    async def _join(self, until_led: bool = False) -> None:
        transport = self._transport
        assert transport is not None
        req = AddVoterRequest(server_id=self._id, server_address=self._id, timeout=0)
        while True:
            if until_led and self._led():
                return
            try:
                done, resp = await self._abortable(
                    transport.lfw_add_voter(req, self._opts.lfw_timeout)
                )
                if done:
                    assert resp is not None
                    await self._catch_up(resp.index)
                    return
                continue  # the leader changed: look again at once
            except TimeoutError:
                logger.debug("no leader answered the join request; retrying")
            except RpcError as e:
                if not e.retryable:
                    raise StateBindingError(f"joining the state group failed: {e}") from e
                logger.debug("join request refused for now (%s); retrying", e)
            except TransportShutdownError:
                raise BindingNotOpenError("binding closed while joining") from None
            except Exception as e:
                if getattr(e, "retryable", False):
                    logger.debug("join request not sent (%s); retrying", e)
                else:
                    raise
            await asyncio.sleep(RETRY_DELAY)

    async def _abortable(self, coro: Coroutine[Any, Any, T]) -> tuple[bool, T | None]:
        """Await ``coro`` in this task; (False, None) if the known leader changed meanwhile.

        The task cancels itself when the leader changes (no extra task per request) and
        turns that cancellation into the (False, None) result.
        """
        change = self._leader_change
        task = asyncio.current_task()
        state = [0]  # 0 waiting, 1 aborted by a leader change, 2 finished

        def abort() -> None:
            if state[0] == 0 and task is not None and not task.done():
                state[0] = 1
                task.cancel()

        if change is not None and task is not None:
            change.waiting.add(abort)
        try:
            return True, await coro
        except asyncio.CancelledError:
            if state[0] == 1 and task is not None and task.uncancel() == 0:
                return False, None
            raise
        finally:
            if state[0] == 0:
                state[0] = 2
            if change is not None:
                change.waiting.discard(abort)

    def _forward_then(
        self, transport: RaftTransport, cmd: bytes, timeout: float
    ) -> tuple[asyncio.Future[ApplyResponse | None], Callable[[], None]]:
        """Forward one proposal through the transport's callback path.

        Returns a future and a function that drops the request (for a caller that stops
        waiting). The future gets the leader's ApplyResponse, None when the known leader
        changes first, or the request's error. One future per proposal and no chain of
        coroutines: a follower forwarding many proposals pays little beyond the message.
        """
        fut: asyncio.Future[ApplyResponse | None] = asyncio.get_running_loop().create_future()
        change = self._leader_change

        def on_done(resp: ApplyResponse | None, error: BaseException | None) -> None:
            if change is not None:
                change.waiting.discard(abort)
            if fut.done():
                return
            if error is not None:
                fut.set_exception(error)
            else:
                fut.set_result(resp)

        def abort() -> None:
            forget()
            if not fut.done():
                fut.set_result(None)

        def drop() -> None:
            if change is not None:
                change.waiting.discard(abort)
            forget()

        forget = transport.lfw_apply_then(ApplyRequest(command=cmd, timeout=0), timeout, on_done)
        if change is not None:
            change.waiting.add(abort)
        return fut, drop

    async def _catch_up(self, index: int) -> None:
        """Wait (up to startupTimeout) until this member applied the log up to ``index``.

        So that a member that just joined observes the group's current state, not the
        empty state it started with followed by the history.
        """
        raft = self._raft
        if raft is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._opts.startup_timeout
        while raft.applied_index() < index:
            if loop.time() >= deadline or raft.state is RaftState.SHUTDOWN:
                logger.warning(
                    "not caught up to index %d within startupTimeout (applied %d)",
                    index,
                    raft.applied_index(),
                )
                return
            await asyncio.sleep(0.005)

    async def close(self) -> None:
        """Leave the group (the leader removes itself; a follower asks the leader); keep storage."""
        async with self._open_lock:
            if self._raft is None or self._closing:
                return
            self._closing = True
            raft = self._raft
            transport = self._transport
            assert transport is not None
            try:
                if raft.state is RaftState.LEADER:
                    try:
                        async with asyncio.timeout(self._opts.startup_timeout):
                            await raft.remove_server(self._id, 0, None)
                    except (RaftError, TimeoutError) as e:
                        logger.info("leader could not remove itself: %s", e)
                else:
                    try:
                        await transport.lfw_remove_server(
                            RemoveServerRequest(server_id=self._id, timeout=0),
                            transport.timeout(),
                        )
                    except Exception as e:
                        logger.info("leader did not confirm removal: %s", e)
            finally:
                await self._teardown()
            logger.info("closed Raft state synchronization binding %s", self._id)

    async def _teardown(self) -> None:
        self._closing = True
        raft, self._raft = self._raft, None
        transport = self._transport
        store = self._store
        for t in list(self._lfw_tasks):
            t.cancel()
        watch, self._leader_watch = self._leader_watch, None
        if watch is not None:
            watch.cancel()
        change, self._leader_change = self._leader_change, None
        if change is not None:
            change.fire()
        if raft is not None:
            try:
                await raft.shutdown()
            except Exception:
                logger.debug("node shutdown failed", exc_info=True)
        if transport is not None:
            await transport.close()
        for sobs, oid in list(self._state_obs.items()):
            if self._fsm is not None:
                self._fsm.remove_state_change_observer(oid)
            sobs.end()
        self._state_obs.clear()
        for mobs, mid in list(self._member_obs.items()):
            if store is not None:
                store.remove_membership_change_observer(mid)
            mobs.end()
        self._member_obs.clear()
        if store is not None:
            try:
                await asyncio.to_thread(store.close, False)
            except Exception:
                logger.warning("closing the Raft store failed", exc_info=True)

    # -------------------------------------------------------------------- propose

    async def propose_input(self, input: Input, timeout: float | None = None) -> None:
        """Propose ``input``; returns once it is committed and applied on the leader.

        Raises BindingNotOpenError at once when not open, TimeoutError when ``timeout``
        (seconds; None = no limit) passes, StateBindingError for a refused input.
        """
        raft = self._raft
        if raft is None or self._closing:
            raise BindingNotOpenError(f"propose_input {input!r} failed: binding is not open")
        cmd = _encode_input(input)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            raft = self._raft
            if raft is None or self._closing:
                raise BindingNotOpenError(f"propose_input {input!r} failed: binding closed")
            retry_reason: str | None = None
            forward = raft.state is not RaftState.LEADER
            if not forward:
                # applied here, in this coroutine: a frame less on every leader proposal
                fut = raft.apply(cmd)
                bucket = None if deadline is None else self._deadlines.add(loop, fut, deadline)
                try:
                    resp = await fut
                except asyncio.CancelledError:
                    expired = bucket is not None and self._deadlines.expired(fut)
                    task = asyncio.current_task()
                    if not expired or (task is not None and task.cancelling()):
                        raise  # the caller cancelled (maybe as the deadline passed): keep it
                    raise TimeoutError("propose_input timed out waiting for the commit") from None
                except NotLeaderError:
                    forward = True  # lost leadership meanwhile
                except RaftShutdownError:
                    if self._closing:
                        raise BindingNotOpenError("binding closed") from None
                    retry_reason = "raft is shut down"
                except RaftError as e:
                    retry_reason = str(e)
                else:
                    if isinstance(resp, Exception):  # an FsmError returned by the FSM
                        raise StateBindingError(str(resp))
                    return
                finally:
                    if bucket is not None:
                        bucket.discard(fut)
            if forward:
                retry_reason = await self._forward_once(cmd, deadline)
                if retry_reason is None:
                    return
            if self._raft is None or self._closing:
                raise BindingNotOpenError(f"propose_input {input!r} failed: binding closed")
            if deadline is not None and loop.time() + RETRY_DELAY >= deadline:
                raise TimeoutError(f"propose_input {input!r} timed out: {retry_reason}")
            await asyncio.sleep(RETRY_DELAY)

    async def _forward_once(self, cmd: bytes, deadline: float | None) -> str | None:
        """One leader-forwarded attempt; None on success, else why it should be retried."""
        transport = self._transport
        if transport is None:
            raise BindingNotOpenError("binding closed")
        loop = asyncio.get_running_loop()
        t = self._opts.lfw_timeout
        if deadline is not None:
            t = min(t, deadline - loop.time())
            if t <= 0:
                raise TimeoutError("propose_input timed out")
        try:
            if transport.can_call_back:
                fut, drop = self._forward_then(transport, cmd, t)
                try:
                    resp = await fut
                except asyncio.CancelledError:
                    drop()
                    raise
            else:
                done, resp = await self._abortable(
                    transport.lfw_apply(ApplyRequest(command=cmd, timeout=0), t)
                )
                if not done:
                    resp = None
        except TimeoutError:
            return "no leader answered"
        except RpcError as e:
            if e.retryable:
                return str(e)
            raise StateBindingError(str(e)) from e
        except TransportShutdownError:
            raise BindingNotOpenError("binding closed") from None
        except Exception as e:
            if getattr(e, "retryable", False):
                return str(e)
            raise
        if resp is None:
            return "the leader changed"
        if resp.response is not None:
            # A Go leader whose FSM rejected the input answers success with a non-nil
            # ApplyResponse.Response (non-retryable, as in the reference).
            raise StateBindingError(f"the leader's FSM rejected the input: {resp.response}")
        return None

    # -------------------------------------------------------- leader forwarding

    def _on_lfw(self, rpc: LfwRPC) -> None:
        raft = self._raft
        if raft is None or self._closing:
            rpc.respond(None, NotLeaderError())
            return
        cmd = rpc.command
        if isinstance(cmd, ApplyRequest):
            data = cmd.command
            try:
                if codec.decode_input_fields(data or b"") is None:  # not the canonical form
                    codec.decode_msgpack(data or b"", Input)
            except codec.CodecError as e:
                logger.warning("forwarded input from %s does not decode: %s", rpc.source, e)
                rpc.respond(None, LfwRejectedError(f"input does not decode: {e}"))
                return
            try:
                raft.apply_then(
                    data or b"",
                    partial(_answer_apply, rpc),
                    cmd.timeout / _NS if cmd.timeout > 0 else None,
                )
            except RaftError as e:
                rpc.respond(None, e)
            return
        task = asyncio.ensure_future(self._serve_membership(raft, rpc))
        self._lfw_tasks.add(task)
        task.add_done_callback(self._lfw_tasks.discard)

    async def _serve_membership(self, raft: Raft, rpc: LfwRPC) -> None:
        cmd = rpc.command
        try:
            if isinstance(cmd, AddVoterRequest):
                if not cmd.server_id or not cmd.server_address:
                    rpc.respond(None, LfwRejectedError("AddVoter needs a server id and address"))
                    return
                t = cmd.timeout / _NS if cmd.timeout > 0 else None
                f = raft.add_voter(cmd.server_id, cmd.server_address, 0, t)
                await f
                await raft.barrier(None)
                rpc.respond(AddVoterResponse(index=f.index))
            elif isinstance(cmd, RemoveServerRequest):
                if not cmd.server_id:
                    rpc.respond(None, LfwRejectedError("RemoveServer needs a server id"))
                    return
                t = cmd.timeout / _NS if cmd.timeout > 0 else None
                f = raft.remove_server(cmd.server_id, 0, t)
                await f
                rpc.respond(RemoveServerResponse(index=f.index))
        except asyncio.CancelledError:
            rpc.respond(None, NotLeaderError())
            raise
        except Exception as e:
            rpc.respond(None, e)

    # ------------------------------------------------------------------ observers

    async def observe_state_change(self) -> Observation[Input]:
        """Synthetic SETs for the current state, then committed changes in log order.

        The returned async iterator ends on ``aclose()`` or when the binding closes.
        """
        fsm = self._fsm
        if self._raft is None or self._closing or fsm is None:
            raise BindingNotOpenError("observe_state_change failed: binding is not open")
        obs: Observation[Input] = Observation(self._drop_state_observer)
        self._state_obs[obs] = fsm.add_state_change_observer(obs.push)
        return obs

    def _drop_state_observer(self, obs: Observation[Input]) -> None:
        oid = self._state_obs.pop(obs, None)
        if oid is not None and self._fsm is not None:
            self._fsm.remove_state_change_observer(oid)

    async def observe_membership_change(self) -> Observation[MembershipChange]:
        """Current members as joined, then every join and leave.

        The returned async iterator ends on ``aclose()`` or when the binding closes.
        """
        store = self._store
        raft = self._raft
        if raft is None or self._closing or store is None:
            raise BindingNotOpenError("observe_membership_change failed: binding is not open")
        conf = await raft.get_configuration()
        if self._raft is not raft or self._closing:
            raise BindingNotOpenError("observe_membership_change failed: binding closed")
        obs: Observation[MembershipChange] = Observation(self._drop_member_observer)
        self._member_obs[obs] = store.add_membership_change_observer(obs.push, lambda: conf)
        return obs

    def _drop_member_observer(self, obs: Observation[MembershipChange]) -> None:
        oid = self._member_obs.pop(obs, None)
        if oid is not None and self._store is not None:
            self._store.remove_membership_change_observer(oid)


def _answer_apply(rpc: LfwRPC, fut: asyncio.Future[Any]) -> None:
    if fut.cancelled():
        rpc.respond(None, NotLeaderError())
        return
    exc = fut.exception()
    if exc is not None:
        rpc.respond(None, exc)
        return
    resp = fut.result()
    if isinstance(resp, Exception):
        rpc.respond(None, LfwRejectedError(str(resp)))
        return
    rpc.respond(ApplyResponse(index=int(getattr(fut, "index", 0)), response=None))


__all__ = [
    "RETRY_DELAY",
    "BindingNotOpenError",
    "BindingOptions",
    "InputOp",
    "RaftBinding",
    "StateBindingError",
]

"""A cluster harness for tests, reusable by users testing their own FSMs (hashicorp's testing.go).

```python
async with await Cluster.create(3) as c:          # 3 bootstrapped voters on an InmemNetwork
    leader = await c.wait_for_leader()
    await leader.apply(b"x")
    await c.wait_applied(leader.last_index())
    c.assert_fsms_equal()
```

``fsm_factory`` builds each member's FSM (default :class:`RecordingFSM`, which records
every applied command); :meth:`Cluster.fsms_equal` compares them with ``==``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

import msgpack

from .config import Config
from .configuration import Configuration, Server, ServerSuffrage
from .inmem import InmemLogStore, InmemNetwork, InmemStableStore, InmemTransport
from .interfaces import FSM, LogStore, SnapshotSink, SnapshotStore, StableStore
from .log import Log
from .node import Raft, bootstrap_cluster
from .observer import RaftState
from .snapshot_inmem import InmemSnapshotStore

if TYPE_CHECKING:
    from types import TracebackType


# ---------------------------------------------------------------------- FSMs


class _ListSnapshot:
    def __init__(self, items: list[bytes]) -> None:
        self._items = items

    def persist(self, sink: SnapshotSink) -> None:
        try:
            sink.write(msgpack.packb(self._items, use_bin_type=True))
        except BaseException:
            sink.cancel()
            raise
        sink.close()

    def release(self) -> None:
        pass


class RecordingFSM:
    """Records every applied command's data; responds with the entry's index.

    Snapshots are the msgpack list of the recorded data (no pickle).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.logs: list[bytes] = []
        self.last_index = 0

    def apply(self, log: Log) -> Any:
        with self._lock:
            self.logs.append(log.data or b"")
            self.last_index = log.index
        return log.index

    def snapshot(self) -> _ListSnapshot:
        with self._lock:
            return _ListSnapshot(list(self.logs))

    def restore(self, reader: IO[bytes]) -> None:
        data = reader.read()
        items = msgpack.unpackb(data, raw=False) if data else []
        if not isinstance(items, list) or not all(isinstance(i, bytes) for i in items):
            raise ValueError("RecordingFSM snapshot is not a list of bytes")
        with self._lock:
            self.logs = items

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RecordingFSM) and self.logs == other.logs

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RecordingFSM({len(self.logs)} entries)"


# -------------------------------------------------------------------- helpers


async def wait_for(
    predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition"
) -> None:
    """Poll ``predicate`` every millisecond until true; TimeoutError naming ``what``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.001)


def fast_config(local_id: str = "", **changes: Any) -> Config:
    """Timeouts suited to in-memory tests (100 ms heartbeat/election/lease).

    Shorter timers make elections faster but turn a loaded CI machine's scheduling
    hiccups into spurious leader changes.
    """
    c = Config(
        local_id=local_id,
        heartbeat_timeout=0.1,
        election_timeout=0.1,
        leader_lease_timeout=0.1,
        commit_timeout=0.005,
    )
    return c.copy(**changes) if changes else c


@dataclass
class Member:
    """One member of a :class:`Cluster`: its node and the parts that survive a restart."""

    id: str
    fsm: FSM
    logs: LogStore
    stable: StableStore
    snaps: SnapshotStore
    transport: InmemTransport | None = None
    raft: Raft | None = None
    config: Config = field(default_factory=Config)

    @property
    def node(self) -> Raft:
        if self.raft is None:
            raise RuntimeError(f"member {self.id} is not running")
        return self.raft


class Cluster:
    """N members on one InmemNetwork (see module docs)."""

    def __init__(
        self,
        *,
        config: Config | None = None,
        fsm_factory: Callable[[], FSM] = RecordingFSM,
        snapshot_store_factory: Callable[[], SnapshotStore] = InmemSnapshotStore,
        log_store_factory: Callable[[], LogStore] = InmemLogStore,
        stable_store_factory: Callable[[], StableStore] = InmemStableStore,
        network: InmemNetwork | None = None,
        seed: int = 0,
        can_pipeline: bool = True,
        can_prevote: bool = True,
        transport_class: type[InmemTransport] | None = None,
    ) -> None:
        self.config = config or fast_config()
        self.transport_class = transport_class
        self.fsm_factory = fsm_factory
        self.snapshot_store_factory = snapshot_store_factory
        self.log_store_factory = log_store_factory
        self.stable_store_factory = stable_store_factory
        self.network = network or InmemNetwork(seed=seed)
        self.seed = seed
        self.can_pipeline = can_pipeline
        self.can_prevote = can_prevote
        self.members: dict[str, Member] = {}
        self._seq = 0

    @classmethod
    async def create(
        cls,
        n: int,
        *,
        bootstrap: bool = True,
        nonvoters: int = 0,
        **kwargs: Any,
    ) -> Cluster:
        """Start ``n`` members (the first ``n - nonvoters`` bootstrapped as voters)."""
        c = cls(**kwargs)
        ids = [f"n{i + 1}" for i in range(n)]
        for i in ids:
            c._new_member(i)
        if bootstrap:
            voters = ids[: n - nonvoters]
            servers = [
                Server(i, i, ServerSuffrage.VOTER if i in voters else ServerSuffrage.NONVOTER)
                for i in ids
            ]
            configuration = Configuration(tuple(servers))
            for m in c.members.values():
                await bootstrap_cluster(m.config, m.logs, m.stable, m.snaps, None, configuration)
        for i in ids:
            await c.start(i)
        return c

    def _new_member(self, mid: str) -> Member:
        m = Member(
            id=mid,
            fsm=self.fsm_factory(),
            logs=self.log_store_factory(),
            stable=self.stable_store_factory(),
            snaps=self.snapshot_store_factory(),
            config=self.config.copy(local_id=mid),
        )
        self.members[mid] = m
        return m

    async def start(self, mid: str, *, fresh_fsm: bool = True) -> Raft:
        """Start (or restart after ``stop``) member ``mid`` from its stores."""
        m = self.members[mid]
        if m.raft is not None and m.raft.state is not RaftState.SHUTDOWN:
            return m.raft
        if fresh_fsm and m.raft is not None:
            m.fsm = self.fsm_factory()
        m.transport = self.network.transport(
            mid,
            can_pipeline=self.can_pipeline,
            can_prevote=self.can_prevote,
            cls=self.transport_class,
        )
        self._seq += 1
        m.raft = Raft(
            m.config,
            m.fsm,
            m.logs,
            m.stable,
            m.snaps,
            m.transport,
            seed=self.seed * 1000 + self._seq,
        )
        await m.raft.start()
        return m.raft

    async def stop(self, mid: str) -> None:
        """Shut member ``mid`` down and close its transport; its stores are kept."""
        m = self.members[mid]
        if m.raft is not None:
            await m.raft.shutdown()
        if m.transport is not None:
            await m.transport.close()

    async def add_member(self, mid: str | None = None, *, voter: bool = True) -> Member:
        """Start a fresh member and add it through the leader."""
        if mid is None:
            mid = f"n{len(self.members) + 1}"
        leader = await self.wait_for_leader()
        self._new_member(mid)
        await self.start(mid)
        if voter:
            await leader.add_voter(mid, mid)
        else:
            await leader.add_nonvoter(mid, mid)
        return self.members[mid]

    # -- queries
    def nodes(self) -> list[Raft]:
        return [
            m.raft
            for m in self.members.values()
            if m.raft is not None and m.raft.state is not RaftState.SHUTDOWN
        ]

    def node(self, mid: str) -> Raft:
        return self.members[mid].node

    def fsm(self, mid: str) -> FSM:
        return self.members[mid].fsm

    def leaders(self) -> list[Raft]:
        return [r for r in self.nodes() if r.state is RaftState.LEADER]

    def followers(self) -> list[Raft]:
        return [r for r in self.nodes() if r.state is RaftState.FOLLOWER]

    async def wait_for_leader(self, timeout: float = 5.0, among: list[str] | None = None) -> Raft:
        """A leader that every running member (or every member of ``among``) agrees on."""
        found: list[Raft] = []

        def ok() -> bool:
            nodes = [self.members[i].node for i in among] if among is not None else self.nodes()
            leaders = [r for r in nodes if r.state is RaftState.LEADER]
            if len(leaders) != 1:
                return False
            lid = leaders[0].local_id
            if all(r.leader()[1] == lid for r in nodes):
                found[:] = leaders
                return True
            return False

        await wait_for(ok, timeout, "a single agreed leader")
        return found[0]

    async def wait_applied(
        self, index: int, timeout: float = 5.0, members: list[str] | None = None
    ) -> None:
        """Wait until every running member (or ``members``) applied ``index``."""

        def ok() -> bool:
            nodes = [self.members[i].node for i in members] if members is not None else self.nodes()
            return all(r.applied_index() >= index for r in nodes)

        await wait_for(ok, timeout, f"all members applied index {index}")

    async def ensure_same_state(self, timeout: float = 5.0) -> None:
        """Wait until the running members applied the same index and their FSMs are equal."""
        await wait_for(
            lambda: (
                len({r.applied_index() for r in self.nodes()}) == 1
                and len({r.last_index() for r in self.nodes()}) == 1
            ),
            timeout,
            "equal applied indexes",
        )
        self.assert_fsms_equal()

    def fsms_equal(self) -> bool:
        fsms = [self.members[r.local_id].fsm for r in self.nodes()]
        return all(f == fsms[0] for f in fsms[1:])

    def assert_fsms_equal(self) -> None:
        if not self.fsms_equal():
            desc = {r.local_id: repr(self.members[r.local_id].fsm) for r in self.nodes()}
            raise AssertionError(f"FSMs differ: {desc}")

    # -- faults
    def partition(self, *groups: list[str]) -> None:
        self.network.partition(*groups)

    def isolate(self, mid: str) -> None:
        self.network.isolate(mid)

    def heal(self) -> None:
        self.network.heal()

    # -- lifecycle
    async def shutdown(self) -> None:
        for mid in list(self.members):
            with contextlib.suppress(Exception):
                await self.stop(mid)

    async def __aenter__(self) -> Cluster:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.shutdown()


async def apply_many(raft: Raft, items: list[bytes], *, in_flight: int = 64) -> list[Any]:
    """Apply ``items`` in order keeping up to ``in_flight`` outstanding; returns the responses.

    Uses ``in_flight`` worker tasks (not one task per item, which would stall the loop).
    """
    out: list[Any] = [None] * len(items)
    it = iter(enumerate(items))

    async def worker() -> None:
        for i, data in it:
            out[i] = await raft.apply(data)

    await asyncio.gather(*(worker() for _ in range(max(1, min(in_flight, len(items))))))
    return out


Waiter = Callable[[], Awaitable[None]]

__all__ = [
    "Cluster",
    "Member",
    "RecordingFSM",
    "apply_many",
    "fast_config",
    "wait_for",
]

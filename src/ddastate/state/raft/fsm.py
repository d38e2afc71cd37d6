"""RaftFsm: the replicated key-value dictionary of a state group.

The node calls :meth:`RaftFsm.apply` for every committed COMMAND entry, in log order.
An entry's data is the MessagePack of an Input (``{Key, Op, Value}``). SET stores the
value, DELETE removes the key, UNDEFINED changes nothing; an unknown operation or data
that does not decode is the FSM's error *response* (returned, never raised), so one bad
entry can never stop a member from applying the rest of the log.

State-change observers are plain callables registered with
:meth:`RaftFsm.add_state_change_observer`. They are called synchronously, in log order,
while the FSM's lock is held, so they must not block: the binding passes a function
that only appends to an unbounded queue (on the event loop, or through
``loop.call_soon_threadsafe`` when the caller is another thread). Values are ``bytes``
and Inputs are frozen, so what an observer receives can never be changed by the FSM or
by another observer: sharing them is as safe as the reference's copies.

On :meth:`restore` (a snapshot installed from the leader, or loaded at start) the
observers receive the difference between the old and the new state: a SET for every key
that is new or changed and a DELETE for every key that is gone. The reference emits
nothing there, which lets an observer miss changes; the difference keeps every observer
converging on the replicated state.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import IO, Any

from ddastate.raft.interfaces import SnapshotSink
from ddastate.raft.log import Log
from ddastate.state.api import Input, InputOp, State

from . import codec
from .messages import FsmSnapshot

logger = logging.getLogger(__name__)

StateObserver = Callable[[Input], None]
"""Receives one state change; must return at once (see the module docs)."""


class FsmError(Exception):
    """An entry the FSM could not apply (returned as the apply response, never raised)."""


class RaftFsm:
    """The replicated dictionary (implements ``ddastate.raft.interfaces.FSM``)."""

    def __init__(self) -> None:
        self._state: State = {}
        self._lock = threading.Lock()
        self._observers: dict[int, StateObserver] = {}
        self._next_observer_id = 0

    # ------------------------------------------------------------------ observers

    def add_state_change_observer(self, observer: StateObserver) -> int:
        """Register ``observer``; it first receives a SET for every current key.

        Registration and the synthetic SETs happen under the FSM's lock, so the observer
        sees exactly the current state followed by every later change, none twice and
        none missing. Returns an id for :meth:`remove_state_change_observer`.
        """
        with self._lock:
            self._next_observer_id += 1
            oid = self._next_observer_id
            for key, value in self._state.items():
                observer(Input(InputOp.SET, key, value))
            self._observers[oid] = observer
            return oid

    def remove_state_change_observer(self, observer_id: int) -> None:
        """Stop calling the observer registered under ``observer_id`` (unknown ids are ignored)."""
        with self._lock:
            self._observers.pop(observer_id, None)

    def _notify(self, change: Input) -> None:
        # Called with the lock held.
        for oid, observer in list(self._observers.items()):
            try:
                observer(change)
            except Exception:
                logger.exception("state-change observer %d failed; removing it", oid)
                self._observers.pop(oid, None)

    # ------------------------------------------------------------------------ FSM

    def apply(self, log: Log) -> Any:
        """Apply one committed entry; returns None or an :class:`FsmError` response."""
        return self.apply_batch([log])[0]

    def apply_batch(self, logs: list[Log]) -> list[Any]:
        """Apply a run of committed entries (hashicorp's BatchingFSM); one response each.

        One lock hold for the run; canonical inputs take the codec's fast path, every
        other form the general decoder (which names what is wrong).
        """
        out: list[Any] = []
        append = out.append
        fields = codec.decode_input_fields
        with self._lock:
            state = self._state
            observers = self._observers
            for log in logs:
                data = log.data or b""
                f = fields(data)
                if f is None:
                    try:
                        inp = codec.decode_msgpack(data, Input)
                    except codec.CodecError as e:
                        logger.warning(
                            "log entry %d: input does not decode (%s): %s",
                            log.index,
                            e,
                            data[:64].hex(),
                        )
                        append(
                            FsmError(f"input of Raft log entry {log.index} does not decode: {e}")
                        )
                        continue
                    op, key, value = int(inp.op), inp.key, inp.value
                else:
                    op, key, value = f
                if op == InputOp.SET:
                    if value is None:
                        value = b""
                    state[key] = value
                    if observers:
                        self._notify(Input(InputOp.SET, key, value))
                    append(None)
                elif op == InputOp.DELETE:
                    state.pop(key, None)
                    if observers:
                        self._notify(Input(InputOp.DELETE, key))
                    append(None)
                elif op == InputOp.UNDEFINED:
                    append(None)
                else:
                    append(FsmError(f"unknown input operation in Raft log entry: {op}"))
        return out

    def snapshot(self) -> RaftFsmSnapshot:
        """Capture the state quickly (a copy of the dict; values are immutable bytes)."""
        with self._lock:
            return RaftFsmSnapshot(dict(self._state))

    def restore(self, reader: IO[bytes]) -> None:
        """Replace the state with a snapshot's; observers receive the difference."""
        new_state = dict(codec.decode_msgpack(reader.read(), FsmSnapshot).state)
        with self._lock:
            old = self._state
            self._state = new_state
            if self._observers:
                for key, value in new_state.items():
                    if old.get(key) != value or key not in old:
                        self._notify(Input(InputOp.SET, key, value))
                for key in old:
                    if key not in new_state:
                        self._notify(Input(InputOp.DELETE, key))

    # ---------------------------------------------------------------------- tests

    def state(self) -> State:
        """A copy of the current state (for tests and status displays)."""
        with self._lock:
            return dict(self._state)

    def __len__(self) -> int:
        return len(self._state)


class RaftFsmSnapshot:
    """A captured state, written as MessagePack ``{State: {key: value}}`` off the event loop."""

    __slots__ = ("_state",)

    def __init__(self, state: State) -> None:
        self._state = state

    def persist(self, sink: SnapshotSink) -> None:
        """Encode and write the state, then close the sink; cancel it on any failure."""
        try:
            sink.write(codec.encode_msgpack(FsmSnapshot(self._state)))
            sink.close()
        except BaseException:
            sink.cancel()
            raise

    def release(self) -> None:
        """Nothing to free: the captured dict goes with this object."""

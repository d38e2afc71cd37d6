"""Linearizability checking of key-value histories (registers per key).

A history is a list of :class:`Operation`: a ``put`` of a value or a ``get`` with its
result, each with an invocation time and, once known, a completion time and status:

- ``ok``: completed; a get's ``result`` is what it read;
- ``fail``: definitely did not take effect (it is left out);
- ``unknown`` / ``pending``: may or may not have taken effect, at any time after its
  invocation (a put stays optional; a get constrains nothing and is left out).

Keys are independent registers (initially ``None``), so each key is checked alone with
a Wing-Gong style search over linearization orders, memoised on (set of linearized
operations, register value) as in Lowe's improvement. ``check_history`` returns a
:class:`CheckResult` naming the first key that cannot be linearized.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

_INF = float("inf")


@dataclass(eq=False)
class Operation:
    """One client operation on one key."""

    process: int
    kind: str
    key: str
    value: Any = None
    invoke: float = 0.0
    complete: float | None = None
    status: str = "pending"
    result: Any = None
    op_id: int = 0

    def __repr__(self) -> str:
        what = f"{self.kind}({self.key}" + (f", {self.value!r})" if self.kind == "put" else ")")
        res = f" -> {self.result!r}" if self.kind == "get" and self.status == "ok" else ""
        span = f"[{self.invoke:.4f}, {self.complete}]"
        return f"<op {self.op_id} p{self.process} {what}{res} {self.status} {span}>"


@dataclass(frozen=True)
class CheckResult:
    """Outcome of a check: ``ok``, or the failing ``key`` and a ``reason``."""

    ok: bool
    key: str | None = None
    reason: str = ""


def _check_key(ops: list[Operation], max_states: int) -> tuple[bool, str]:
    entries: list[tuple[float, float, bool, bool, Any]] = []
    # (invoke, complete, required, is_put, value-or-result)
    for op in ops:
        if op.status == "fail":
            continue
        if op.status == "ok":
            done = op.complete if op.complete is not None else _INF
            if op.kind == "put":
                entries.append((op.invoke, done, True, True, op.value))
            elif op.kind == "get":
                entries.append((op.invoke, done, True, False, op.result))
            else:
                raise ValueError(f"unknown operation kind {op.kind!r}")
        elif op.kind == "put":
            entries.append((op.invoke, _INF, False, True, op.value))
    entries.sort(key=lambda e: (e[0], e[1]))
    n = len(entries)
    required = 0
    for i, e in enumerate(entries):
        if e[2]:
            required |= 1 << i
    seen: set[tuple[int, Any]] = set()
    stack: list[tuple[int, Any]] = [(0, None)]
    while stack:
        mask, value = stack.pop()
        if mask & required == required:
            return True, ""
        key = (mask, value)
        if key in seen:
            continue
        seen.add(key)
        if len(seen) > max_states:
            return False, f"search gave up after {max_states} states"
        min_done = _INF
        for i in range(n):
            if not (mask >> i) & 1 and entries[i][1] < min_done:
                min_done = entries[i][1]
        for i in range(n - 1, -1, -1):
            if (mask >> i) & 1:
                continue
            inv, _done, _req, is_put, v = entries[i]
            if inv > min_done:
                continue
            if is_put:
                stack.append((mask | (1 << i), v))
            elif v == value:
                stack.append((mask | (1 << i), value))
    return False, f"no linearization of {n} operations"


def check_history(history: Iterable[Operation], max_states: int = 2_000_000) -> CheckResult:
    """Check that a key-value history is linearizable, key by key."""
    by_key: dict[str, list[Operation]] = defaultdict(list)
    for op in history:
        by_key[op.key].append(op)
    for key in sorted(by_key):
        ok, reason = _check_key(by_key[key], max_states)
        if not ok:
            return CheckResult(False, key, reason)
    return CheckResult(True)


__all__ = ["CheckResult", "Operation", "check_history"]

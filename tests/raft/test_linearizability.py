"""The linearizability checker on known linearizable and non-linearizable histories."""

from __future__ import annotations

import random

from ddastate.raft.linearizability import Operation, check_history


def put(p: int, key: str, v: str, t0: float, t1: float | None, status: str = "ok") -> Operation:
    return Operation(p, "put", key, v, t0, t1, status)


def get(
    p: int, key: str, r: str | None, t0: float, t1: float | None, status: str = "ok"
) -> Operation:
    return Operation(p, "get", key, None, t0, t1, status, r)


def test_empty_and_sequential() -> None:
    assert check_history([]).ok
    h = [
        put(0, "k", "a", 0, 1),
        get(0, "k", "a", 2, 3),
        put(0, "k", "b", 4, 5),
        get(1, "k", "b", 6, 7),
    ]
    assert check_history(h).ok


def test_initial_value_is_none() -> None:
    assert check_history([get(0, "k", None, 0, 1)]).ok
    assert not check_history([get(0, "k", "x", 0, 1)]).ok


def test_stale_read_after_write_completed_is_not_linearizable() -> None:
    h = [put(0, "k", "a", 0, 1), put(0, "k", "b", 2, 3), get(1, "k", "a", 4, 5)]
    r = check_history(h)
    assert not r.ok and r.key == "k"


def test_concurrent_write_may_be_seen_or_not() -> None:
    base = [put(0, "k", "a", 0, 1), put(1, "k", "b", 2, 6)]
    assert check_history([*base, get(2, "k", "a", 3, 4)]).ok
    assert check_history([*base, get(2, "k", "b", 3, 4)]).ok
    # but once one reader saw b, a later reader cannot see a again
    h = [*base, get(2, "k", "b", 3, 4), get(3, "k", "a", 4.5, 5)]
    assert not check_history(h).ok


def test_failed_write_never_takes_effect() -> None:
    h = [put(0, "k", "a", 0, 1, "fail"), get(1, "k", "a", 2, 3)]
    assert not check_history(h).ok
    h = [put(0, "k", "a", 0, 1, "fail"), get(1, "k", None, 2, 3)]
    assert check_history(h).ok


def test_unknown_write_may_take_effect_any_time_later() -> None:
    w = put(0, "k", "a", 0, None, "unknown")
    assert check_history([w, get(1, "k", None, 1, 2)]).ok
    assert check_history([w, get(1, "k", "a", 10, 11)]).ok
    assert check_history([w, get(1, "k", None, 1, 2), get(1, "k", "a", 10, 11)]).ok
    # but not before it was invoked
    w2 = put(0, "k", "a", 5, None, "unknown")
    assert not check_history([w2, get(1, "k", "a", 1, 2)]).ok
    # and once seen it stays (no other writes)
    h = [w, get(1, "k", "a", 1, 2), get(1, "k", None, 3, 4)]
    assert not check_history(h).ok


def test_unknown_reads_constrain_nothing() -> None:
    h = [put(0, "k", "a", 0, 1), get(1, "k", "zzz", 2, None, "unknown")]
    assert check_history(h).ok


def test_keys_are_independent() -> None:
    h = [
        put(0, "x", "1", 0, 1),
        put(1, "y", "2", 0, 1),
        get(2, "x", "1", 2, 3),
        get(2, "y", None, 2, 3),
    ]
    r = check_history(h)
    assert not r.ok and r.key == "y"


def test_reordered_writes_need_overlap() -> None:
    # two writes that do not overlap must take effect in real-time order
    h = [put(0, "k", "a", 0, 1), put(1, "k", "b", 2, 3), get(2, "k", "a", 4, 5)]
    assert not check_history(h).ok
    h = [put(0, "k", "a", 0, 3), put(1, "k", "b", 1, 2), get(2, "k", "a", 4, 5)]
    assert check_history(h).ok


def _random_linearizable_history(rng: random.Random, n: int) -> list[Operation]:
    """Simulate a register with atomic steps at random points inside each interval."""
    ops: list[tuple[float, Operation]] = []
    value: str | None = None
    t = 0.0
    events: list[tuple[float, float, int, str, str | None]] = []
    for i in range(n):
        start = t + rng.random()
        point = start + rng.random() * 2
        end = point + rng.random() * 2
        events.append((point, start, i, rng.choice(["put", "get"]), f"v{i}"))
        t = start
        ops.append((end, Operation(i % 4, "put", "k", None, start, end, "ok")))
    for _point, _start, i, kind, v in sorted(events):
        op = ops[i][1]
        op.kind = kind
        if kind == "put":
            op.value = v
            value = v
        else:
            op.result = value
    return [o for _, o in ops]


def test_random_linearizable_histories_pass_and_mutations_fail() -> None:
    rng = random.Random(7)
    failures_found = 0
    for _ in range(40):
        h = _random_linearizable_history(rng, 25)
        assert check_history(h).ok
        # corrupt one read to a value never written: must fail
        reads = [o for o in h if o.kind == "get"]
        if reads:
            rng.choice(reads).result = "never-written"
            assert not check_history(h).ok
            failures_found += 1
    assert failures_found > 30

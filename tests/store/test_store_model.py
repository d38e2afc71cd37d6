"""The store service against a dict model: random operation sequences on both engines."""

from __future__ import annotations

import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ddastate.store import WriteBatch, key_upper_bound, open_store

KEY = st.binary(max_size=3).map(lambda b: b.replace(b"\x02", b"\xff"))
OPT = st.none() | KEY
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("set"), KEY, st.binary(max_size=4)),
        st.tuples(st.just("delete"), KEY),
        st.tuples(st.just("delete_prefix"), KEY),
        st.tuples(st.just("delete_range"), OPT, OPT),
        st.tuples(
            st.just("batch"), st.lists(st.tuples(KEY, st.binary(max_size=2)), max_size=4), KEY
        ),
        st.tuples(st.just("scan"), OPT, OPT, st.none() | st.integers(0, 5)),
        st.tuples(st.just("scan_prefix"), KEY),
        st.tuples(st.just("reopen")),
    ),
    max_size=30,
)


def in_range(k: bytes, start: bytes | None, end: bytes | None) -> bool:
    return (start is None or k >= start) and (end is None or k < end)


@pytest.mark.parametrize("engine", ["memory", "sqlite"])
def test_matches_a_dict_model(engine: str) -> None:
    @settings(
        max_examples=40 if engine == "sqlite" else 200,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(OPS)
    def run(ops: list[tuple[object, ...]]) -> None:
        with tempfile.TemporaryDirectory() as d:
            loc = d if engine == "sqlite" else ""
            s = open_store(engine, loc)
            model: dict[bytes, bytes] = {}
            try:
                for op in ops:
                    name, args = op[0], op[1:]
                    if name == "set":
                        k, v = args
                        assert isinstance(k, bytes) and isinstance(v, bytes)
                        s.set(k, v)
                        model[k] = v
                    elif name == "delete":
                        (k,) = args
                        assert isinstance(k, bytes)
                        s.delete(k)
                        model.pop(k, None)
                    elif name == "delete_prefix":
                        (p,) = args
                        assert isinstance(p, bytes)
                        s.delete_prefix(p)
                        model = {k: v for k, v in model.items() if not k.startswith(p)}
                    elif name == "delete_range":
                        a, b = args
                        assert a is None or isinstance(a, bytes)
                        assert b is None or isinstance(b, bytes)
                        s.delete_range(a, b)
                        model = {k: v for k, v in model.items() if not in_range(k, a, b)}
                    elif name == "batch":
                        sets, dk = args
                        assert isinstance(sets, list) and isinstance(dk, bytes)
                        wb = WriteBatch()
                        for k, v in sets:
                            wb.set(k, v)
                            model[k] = v
                        wb.delete(dk)
                        model.pop(dk, None)
                        s.write(wb)
                    elif name == "scan":
                        a, b, limit = args
                        assert a is None or isinstance(a, bytes)
                        assert b is None or isinstance(b, bytes)
                        assert limit is None or isinstance(limit, int)
                        want = sorted((k, v) for k, v in model.items() if in_range(k, a, b))
                        assert list(s.scan_range(a, b, limit)) == want[:limit]
                        rev = want[::-1][:limit]
                        assert list(s.scan_range_reverse(a, b, limit)) == rev
                    elif name == "scan_prefix":
                        (p,) = args
                        assert isinstance(p, bytes)
                        want = sorted((k, v) for k, v in model.items() if k.startswith(p))
                        assert list(s.scan_prefix(p)) == want
                        ub = key_upper_bound(p)
                        assert ub is None or all(k < ub for k, _ in want)
                    elif loc:
                        s.close()
                        s = open_store(engine, loc)
                for k, v in model.items():
                    assert s.get(k) == v
                assert dict(s.scan_range(None, None)) == model
            finally:
                s.close()

    run()

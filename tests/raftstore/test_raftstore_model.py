"""RaftStore against a dict model: random store/delete/read sequences on both engines."""

from __future__ import annotations

import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ddastate.raft.errors import LogNotFoundError
from ddastate.raft.log import Log, LogType
from ddastate.state.raft.store import RaftStore

MAX = 2**64 - 1
INDEX = st.one_of(st.integers(0, 40), st.integers(MAX - 5, MAX))

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("store"), st.lists(INDEX, min_size=1, max_size=8), st.integers(1, 9)),
        st.tuples(st.just("delete"), INDEX, INDEX),
        st.tuples(st.just("get"), INDEX),
        st.tuples(st.just("reopen")),
    ),
    max_size=25,
)


def entry(index: int, term: int) -> Log:
    return Log(index, term, LogType(index % 6), b"%d/%d" % (index, term), None, index * 7)


@pytest.mark.parametrize("engine", ["memory", "sqlite"])
def test_matches_a_dict_model(engine: str) -> None:
    @settings(
        max_examples=40 if engine == "sqlite" else 150,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(OPS)
    def run(ops: list[tuple[object, ...]]) -> None:
        with tempfile.TemporaryDirectory() as d:
            loc = d if engine == "sqlite" else ""
            rs = RaftStore(loc)
            model: dict[int, Log] = {}
            try:
                for op in ops:
                    if op[0] == "store":
                        idx, term = op[1], op[2]
                        assert isinstance(idx, list) and isinstance(term, int)
                        batch = [entry(i, term) for i in idx]
                        rs.store_logs(batch)
                        model.update((e.index, e) for e in batch)
                    elif op[0] == "delete":
                        lo, hi = op[1], op[2]
                        assert isinstance(lo, int) and isinstance(hi, int)
                        rs.delete_range(lo, hi)
                        for k in [k for k in model if lo <= k <= hi]:
                            del model[k]
                    elif op[0] == "get":
                        i = op[1]
                        assert isinstance(i, int)
                        if i in model:
                            assert rs.get_log(i) == model[i]
                        else:
                            with pytest.raises(LogNotFoundError):
                                rs.get_log(i)
                    elif loc:
                        rs.close()
                        rs = RaftStore(loc)
                    assert rs.first_index() == (min(model) if model else 0)
                    assert rs.last_index() == (max(model) if model else 0)
                assert rs.get_logs(0, MAX) == [model[k] for k in sorted(model)]
            finally:
                rs.close()

    run()

"""Bad input from the network never raises out of the core and never corrupts its log."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_core import Net

from ddastate.raft.commands import (
    AppendEntriesRequest,
    AppendEntriesResponse,
    InstallSnapshotRequest,
    RequestPreVoteRequest,
    RequestVoteRequest,
    RequestVoteResponse,
    TimeoutNowRequest,
)
from ddastate.raft.log import Log

ints = st.one_of(
    st.integers(min_value=-3, max_value=12),
    st.sampled_from([2**63, 2**64 - 1, -(2**63)]),
    st.none(),
)
blobs = st.one_of(st.none(), st.binary(max_size=12), st.sampled_from([b"a", b"b", b"\xff\xfe"]))
entries = st.lists(
    st.builds(
        Log,
        index=st.integers(min_value=-2, max_value=12),
        term=st.integers(min_value=-1, max_value=6),
        type=st.integers(min_value=-1, max_value=7),
        data=blobs,
    ),
    max_size=4,
)


def _requests() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.builds(
            AppendEntriesRequest,
            term=ints,
            leader=blobs,
            prev_log_entry=ints,
            prev_log_term=ints,
            entries=st.one_of(st.none(), entries),
            leader_commit_index=ints,
            id=blobs,
            addr=blobs,
        ),
        st.builds(
            RequestVoteRequest,
            term=ints,
            candidate=blobs,
            last_log_index=ints,
            last_log_term=ints,
            leadership_transfer=st.booleans(),
            id=blobs,
            addr=blobs,
        ),
        st.builds(
            RequestPreVoteRequest,
            term=ints,
            last_log_index=ints,
            last_log_term=ints,
            id=blobs,
            addr=blobs,
        ),
        st.builds(
            InstallSnapshotRequest,
            term=ints,
            leader=blobs,
            last_log_index=ints,
            last_log_term=ints,
            configuration=blobs,
            configuration_index=ints,
            size=ints,
            id=blobs,
            addr=blobs,
        ),
        st.builds(TimeoutNowRequest, id=blobs, addr=blobs),
        st.sampled_from([None, "x", 3, object()]),
    )


def _check(net: Net, name: str, committed: list[tuple[int, int, bytes | None]]) -> None:
    core = net[name]
    ents = core._entries
    for a, b in itertools.pairwise(ents):
        assert b.index == a.index + 1
        assert b.term >= a.term
    assert core.commit_index <= core.last_index
    for idx, term, data in committed:
        if idx <= core.commit_index and idx >= core.first_index:
            e = core.entry(idx)
            assert e is not None and (e.term, e.data) == (term, data)


def _ae(prev: int, prev_term: int, terms: list[int], term: int) -> AppendEntriesRequest:
    return AppendEntriesRequest(
        term=term,
        leader=None,
        prev_log_entry=prev,
        prev_log_term=prev_term,
        entries=[Log(index=prev + 1 + i, term=t) for i, t in enumerate(terms)],
        leader_commit_index=0,
        id=None,
        addr=None,
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_requests(), min_size=1, max_size=8), st.sampled_from(["a", "b"]))
# a committed previous entry given another term: once appended a term-0 entry after it
@example([_ae(4, 0, [0], 2**63)], "a")
# committed entries given other terms, then a new one: once appended a lower term after them
@example([_ae(1, 1, [1, 1, 1, 1], 3)], "b")
def test_garbage_requests(reqs: list[Any], target: str) -> None:
    net = Net(["a", "b", "c"])
    net.elect("a")
    net["a"].propose(b"x")
    net["a"].propose(b"y")
    net.drain()
    net.tick(0.1)
    core = net[target]
    committed = [(e.index, e.term, e.data) for e in core._entries if e.index <= core.commit_index]
    for r in reqs:
        core.step(r, "tok", net.now)  # must never raise
        rd = core.ready()
        for inst in rd.snapshot_installs:
            core.on_snapshot_installed(inst.token, False)
            core.ready()
        _check(net, target, committed)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.builds(
                AppendEntriesResponse, term=ints, last_log=ints, success=st.booleans(), id=blobs
            ),
            st.builds(RequestVoteResponse, term=ints, granted=st.booleans()),
            st.sampled_from([None, 7]),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_garbage_responses_to_a_leader(resps: list[Any]) -> None:
    net = Net(["a", "b", "c"])
    net.elect("a")
    core = net["a"]
    core.propose(b"x")
    rd = core.ready()
    ae = next(m.request for m in rd.messages if isinstance(m.request, AppendEntriesRequest))
    for resp in resps:
        core.on_response("b", ae, resp, net.now)  # must never raise
        core.ready()
    assert core.commit_index <= core.last_index

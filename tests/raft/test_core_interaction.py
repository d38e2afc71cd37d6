"""Interaction tests of the core written as protocol traces (etcd raft style).

Each file in ``testdata/core/`` is a sequence of commands; after each command, a line
``----`` and the expected output (the messages exchanged, the members' state, a log).
Set ``REWRITE=1`` to regenerate the expected output after a deliberate change, then
read the diff.

Commands::

    cluster a b c [nonvoters=n,m] [outside=d,e] [pre_vote] [pipeline] [max_append=N]
            [trailing=N]  (outside: running, but not in the configuration)
    campaign a            force an election on a now (prints the traffic)
    elect a               as campaign, with members reachable from a ignoring a silent leader
    propose a x y z       propose entries on a, then deliver (prints the traffic)
    tick 0.5              advance time on every member and deliver (prints the traffic)
    run 30 0.1            30 ticks of 0.1 s (prints only the number of messages)
    partition a b | c     cut links between groups;  heal
    change a add_voter d  membership change on a (add_voter / add_nonvoter / remove_server /
                          demote_voter), then deliver
    transfer a [b]        leadership transfer from a (to b), then deliver
    snapshot a            snapshot at a's applied index and compact
    status                one line per member
    log a                 a's log
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from test_core import Net

from ddastate.raft.commands import (
    AppendEntriesRequest,
    AppendEntriesResponse,
    InstallSnapshotRequest,
    InstallSnapshotResponse,
    RequestPreVoteRequest,
    RequestPreVoteResponse,
    RequestVoteRequest,
    RequestVoteResponse,
    TimeoutNowRequest,
    TimeoutNowResponse,
)
from ddastate.raft.configuration import decode_configuration
from ddastate.raft.errors import RaftError
from ddastate.raft.log import Log, LogType
from ddastate.raft.ready import ChangeKind, ConfigurationChange

DATA = Path(__file__).parent / "testdata" / "core"


def fmt_entry(e: Log) -> str:
    kind = LogType(e.type).name
    if e.type == LogType.COMMAND:
        return f"{e.index}/{e.term} {(e.data or b'').decode()}"
    if e.type == LogType.CONFIGURATION:
        c = decode_configuration(e.data)
        ids = ",".join(s.id + ("" if s.suffrage == 0 else "(nv)") for s in c.servers)
        return f"{e.index}/{e.term} CONF {ids}"
    return f"{e.index}/{e.term} {kind}"


def fmt_msg(m: Any) -> str:
    if isinstance(m, AppendEntriesRequest):
        if m.is_heartbeat():
            return f"Heartbeat term={m.term}"
        ents = " ".join(f"[{fmt_entry(e)}]" for e in (m.entries or []))
        return (
            f"AppendEntries term={m.term} prev={m.prev_log_entry}/{m.prev_log_term} "
            f"commit={m.leader_commit_index}" + (f" {ents}" if ents else "")
        )
    if isinstance(m, AppendEntriesResponse):
        ok = "ok" if m.success else "reject"
        nb = " no-retry-backoff" if m.no_retry_backoff else ""
        return f"AppendEntriesResponse term={m.term} last={m.last_log} {ok}{nb}"
    if isinstance(m, RequestVoteRequest):
        tr = " transfer" if m.leadership_transfer else ""
        return f"RequestVote term={m.term} last={m.last_log_index}/{m.last_log_term}{tr}"
    if isinstance(m, RequestVoteResponse):
        return f"RequestVoteResponse term={m.term} {'granted' if m.granted else 'rejected'}"
    if isinstance(m, RequestPreVoteRequest):
        return f"RequestPreVote term={m.term} last={m.last_log_index}/{m.last_log_term}"
    if isinstance(m, RequestPreVoteResponse):
        return f"RequestPreVoteResponse term={m.term} {'granted' if m.granted else 'rejected'}"
    if isinstance(m, InstallSnapshotRequest):
        return f"InstallSnapshot term={m.term} last={m.last_log_index}/{m.last_log_term}"
    if isinstance(m, InstallSnapshotResponse):
        return f"InstallSnapshotResponse term={m.term} {'ok' if m.success else 'reject'}"
    if isinstance(m, TimeoutNowRequest):
        return "TimeoutNow"
    if isinstance(m, TimeoutNowResponse):
        return "TimeoutNowResponse"
    return repr(m)


class Runner:
    def __init__(self) -> None:
        self.net: Net | None = None

    def traffic(self) -> list[str]:
        assert self.net is not None and self.net.trace is not None
        out = [
            f"{frm}->{to} {fmt_msg(m)}" + ("" if ok else " (lost)")
            for frm, to, m, ok in self.net.trace
        ]
        self.net.trace.clear()
        return out

    def run(self, cmd: str, args: list[str]) -> list[str]:
        try:
            return self._run(cmd, args)
        except RaftError as e:
            return [f"error: {type(e).__name__}: {e}", *self.traffic()]

    def _run(self, cmd: str, args: list[str]) -> list[str]:
        if cmd == "cluster":
            ids = [a for a in args if "=" not in a and a not in ("pre_vote", "pipeline")]
            opts = dict(a.split("=", 1) for a in args if "=" in a)
            nonvoters = tuple(opts.get("nonvoters", "").split(",")) if "nonvoters" in opts else ()
            cfg: dict[str, Any] = {"pre_vote": "pre_vote" in args, "pipeline": "pipeline" in args}
            if "max_append" in opts:
                cfg["max_append_entries"] = int(opts["max_append"])
            if "trailing" in opts:
                cfg["trailing_logs"] = int(opts["trailing"])
            outside = opts["outside"].split(",") if "outside" in opts else []
            ids += outside
            voters = [i for i in ids if i not in nonvoters and i not in outside]
            self.net = Net(
                ids + list(nonvoters), voters=voters, nonvoters=nonvoters, env_seed=False, **cfg
            )
            self.net.trace = []
            return ["ok"]
        net = self.net
        assert net is not None
        if cmd == "campaign":
            net.campaign(args[0])
            return self.traffic()
        if cmd == "elect":
            net.elect(args[0])
            return self.traffic()
        if cmd == "propose":
            for d in args[1:]:
                net[args[0]].propose(d.encode())
            net.drain()
            return self.traffic()
        if cmd == "tick":
            net.tick(float(args[0]))
            return self.traffic()
        if cmd == "run":
            n, dt = int(args[0]), float(args[1])
            for _ in range(n):
                net.tick(dt)
            msgs = self.traffic()
            return [f"{len(msgs)} messages"]
        if cmd == "partition":
            text = " ".join(args)
            groups = [g.split() for g in text.split("|")]
            net.partition(*groups)
            return ["ok"]
        if cmd == "heal":
            net.heal()
            return ["ok"]
        if cmd == "change":
            kind = ChangeKind(args[1])
            target = args[2]
            res = net[args[0]].change_configuration(
                ConfigurationChange(kind, target, target), "tok"
            )
            net.drain()
            return [f"index {res}", *self.traffic()]
        if cmd == "transfer":
            net[args[0]].transfer_leadership("tok", net.now, args[1] if len(args) > 1 else None)
            net.drain()
            return self.traffic()
        if cmd == "snapshot":
            info = net.snapshot(args[0])
            return [f"snapshot {info.index}/{info.term} first={net[args[0]].first_index}"]
        if cmd == "status":
            out = []
            for i, c in sorted(net.cores.items()):
                out.append(
                    f"{i} {c.role} term={c.term} leader={c.leader_id or '-'} "
                    f"commit={c.commit_index} last={c.last_index}"
                )
            return out
        if cmd == "log":
            c = net[args[0]]
            return [fmt_entry(e) for e in c._entries] or ["(empty)"]
        raise ValueError(f"unknown command {cmd!r}")


def parse(text: str) -> list[tuple[str, list[str]]]:
    """Blocks of (command line, expected lines)."""
    blocks = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if not line or line.startswith("#"):
            i += 1
            continue
        assert lines[i + 1].strip() == "----", f"line {i + 2}: expected ----"
        j = i + 2
        exp = []
        while j < len(lines) and lines[j].strip():
            exp.append(lines[j].rstrip())
            j += 1
        blocks.append((line, exp))
        i = j
    return blocks


def render(blocks: list[tuple[str, list[str]]], comments: dict[int, list[str]]) -> str:
    out = []
    for k, (cmd, res) in enumerate(blocks):
        out.extend(comments.get(k, []))
        out.append(cmd)
        out.append("----")
        out.extend(res or ["(nothing)"])
        out.append("")
    return "\n".join(out)


def _comments(text: str) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    pending: list[str] = []
    k = 0
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            pending.append(line)
            i += 1
        elif not line.strip():
            i += 1
        else:
            found[k] = pending
            pending = []
            k += 1
            i += 2
            while i < len(lines) and lines[i].strip():
                i += 1
    return found


FILES = sorted(DATA.glob("*.txt"))


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_trace(path: Path) -> None:
    text = path.read_text()
    r = Runner()
    got = []
    for cmd, expected in parse(text):
        parts = cmd.split()
        res = r.run(parts[0], parts[1:]) or ["(nothing)"]
        got.append((cmd, res))
        if not os.environ.get("REWRITE"):
            assert res == expected, f"{path.name}: after `{cmd}`\n" + "\n".join(res)
    if os.environ.get("REWRITE"):
        path.write_text(render(got, _comments(text)))


def test_there_are_traces() -> None:
    assert len(FILES) >= 3

"""The Raft simulation: seed sweeps with every fault, replay, and the invariant checks.

Long run (documented command, not in CI):
    python -m ddastate.raft.simulation --seeds 20000 --processes 2
"""

from __future__ import annotations

import logging

import pytest

from ddastate.raft.log import Log
from ddastate.raft.simulation import (
    Faults,
    KVFsm,
    Simulation,
    SimulationError,
    main,
    run_seeds,
)

# Seeds that once failed; each must stay green. (The harness has grown since, so a
# seed no longer replays its original scenario: the core bugs they found are pinned
# deterministically in test_core_membership.py, see
# test_demoted_leader_that_crashed_before_replicating_can_still_finish.)
REGRESSION_SEEDS = [
    # a leader demoted itself and crashed before replicating the change: deadlock until
    # voters of the committed configuration were allowed to campaign (Raft thesis 4.2.2)
    261,
    # harness: a removed (shut down) member was not restarted while the group settled
    101,
    131,
    # harness: a slow disk wrote one Ready per fsync and starved a leader's sends
    5,
    37,
    271,
    287,
]


@pytest.fixture(autouse=True)
def _quiet() -> None:
    logging.getLogger("ddastate.raft").setLevel(logging.ERROR)


def test_sweep_500_seeds_all_faults() -> None:
    res = run_seeds(range(500), stop_on_failure=False, processes=2)
    assert res.failures == []
    st = res.stats
    # every kind of fault was really exercised
    for k in (
        "crashes",
        "partitions",
        "lost",
        "duplicates",
        "membership_changes",
        "transfers",
        "snapshots",
        "snapshot_installs",
    ):
        assert st[k] > 0, k
    assert st["elections"] > 500
    assert st["acknowledged"] > 10000


@pytest.mark.parametrize("seed", REGRESSION_SEEDS)
def test_regression_seeds(seed: int) -> None:
    Simulation(seed=seed).run()


def test_five_members_with_prevote_and_pipeline() -> None:
    res = run_seeds(range(20), stop_on_failure=False, members=5, pre_vote=True, pipeline=True)
    assert res.failures == []


def test_replay_is_exact() -> None:
    a = Simulation(seed=42).run()
    b = Simulation(seed=42).run()
    assert a.steps == b.steps
    assert [(o.kind, o.key, o.status, o.result, o.invoke) for o in a.history] == [
        (o.kind, o.key, o.status, o.result, o.invoke) for o in b.history
    ]
    assert dict(a.stats) == dict(b.stats)


def test_without_faults_everything_is_acknowledged() -> None:
    f = Faults(
        loss=0,
        duplicate=0,
        spike=0,
        partitions=False,
        crashes=False,
        membership=False,
        transfers=False,
    )
    sim = Simulation(seed=3, faults=f).run()
    ok = [o for o in sim.history if o.status == "ok"]
    assert len(ok) > 0.9 * len(sim.history)
    assert sim.stats["elections"] == 1


class _BrokenFsm(KVFsm):
    """An FSM that is not deterministic: member m1 applies puts differently."""

    instances = 0

    def __init__(self) -> None:
        super().__init__()
        _BrokenFsm.instances += 1
        self.odd = _BrokenFsm.instances % 3 == 2

    def apply(self, log: Log) -> object:
        r = super().apply(log)
        if self.odd and self.state:
            k = sorted(self.state)[0]
            self.state[k] = "corrupt"
        return r


def test_violations_are_reported_with_the_seed() -> None:
    f = Faults(partitions=False, crashes=False, membership=False, transfers=False, snapshots=False)
    with pytest.raises(SimulationError, match=r"seed 5: .*--seed 5"):
        Simulation(seed=5, faults=f, fsm_factory=_BrokenFsm).run()


def test_checker_catches_a_lost_acknowledged_write() -> None:
    sim = Simulation(seed=8)
    sim.run()
    assert sim.acked
    _op, idx, term = sim.acked[0]
    sim.applied[idx] = (term + 100, 0, b"other")
    with pytest.raises(SimulationError, match="lost"):
        sim._final_checks()


def test_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--seeds", "3", "--start", "10"]) == 0
    out = capsys.readouterr().out
    assert "3 seeds, 0 failures" in out


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_sweep_long() -> None:
    # about 4 minutes on two cores; the suite's 300 s limit is for the default run
    res = run_seeds(range(500, 5500), stop_on_failure=False, processes=2)
    assert res.failures == []


class _CounterFsm:
    """A user FSM: adds the number in each command to a total."""

    def __init__(self) -> None:
        self.total = 0
        self.count = 0

    def apply(self, log: Log) -> object:
        if log.data and log.type == 0:
            self.total += int(log.data)
            self.count += 1
        return self.total

    def snapshot(self) -> bytes:
        return f"{self.total},{self.count}".encode()

    def restore(self, data: bytes) -> None:
        t, c = data.split(b",")
        self.total, self.count = int(t), int(c)


def test_user_fsm_and_commands() -> None:
    def command(rng: object, n: int) -> bytes:
        return str(n % 7).encode()

    for seed in range(10):
        sim = Simulation(seed=seed, fsm_factory=_CounterFsm, command_factory=command).run()
        assert any(o.status == "ok" for o in sim.history)

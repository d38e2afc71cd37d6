"""Config defaults and validation (hashicorp's ValidateConfig rules, plus ours)."""

from __future__ import annotations

import pytest

from ddastate.raft.config import Config, ConfigError, ReloadableConfig, default_config


def test_defaults_match_hashicorp() -> None:
    c = Config()
    assert c.heartbeat_timeout == 1.0
    assert c.election_timeout == 1.0
    assert c.commit_timeout == 0.05
    assert c.max_append_entries == 64
    assert c.leader_lease_timeout == 0.5
    assert c.trailing_logs == 10240
    assert c.snapshot_interval == 120.0
    assert c.snapshot_threshold == 8192
    assert c.shutdown_on_remove is True
    assert c.no_snapshot_restore_on_start is False
    assert c.protocol_version == 3
    default_config("a").validate()


def test_empty_local_id_rejected() -> None:
    with pytest.raises(ConfigError, match="local_id"):
        Config().validate()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"heartbeat_timeout": 0.001}, "heartbeat_timeout"),
        ({"election_timeout": 0.001, "heartbeat_timeout": 0.001}, "heartbeat_timeout"),
        ({"election_timeout": 0.004}, "election_timeout"),
        ({"commit_timeout": 0.0001}, "commit_timeout"),
        ({"max_append_entries": 0}, "max_append_entries"),
        ({"max_append_entries": 1025}, "max_append_entries"),
        ({"max_append_entries": "64"}, "max_append_entries"),
        ({"snapshot_interval": 0.001}, "snapshot_interval"),
        ({"leader_lease_timeout": 0.001}, "leader_lease_timeout"),
        ({"leader_lease_timeout": 2.0}, "leader_lease_timeout"),
        ({"election_timeout": 0.5}, "election_timeout"),
        ({"trailing_logs": -1}, "trailing_logs"),
        ({"snapshot_threshold": -5}, "snapshot_threshold"),
        ({"protocol_version": 2}, "protocol_version"),
        ({"pipeline_window": 0}, "pipeline_window"),
        ({"heartbeat_timeout": float("nan")}, "heartbeat_timeout"),
        ({"heartbeat_timeout": "1s"}, "heartbeat_timeout"),
        ({"shutdown_on_remove": "yes"}, "shutdown_on_remove"),
        ({"tick_interval": 0.9}, "tick_interval"),
        ({"max_batch_proposals": 0}, "max_batch_proposals"),
    ],
)
def test_invalid_values_name_the_field(changes: dict[str, object], field: str) -> None:
    c = Config(local_id="n1").copy(**changes)
    with pytest.raises(ConfigError, match=field):
        c.validate()


def test_max_append_entries_limit_inclusive() -> None:
    Config(local_id="n1", max_append_entries=1024).validate()


def test_unknown_field_in_copy() -> None:
    with pytest.raises(ConfigError, match="bogus"):
        Config(local_id="n1").copy(bogus=1)


def test_reloadable_roundtrip_and_validation() -> None:
    c = Config(local_id="n1")
    rc = c.reloadable()
    assert rc == ReloadableConfig()
    new = c.with_reloadable(
        ReloadableConfig(
            trailing_logs=5,
            snapshot_interval=1.0,
            snapshot_threshold=10,
            heartbeat_timeout=0.5,
            election_timeout=0.5,
        )
    )
    assert new.trailing_logs == 5 and new.heartbeat_timeout == 0.5
    assert c.trailing_logs == 10240  # original untouched
    with pytest.raises(ConfigError, match="election_timeout"):
        c.with_reloadable(ReloadableConfig(election_timeout=0.1, heartbeat_timeout=0.5))


def test_effective_tick() -> None:
    assert Config(local_id="a").effective_tick() == 0.05
    assert Config(
        local_id="a", heartbeat_timeout=0.1, election_timeout=0.1, leader_lease_timeout=0.05
    ).effective_tick() == pytest.approx(0.01)
    assert Config(local_id="a", tick_interval=0.002).effective_tick() == 0.002


async def test_raft_constructor_validates_config() -> None:
    from ddastate.raft import (
        InmemLogStore,
        InmemNetwork,
        InmemSnapshotStore,
        InmemStableStore,
        Raft,
    )
    from ddastate.raft.testing import RecordingFSM

    t = InmemNetwork().transport("a")
    parts = (RecordingFSM(), InmemLogStore(), InmemStableStore(), InmemSnapshotStore(), t)
    with pytest.raises(ConfigError, match="local_id"):
        Raft(Config(), *parts)
    with pytest.raises(ConfigError, match="max_append_entries"):
        Raft(Config(local_id="a", max_append_entries=5000), *parts)
    r = Raft(Config(), *parts, local_id="a")  # local_id given separately
    assert r.local_id == "a"


def test_gil_switch_interval_validation() -> None:
    Config(local_id="a", gil_switch_interval=None).validate()
    with pytest.raises(ConfigError, match="gil_switch_interval"):
        Config(local_id="a", gil_switch_interval=0.5).validate()
    with pytest.raises(ConfigError, match="gil_switch_interval"):
        Config(local_id="a", gil_switch_interval=-1.0).validate()

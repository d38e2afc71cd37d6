"""Configuration of a Raft node, with hashicorp/raft's defaults and validation rules.

Durations are seconds (floats). ``Config()`` gives hashicorp's ``DefaultConfig()``;
``validate()`` applies the rules of hashicorp's ``ValidateConfig`` (plus checks for our
own settings) and raises :class:`ConfigError` naming the offending field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

from .commands import PROTOCOL_VERSION
from .errors import RaftError

MAX_APPEND_ENTRIES_LIMIT = 1024
"""hashicorp refuses MaxAppendEntries above this."""

_MIN_TIMEOUT = 0.005  # 5 ms, hashicorp's floor for heartbeat/election/lease/snapshot interval
_MIN_COMMIT_TIMEOUT = 0.001  # 1 ms


class ConfigError(RaftError, ValueError):
    """A Config value is invalid; the message names the field."""

    message = "invalid raft configuration"


@dataclass(slots=True)
class ReloadableConfig:
    """The five settings ``Raft.reload_config`` can change on a running node."""

    trailing_logs: int = 10240
    snapshot_interval: float = 120.0
    snapshot_threshold: int = 8192
    heartbeat_timeout: float = 1.0
    election_timeout: float = 1.0


@dataclass(slots=True)
class Config:
    """Settings of one Raft node (hashicorp field names in snake_case).

    Attributes:
        local_id: this server's id; must be non-empty.
        protocol_version: always 3 (hashicorp's only supported version with ids).
        heartbeat_timeout: a follower without contact from the leader this long starts an
            election (randomised in [T, 2T)); the leader sends heartbeats every T/10.
        election_timeout: a candidate without a result this long starts a new election.
        commit_timeout: the longest a follower waits to learn a new commit index when idle.
        max_append_entries: entries per AppendEntries message (1..1024).
        batch_apply_ch: accepted for compatibility; proposals are always batched.
        shutdown_on_remove: shut the node down when it is removed from the configuration.
        trailing_logs: entries kept in the log after a snapshot.
        snapshot_interval: how often the snapshot threshold is checked (staggered 1x-2x).
        snapshot_threshold: entries since the last snapshot that trigger one.
        leader_lease_timeout: a leader without contact from a quorum this long steps down.
        no_snapshot_restore_on_start: do not restore the newest snapshot into the FSM on start.
        pre_vote_disabled: never pre-vote (pre-vote is used only when the transport supports it).
        pipeline_window: AppendEntries in flight per follower when the transport can pipeline.
        tick_interval: period of the node's clock tick fed to the core (seconds); None picks
            min(heartbeat_timeout/10, commit_timeout) capped to at least 1 ms.
        max_batch_proposals: proposals taken into one log append (group commit).
        gil_switch_interval: when the node starts its storage writer thread (stores that
            are not ``inline_safe``), it lowers the PROCESS-WIDE ``sys.setswitchinterval``
            to this many seconds if it is higher. With CPython's default 5 ms the event
            loop can wait up to 5 ms for the GIL behind the writer thread on every
            syscall; 0.5 ms halves the time of a durable replicated write under load.
            None leaves the interpreter setting alone.
        async_fsync: with a store that can defer its syncs (``can_defer_sync``: the
            durable RaftStore), write on the loop and make each batch durable with one
            kernel-side fdatasync (Linux AIO) completed on the loop, instead of handing
            every write to the writer thread; compaction, truncation and checkpoints
            still run in the thread. Falls back to the thread when unavailable.
    """

    local_id: str = ""
    protocol_version: int = PROTOCOL_VERSION
    heartbeat_timeout: float = 1.0
    election_timeout: float = 1.0
    commit_timeout: float = 0.05
    max_append_entries: int = 64
    batch_apply_ch: bool = False
    shutdown_on_remove: bool = True
    trailing_logs: int = 10240
    snapshot_interval: float = 120.0
    snapshot_threshold: int = 8192
    leader_lease_timeout: float = 0.5
    no_snapshot_restore_on_start: bool = False
    pre_vote_disabled: bool = False
    pipeline_window: int = 128
    tick_interval: float | None = None
    max_batch_proposals: int = 4096
    gil_switch_interval: float | None = 0.0005
    async_fsync: bool = True

    def validate(self) -> None:
        """Raise ConfigError unless the settings are usable (hashicorp's ValidateConfig)."""
        _check_int("protocol_version", self.protocol_version)
        if self.protocol_version != PROTOCOL_VERSION:
            raise ConfigError(
                f"protocol_version {self.protocol_version} must be {PROTOCOL_VERSION}"
            )
        if not isinstance(self.local_id, str) or not self.local_id:
            raise ConfigError("local_id cannot be empty")
        _check_duration("heartbeat_timeout", self.heartbeat_timeout, _MIN_TIMEOUT)
        _check_duration("election_timeout", self.election_timeout, _MIN_TIMEOUT)
        _check_duration("commit_timeout", self.commit_timeout, _MIN_COMMIT_TIMEOUT)
        _check_int("max_append_entries", self.max_append_entries)
        if self.max_append_entries <= 0:
            raise ConfigError(
                f"max_append_entries must be positive (got {self.max_append_entries})"
            )
        if self.max_append_entries > MAX_APPEND_ENTRIES_LIMIT:
            raise ConfigError(
                f"max_append_entries is too large ({self.max_append_entries} > "
                f"{MAX_APPEND_ENTRIES_LIMIT})"
            )
        _check_duration("snapshot_interval", self.snapshot_interval, _MIN_TIMEOUT)
        _check_duration("leader_lease_timeout", self.leader_lease_timeout, _MIN_TIMEOUT)
        if self.leader_lease_timeout > self.heartbeat_timeout:
            raise ConfigError(
                f"leader_lease_timeout ({self.leader_lease_timeout}s) cannot be larger than "
                f"heartbeat_timeout ({self.heartbeat_timeout}s)"
            )
        if self.election_timeout < self.heartbeat_timeout:
            raise ConfigError(
                f"election_timeout ({self.election_timeout}s) must be equal or greater than "
                f"heartbeat_timeout ({self.heartbeat_timeout}s)"
            )
        _check_int("trailing_logs", self.trailing_logs)
        if self.trailing_logs < 0:
            raise ConfigError(f"trailing_logs cannot be negative (got {self.trailing_logs})")
        _check_int("snapshot_threshold", self.snapshot_threshold)
        if self.snapshot_threshold < 0:
            raise ConfigError(
                f"snapshot_threshold cannot be negative (got {self.snapshot_threshold})"
            )
        for name in (
            "batch_apply_ch",
            "shutdown_on_remove",
            "no_snapshot_restore_on_start",
            "pre_vote_disabled",
        ):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be a bool (got {getattr(self, name)!r})")
        _check_int("pipeline_window", self.pipeline_window)
        if self.pipeline_window < 1:
            raise ConfigError(f"pipeline_window must be at least 1 (got {self.pipeline_window})")
        if self.tick_interval is not None:
            _check_duration("tick_interval", self.tick_interval, 0.0005)
            if self.tick_interval > self.heartbeat_timeout / 2:
                raise ConfigError(
                    f"tick_interval ({self.tick_interval}s) must be at most half of "
                    f"heartbeat_timeout ({self.heartbeat_timeout}s)"
                )
        if self.gil_switch_interval is not None:
            _check_duration("gil_switch_interval", self.gil_switch_interval, 0.00001)
            if self.gil_switch_interval > 0.1:
                raise ConfigError(
                    f"gil_switch_interval is too high ({self.gil_switch_interval}s > 0.1s)"
                )
        _check_int("max_batch_proposals", self.max_batch_proposals)
        if self.max_batch_proposals < 1:
            raise ConfigError(
                f"max_batch_proposals must be at least 1 (got {self.max_batch_proposals})"
            )

    def effective_tick(self) -> float:
        """The tick period the node uses (seconds)."""
        if self.tick_interval is not None:
            return self.tick_interval
        return max(0.001, min(self.heartbeat_timeout / 10, self.commit_timeout))

    def reloadable(self) -> ReloadableConfig:
        """The current values of the reloadable settings."""
        return ReloadableConfig(
            trailing_logs=self.trailing_logs,
            snapshot_interval=self.snapshot_interval,
            snapshot_threshold=self.snapshot_threshold,
            heartbeat_timeout=self.heartbeat_timeout,
            election_timeout=self.election_timeout,
        )

    def with_reloadable(self, rc: ReloadableConfig) -> Config:
        """A copy with the reloadable settings of ``rc``; validated."""
        new = replace(
            self,
            trailing_logs=rc.trailing_logs,
            snapshot_interval=rc.snapshot_interval,
            snapshot_threshold=rc.snapshot_threshold,
            heartbeat_timeout=rc.heartbeat_timeout,
            election_timeout=rc.election_timeout,
        )
        new.validate()
        return new

    def copy(self, **changes: Any) -> Config:
        """A copy with some fields changed (not validated)."""
        known = {f.name for f in fields(self)}
        for k in changes:
            if k not in known:
                raise ConfigError(f"unknown raft config field {k!r}")
        return replace(self, **changes)


def default_config(local_id: str = "") -> Config:
    """hashicorp's DefaultConfig(), with ``local_id`` filled in."""
    return Config(local_id=local_id)


def _check_int(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{name} must be an integer (got {value!r})")


def _check_duration(name: str, value: object, minimum: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name} must be a number of seconds (got {value!r})")
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be finite (got {value!r})")
    if value < minimum:
        raise ConfigError(f"{name} is too low ({value}s < {minimum}s)")


__all__ = [
    "MAX_APPEND_ENTRIES_LIMIT",
    "Config",
    "ConfigError",
    "ReloadableConfig",
    "default_config",
]

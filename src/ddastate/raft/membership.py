"""Membership changes: the next configuration after one change, as hashicorp computes it."""

from __future__ import annotations

from .configuration import Configuration, ConfigurationError, Server, ServerSuffrage
from .errors import RaftError
from .ready import ChangeKind, ConfigurationChange


class ConfigurationChangeError(RaftError):
    """A membership change cannot be made (stale prev_index or an invalid result)."""

    message = "configuration change rejected"


def next_configuration(
    latest: Configuration, latest_index: int, change: ConfigurationChange
) -> Configuration:
    """The configuration that results from ``change`` applied to ``latest``.

    Raises ConfigurationChangeError when ``change.prev_index`` is set and is not the
    index of the latest configuration, or when the result is not a valid configuration
    (for example no voter left).
    """
    if change.prev_index > 0 and change.prev_index != latest_index:
        raise ConfigurationChangeError(
            f"configuration changed since {change.prev_index} (latest is {latest_index})"
        )
    if not change.server_id:
        raise ConfigurationChangeError("server id must not be empty")
    servers = list(latest.servers)
    pos = next((i for i, s in enumerate(servers) if s.id == change.server_id), -1)
    kind = change.kind
    addr = change.server_addr
    if kind is ChangeKind.ADD_VOTER or kind is ChangeKind.ADD_NONVOTER:
        if not addr:
            raise ConfigurationChangeError("server address must not be empty")
        if kind is ChangeKind.ADD_VOTER:
            if pos >= 0:
                servers[pos] = Server(change.server_id, addr, ServerSuffrage.VOTER)
            else:
                servers.append(Server(change.server_id, addr, ServerSuffrage.VOTER))
        else:
            if pos >= 0:
                servers[pos] = Server(change.server_id, addr, servers[pos].suffrage)
            else:
                servers.append(Server(change.server_id, addr, ServerSuffrage.NONVOTER))
    elif kind is ChangeKind.DEMOTE_VOTER:
        if pos >= 0:
            servers[pos] = Server(servers[pos].id, servers[pos].address, ServerSuffrage.NONVOTER)
    elif kind is ChangeKind.REMOVE_SERVER:
        if pos >= 0:
            del servers[pos]
    else:  # pragma: no cover - exhaustive enum
        raise ConfigurationChangeError(f"unknown configuration change {kind!r}")
    result = Configuration(tuple(servers))
    try:
        result.validate()
    except ConfigurationError as e:
        raise ConfigurationChangeError(str(e)) from e
    return result


__all__ = ["ConfigurationChangeError", "next_configuration"]

"""Cluster membership: servers, suffrage and the configuration entry format.

Configuration entries travel inside the log to every member, Go members included, so
``encode_configuration`` writes exactly what hashicorp/raft's encoder writes (a map
``{Servers: [{Address, ID, Suffrage}]}`` with keys in sorted order and strings in the
raw-string family), and ``decode_configuration`` accepts what the Go encoder writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import msgpack


class ServerSuffrage(IntEnum):
    """Whether a server's vote counts (hashicorp's numbering)."""

    VOTER = 0
    NONVOTER = 1
    STAGING = 2


@dataclass(frozen=True, slots=True)
class Server:
    """One member of a configuration. In ddastate the id and the address are equal."""

    id: str
    address: str
    suffrage: ServerSuffrage = ServerSuffrage.VOTER


@dataclass(frozen=True, slots=True)
class Configuration:
    """An ordered set of servers; ids and addresses are unique within it."""

    servers: tuple[Server, ...] = field(default_factory=tuple)

    def __iter__(self) -> Iterator[Server]:
        return iter(self.servers)

    def __len__(self) -> int:
        return len(self.servers)

    def get(self, server_id: str) -> Server | None:
        """The server with this id, or None."""
        for s in self.servers:
            if s.id == server_id:
                return s
        return None

    def voters(self) -> list[Server]:
        return [s for s in self.servers if s.suffrage == ServerSuffrage.VOTER]

    def is_voter(self, server_id: str) -> bool:
        s = self.get(server_id)
        return s is not None and s.suffrage == ServerSuffrage.VOTER

    def validate(self) -> None:
        """Raise ConfigurationError unless this is a configuration a Go peer accepts."""
        ids: set[str] = set()
        addrs: set[str] = set()
        voters = 0
        for s in self.servers:
            if not s.id:
                raise ConfigurationError("empty server id in configuration")
            if not s.address:
                raise ConfigurationError(f"empty address for server {s.id!r} in configuration")
            if s.id in ids:
                raise ConfigurationError(f"duplicate server id {s.id!r} in configuration")
            if s.address in addrs:
                raise ConfigurationError(f"duplicate address {s.address!r} in configuration")
            if not isinstance(s.suffrage, ServerSuffrage):
                raise ConfigurationError(f"bad suffrage for server {s.id!r}")
            ids.add(s.id)
            addrs.add(s.address)
            if s.suffrage == ServerSuffrage.VOTER:
                voters += 1
        if voters == 0:
            raise ConfigurationError("configuration has no voters")

    @classmethod
    def of(cls, servers: Iterable[Server]) -> Configuration:
        return cls(tuple(servers))


class ConfigurationError(ValueError):
    """A configuration is invalid or its encoded form does not decode."""


def encode_configuration(configuration: Configuration) -> bytes:
    """Encode as hashicorp/raft does (Go msgpack, sorted keys, raw strings)."""
    servers = [
        {
            "Address": s.address.encode(),
            "ID": s.id.encode(),
            "Suffrage": int(s.suffrage),
        }
        for s in configuration.servers
    ]
    out: bytes = msgpack.packb({"Servers": servers}, use_bin_type=False)
    return out


def _text(value: Any, what: str) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ConfigurationError(f"{what} is not UTF-8") from e
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    raise ConfigurationError(f"{what} has type {type(value).__name__}, expected a string")


def _lookup(m: dict[Any, Any], name: str) -> Any:
    if name in m:
        return m[name]
    return m.get(name.encode())


def decode_configuration(data: bytes | None) -> Configuration:
    """Decode a configuration entry; raise ConfigurationError on anything malformed."""
    if not data:
        raise ConfigurationError("empty configuration data")
    try:
        obj = msgpack.unpackb(data, raw=True, strict_map_key=False)
    except Exception as e:  # msgpack raises several unrelated types
        raise ConfigurationError(f"configuration does not decode: {e}") from e
    if not isinstance(obj, dict):
        raise ConfigurationError("configuration is not a map")
    raw_servers = _lookup(obj, "Servers")
    if raw_servers is None:
        raw_servers = []
    if not isinstance(raw_servers, list):
        raise ConfigurationError("configuration Servers is not an array")
    servers: list[Server] = []
    for i, rs in enumerate(raw_servers):
        if not isinstance(rs, dict):
            raise ConfigurationError(f"configuration server {i} is not a map")
        suffrage = _lookup(rs, "Suffrage")
        if suffrage is None:
            suffrage = 0
        if not isinstance(suffrage, int) or isinstance(suffrage, bool):
            raise ConfigurationError(f"configuration server {i} Suffrage is not an integer")
        try:
            suff = ServerSuffrage(suffrage)
        except ValueError as e:
            raise ConfigurationError(
                f"configuration server {i} has unknown Suffrage {suffrage}"
            ) from e
        servers.append(
            Server(
                id=_text(_lookup(rs, "ID"), f"configuration server {i} ID"),
                address=_text(_lookup(rs, "Address"), f"configuration server {i} Address"),
                suffrage=suff,
            )
        )
    return Configuration(tuple(servers))

"""Status of one member, read from its state binding's Raft node."""

from __future__ import annotations

import contextlib
from typing import Any

from ddastate import __version__
from ddastate.apis.grpc.status import MemberInfo, StatusInfo


def _suffrage(server: Any) -> str:
    suffrage = getattr(server, "suffrage", None)
    name = getattr(suffrage, "name", None)
    return str(name).lower() if name else "voter"


def _role(node: Any) -> str:
    state = getattr(node, "state", None)
    name = getattr(state, "name", None)
    return str(name).lower() if name else str(state or "")


def node_status(node: Any, *, id: str, name: str = "", cluster: str = "") -> StatusInfo:
    """A StatusInfo from a ``ddastate.raft.Raft`` node (cheap, synchronous)."""
    _addr, leader_id = node.leader()
    servers: tuple[Any, ...] = ()
    for holder in (node, getattr(node, "_core", None)):
        latest = getattr(holder, "latest_configuration", None)
        with contextlib.suppress(Exception):
            if callable(latest):
                latest = latest()
            if latest is not None:
                servers = tuple(latest.servers)
                break
    members = tuple(
        MemberInfo(str(s.id), _suffrage(s), str(s.id) == str(leader_id)) for s in servers
    )
    return StatusInfo(
        id=id,
        name=name,
        cluster=cluster,
        state_enabled=True,
        role=_role(node),
        leader_id=str(leader_id or ""),
        term=int(node.current_term()),
        commit_index=int(node.commit_index()),
        applied_index=int(node.applied_index()),
        last_log_index=int(node.last_index()),
        members=members,
        version=__version__,
    )


def collect_status(cfg: Any, binding: Any | None) -> StatusInfo:
    """Status of the sidecar's member; Raft fields empty when state is disabled or not open."""
    base = {
        "id": cfg.identity.id,
        "name": cfg.identity.name,
        "cluster": cfg.cluster,
    }
    com = "" if cfg.services.com.disabled else cfg.services.com.protocol
    if cfg.services.state.disabled:
        return StatusInfo(state_enabled=False, com_protocol=com, version=__version__, **base)
    node = binding.node() if binding is not None else None
    if node is None:
        return StatusInfo(role="not open", com_protocol=com, version=__version__, **base)
    info = node_status(node, **base)
    return StatusInfo(
        id=info.id,
        name=info.name,
        cluster=info.cluster,
        role=info.role,
        leader_id=info.leader_id,
        term=info.term,
        commit_index=info.commit_index,
        applied_index=info.applied_index,
        last_log_index=info.last_log_index,
        members=info.members,
        com_protocol=com,
        version=__version__,
    )

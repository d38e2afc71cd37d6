"""Human-readable and JSON output of the ddastate command."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

from ddastate.apis.grpc.status import StatusInfo
from ddastate.state.api import Input, InputOp, MembershipChange


def show_value(value: bytes | None, limit: int = 60) -> str:
    """A value as text when it is printable UTF-8, else as hex; shortened to ``limit``."""
    if value is None:
        return ""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
        shown = "0x" + value.hex()
    else:
        shown = text if text.isprintable() else repr(text)
    if len(shown) > limit:
        shown = shown[: limit - 3] + "..."
    return shown


def value_json(value: bytes | None) -> dict[str, Any]:
    """JSON fields for a value: ``value`` (UTF-8 text or null) and ``value_base64``."""
    if value is None:
        return {"value": None, "value_base64": None}
    try:
        text: str | None = value.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    return {"value": text, "value_base64": base64.b64encode(value).decode("ascii")}


def input_json(inp: Input) -> str:
    """One state change as a JSON line."""
    op = {InputOp.SET: "set", InputOp.DELETE: "delete"}.get(inp.op, "undefined")
    doc: dict[str, Any] = {"op": op, "key": inp.key}
    if inp.op is InputOp.SET:
        doc.update(value_json(inp.value))
    return json.dumps(doc, ensure_ascii=False)


def membership_json(change: MembershipChange) -> str:
    """One membership change as a JSON line."""
    return json.dumps({"id": change.id, "joined": change.joined})


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain text table with left-aligned columns separated by two spaces."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def status_json(info: StatusInfo) -> str:
    """The status as a JSON document."""
    return json.dumps(
        {
            "id": info.id,
            "name": info.name,
            "cluster": info.cluster,
            "state_enabled": info.state_enabled,
            "role": info.role,
            "leader": info.leader_id,
            "term": info.term,
            "commit_index": info.commit_index,
            "applied_index": info.applied_index,
            "last_log_index": info.last_log_index,
            "members": [
                {"id": m.id, "suffrage": m.suffrage, "leader": m.leader} for m in info.members
            ],
            "com_protocol": info.com_protocol,
            "version": info.version,
        },
        indent=2,
    )


def status_text(info: StatusInfo) -> str:
    """The status as a small report with a members table."""
    name = f" ({info.name})" if info.name else ""
    lines = [
        f"member        {info.id}{name}",
        f"cluster       {info.cluster}",
    ]
    if not info.state_enabled:
        lines.append("state         disabled in this sidecar's configuration")
        return "\n".join(lines)
    lines += [
        f"role          {info.role}",
        f"leader        {info.leader_id or '(none)'}",
        f"term          {info.term}",
        f"commit index  {info.commit_index}",
        f"applied index {info.applied_index}",
        f"last log      {info.last_log_index}",
        "",
        members_text(info),
    ]
    return "\n".join(lines)


def members_text(info: StatusInfo) -> str:
    """The members of a status as a table."""
    rows = [
        (m.id, m.suffrage, "leader" if m.leader else "", "(this member)" if m.id == info.id else "")
        for m in info.members
    ]
    return table(("MEMBER", "SUFFRAGE", "ROLE", ""), rows)


def members_json(info: StatusInfo) -> str:
    """The members of a status as a JSON list."""
    return json.dumps(
        [
            {"id": m.id, "suffrage": m.suffrage, "leader": m.leader, "self": m.id == info.id}
            for m in info.members
        ],
        indent=2,
    )

"""``ddastate demo``: three members in one process on the loopback bus."""

from __future__ import annotations

from ddastate.cli import CliError


def run_demo(*, plain: bool = False, keep: bool = False, writes: int = 20) -> int:
    """Run the demo; returns the exit code."""
    raise CliError("the demo is not available yet")

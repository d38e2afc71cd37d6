"""Shared fixtures of the interoperability tests (Go reference vs ddastate)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INTEROP = REPO / "interop"
if str(INTEROP) not in sys.path:
    sys.path.insert(0, str(INTEROP))

import gointerop  # noqa: E402


def interop_enabled() -> bool:
    """Mixed-group scenarios are opt-in: DDASTATE_INTEROP=1 (set by .ci/run when Go is present)."""
    return os.environ.get("DDASTATE_INTEROP", "") not in ("", "0")


@pytest.fixture(scope="session")
def go_exe() -> str:
    go = gointerop.find_go()
    if go is None:
        pytest.skip("Go is not installed: no $GO, no `go` on PATH, no /usr/local/go/bin/go")
    return go


@pytest.fixture(scope="session")
def goldengen(go_exe: str) -> Path:
    """The built golden-vector program (cached outside the repository)."""
    try:
        return gointerop.go_binary("goldengen")
    except gointerop.GoUnavailable as e:
        pytest.fail(str(e))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """Keep each phase's report on the item, so fixtures can print logs on failure."""
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)

"""The README's demo command works as written on a fresh clone of the repository.

The README's test command is what CI runs (.ci/run), so its own run is that check.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def readme_command(name: str) -> str:
    """The shell command in the fenced block that follows `<!-- command: NAME -->`."""
    text = (ROOT / "README.md").read_text()
    m = re.search(rf"<!-- command: {name} -->\s*```(?:sh|bash|console)?\n(.*?)```", text, re.S)
    assert m, f"README has no '{name}' command block"
    return m.group(1).strip()


def test_readme_names_both_commands() -> None:
    assert readme_command("demo")
    test_cmd = readme_command("test")
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_cmd.split()[-1] in ci, "CI must run the README's test command"


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_demo_command_on_fresh_clone(tmp_path: Path) -> None:
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    if head.returncode != 0:
        pytest.skip("not a git checkout")
    clone = tmp_path / "ddastate"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    proc = subprocess.run(
        readme_command("demo"),
        shell=True,
        cwd=clone,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert re.search(r"states are equal", out, re.I), out[-4000:]
    assert (clone / ".venv" / "bin" / "ddastate").exists()


def test_library_example_runs(tmp_path: Path) -> None:
    """The README's library example runs as written and prints the change it proposed."""
    text = (ROOT / "README.md").read_text()
    m = re.search(r"## The library\n\n```python\n(.*?)```", text, re.S)
    assert m, "README has no library example"
    script = tmp_path / "example.py"
    script.write_text(m.group(1))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "SET greeting b'hello'" in proc.stdout
    assert "joined=True" in proc.stdout

#!/usr/bin/env bash
# The whole test suite: lint, types, tests. Creates its own environment (.venv) and
# installs what it needs, Mosquitto included. Extra arguments go to pytest.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

.venv/bin/ruff check src tests benchmarks interop scripts
.venv/bin/ruff format --check src tests benchmarks interop scripts
.venv/bin/mypy
if command -v go >/dev/null 2>&1 || [ -x /usr/local/go/bin/go ]; then
    export PATH="$PATH:/usr/local/go/bin"
    export DDASTATE_INTEROP="${DDASTATE_INTEROP:-1}"
fi
exec .venv/bin/pytest -q "$@"

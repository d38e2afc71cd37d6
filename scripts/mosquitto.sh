#!/usr/bin/env bash
# Run a Mosquitto configured for ddastate (set_tcp_nodelay, large max_queued_messages,
# persistence off, 127.0.0.1 only) in the foreground: scripts/mosquitto.sh [--port 1883]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec .venv/bin/python -m ddastate.testing.mosquitto "$@"

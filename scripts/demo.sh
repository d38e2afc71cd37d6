#!/usr/bin/env bash
# See ddastate work: three members in one process, no broker, no config.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
exec .venv/bin/ddastate demo "$@"

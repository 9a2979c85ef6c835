#!/usr/bin/env bash
# Usage: scripts/test.sh [pytest args...]
# Installs the locked dependencies (uv, then `uv sync --locked`) and runs the test suite.
# Needs Python 3.11-3.13; Node.js/npx for the MCP Inspector test. Nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v uv >/dev/null 2>&1; then
  echo "installing uv (the project's package manager) with pip..." >&2
  python3 -m pip install --quiet --user uv 2>/dev/null || python3 -m pip install --quiet uv
  export PATH="$HOME/.local/bin:$PATH"
fi

uv sync --locked --quiet
exec uv run --locked pytest "$@"

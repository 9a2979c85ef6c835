#!/usr/bin/env bash
# Usage: scripts/export-requirements.sh
# Writes requirements/*.txt, the hash-pinned install lists of each image, from uv.lock.
# Run after every `uv lock`; a test fails when the files and the lock disagree.
set -euo pipefail
cd "$(dirname "$0")/.."
export_to() { uv export --frozen --no-dev --no-emit-workspace --no-emit-project --quiet "$@"; }
export_to --package offline-agents -o requirements/orchestrator.txt
export_to --package mcp-server -o requirements/mcp-server.txt
export_to --only-group ollama-standin -o requirements/ollama-standin.txt
export_to --only-group dashboard-standin -o requirements/dashboard-standin.txt

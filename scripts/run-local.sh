#!/usr/bin/env bash
# Usage: scripts/run-local.sh [main.py arguments, e.g. --prompt "3 days in Lisbon in May"]
# Runs the tool server and the planner as plain processes (no containers) against an Ollama
# on this machine: OLLAMA_HOST (default http://127.0.0.1:11434), OLLAMA_MODEL (default: .env's, phi4-mini).
# Telemetry is off unless OTEL_EXPORTER_OTLP_ENDPOINT is set in the environment: .env's address
# (http://aspire-dashboard:18889) is the compose network's, which plain processes cannot reach.
# `scripts/run-local.sh doctor` checks Ollama, the tool server and a generation this way.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v uv >/dev/null 2>&1 || { echo "uv is required: python3 -m pip install uv" >&2; exit 2; }
uv sync --locked --quiet

port="${MCP_PORT:-8090}"
mkdir -p .cache
MCP_HOST=127.0.0.1 MCP_PORT="$port" uv run --locked python -m mcp_server >.cache/mcp-server.log 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT

for _ in $(seq 1 100); do
  if python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/health', timeout=1)" 2>/dev/null; then
    break
  fi
  kill -0 "$server" 2>/dev/null || { echo "the tool server did not start; see .cache/mcp-server.log" >&2; exit 5; }
  sleep 0.1
done

if [ -z "${OTEL_EXPORTER_OTLP_ENDPOINT:-}" ]; then
  echo "note: telemetry is off (set OTEL_EXPORTER_OTLP_ENDPOINT, e.g. http://127.0.0.1:4317, to export it)" >&2
fi
# Loopback addresses for everything; an empty endpoint overrides .env's compose-only one.
OLLAMA_HOST="${OLLAMA_HOST:-http://127.0.0.1:11434}" \
MCP_SERVER_URL="http://127.0.0.1:$port/mcp" \
OTEL_EXPORTER_OTLP_ENDPOINT="${OTEL_EXPORTER_OTLP_ENDPOINT:-}" \
  uv run --locked python main.py "$@"

#!/usr/bin/env bash
# Usage: scripts/check-compose.sh   (make runs it before every compose command)
# One line when Docker Compose v2.24+ is missing or too old, naming what was found and how to get
# it; Compose v1 and a docker without the plugin otherwise fail with "unknown flag: --profile".
set -euo pipefail
needed="2.24"
how="install the Compose plugin: apt install docker-compose-plugin (Docker's apt repository), or see https://docs.docker.com/compose/install/linux/"
if ! command -v docker >/dev/null 2>&1; then
  echo "error: docker is not installed; install Docker Engine with its Compose plugin (https://docs.docker.com/engine/install/)" >&2
  exit 2
fi
if ! found=$(docker compose version --short 2>/dev/null); then
  if command -v docker-compose >/dev/null 2>&1; then
    old=$(docker-compose version --short 2>/dev/null || echo "unknown")
    echo "error: Docker Compose $needed or newer is needed as \`docker compose\`; found only docker-compose $old (v1); $how" >&2
  else
    echo "error: Docker Compose $needed or newer is needed; \`docker compose\` is not available here; $how" >&2
  fi
  exit 2
fi
found="${found#v}"
if [ "$(printf '%s\n%s\n' "$needed" "$found" | sort -V | head -1)" != "$needed" ]; then
  echo "error: Docker Compose $needed or newer is needed; found $found; $how" >&2
  exit 2
fi

#!/usr/bin/env bash
# Usage: scripts/import-gguf.sh NAME FILE.gguf [Modelfile]
# Imports model weights received as a .gguf file into the running stack's Ollama under NAME
# (for sites that get weights as files, not through `ollama pull`). An optional Modelfile adds a
# TEMPLATE, SYSTEM or PARAMETERs; its FROM line is replaced by the given file.
# The stack must be up (make up-cpu). COMPOSE overrides the compose command (default: docker compose).
set -euo pipefail
name="${1:?usage: scripts/import-gguf.sh NAME FILE.gguf [Modelfile]}"
gguf="${2:?usage: scripts/import-gguf.sh NAME FILE.gguf [Modelfile]}"
modelfile="${3:-}"
cd "$(dirname "$0")/.."
read -r -a compose <<<"${COMPOSE:-docker compose}"

[ -f "$gguf" ] || { echo "error: $gguf not found" >&2; exit 2; }
if [ "$(head -c 4 "$gguf")" != "GGUF" ]; then
  echo "error: $gguf is not a GGUF file (it does not start with 'GGUF')" >&2
  exit 2
fi

container=""
for service in ollama ollama-gpu; do
  container=$("${compose[@]}" --profile cpu --profile gpu ps -q "$service" 2>/dev/null || true)
  [ -n "$container" ] && break
done
[ -n "$container" ] || { echo "error: no running ollama service; start the stack first (make up-cpu)" >&2; exit 3; }

work=$(mktemp -d)
# Staged in the model volume: the root file system is read-only and /tmp a tmpfs, which `docker cp`
# cannot write to (and a multi-GB file there would take as much RAM).
# A failed import must not leave a multi-GB copy in the container.
trap 'rm -rf "$work"; docker exec "$container" rm -rf /root/.ollama/.import >/dev/null 2>&1 || true' EXIT
{
  echo "FROM /root/.ollama/.import/model.gguf"
  if [ -n "$modelfile" ]; then grep -viE '^[[:space:]]*FROM[[:space:]]' "$modelfile" || true; fi
} >"$work/Modelfile"

docker exec "$container" mkdir -p /root/.ollama/.import
docker cp "$gguf" "$container:/root/.ollama/.import/model.gguf"
docker cp "$work/Modelfile" "$container:/root/.ollama/.import/Modelfile"
echo "importing $gguf as $name" >&2
docker exec "$container" ollama create "$name" -f /root/.ollama/.import/Modelfile
docker exec "$container" ollama list

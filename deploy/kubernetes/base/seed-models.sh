#!/usr/bin/env bash
# Usage: seed-models.sh   (run by the compose service ollama-seed, inside the Ollama image)
# Makes sure OLLAMA_MODEL and OLLAMA_EXTRA_MODELS (comma or space separated) are in the model
# volume. Online it pulls only what is missing, with progress; a second run pulls nothing.
# With OFFLINE=1 it pulls nothing: it checks the volume and fails fast, naming what is missing.
# It runs its own Ollama server on 127.0.0.1, so the stack's `ollama` service never needs a
# route to the internet.
set -euo pipefail

wanted="${OLLAMA_MODEL:?OLLAMA_MODEL is not set (see .env)} ${OLLAMA_EXTRA_MODELS:-}"
wanted="${wanted//,/ }"

# `make up-cpu` runs this job in the terminal first (to show progress), then `up`, which starts it
# again: that second start has nothing to do.
if [ "${OLLAMA_SEEDED:-0}" = 1 ]; then
  read -ra names <<<"$wanted"
  echo "models seeded just before this start (make seed): ${names[*]}"
  exit 0
fi

export OLLAMA_HOST=127.0.0.1:11434
ollama serve >/tmp/ollama-seed-server.log 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true' EXIT

for _ in $(seq 1 120); do
  ollama list >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || { echo "error: ollama serve did not start:" >&2; cat /tmp/ollama-seed-server.log >&2; exit 1; }
  sleep 0.5
done

# `ollama list` names carry a tag; a bare name means :latest.
present=$(ollama list | awk 'NR > 1 { print $1 }')
missing=()
for model in $wanted; do
  tagged="$model"
  [[ "$tagged" == *:* ]] || tagged="$tagged:latest"
  if grep -qxF "$tagged" <<<"$present"; then
    echo "present: $model"
  else
    missing+=("$model")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "all models present: $wanted"
  exit 0
fi

if [ "${OFFLINE:-0}" = "1" ]; then
  echo "error: OFFLINE=1 and the model volume lacks: ${missing[*]}" >&2
  echo "  load them into the volume on this machine (docs/troubleshooting.md, 'model not found')," >&2
  echo "  or set OFFLINE=0 on a connected machine to pull them" >&2
  exit 1
fi

for model in "${missing[@]}"; do
  echo "pulling $model (only what is missing is downloaded)"
  ollama pull "$model"
done
echo "seeded: ${missing[*]}"

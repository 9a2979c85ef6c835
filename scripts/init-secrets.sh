#!/usr/bin/env bash
# Usage: scripts/init-secrets.sh [ENV_FILE]   (default: .env)
# Fills DASHBOARD_TOKEN and OTLP_API_KEY with random values where they are empty. Values already
# set are kept, so running it again changes nothing.
set -euo pipefail
file="${1:-.env}"
[ -f "$file" ] || { echo "error: $file not found" >&2; exit 2; }
for name in DASHBOARD_TOKEN OTLP_API_KEY; do
  if grep -qE "^${name}=$" "$file"; then
    value=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
    sed -i "s/^${name}=$/${name}=${value}/" "$file"
    echo "generated $name in $file" >&2
  elif ! grep -qE "^${name}=" "$file"; then
    echo "${name}=$(python3 -c 'import secrets; print(secrets.token_hex(16))')" >>"$file"
    echo "added $name to $file" >&2
  fi
done

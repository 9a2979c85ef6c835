#!/usr/bin/env bash
# Usage: scripts/build-wheelhouse.sh [DIR]   (default: ./wheels)
# Downloads every wheel the images install (requirements/*.txt, hash-checked) for the images'
# platform: CPython 3.13 on x86_64 Linux. Then the images build with no network at all:
#   docker compose build --build-arg WHEELS=offline      (or WHEELS=offline in .env)
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-wheels}"
mkdir -p "$dir"
if python3 -m pip --version >/dev/null 2>&1; then
  pip=(python3 -m pip)
elif command -v uvx >/dev/null 2>&1; then
  pip=(uvx --from pip pip)  # a uv-made venv has no pip of its own
else
  echo "error: pip is needed (python3 -m pip, or uv's uvx)" >&2
  exit 2
fi
for requirements in requirements/*.txt; do
  echo "downloading wheels for $requirements" >&2
  # --no-deps: the lists are complete (exported from uv.lock), so pip resolves nothing; without it
  # pip refuses an extra's unpinned requirement (pydantic[email]>=2.12.0 from fastmcp-slim).
  "${pip[@]}" download --quiet --disable-pip-version-check --require-hashes --no-deps --only-binary=:all: \
    --implementation cp --python-version 3.13 --abi cp313 \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64 --platform linux_x86_64 \
    --dest "$dir" -r "$requirements"
done
echo "$(find "$dir" -name '*.whl' | wc -l) wheels in $dir ($(du -sh "$dir" | cut -f1))" >&2

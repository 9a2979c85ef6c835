"""The Ollama stand-in with a real model behind it (Qwen2.5-Coder-Instruct Q4_K_M, 0.5B or 1.5B, on llama.cpp),
imported the way a site imports a GGUF, for any test tier.

    scripts/real-model.sh                   # once: llama-cpp-python and the GGUF, into the cache
    REAL_MODEL=1 uv run pytest tests/realmodel

A tier uses it by importing the fixture into its conftest.py:

    from realmodel.real_ollama import real_ollama  # noqa: F401

    def test_something(real_ollama):
        ollama.Client(real_ollama.url).chat(model=real_ollama.model, ...)

Without REAL_MODEL=1 the tests that use it are skipped; with REAL_MODEL=1, anything missing is a
failure that says what to run. Every tier shares one stand-in process per session.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import ollama
import pytest
from ollama_standin.testing import run_process

# REAL_MODEL_SIZE picks the model (scripts/real-model.sh prepares either): 0.5b, fast enough for
# every CI run, or 1.5b, the smallest that plans well (docs/operations.md has both).
SIZE = os.environ.get("REAL_MODEL_SIZE") or "0.5b"
MODEL = f"qwen2.5-coder:{SIZE}"
GGUF_NAME = f"qwen2.5-coder-{SIZE}-instruct-q4_k_m.gguf"
SETUP = "scripts/real-model.sh"

# Ollama's TEMPLATE for qwen2.5-coder (`ollama show --template qwen2.5-coder`): it uses .Tools, so
# the imported model has the tools capability, and its `{{ if .ToolCalls }}<tool_call>` gives
# Ollama's tool parser the tag it looks for.
QWEN25_CODER_TEMPLATE = """\
{{- if .Suffix }}<|fim_prefix|>{{ .Prompt }}<|fim_suffix|>{{ .Suffix }}<|fim_middle|>
{{- else if .Messages }}
{{- if or .System .Tools }}<|im_start|>system
{{- if .System }}
{{ .System }}
{{- end }}
{{- if .Tools }}

# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{{- range .Tools }}
{"type": "function", "function": {{ .Function }}}
{{- end }}
</tools>

For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:
<tool_call>
{"name": <function-name>, "arguments": <args-json-object>}
</tool_call>
{{- end }}<|im_end|>
{{ end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 -}}
{{- if eq .Role "user" }}<|im_start|>user
{{ .Content }}<|im_end|>
{{ else if eq .Role "assistant" }}<|im_start|>assistant
{{ if .Content }}{{ .Content }}
{{- else if .ToolCalls }}<tool_call>
{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}
{{ end }}</tool_call>
{{- end }}{{ if not $last }}<|im_end|>
{{ end }}
{{- else if eq .Role "tool" }}<|im_start|>user
<tool_response>
{{ .Content }}
</tool_response><|im_end|>
{{ end }}
{{- if and (ne .Role "assistant") $last }}<|im_start|>assistant
{{ end }}
{{- end }}
{{- else }}
{{- if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}{{ if .Prompt }}<|im_start|>user
{{ .Prompt }}<|im_end|>
{{ end }}<|im_start|>assistant
{{ end }}{{ .Response }}{{ if .Response }}<|im_end|>{{ end }}"""


@dataclass
class RealOllama:
    """A running stand-in serving the real model. `output` collects the stand-in's log lines
    (the brain logs each reply's raw model output and its timings there)."""

    url: str
    model: str
    gguf: Path
    output: list[str] = field(default_factory=list)

    def client(self, **kwargs) -> ollama.Client:
        return ollama.Client(self.url, **kwargs)


def cache_dir() -> Path:
    return Path(os.environ.get("OFFLINE_AGENTS_CACHE") or Path.home() / ".cache" / "offline-agents")


def find_gguf() -> Path:
    """REAL_MODEL_GGUF, else the GGUF scripts/real-model.sh assembles; fails when it is missing."""
    configured = os.environ.get("REAL_MODEL_GGUF")
    path = Path(configured) if configured else cache_dir() / "models" / GGUF_NAME
    if not path.is_file():
        where = f"REAL_MODEL_GGUF={configured}" if configured else str(path)
        pytest.fail(f"real model: {where} does not exist; run {SETUP} (or point REAL_MODEL_GGUF at a GGUF)")
    with path.open("rb") as handle:
        if handle.read(4) != b"GGUF":
            pytest.fail(f"real model: {path} is not a GGUF file; run {SETUP} again")
    return path


def llama_site() -> str:
    """The PYTHONPATH entry that gives the stand-in llama_cpp and jinja2 ("" when this
    interpreter already has them); fails when neither has them."""
    if importlib.util.find_spec("llama_cpp") and importlib.util.find_spec("jinja2"):
        return ""
    site = cache_dir() / "llama-site" / f"cp{sys.version_info[0]}{sys.version_info[1]}"
    check = subprocess.run(
        [sys.executable, "-c", "import llama_cpp, jinja2"],
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
    )
    if not site.is_dir() or check.returncode != 0:
        detail = (check.stderr.strip().splitlines() or ["missing"])[-1] if site.is_dir() else "missing"
        pytest.fail(f"real model: llama-cpp-python is not installed for the stand-in ({site}: {detail}); run {SETUP}")
    return str(site)


def import_model(url: str, gguf: Path) -> None:
    """What a site does with a GGUF file: upload the blob, create the model with Ollama's template."""
    client = ollama.Client(url, timeout=600)
    digest = client.create_blob(gguf)
    client.create(model=MODEL, files={gguf.name: digest}, template=QWEN25_CODER_TEMPLATE, stream=False)
    show = httpx.post(f"{url}/api/show", json={"model": MODEL}, timeout=30).json()
    context = show.get("model_info", {}).get("qwen2.context_length")
    capabilities = show.get("capabilities") or []
    if not context or "tools" not in capabilities:
        pytest.fail(f"real model: /api/show after the import reports context {context}, capabilities {capabilities}")


@dataclass
class _Shared:
    lock: threading.Lock = field(default_factory=threading.Lock)
    users: int = 0
    server: RealOllama | None = None
    resources: ExitStack = field(default_factory=ExitStack)


_shared = _Shared()


def _start(resources: ExitStack) -> RealOllama:
    gguf = find_gguf()
    site = llama_site()
    store = Path(tempfile.mkdtemp(prefix="real-ollama-store-"))
    resources.callback(shutil.rmtree, store, ignore_errors=True)  # it holds a 491 MB copy of the GGUF
    output: list[str] = []
    env = {"STANDIN_GGUF": str(gguf)}
    if site:
        env["PYTHONPATH"] = site
    args = ["--models", "", "--tokens-per-second", "0", "--store-dir", str(store),
            "--brain", "ollama_standin.llama_brain:llama_brain"]  # fmt: skip
    url = resources.enter_context(run_process(args, env=env, timeout=60, output=output))
    import_model(url, gguf)
    return RealOllama(url=url, model=MODEL, gguf=gguf, output=output)


@contextmanager
def serving() -> Iterator[RealOllama]:
    """The same server outside pytest (scripts/benchmark.py): raises pytest's Failed with the
    reason when the tier is not prepared."""
    with ExitStack() as resources:
        yield _start(resources)


def available() -> bool:
    """Whether scripts/real-model.sh has prepared the tier on this machine."""
    try:
        find_gguf()
        llama_site()
    except BaseException:  # pytest.fail raises an Outcome, not an Exception
        return False
    return True


@pytest.fixture(scope="session")
def real_ollama() -> Iterator[RealOllama]:
    """The stand-in with the real model imported as qwen2.5-coder:<size> (skipped unless REAL_MODEL=1)."""
    if os.environ.get("REAL_MODEL") != "1":
        pytest.skip(f"real-model tests: run {SETUP}, then set REAL_MODEL=1")
    with _shared.lock:
        if _shared.server is None:
            resources = ExitStack()
            try:
                _shared.server = _start(resources)
            except BaseException:
                resources.close()
                raise
            _shared.resources = resources
        _shared.users += 1
        server = _shared.server
    try:
        yield server
    finally:
        with _shared.lock:
            _shared.users -= 1
            if _shared.users == 0:
                _shared.server = None
                _shared.resources.close()  # stop the stand-in, remove its store

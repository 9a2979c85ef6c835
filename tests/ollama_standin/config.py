"""Configuration of one stand-in server instance."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .catalog import DEFAULT_CATALOG, ModelInfo

# The Ollama release whose wire format this stand-in imitates (reported by /api/version
# and `ollama --version`). Behaviour that changed across releases is keyed on it.
DEFAULT_VERSION = "0.12.6"


@dataclass
class StandinConfig:
    """How a stand-in instance behaves.

    models: installed at start ("qwen2.5:7b", "phi4-mini", or invented names).
    pullable: names /api/pull can fetch; anything else fails like a missing manifest.
    tokens_per_second: 0 streams as fast as possible; otherwise chat/generate pace their
        chunks (one chunk = one token) at this rate, for streaming and non-streaming alike.
    first_token_delay: seconds of simulated prompt evaluation before the first token.
    prompt_tokens_per_second: 0 evaluates prompts instantly; otherwise prompt evaluation also
        takes prompt_eval_count / this rate, so long prompts wait longer for their first token.
    num_parallel: requests one loaded model generates at once (OLLAMA_NUM_PARALLEL, 1 in
        Ollama 0.12); the others wait for a free slot.
    max_queue: requests that may wait (OLLAMA_MAX_QUEUE, 512); one more is answered 503.
    load_delay: seconds a cold model load takes (only when the model is not loaded yet).
    store_dir: optional OLLAMA_MODELS-style directory (manifests/ + blobs/) that persists
        installed models across instances.
    processor: "gpu" reports size_vram == size in /api/ps, "cpu" reports 0.
    default_num_ctx: context length a model loads with when the request sets no num_ctx
        (Ollama 0.12's default is 4096).
    default_keep_alive: seconds a model stays loaded after a request (OLLAMA_KEEP_ALIVE, 5m).
    pull_step_delay: seconds between pull progress updates.
    """

    host: str = "127.0.0.1"
    port: int = 11434
    models: list[str] = field(default_factory=list)
    pullable: list[str] = field(default_factory=lambda: list(DEFAULT_CATALOG))
    tokens_per_second: float = 0.0
    first_token_delay: float = 0.0
    prompt_tokens_per_second: float = 0.0
    num_parallel: int = 1
    max_queue: int = 512
    load_delay: float = 0.0
    store_dir: Path | str | None = None
    processor: Literal["gpu", "cpu"] = "gpu"
    version: str = DEFAULT_VERSION
    default_num_ctx: int = 4096
    default_keep_alive: float = 300.0
    pull_step_delay: float = 0.0
    catalog: dict[str, ModelInfo] = field(default_factory=lambda: dict(DEFAULT_CATALOG))

    def __post_init__(self) -> None:
        if self.processor not in ("gpu", "cpu"):
            raise ValueError(f"processor must be 'gpu' or 'cpu', not {self.processor!r}")
        if min(self.tokens_per_second, self.prompt_tokens_per_second, self.first_token_delay, self.load_delay) < 0:
            raise ValueError("rates and delays must not be negative")
        if self.num_parallel < 1 or self.max_queue < 1:
            raise ValueError("num_parallel and max_queue must be at least 1")
        if self.store_dir is not None:
            self.store_dir = Path(self.store_dir)


def parse_ollama_host(value: str | None) -> tuple[str, str, int]:
    """(scheme, host, port) from an OLLAMA_HOST value, following Ollama's envconfig.Host().

    Accepts "host", "host:port", ":port", "[::1]:port" and "http(s)://host[:port]"; a missing
    or unparsable port falls back to 11434 (80/443 for explicit http/https schemes).
    """
    text = (value or "").strip()
    default_port = 11434
    scheme, sep, hostport = text.partition("://")
    if not sep:
        scheme, hostport = "http", text
    elif scheme == "http":
        default_port = 80
    elif scheme == "https":
        default_port = 443
    hostport = hostport.split("/", 1)[0]
    host, port_text = "127.0.0.1", ""
    if hostport.startswith("["):
        inner, _, rest = hostport[1:].partition("]")
        host = inner
        port_text = rest[1:] if rest.startswith(":") else ""
    elif hostport.count(":") == 1:
        host, port_text = hostport.split(":")
    elif hostport.count(":") > 1:
        host = hostport  # a bare IPv6 address
    elif hostport:
        host = hostport
    try:
        port = int(port_text)
        if not 0 <= port <= 65535:
            raise ValueError
    except ValueError:
        port = default_port
    return scheme, host, port

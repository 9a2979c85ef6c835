"""`python -m ollama_standin`: serve the stand-in like `ollama serve` would.

Options fall back to STANDIN_* environment variables, then to the variables real Ollama
reads (OLLAMA_HOST, OLLAMA_MODELS, OLLAMA_KEEP_ALIVE, OLLAMA_NUM_PARALLEL, OLLAMA_MAX_QUEUE),
then to Ollama's defaults.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from .brain import Brain
from .config import DEFAULT_VERSION, StandinConfig, parse_ollama_host
from .server import create_app
from .serving import bind_socket, make_server
from .wire import DurationError, parse_keep_alive

log = logging.getLogger("ollama_standin")

DEFAULT_BRAIN = "ollama_standin.brain:default_brain"


def _csv(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [item.strip() for item in value.split(",") if item.strip()]


def load_brain(spec: str) -> Brain:
    """Import "package.module:factory" and call the factory."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise SystemExit(f"--brain must look like MODULE:FACTORY, not {spec!r}")
    factory: Callable[[], Brain] = getattr(importlib.import_module(module_name), attr)
    return factory()


def build_parser() -> argparse.ArgumentParser:
    env = os.environ.get
    _, ollama_host, ollama_port = parse_ollama_host(env("OLLAMA_HOST"))
    parser = argparse.ArgumentParser(prog="python -m ollama_standin", description=__doc__)
    parser.add_argument("--host", default=env("STANDIN_HOST", ollama_host))
    parser.add_argument(
        "--port", type=int, default=int(env("STANDIN_PORT", str(ollama_port))), help="0 picks a free port"
    )
    parser.add_argument("--models", default=env("STANDIN_MODELS"), help="comma-separated, installed at start")
    parser.add_argument("--pullable", default=env("STANDIN_PULLABLE"), help="comma-separated; default: the catalog")
    parser.add_argument("--tokens-per-second", type=float, default=float(env("STANDIN_TOKENS_PER_SECOND", "0")))
    parser.add_argument("--first-token-delay", type=float, default=float(env("STANDIN_FIRST_TOKEN_DELAY", "0")))
    parser.add_argument(
        "--prompt-tokens-per-second",
        type=float,
        default=float(env("STANDIN_PROMPT_TOKENS_PER_SECOND", "0")),
        help="prompt evaluation rate; 0: instant (only --first-token-delay)",
    )
    parser.add_argument(
        "--num-parallel", type=int, default=None, help="requests a model serves at once (OLLAMA_NUM_PARALLEL, 1)"
    )
    parser.add_argument("--max-queue", type=int, default=None, help="requests that may wait (OLLAMA_MAX_QUEUE, 512)")
    parser.add_argument("--load-delay", type=float, default=float(env("STANDIN_LOAD_DELAY", "0")))
    parser.add_argument("--store-dir", default=env("STANDIN_STORE_DIR", env("OLLAMA_MODELS")))
    parser.add_argument("--processor", choices=("gpu", "cpu"), default=env("STANDIN_PROCESSOR", "gpu"))
    parser.add_argument(
        "--version-string", default=env("STANDIN_VERSION", DEFAULT_VERSION), help="reported Ollama version"
    )
    parser.add_argument("--brain", default=env("STANDIN_BRAIN", DEFAULT_BRAIN), help="MODULE:FACTORY")
    parser.add_argument("--log-level", default=env("STANDIN_LOG_LEVEL", "info"))
    return parser


def _ollama_uint(name: str, default: int) -> int:
    """envconfig.Uint: an unparsable value is logged and ignored, as `ollama serve` does."""
    value = os.environ.get(name, "").strip().strip("\"'")
    if not value:
        return default
    try:
        number = int(value)
        if number < 0:
            raise ValueError
    except ValueError:
        log.warning(
            'level=WARN source=config.go msg="invalid environment variable, using default" key=%s value=%s default=%d',
            name,
            value,
            default,
        )
        return default
    return number


def config_from_args(args: argparse.Namespace) -> StandinConfig:
    kwargs: dict[str, Any] = {}
    num_parallel = args.num_parallel
    if num_parallel is None:
        standin = os.environ.get("STANDIN_NUM_PARALLEL")
        num_parallel = int(standin) if standin else _ollama_uint("OLLAMA_NUM_PARALLEL", 1)
    max_queue = args.max_queue
    if max_queue is None:
        standin = os.environ.get("STANDIN_MAX_QUEUE")
        max_queue = int(standin) if standin else _ollama_uint("OLLAMA_MAX_QUEUE", 512)
    pullable = _csv(args.pullable)
    if pullable is not None:
        kwargs["pullable"] = pullable
    keep_alive = os.environ.get("OLLAMA_KEEP_ALIVE")
    if keep_alive:
        try:
            # The env var takes the same forms as the request field ("5m", "-1", "3600").
            value: Any = float(keep_alive) if keep_alive.lstrip("-").replace(".", "", 1).isdigit() else keep_alive
            kwargs["default_keep_alive"] = parse_keep_alive(value, 0) / 1e9
        except DurationError as exc:
            raise SystemExit(f"OLLAMA_KEEP_ALIVE: {exc}") from None
    return StandinConfig(
        host=args.host,
        port=args.port,
        models=_csv(args.models) or [],
        tokens_per_second=args.tokens_per_second,
        first_token_delay=args.first_token_delay,
        prompt_tokens_per_second=args.prompt_tokens_per_second,
        # The scheduler loads a model with at least one slot (sched.go); a 0 queue would refuse all.
        num_parallel=max(1, num_parallel),
        max_queue=max(1, max_queue),
        load_delay=args.load_delay,
        store_dir=args.store_dir or None,
        processor=args.processor,
        version=args.version_string,
        **kwargs,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr, format="%(message)s")
    config = config_from_args(args)
    app = create_app(config, load_brain(args.brain))
    sock = bind_socket(config.host, config.port)
    host, port = sock.getsockname()[:2]
    # Same wording as Ollama's startup line; testing.run_process waits for it to learn the port.
    log.info('level=INFO source=routes.go msg="Listening on %s:%d (version %s)"', host, port, config.version)
    server = make_server(app, log_level=args.log_level.lower())
    # uvicorn handles SIGINT/SIGTERM: stop accepting, finish briefly, exit 0.
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

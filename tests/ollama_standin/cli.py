"""A small imitation of the `ollama` command line, talking HTTP to $OLLAMA_HOST.

Supports `list`/`ls`, `ps`, `pull`, `rm`, `serve` and `--version`, with the real CLI's
table layout (cmd/cmd.go + tablewriter), messages and exit codes, so that scripts and
healthchecks written against Ollama (`ollama list`) work unchanged.

    python -m ollama_standin.cli list
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn

import httpx

from .config import DEFAULT_VERSION, parse_ollama_host
from .wire import human_bytes, human_time, parse_go_time

CLIENT_VERSION = DEFAULT_VERSION
# cmd.checkServerHeartbeat on Linux: startApp fails, the error is wrapped like this.
NOT_RUNNING = "ollama server not responding - could not connect to ollama app, is it running?"


class CLIError(Exception):
    """Printed as "Error: <message>" with exit status 1, as cobra does for RunE errors."""


def base_url() -> str:
    scheme, host, port = parse_ollama_host(os.environ.get("OLLAMA_HOST"))
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"  # a listen-everywhere address is reachable via loopback
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


def _client(timeout: float | None = 30.0) -> httpx.Client:
    return httpx.Client(base_url=base_url(), timeout=timeout, headers={"User-Agent": f"ollama/{CLIENT_VERSION}"})


def _error_text(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error") or response.text)
    except ValueError:
        return response.text.strip() or response.reason_phrase


def _request(client: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
    try:
        response = client.request(method, path, **kwargs)
    except httpx.ConnectError:
        raise CLIError(NOT_RUNNING) from None
    except httpx.HTTPError as exc:
        raise CLIError(str(exc)) from None
    if response.status_code >= 400:
        raise CLIError(_error_text(response))
    return response


def heartbeat(client: httpx.Client) -> None:
    """PreRunE of list/ps/pull/rm: HEAD / must answer before the command runs."""
    try:
        client.head("/")
    except httpx.ConnectError:
        raise CLIError(NOT_RUNNING) from None
    except httpx.HTTPError as exc:
        raise CLIError(f'Head "{base_url()}/": {exc}') from None


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """tablewriter as Ollama configures it: no borders, left aligned, 4-space padding.

    Every cell, the last one included, is padded to its column width plus the padding.
    """
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "".join(str(cell).ljust(width) + "    " for cell, width in zip(row, widths, strict=True))
        for row in [header, *rows]
    ]
    return "\n".join(lines) + "\n"


def cmd_list(args: argparse.Namespace) -> int:
    with _client() as client:
        heartbeat(client)
        models = _request(client, "GET", "/api/tags").json().get("models") or []
    now = datetime.now(UTC)
    rows = []
    for m in models:
        if args.pattern and not str(m["name"]).lower().startswith(args.pattern.lower()):
            continue
        modified = parse_go_time(m["modified_at"]) if m.get("modified_at") else None
        rows.append([m["name"], m["digest"][:12], human_bytes(int(m["size"])), human_time(modified, "Never", now)])
    sys.stdout.write(render_table(["NAME", "ID", "SIZE", "MODIFIED"], rows))
    return 0


def cmd_ps(args: argparse.Namespace) -> int:
    with _client() as client:
        heartbeat(client)
        models = _request(client, "GET", "/api/ps").json().get("models") or []
    now = datetime.now(UTC)
    rows = []
    for m in models:
        if args.pattern and not str(m["name"]).startswith(args.pattern):
            continue
        size, vram = int(m["size"]), int(m.get("size_vram") or 0)
        if vram == 0:
            processor = "100% CPU"
        elif vram == size:
            processor = "100% GPU"
        elif vram > size or size == 0:
            processor = "Unknown"
        else:
            cpu = round((size - vram) / size * 100)
            processor = f"{cpu}%/{100 - cpu}% CPU/GPU"
        expires = parse_go_time(m["expires_at"])
        until = "Stopping..." if expires < now else human_time(expires, "Never", now)
        rows.append(
            [
                m["name"],
                m["digest"][:12],
                human_bytes(size),
                processor,
                str(m.get("context_length", 0)),
                until,
            ]
        )
    sys.stdout.write(render_table(["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"], rows))
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    """Shows the streamed progress, one line per status / finished layer (no TTY tricks)."""
    with _client(timeout=None) as client:
        heartbeat(client)
        body = {"model": args.model, "insecure": args.insecure, "stream": True}
        status = ""
        try:
            with client.stream("POST", "/api/pull", json=body) as response:
                if response.status_code >= 400:
                    response.read()
                    raise CLIError(_error_text(response))
                for line in response.iter_lines():
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    if event.get("error"):
                        raise CLIError(event["error"])
                    digest = event.get("digest")
                    if digest:
                        total, completed = int(event.get("total") or 0), int(event.get("completed") or 0)
                        if total and completed >= total:
                            short = digest.removeprefix("sha256:")[:12]
                            bar = "█" * 16
                            print(f"pulling {short}: 100% ▕{bar}▏ {human_bytes(total)}", file=sys.stderr)
                    elif event.get("status") != status:
                        status = str(event.get("status"))
                        print(status, file=sys.stderr)
        except httpx.ConnectError:
            raise CLIError(NOT_RUNNING) from None
        except httpx.HTTPError as exc:
            raise CLIError(str(exc)) from None
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    with _client() as client:
        heartbeat(client)
        for name in args.models:
            _request(client, "DELETE", "/api/delete", json={"model": name})
            print(f"deleted '{name}'")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Start the stand-in server, configured by OLLAMA_HOST / OLLAMA_MODELS / STANDIN_*."""
    from .__main__ import main as serve_main

    return serve_main([])


def cmd_version() -> int:
    """versionHandler: warnings go to stdout, and the exit status is 0 either way."""
    server_version = ""
    try:
        with _client(timeout=5) as client:
            server_version = str(client.get("/api/version").json().get("version") or "")
    except (httpx.HTTPError, ValueError):
        print("Warning: could not connect to a running Ollama instance")
    if server_version:
        print(f"ollama version is {server_version}")
    if server_version != CLIENT_VERSION:
        print(f"Warning: client version is {CLIENT_VERSION}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ollama", description="Large language model runner (stand-in)")
    parser.add_argument("-v", "--version", action="store_true", help="Show version information")
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", aliases=["start"], help="Start ollama")
    serve.set_defaults(func=cmd_serve)
    listing = sub.add_parser("list", aliases=["ls"], help="List models")
    listing.add_argument("pattern", nargs="?")
    listing.set_defaults(func=cmd_list)
    ps = sub.add_parser("ps", help="List running models")
    ps.add_argument("pattern", nargs="?")
    ps.set_defaults(func=cmd_ps)
    pull = sub.add_parser("pull", help="Pull a model from a registry")
    pull.add_argument("model")
    pull.add_argument("--insecure", action="store_true", help="Use an insecure registry")
    pull.set_defaults(func=cmd_pull)
    rm = sub.add_parser("rm", help="Remove a model")
    rm.add_argument("models", nargs="+")
    rm.set_defaults(func=cmd_rm)
    return parser


def _fail(message: str) -> NoReturn:
    print(f"Error: {message}", file=sys.stderr)
    raise SystemExit(1)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        return cmd_version()
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args))
    except CLIError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())

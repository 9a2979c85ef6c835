"""A small imitation of the `ollama` command line, talking HTTP to $OLLAMA_HOST.

Supports `list`/`ls`, `ps`, `pull`, `rm`, `create`, `show`, `serve` and `--version`, with the
real CLI's table layout (cmd/cmd.go + tablewriter), messages and exit codes, so that scripts
and healthchecks written against Ollama (`ollama list`, `ollama create -f Modelfile`) work
unchanged. Progress goes to stderr one line per step (the real CLI redraws spinners on a TTY).

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
from .gguf import human_number
from .modelfile import ModelfileError, create_request, modelfile_path, parse
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


def _request(
    client: httpx.Client, method: str, path: str, raise_for_status: bool = True, **kwargs: Any
) -> httpx.Response:
    try:
        response = client.request(method, path, **kwargs)
    except httpx.ConnectError:
        raise CLIError(NOT_RUNNING) from None
    except httpx.HTTPError as exc:
        raise CLIError(str(exc)) from None
    if raise_for_status and response.status_code >= 400:
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
        _stream_progress(client, "/api/pull", {"model": args.model, "insecure": args.insecure, "stream": True})
    return 0


def _upload(client: httpx.Client, path: str, digest: str) -> None:
    """createBlob: push a file as /api/blobs/<digest>.

    The real 0.12 CLI POSTs unconditionally (the server answers 200 without reading the body
    when it already has the blob); the stand-in asks with HEAD first so a large file that is
    already there is not sent again. The resulting blob store is the same.
    """
    real = os.path.realpath(path)
    if _request(client, "HEAD", f"/api/blobs/{digest}", raise_for_status=False).status_code == 200:
        return

    def chunks() -> Any:
        with open(real, "rb") as handle:
            while chunk := handle.read(1 << 20):
                yield chunk

    _request(client, "POST", f"/api/blobs/{digest}", content=chunks())


def _stream_progress(client: httpx.Client, path: str, body: dict[str, Any]) -> None:
    """Print the statuses of a streamed progress answer like the CLI's spinners settle."""
    status = ""
    try:
        with client.stream("POST", path, json=body) as response:
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
                        label = event.get("status") or f"pulling {digest[7:19]}..."
                        print(f"{label} 100% ▕{'█' * 16}▏ {human_bytes(total)}", file=sys.stderr)
                elif event.get("status") != status:
                    status = str(event.get("status"))
                    print(status, file=sys.stderr)
    except httpx.ConnectError:
        raise CLIError(NOT_RUNNING) from None
    except httpx.HTTPError as exc:
        raise CLIError(str(exc)) from None


def cmd_create(args: argparse.Namespace) -> int:
    """CreateHandler: parse the Modelfile, upload the files it names, then POST /api/create."""
    with _client(timeout=None) as client:
        heartbeat(client)
        path = modelfile_path(args.file)
        # A Modelfile that does not exist makes the 0.12 CLI fall back to "FROM ." silently.
        text = path.read_text(encoding="utf-8", errors="replace") if path else "FROM .\n"
        try:
            modelfile = parse(text)
        except ModelfileError as exc:
            raise CLIError(str(exc)) from None
        print("gathering model components", file=sys.stderr)
        try:
            plan = create_request(modelfile, str(path.parent) if path else ".")
        except ModelfileError as exc:
            raise CLIError(str(exc)) from None
        for warning in plan.warnings:
            print(warning)
        files: dict[str, str] = {}
        adapters: dict[str, str] = {}
        for local, target in ((plan.files, files), (plan.adapters, adapters)):
            for file_path, digest in local.items():
                _upload(client, file_path, digest)
                print(f"copying file {digest} 100%", file=sys.stderr)
                target[os.path.basename(file_path)] = digest
        request = plan.request
        # api.CreateRequest field order; the deprecated "name" has no omitempty.
        body: dict[str, Any] = {"model": args.model}
        if args.quantize:
            body["quantize"] = args.quantize
        for key, value in (
            ("from", request.get("from")),
            ("files", files),
            ("adapters", adapters),
            ("template", request.get("template")),
            ("license", request.get("license")),
            ("system", request.get("system")),
            ("parameters", request.get("parameters")),
            ("messages", request.get("messages")),
            ("renderer", request.get("renderer")),
            ("parser", request.get("parser")),
            ("requires", request.get("requires")),
        ):
            if value:
                body[key] = value
        body["name"] = ""
        try:
            _stream_progress(client, "/api/create", body)
        except CLIError as exc:
            if "path or Modelfile are required" in str(exc):
                raise CLIError("the ollama server must be updated to use `ollama create` with this client") from None
            raise
    return 0


def _render_rows(rows: Sequence[Sequence[str]]) -> str:
    """tablewriter without header or borders, 4-space padding after every cell."""
    if not rows:
        return ""
    count = max(len(row) for row in rows)
    rows = [list(row) + [""] * (count - len(row)) for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(count)]
    return "".join("".join(c.ljust(w) + "    " for c, w in zip(row, widths, strict=True)) + "\n" for row in rows)


def _show_info(show: dict[str, Any], verbose: bool) -> str:
    """showInfo: the "Model", "Capabilities", "Parameters", "System" and "License" tables."""
    out: list[str] = []

    def table(header: str, rows: list[list[str]]) -> None:
        out.append(f"  {header}\n" + _render_rows(rows) + "\n")

    def number(value: Any) -> str:
        return str(int(value)) if isinstance(value, (int, float)) and float(value).is_integer() else str(value)

    details = show.get("details") or {}
    info = show.get("model_info")
    rows: list[list[str]] = []
    if info is not None:
        arch = str(info.get("general.architecture") or details.get("family") or "")
        rows.append(["", "architecture", arch])
        rows.append(["", "parameters", human_number(int(info.get("general.parameter_count") or 0))])
        for label, key in (("context length", "context_length"), ("embedding length", "embedding_length")):
            if f"{arch}.{key}" in info:
                rows.append(["", label, number(info[f"{arch}.{key}"])])
    else:
        rows.append(["", "architecture", str(details.get("family") or "")])
        rows.append(["", "parameters", str(details.get("parameter_size") or "")])
    rows.append(["", "quantization", str(details.get("quantization_level") or "")])
    table("Model", rows)
    if show.get("capabilities"):
        table("Capabilities", [["", str(c)] for c in show["capabilities"]])
    if show.get("parameters"):
        table("Parameters", [["", *line.split()] for line in str(show["parameters"]).splitlines() if line])
    if info is not None and verbose:
        metadata = []
        for key in sorted(info):
            value = info[key]
            text = ("true" if value else "false") if isinstance(value, bool) else str(value)
            metadata.append(["", key, text])
        table("Metadata", metadata)

    def head(text: str, n: int) -> list[list[str]]:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        rows = [["", line] for line in lines[:n]]
        return rows + ([["", "..."]] if len(lines) > n else [])

    if show.get("system"):
        table("System", head(str(show["system"]), 2))
    if show.get("license"):
        table("License", head(str(show["license"]), 2))
    return "".join(out)


def cmd_show(args: argparse.Namespace) -> int:
    """ShowHandler: one field with a flag, otherwise the summary tables."""
    chosen = [flag for flag in ("license", "modelfile", "parameters", "system", "template") if getattr(args, flag)]
    if len(chosen) > 1:
        raise CLIError(
            "only one of '--license', '--modelfile', '--parameters', '--system', or '--template' can be specified"
        )
    with _client() as client:
        heartbeat(client)
        body = {"model": "", "system": "", "template": "", "verbose": args.verbose, "options": None, "name": args.model}
        show = _request(client, "POST", "/api/show", json=body).json()
    if chosen:
        value = str(show.get(chosen[0]) or "")
        # fmt.Println for license, modelfile and parameters; fmt.Print for system and template.
        sys.stdout.write(value + ("\n" if chosen[0] in ("license", "modelfile", "parameters") else ""))
        return 0
    sys.stdout.write(_show_info(show, args.verbose))
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
    create = sub.add_parser("create", help="Create a model")
    create.add_argument("model")
    create.add_argument("-f", "--file", default="", help='Name of the Modelfile (default "Modelfile")')
    create.add_argument("-q", "--quantize", default="", help="Quantize model to this level (e.g. q4_K_M)")
    create.set_defaults(func=cmd_create)
    show = sub.add_parser("show", help="Show information for a model")
    show.add_argument("model")
    for flag, text in (
        ("license", "Show license of a model"),
        ("modelfile", "Show Modelfile of a model"),
        ("parameters", "Show parameters of a model"),
        ("template", "Show template of a model"),
        ("system", "Show system message of a model"),
    ):
        show.add_argument(f"--{flag}", action="store_true", help=text)
    show.add_argument("-v", "--verbose", action="store_true", help="Show detailed model information")
    show.set_defaults(func=cmd_show)
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

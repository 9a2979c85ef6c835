"""doctor: is the stack healthy? One table of PASS / WARN / FAIL, with the fix for each problem.

    main.py doctor                  # from the host (uv run) or: docker compose run --rm orchestrator doctor
    main.py doctor --json           # for scripts and monitoring
    main.py doctor --expect-gpu     # a model running on the CPU is a failure, not a warning

Checks, in order: Ollama (reachable, version), the configured models (present, can call tools),
a short generation (load time, first-token latency, tokens per second), where the model sits
(Ollama's /api/ps: GPU memory or CPU), a chat with a tool call through the real tool server, the
tool server (health, version, tools, one call), and the telemetry endpoint (reachable, API key
accepted). A check that depends on a failed one is shown as SKIP. Exit 1 when anything FAILs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import unquote

import httpx
import ollama

from .. import __version__
from ..errors import ExitCode, UserError, from_ollama_status
from ..ollama_connection import check_model, make_client, transport_reason, wait_until_reachable
from ..settings import Settings, without_credentials
from .common import (
    mcp_session,
    ollama_tool,
    one_line,
    processor,
    quiet_logging,
    running_model,
    settings_or_exit,
    table,
    tool_result,
)
from .fitness import CASES, PASS, attempt

FIRST_TOKEN_TARGET_S = 1.0  # the original plan's target: first token in under a second
GPU_SPEED_TARGET = 50.0  # tokens/s a GPU should reach with a 7B model
CPU_SPEED_FLOOR = 5.0  # below this, chatting is painful
PROMPT = "In one short sentence: why do travellers pack an umbrella?"


@dataclass
class Check:
    service: str
    name: str
    status: str = "SKIP"  # PASS, WARN, FAIL or SKIP (a check it depends on failed)
    detail: str = ""
    fix: str = ""
    seconds: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)


class Doctor:
    def __init__(self, settings: Settings, expect_gpu: bool) -> None:
        self.settings = settings
        self.expect_gpu = expect_gpu
        self.client = make_client(settings)
        self.checks: list[Check] = []
        self.tools: list[dict[str, Any]] = []

    async def check(self, service: str, name: str, probe: Callable[[Check], Awaitable[None]], *needs: Check) -> Check:
        item = Check(service, name)
        self.checks.append(item)
        blocked = [n for n in needs if n.status not in ("PASS", "WARN")]
        if blocked:
            item.detail = f"skipped: needs {blocked[0].service} {blocked[0].name}"
            return item
        started = time.perf_counter()
        try:
            await probe(item)
        except UserError as error:
            item.status, (item.detail, item.fix) = "FAIL", _split_fix(str(error))
        except httpx.TimeoutException:  # a slow CPU with a big model, or a model still loading
            item.status = "FAIL"
            item.detail = f"no answer within OLLAMA_REQUEST_TIMEOUT ({self.settings.request_timeout:g} s)"
            item.fix = "raise OLLAMA_REQUEST_TIMEOUT, or use a smaller model (`ollama ps` shows where it runs)"
        except (httpx.TransportError, ConnectionError) as error:  # Ollama went away during the check
            item.status = "FAIL"
            item.detail = f"lost the connection to Ollama at {self.settings.ollama_shown} ({type(error).__name__})"
            item.fix = "check that Ollama is still running (its log tells why it stopped: often out of memory)"
        except Exception as error:  # a check must never stop the others
            item.status, item.detail = "FAIL", f"{type(error).__name__}: {one_line(error)}"
            item.fix = "run with -v for details"
        item.seconds = round(time.perf_counter() - started, 3)
        return item

    async def run(self) -> list[Check]:
        s = self.settings
        up = await self.check("ollama", "reachable", self.ollama_reachable)
        model = await self.check("ollama", f"model {s.ollama_model}", self.configured_model, up)
        for extra in s.extra_models:
            await self.check("ollama", f"model {extra}", lambda c, name=extra: self.extra_model(c, name), up)
        generation = await self.check("ollama", "generation", self.generation, model)
        await self.check("ollama", "first token", lambda c: self.first_token(c, generation), generation)
        placement = await self.check("ollama", "placement", self.placement, generation)
        await self.check("ollama", "speed", lambda c: self.speed(c, generation, placement), generation)
        health = await self.check("mcp-server", "health", self.mcp_health)
        tools = await self.check("mcp-server", "tools", self.mcp_tools, health)
        await self.check("agents", "tool call", self.tool_call, model, tools)
        await self.check("dashboard", "telemetry", self.telemetry)
        return self.checks

    # --- Ollama ----------------------------------------------------------------------------------

    async def ollama_reachable(self, c: Check) -> None:
        version = await wait_until_reachable(self.client, self.settings, lambda _line: None)
        c.status, c.detail, c.data = "PASS", f"Ollama {version} at {self.settings.ollama_shown}", {"version": version}

    async def configured_model(self, c: Check) -> None:
        s = self.settings
        info = await check_model(self.client, s.ollama_model, s.ollama_shown, offline=s.offline)
        c.status = "PASS"
        c.detail = f"{info.parameter_size} {info.quantization}, can call tools"
        c.data = {"parameter_size": info.parameter_size, "quantization": info.quantization}

    async def extra_model(self, c: Check, name: str) -> None:
        try:
            await self.client.show(name)
        except ollama.ResponseError as error:
            explained = from_ollama_status(error.status_code, str(error.error), host=self.settings.ollama_shown,
                                           model=name, offline=self.settings.offline)  # fmt: skip
            c.status, (c.detail, c.fix) = "WARN", _split_fix(f"OLLAMA_EXTRA_MODELS: {explained}")
            return
        c.status, c.detail = "PASS", "installed (OLLAMA_EXTRA_MODELS)"

    async def generation(self, c: Check) -> None:
        s = self.settings
        options = {"num_ctx": s.num_ctx, "num_predict": 32, "temperature": 0}
        # Load first, so the timing below is what each later request sees.
        warm = await self.client.generate(model=s.ollama_model, prompt="Hi", options={**options, "num_predict": 1})
        load_s = (warm.load_duration or 0) / 1e9
        started = time.perf_counter()
        first: float | None = None
        text, final = "", None
        async for chunk in await self.client.generate(
            model=s.ollama_model, prompt=PROMPT, options=options, stream=True
        ):
            # A thinking model's first tokens arrive as `thinking`, with `response` empty.
            if first is None and (chunk.response or getattr(chunk, "thinking", None)):
                first = time.perf_counter() - started
            text += (chunk.response or "") + (getattr(chunk, "thinking", None) or "")
            if chunk.done:
                final = chunk
        if not text.strip() or final is None:
            c.status, c.detail = "FAIL", "the model returned no text"
            c.fix = "pull the model again (a damaged download) or try another one: main.py fitness --all"
            return
        tokens = final.eval_count or 0
        rate = tokens / (final.eval_duration / 1e9) if final.eval_duration else 0.0
        c.status = "PASS"
        c.detail = f"{tokens} tokens at {rate:.1f} tokens/s (model loaded in {load_s:.1f} s)"
        c.data = {"first_token_s": round(first or 0.0, 3), "tokens_per_s": round(rate, 1), "load_s": round(load_s, 3),
                  "eval_count": tokens}  # fmt: skip

    async def first_token(self, c: Check, generation: Check) -> None:
        seconds = generation.data["first_token_s"]
        c.data = {"first_token_s": seconds}
        c.detail = f"{seconds:.2f} s with a warm model (target under {FIRST_TOKEN_TARGET_S:g} s)"
        c.status = "PASS" if seconds < FIRST_TOKEN_TARGET_S else "WARN"
        if c.status == "WARN":
            c.fix = ("a smaller model or the GPU profile; lower OLLAMA_NUM_CTX; OLLAMA_FLASH_ATTENTION=1 on a GPU "
                     "(docs/operations.md)")  # fmt: skip

    async def placement(self, c: Check) -> None:
        entry = await running_model(self.client, self.settings.ollama_model)
        if entry is None:
            c.status, c.detail = "WARN", "the model was unloaded again right away"
            c.fix = "check OLLAMA_KEEP_ALIVE (0 unloads after every request)"
            return
        size, vram = int(entry.get("size") or 0), int(entry.get("size_vram") or 0)
        where = processor(size, vram)
        c.data = {"size": size, "size_vram": vram, "gpu_percent": round(100 * vram / size) if size else 0,
                  "processor": where, "context_length": entry.get("context_length")}  # fmt: skip
        if where == "100% GPU":
            c.status, c.detail = "PASS", f"{where} ({_gb(vram)} in GPU memory)"
        elif where == "100% CPU":
            c.status = "FAIL" if self.expect_gpu else "WARN"
            c.detail = f"{where} ({_gb(size)} in system memory)"
            c.fix = ("fine for the cpu profile; on a GPU host use the gpu profile (make up-gpu) and check that "
                     "`nvidia-smi` works in the container (docs/troubleshooting.md)")  # fmt: skip
        else:
            c.status = "WARN"
            c.detail = f"{where}: the model does not fit in GPU memory"
            c.fix = "use a smaller model or quantization, or lower OLLAMA_NUM_CTX"

    async def speed(self, c: Check, generation: Check, placement: Check) -> None:
        rate = generation.data["tokens_per_s"]
        on_gpu = placement.data.get("processor") == "100% GPU"
        floor = GPU_SPEED_TARGET if on_gpu else CPU_SPEED_FLOOR
        c.data = {"tokens_per_s": rate, "target": floor}
        where = "on GPU, target" if on_gpu else "on CPU, usable from"
        c.detail = f"{rate:.1f} tokens/s ({where} {floor:g})"
        c.status = "PASS" if rate >= floor else "WARN"
        if c.status == "WARN":
            c.fix = "a smaller model (phi4-mini), fewer OLLAMA_NUM_PARALLEL slots, or the GPU profile"

    async def tool_call(self, c: Check) -> None:
        s = self.settings
        options = {"num_ctx": s.num_ctx, "temperature": s.temperature, "num_predict": 256}
        started = time.perf_counter()
        async with mcp_session(s.mcp_server_url) as session:
            result = await attempt(self.client, session, self.tools, s.ollama_model, CASES[0], options)
        seconds = time.perf_counter() - started
        c.data = {"outcome": result.outcome, "called": result.called, "seconds": round(seconds, 3)}
        if result.outcome == PASS:
            c.status = "PASS"
            c.detail = f"called {CASES[0].tool} and answered from its result in {seconds:.1f} s"
        else:
            c.status = "FAIL"
            c.detail = f"{result.outcome}: {result.detail or 'see main.py fitness'}"
            c.fix = "this model does not drive the tools reliably; `main.py fitness --all` shows which one does"

    # --- tool server -----------------------------------------------------------------------------

    async def mcp_health(self, c: Check) -> None:
        url = _health_url(self.settings.mcp_server_url)
        try:
            async with httpx.AsyncClient(timeout=5.0) as http:
                response = await http.get(url)
            response.raise_for_status()
            body = response.json()
        except (httpx.HTTPError, ValueError) as error:
            c.status, c.detail = "FAIL", f"{without_credentials(url)} did not answer ({transport_reason(error)})"
            c.fix = "start it (docker compose up -d mcp-server) or fix MCP_SERVER_URL"
            return
        c.status = "PASS"
        c.detail = f"{body.get('cities', '?')} cities, currency rates of {body.get('rates_date', '?')}"
        c.data = body

    async def mcp_tools(self, c: Check) -> None:
        async with mcp_session(self.settings.mcp_server_url) as session:
            info = session.initialize_result.server_info if session.initialize_result else None
            listed = (await session.list_tools()).tools
            self.tools = [ollama_tool(t) for t in listed]
            started = time.perf_counter()
            ok, payload = tool_result(await session.call_tool("get_destination", {"city": "Lisbon"}))
            call_ms = (time.perf_counter() - started) * 1000
        version = f"{info.name} {info.version}" if info else "travel-tools"
        c.data = {"server": version, "tools": [t.name for t in listed], "call_ms": round(call_ms, 1)}
        if not ok:
            c.status, c.detail = "FAIL", f"get_destination('Lisbon') failed: {one_line(payload)}"
            c.fix = "the image's shipped data may be damaged: rebuild or reload the mcp-server image"
            return
        c.status = "PASS"
        c.detail = f"{version}: {len(listed)} tools; get_destination answered in {call_ms:.0f} ms"

    # --- telemetry -------------------------------------------------------------------------------

    async def telemetry(self, c: Check) -> None:
        s = self.settings
        endpoint = s.otel_exporter_otlp_endpoint
        ui = f"; UI {_without_query(s.dashboard_url)}" if s.dashboard_url else ""
        if not endpoint:
            c.status, c.detail = "WARN", "export is off (OTEL_EXPORTER_OTLP_ENDPOINT is not set)"
            c.fix = "set OTEL_EXPORTER_OTLP_ENDPOINT=http://aspire-dashboard:18889 to see traces"
            return
        headers = _otlp_headers(s.otel_exporter_otlp_headers)
        protocol = s.otel_exporter_otlp_protocol
        outcome = await (
            _grpc_export(endpoint, headers) if protocol == "grpc" else _http_export(endpoint, headers, protocol)
        )
        c.data = {"endpoint": endpoint, "protocol": protocol, "outcome": outcome}
        if outcome == "ok":
            c.status, c.detail = "PASS", f"{endpoint} ({protocol}) accepts our OTLP key{ui}"
        elif outcome == "unauthenticated":
            c.status, c.detail = "FAIL", f"{endpoint} refused the OTLP API key"
            c.fix = ("the services must send the dashboard's key: OTLP_API_KEY_FILE (compose: /secrets/otlp-api-key) "
                     "or OTEL_EXPORTER_OTLP_HEADERS=x-otlp-api-key=KEY; after changing OTLP_API_KEY, "
                     "restart both")  # fmt: skip
        else:
            c.status, c.detail = "FAIL", f"cannot reach {endpoint} ({outcome})"
            c.fix = "start the dashboard (docker compose up -d aspire-dashboard) or fix OTEL_EXPORTER_OTLP_ENDPOINT"


async def _grpc_export(endpoint: str, headers: dict[str, str]) -> str:
    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

    url = httpx.URL(endpoint if "://" in endpoint else f"http://{endpoint}")
    target = f"{url.host}:{url.port or (443 if url.scheme == 'https' else 4317)}"
    channel = grpc.aio.secure_channel(target, grpc.ssl_channel_credentials()) if url.scheme == "https" else (
        grpc.aio.insecure_channel(target))  # fmt: skip
    try:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        await stub.Export(trace_service_pb2.ExportTraceServiceRequest(), metadata=tuple(headers.items()), timeout=5)
        return "ok"
    except grpc.aio.AioRpcError as error:
        if error.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
            return "unauthenticated"
        return error.code().name.lower().replace("_", " ")
    finally:
        await channel.close()


async def _http_export(endpoint: str, headers: dict[str, str], protocol: str) -> str:
    body, kind = (b"{}", "application/json") if protocol == "http/json" else (b"", "application/x-protobuf")
    try:
        async with httpx.AsyncClient(timeout=5.0) as http:
            response = await http.post(f"{endpoint.rstrip('/')}/v1/traces", content=body,
                                       headers={**headers, "Content-Type": kind})  # fmt: skip
    except httpx.HTTPError as error:
        return transport_reason(error)
    if response.status_code in (401, 403):
        return "unauthenticated"
    return "ok" if response.is_success else f"HTTP {response.status_code}"


def _otlp_headers(value: str | None) -> dict[str, str]:
    """OTEL_EXPORTER_OTLP_HEADERS: comma-separated key=value pairs, values URL-encoded."""
    pairs = (item.partition("=") for item in (value or "").split(",") if "=" in item)
    return {k.strip().lower(): unquote(v.strip()) for k, _, v in pairs}


def _split_fix(message: str) -> tuple[str, str]:
    """UserError lines read 'cause; fix': the table shows them in two columns."""
    cause, sep, fix = message.partition("; ")
    return (cause, fix) if sep else (message, "")


def _health_url(mcp_url: str) -> str:
    return str(httpx.URL(mcp_url).copy_with(path="/health", query=None))


def _without_query(url: str) -> str:
    return str(httpx.URL(url).copy_with(query=None))  # the login token stays out of reports


def _gb(size: int) -> str:
    return f"{size / 1e9:.1f} GB"


# --- output -----------------------------------------------------------------------------------------


def _summary(checks: list[Check]) -> dict[str, int]:
    return {status: sum(c.status == status for c in checks) for status in ("PASS", "WARN", "FAIL", "SKIP")}


def render(checks: list[Check], settings: Settings) -> str:
    rows = table([[c.service, c.name, c.status, c.detail] for c in checks], ["service", "check", "status", "detail"])
    header, dashes, *body = rows.splitlines()
    detail_column = dashes.rindex(" ") + 1
    lines = [
        f"offline-agents {__version__} doctor · model {settings.ollama_model} · Ollama {settings.ollama_shown} · "
        f"tools {settings.mcp_shown}",
        "",
        header,
        dashes,
    ]
    for check, row in zip(checks, body, strict=True):
        lines.append(row)
        if check.fix and check.status in ("FAIL", "WARN"):
            lines.append(" " * detail_column + f"fix: {check.fix}")
    lines += ["", " · ".join(f"{n} {status}" for status, n in _summary(checks).items() if n)]
    return "\n".join(lines)


def report(checks: list[Check], settings: Settings) -> dict[str, Any]:
    return {
        "ok": not any(c.status == "FAIL" for c in checks),
        "version": __version__,
        "model": settings.ollama_model,
        "ollama": settings.ollama_shown,
        "mcp_server": settings.mcp_shown,
        "summary": _summary(checks),
        "checks": [asdict(c) for c in checks],
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="main.py doctor",
        description="Check every service, the models, a short generation and a tool call; "
        "print PASS / WARN / FAIL with the fix for each problem.",
        epilog="exit codes: 0 nothing failed (warnings allowed), 1 at least one check failed, 2 bad setting",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    parser.add_argument("-m", "--model", help="check this model instead of OLLAMA_MODEL")
    parser.add_argument("--expect-gpu", action="store_true", help="a model on the CPU is a failure")
    parser.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                        help="wait up to this long for Ollama to come up (default: do not wait)")  # fmt: skip
    parser.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    args = parser.parse_args(argv)
    if not 0 <= args.wait <= 3600:
        parser.error("--wait must be between 0 and 3600 seconds")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    quiet_logging(args.verbose)
    settings = settings_or_exit(ollama_model=args.model, connect_wait=args.wait)
    try:
        checks = asyncio.run(Doctor(settings, args.expect_gpu).run())
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    print(json.dumps(report(checks, settings), indent=2) if args.json else render(checks, settings))
    return ExitCode.TURN_FAILED if any(c.status == "FAIL" for c in checks) else ExitCode.OK

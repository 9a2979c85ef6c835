"""The FastMCP server: tools registered read-only, plus a /health route for probes."""

from __future__ import annotations

import re

from fastmcp import FastMCP
from fastmcp.exceptions import ToolError
from fastmcp.exceptions import ValidationError as ArgumentsError
from fastmcp.server.middleware import Middleware, MiddlewareContext
from mcp.types import ToolAnnotations
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from . import __version__
from .catalog import load_catalog
from .telemetry import ToolMetrics, traceparent_from_header
from .tools import climate, destinations, planning

# Every tool only reads data shipped with the server: safe to retry, nothing leaves the machine.
READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)

TOOLS = (
    destinations.get_destination,
    destinations.list_destinations,
    climate.get_climate,
    planning.travel_distance,
    planning.time_difference,
    planning.convert_currency,
)


class OneLineArgumentErrors(Middleware):
    """Pydantic explains a wrong argument type over several lines with a docs URL and the raw
    input; a model (and a person reading a trace) is better served by one line."""

    async def on_call_tool(self, context: MiddlewareContext, call_next):  # type: ignore[override]
        try:
            return await call_next(context)
        except ArgumentsError as error:
            cause = error.__cause__
            if not isinstance(cause, ValidationError):
                raise
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
                + ("" if e["type"] == "missing_argument" else f" (got {type(e['input']).__name__})")
                for e in cause.errors()[:3]
            )
            raise ToolError(f"Invalid arguments for {context.message.name}: {problems}.") from None


def build_server() -> FastMCP:
    catalog = load_catalog()  # fail at start, not on the first call, if the data is broken
    mcp = FastMCP(
        name="travel-tools",
        version=__version__,
        instructions="Offline travel data: destination facts, climate normals (not forecasts), "
        "distances, time differences and currency conversion from shipped tables.",
    )
    mcp.add_middleware(ToolMetrics())
    mcp.add_middleware(OneLineArgumentErrors())
    for fn in TOOLS:
        mcp.tool(fn, annotations=READ_ONLY)

    @mcp.custom_route("/health", methods=["GET"])
    async def health(_: Request) -> JSONResponse:
        return JSONResponse(
            {
                "status": "ok",
                "version": __version__,
                "cities": len(catalog.cities),
                "rates_date": planning.rates_date().isoformat(),
            }
        )

    return mcp


LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


def host_allowed(host: str, patterns: list[str]) -> bool:
    """Whether a Host header matches: loopback always, else one of MCP_ALLOWED_HOSTS, where `*`
    stands for one DNS label. (FastMCP's fnmatch lets `*` match dots too, so `mcp-server.*.svc`
    would also answer `mcp-server.attacker.example.svc`.)"""
    host = host.strip().lower()
    if host.startswith("["):  # [::1]:8090
        host = host[1 : host.find("]")] if "]" in host else ""
    elif host.count(":") == 1:
        host = host.rsplit(":", 1)[0]
    if host in LOOPBACK:
        return True
    for pattern in patterns:
        if pattern.strip() == "*":
            return True
        regex = r"[^.]+".join(re.escape(part) for part in pattern.strip().lower().split("*"))
        if re.fullmatch(regex, host):
            return True
    return False


def build_app(mcp: FastMCP, path: str, allowed_hosts: list[str]) -> ASGIApp:
    """The HTTP app: MCP behind DNS-rebinding protection, /health open to probes.

    FastMCP's Host guard is off by default; it is on here, answering only the service names.
    Kubernetes probes address the pod by IP, so /health (which reveals nothing) bypasses it.
    """
    guarded = traceparent_from_header(
        mcp.http_app(path=path, transport="http", host_origin_protection=True, allowed_hosts=allowed_hosts)
    )
    open_routes = mcp.http_app(path=path, transport="http", host_origin_protection=False)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/health":
            await open_routes(scope, receive, send)
        elif scope["type"] == "http" and not host_allowed(_host_header(scope), allowed_hosts):
            await Response("Misdirected Request", status_code=421)(scope, receive, send)
        else:
            await guarded(scope, receive, send)

    return app


def _host_header(scope: Scope) -> str:
    for key, value in scope.get("headers", []):
        if key == b"host":
            return value.decode("latin-1")
    return ""

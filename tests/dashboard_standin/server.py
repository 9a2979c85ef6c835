"""One process, one event loop, three listeners: the UI (HTTP), OTLP/gRPC and OTLP/HTTP.

`serve(settings)` binds all three, logs the same startup lines as the dashboard, and runs until
`stop` is set (the command line sets it on SIGTERM/SIGINT); then it stops within about a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import grpc
import uvicorn
from starlette.applications import Starlette

from .config import Endpoint, FrontendAuthMode, OtlpAuthMode, Settings
from .frontend import create_frontend_app
from .otlp import create_grpc_server, create_otlp_http_app
from .store import TelemetryStore

# The dashboard logs its startup lines under this category; keeping it makes log scrapers that
# were written for the real container work here too.
log = logging.getLogger("Aspire.Dashboard.DashboardWebApplication")

SHUTDOWN_GRACE = 0.5  # seconds in-flight requests get once a stop is asked for

_LEVELS = {logging.DEBUG: "dbug", logging.INFO: "info", logging.WARNING: "warn", logging.ERROR: "fail"}
_DOTNET_LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "information": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
    "none": logging.CRITICAL + 10,
}


class DotnetConsoleFormatter(logging.Formatter):
    """.NET's default console format: "info: Category[0]" then the message indented six spaces."""

    def format(self, record: logging.LogRecord) -> str:
        level = _LEVELS.get(record.levelno, "crit")
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        body = "\n".join("      " + line for line in text.splitlines() or [""])
        return f"{level}: {record.name}[0]\n{body}"


def configure_logging(level_name: str) -> None:
    """Log to stdout (as the dashboard does) at a Logging:LogLevel:Default-style level."""
    level = _DOTNET_LEVELS.get(level_name.strip().lower(), logging.INFO)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(DotnetConsoleFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn and grpc speak only when something is wrong, as Kestrel does in the dashboard's build.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "grpc"):
        logging.getLogger(name).setLevel(max(level, logging.WARNING))


def bind_socket(endpoint: Endpoint) -> socket.socket:
    """Bind (not yet serve) a listening TCP socket; port 0 picks a free one with no race."""
    family, kind, proto, _, address = socket.getaddrinfo(
        endpoint.host, endpoint.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restart without TIME_WAIT trouble
        sock.bind(address)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def display_url(endpoint: Endpoint, port: int) -> str:
    """The address as the dashboard prints it: wildcards as 0.0.0.0, the real port for port 0."""
    host = f"[{endpoint.host}]" if ":" in endpoint.host else endpoint.host
    return f"http://{host}:{port}"


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handling: two of them share this process's one handler."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _uvicorn(app: Starlette) -> _EmbeddedServer:
    config = uvicorn.Config(
        app,
        log_config=None,  # keep the logging set up above
        access_log=False,
        server_header=False,  # Kestrel is told not to send one either
        lifespan="off",
        timeout_graceful_shutdown=SHUTDOWN_GRACE,  # type: ignore[arg-type]  # uvicorn takes floats fine
        timeout_keep_alive=5,
    )
    return _EmbeddedServer(config)


@dataclass(frozen=True)
class BoundAddresses:
    frontend: tuple[str, ...]
    otlp_grpc: str | None
    otlp_http: str | None


class StartupError(Exception):
    pass


async def serve(
    settings: Settings,
    stop: asyncio.Event,
    *,
    store: TelemetryStore | None = None,
    on_started: Callable[[BoundAddresses], None] | None = None,
) -> None:
    store = store or TelemetryStore(settings.limits)
    frontend_sockets: list[socket.socket] = []
    http_sockets: list[socket.socket] = []
    grpc_server: grpc.aio.Server | None = None
    servers: list[_EmbeddedServer] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        try:
            frontend_sockets = [bind_socket(endpoint) for endpoint in settings.frontend]
            if settings.otlp_http:
                http_sockets = [bind_socket(settings.otlp_http)]
            grpc_port = None
            if settings.otlp_grpc:
                grpc_server = create_grpc_server(settings, store)
                host = settings.otlp_grpc.host
                target = f"[{host}]:{settings.otlp_grpc.port}" if ":" in host else f"{host}:{settings.otlp_grpc.port}"
                try:
                    grpc_port = grpc_server.add_insecure_port(target)
                except RuntimeError as exc:  # newer grpc raises; older ones return 0
                    raise OSError(f"cannot bind {target}: {exc}") from None
                if not grpc_port:
                    raise OSError(f"cannot bind {target}")
        except OSError as exc:
            raise StartupError(f"Failed to bind to address: {exc}") from exc

        if grpc_server is not None:
            await grpc_server.start()
        ui = _uvicorn(create_frontend_app(settings, store))
        servers.append(ui)
        tasks.append(asyncio.create_task(ui.serve(sockets=frontend_sockets), name="frontend"))
        if http_sockets:
            otlp_http = _uvicorn(create_otlp_http_app(settings, store))
            servers.append(otlp_http)
            tasks.append(asyncio.create_task(otlp_http.serve(sockets=http_sockets), name="otlp-http"))
        while not all(server.started for server in servers):
            if any(task.done() for task in tasks):
                raise StartupError("an HTTP listener stopped while starting")
            await asyncio.sleep(0.01)

        addresses = BoundAddresses(
            frontend=tuple(
                display_url(endpoint, sock.getsockname()[1])
                for endpoint, sock in zip(settings.frontend, frontend_sockets, strict=True)
            ),
            otlp_grpc=display_url(settings.otlp_grpc, grpc_port) if settings.otlp_grpc and grpc_port else None,
            otlp_http=display_url(settings.otlp_http, http_sockets[0].getsockname()[1]) if http_sockets else None,
        )
        log_startup(settings, addresses)
        if on_started:
            on_started(addresses)

        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait([stopped, *tasks], return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        for task in tasks:
            if task.done() and task.exception():
                raise StartupError(f"the {task.get_name()} listener failed") from task.exception()
    finally:
        for server in servers:
            server.should_exit = True
        if grpc_server is not None:
            await grpc_server.stop(SHUTDOWN_GRACE)
        if tasks:
            # uvicorn notices should_exit within 0.1 s and gives requests SHUTDOWN_GRACE to finish.
            await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE + 0.5)
            for task in tasks:
                task.cancel()
        for sock in frontend_sockets + http_sockets:
            sock.close()


def log_startup(settings: Settings, addresses: BoundAddresses) -> None:
    """The dashboard's startup lines, in its order and wording."""
    log.info("Aspire version: dashboard_standin (a test double of the Aspire dashboard)")
    for url in addresses.frontend:
        log.info("Now listening on: %s", url)
    if settings.frontend_auth_mode is FrontendAuthMode.BROWSER_TOKEN and addresses.frontend:
        log.info("Login to the dashboard at %s/login?t=%s", addresses.frontend[0], settings.browser_token)
    if addresses.otlp_grpc:
        log.info("OTLP/gRPC listening on: %s", addresses.otlp_grpc)
    if addresses.otlp_http:
        log.info("OTLP/HTTP listening on: %s", addresses.otlp_http)
    if settings.otlp_auth_mode is OtlpAuthMode.UNSECURED:
        log.warning(
            "OTLP server is unsecured. Untrusted apps can send telemetry to the dashboard. "
            "For more information, visit https://go.microsoft.com/fwlink/?linkid=2267030"
        )

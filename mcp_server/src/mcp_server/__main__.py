"""python -m mcp_server: serve the travel tools over streamable HTTP."""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from .settings import load_settings


def _exit(signum: int, _frame: object) -> None:
    raise SystemExit(0)


HELP = """settings (environment variables; docs/configuration.md):
  MCP_HOST               address to bind (default 0.0.0.0; 127.0.0.1 for plain processes)
  MCP_PORT               TCP port (default 8090)
  MCP_PATH               URL path of the MCP endpoint (default /mcp); health at /health
  MCP_ALLOWED_HOSTS      Host headers answered, comma separated; '*' matches one DNS label
  MCP_LOG_LEVEL          debug, info, warning or error (default info)
  ENABLE_SENSITIVE_DATA  true puts tool arguments into telemetry (default false)
  OTEL_EXPORTER_OTLP_ENDPOINT, OTLP_API_KEY_FILE   telemetry export (off when the endpoint is unset)
"""


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(
        prog="python -m mcp_server",
        description="Serve the travel tools over MCP streamable HTTP, answering from the data shipped with them.",
        epilog=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    ).parse_args(sys.argv[1:] if argv is None else argv)
    settings = load_settings()
    # The console shows MCP_LOG_LEVEL and up; the telemetry pipeline gets INFO and up regardless.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger().handlers[0].setLevel(settings.log_level.upper())
    # After the settings: a bad setting must not wait for the data or the exporters to load.
    import uvicorn

    from .server import TOOLS, build_app, build_server
    from .telemetry import configure

    stop_telemetry = configure(settings.sensitive_data)  # before the server: its meters bind to the real provider
    # uvicorn shuts down gracefully on SIGTERM, then re-raises it under the handler it found. With
    # Python's default one the process would die there and never flush; with this one it unwinds
    # through `finally` below.
    signal.signal(signal.SIGTERM, _exit)
    try:
        mcp = build_server()
        logging.getLogger("mcp_server").info(
            "serving %d tools on http://%s:%d%s", len(TOOLS), settings.host, settings.port, settings.path
        )
        app = build_app(mcp, settings.path, settings.allowed_hosts)
        # uvicorn stops on SIGTERM: in-flight calls get a few seconds, then the process exits.
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level.lower(),
            timeout_graceful_shutdown=5,
        )
    finally:
        stop_telemetry()  # flush what is buffered (bounded by the exporters' timeout)


if __name__ == "__main__":
    main()

"""`python -m dashboard_standin`: run the stand-in like `docker run mcr.microsoft.com/dotnet/aspire-dashboard`.

Configuration comes from the dashboard's own environment variables and --Key=Value arguments
(see config.py). The options below are those of `aspire dashboard run`, which starts the same
dashboard; anything else on the command line is taken as a dashboard setting, e.g.
--Dashboard:TelemetryLimits:MaxTraceCount=100.

Exit codes: 0 after SIGTERM/SIGINT, 1 for a configuration error or a port that cannot be bound.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence

from .config import (
    ALLOW_ANONYMOUS,
    CONFIG_FILE_PATH,
    FRONTEND_URLS,
    OTLP_GRPC_URL,
    OTLP_HTTP_URL,
    ConfigError,
    Settings,
    load_configuration,
    parse_command_line,
    resolve_settings,
)
from .server import StartupError, configure_logging, serve

log = logging.getLogger("Aspire.Dashboard.DashboardWebApplication")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dashboard_standin",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--frontend-url", help="UI endpoint(s), ';'-separated (default http://+:18888); port 0 = free")
    parser.add_argument("--otlp-grpc-url", help="OTLP/gRPC endpoint (default http://+:18889)")
    parser.add_argument("--otlp-http-url", help="OTLP/HTTP endpoint (default http://+:18890)")
    parser.add_argument("--allow-anonymous", action="store_true", help="no browser token, no OTLP API key")
    parser.add_argument("--config-file-path", help="a JSON configuration file (appsettings format)")
    return parser


def command_line_settings(argv: Sequence[str]) -> dict[str, str]:
    args, rest = build_parser().parse_known_args(argv)
    values = parse_command_line(rest)
    # The CLI options are shorthands for the dashboard's own settings.
    for option, keys in (
        (args.frontend_url, FRONTEND_URLS),
        (args.otlp_grpc_url, OTLP_GRPC_URL),
        (args.otlp_http_url, OTLP_HTTP_URL),
        (args.config_file_path, CONFIG_FILE_PATH),
    ):
        if option:
            values[keys[0]] = option
    if args.allow_anonymous:
        values[ALLOW_ANONYMOUS[0]] = "true"
    return values


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        config = load_configuration(os.environ, command_line_settings(argv))
        settings = resolve_settings(config)
    except ConfigError as exc:
        configure_logging("Information")
        # The dashboard's wording when options fail validation.
        log.error("Failed to start the dashboard due to %d configuration error(s).", len(exc.messages))
        for message in exc.messages:
            log.error("%s", message)
        return 1
    configure_logging(settings.log_level)
    try:
        asyncio.run(_run(settings))
    except StartupError as exc:
        log.error("%s", exc)
        return 1
    return 0


async def _run(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        # In the loop, not signal.signal: the handler then runs between callbacks, never mid-request.
        loop.add_signal_handler(sig, stop.set)
    await serve(settings, stop)


if __name__ == "__main__":
    raise SystemExit(main())

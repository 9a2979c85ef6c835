"""`python -m dashboard_standin`: run the stand-in like `docker run mcr.microsoft.com/dotnet/aspire-dashboard`.

Configuration comes from the dashboard's own environment variables and --Key=Value arguments
(see config.py). The options below are those of `aspire dashboard run`, which starts the same
dashboard; anything else on the command line is taken as a dashboard setting, e.g.
--Dashboard:TelemetryLimits:MaxTraceCount=100.

Exit codes: 0 after SIGTERM/SIGINT, 1 for a configuration error or a port that cannot be bound.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence

from .config import ConfigError, Settings, command_line_settings, load_configuration, resolve_settings
from .server import StartupError, configure_logging, serve

log = logging.getLogger("Aspire.Dashboard.DashboardWebApplication")


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

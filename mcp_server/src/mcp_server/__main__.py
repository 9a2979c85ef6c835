"""python -m mcp_server: serve the travel tools over streamable HTTP."""

from __future__ import annotations

import logging

from .settings import load_settings


def main() -> None:
    settings = load_settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from .server import TOOLS, build_server  # after settings: a bad setting must not wait for the data

    mcp = build_server()
    logging.getLogger("mcp_server").info(
        "serving %d tools on http://%s:%d%s", len(TOOLS), settings.host, settings.port, settings.path
    )
    mcp.run(
        transport="http",
        host=settings.host,
        port=settings.port,
        path=settings.path,
        allowed_hosts=settings.allowed_hosts,
        log_level=settings.log_level.lower(),
        show_banner=False,
    )


if __name__ == "__main__":
    main()

"""python -m mcp_server: serve the travel tools over streamable HTTP."""

from __future__ import annotations

import logging

from .settings import load_settings


def main() -> None:
    settings = load_settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from .server import (  # after settings: a bad setting must not wait for the data
        TOOLS,
        build_app,
        build_server,
    )

    mcp = build_server()
    logging.getLogger("mcp_server").info(
        "serving %d tools on http://%s:%d%s", len(TOOLS), settings.host, settings.port, settings.path
    )
    import uvicorn

    app = build_app(mcp, settings.path, settings.allowed_hosts)
    # uvicorn stops on SIGTERM: in-flight calls get a few seconds, then the process exits.
    uvicorn.run(
        app, host=settings.host, port=settings.port, log_level=settings.log_level.lower(), timeout_graceful_shutdown=5
    )


if __name__ == "__main__":
    main()

"""Running the app under uvicorn, shared by `python -m ollama_standin` and testing.py."""

from __future__ import annotations

import socket

import uvicorn
from starlette.applications import Starlette


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind (but do not yet serve) a listening socket; port 0 picks a free port race-free."""
    host = host or "0.0.0.0"  # OLLAMA_HOST=":11434" listens on every interface, as Go does
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def make_server(app: Starlette, *, log_level: str = "info") -> uvicorn.Server:
    """A uvicorn server that looks like Go's net/http on the wire (no `server:` header)."""
    config = uvicorn.Config(
        app,
        log_config=None,  # leave logging to the embedding process
        log_level=log_level,
        access_log=False,  # RecordingMiddleware logs one gin-style line per request instead
        server_header=False,
        date_header=True,
        lifespan="off",
        timeout_graceful_shutdown=2,
    )
    return uvicorn.Server(config)

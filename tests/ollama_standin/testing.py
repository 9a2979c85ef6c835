"""pytest helpers: run the stand-in in a background thread or as a real subprocess.

with run_in_thread(StandinConfig(models=["qwen2.5:7b"]), brain=MyBrain()) as standin:
    ollama.Client(standin.url).chat(...)
    standin.requests("/api/chat")[-1].body      # what the client sent

with run_process(["--models", "qwen2.5:7b"]) as url:
    ...                                        # a real `python -m ollama_standin`
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import httpx
from service_processes import watch_process
from starlette.applications import Starlette

from .brain import Brain
from .config import StandinConfig
from .server import create_app
from .serving import bind_socket, make_server
from .state import RequestRecord, StandinState

TESTS_DIR = Path(__file__).resolve().parent.parent  # what must be on sys.path for `ollama_standin`


class RunningStandin(NamedTuple):
    """A stand-in served in this process. Unpacks as (url, app)."""

    url: str
    app: Starlette

    @property
    def state(self) -> StandinState:
        return self.app.state.standin  # type: ignore[no-any-return]

    def requests(self, path: str | None = None, method: str | None = None) -> list[RequestRecord]:
        """Requests received so far (optionally only one path / method), oldest first."""
        return self.state.requests(path, method)


@contextmanager
def run_in_thread(config: StandinConfig | None = None, brain: Brain | None = None) -> Iterator[RunningStandin]:
    """Serve the stand-in with uvicorn in a daemon thread on a free port of 127.0.0.1.

    config.host/port are ignored: the socket is bound here, so there is no port race.
    """
    config = config or StandinConfig()
    app = create_app(config, brain)
    sock = bind_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = make_server(app, log_level="warning")
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"ollama-standin:{port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the ollama stand-in did not start")
            time.sleep(0.01)
        yield RunningStandin(f"http://127.0.0.1:{port}", app)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


_LISTENING = re.compile(r"Listening on (\S+):(\d+) \(version")


@contextmanager
def run_process(
    args: Sequence[str] = (),
    *,
    env: dict[str, str] | None = None,
    timeout: float = 15.0,
    output: list[str] | None = None,
) -> Iterator[str]:
    """Run `python -m ollama_standin --port 0 ARGS...` and yield its base URL once GET / answers.

    The process's log lines are appended to `output` (when given) as they arrive. On exit the
    process gets SIGTERM (then SIGKILL after 5 s) and must be gone before this returns.
    """
    child_env = {**os.environ, **(env or {})}
    child_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(TESTS_DIR), child_env.get("PYTHONPATH", "")) if p)
    child_env.setdefault("PYTHONUNBUFFERED", "1")
    command = [sys.executable, "-m", "ollama_standin", "--host", "127.0.0.1", "--port", "0", *args]
    deadline = time.monotonic() + timeout
    ready = {"url": _LISTENING}
    with watch_process(
        command, env=child_env, ready=ready, name="ollama stand-in", timeout=timeout, output=output
    ) as w:
        url = "http://{}:{}".format(*w.found["url"].groups())
        while True:
            try:
                if httpx.get(url + "/", timeout=1).text == "Ollama is running":
                    break
            except httpx.TransportError:
                pass
            if w.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("ollama stand-in is not answering:\n" + "\n".join(w.lines))
            time.sleep(0.05)
        yield url

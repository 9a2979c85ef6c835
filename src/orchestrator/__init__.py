"""The orchestrator: three agents on Ollama, tools over MCP, a terminal to talk to them."""

import os
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def _import_ollama_safely() -> None:
    """Import the `ollama` package once, here, with OLLAMA_HOST hidden from it.

    `ollama` builds a default client when it is imported, and that client parses OLLAMA_HOST: a
    malformed value (`http://host:99999`, `::1`) raises ValueError at import time, before our settings
    can explain it, even for `--help`. Every client this package makes is given the validated host
    explicitly, so the default client never needs the variable.
    """
    saved = os.environ.pop("OLLAMA_HOST", None)
    try:
        import ollama  # noqa: F401  (cached in sys.modules for every later import)
    finally:
        if saved is not None:
            os.environ["OLLAMA_HOST"] = saved


_import_ollama_safely()


def _version() -> str:
    try:
        return version("offline-agents")
    except PackageNotFoundError:  # the image runs from source: read the version from pyproject.toml
        import tomllib

        pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
        try:
            return tomllib.loads(pyproject.read_text())["project"]["version"]
        except (OSError, KeyError, ValueError):
            return "0.0.0+unknown"


__version__ = _version()

"""The orchestrator: three agents on Ollama, tools over MCP, a terminal to talk to them."""

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


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

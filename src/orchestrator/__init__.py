"""The orchestrator: three agents on Ollama, tools over MCP, a terminal to talk to them."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("offline-agents")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+source"

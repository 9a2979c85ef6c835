"""Turn whatever went wrong into one line a person can act on: the cause and the fix.

Classification keys on exception types and HTTP status codes. Message text is read only to tell
apart what one status means (Ollama's 400 for "does not support tools" and 500 for a tool call it
could not parse), and the line still names the status when the text changes.
"""

from __future__ import annotations

import asyncio
import shlex
from dataclasses import dataclass
from enum import IntEnum

import httpx
import ollama
import pydantic

from .settings import mask_credentials


class ExitCode(IntEnum):
    """Process exit codes, documented in --help."""

    OK = 0
    TURN_FAILED = 1  # the model or a tool misbehaved; the plan could not be finished
    USAGE = 2  # a bad setting or command-line argument
    OLLAMA_UNREACHABLE = 3
    MODEL_UNAVAILABLE = 4  # not pulled, or cannot call tools
    MCP_UNREACHABLE = 5
    INTERRUPTED = 130


# Models known to call tools reliably; named when the configured one cannot.
# Ollama's address inside the compose stack and the Kubernetes namespace.
COMPOSE_OLLAMA = "http://ollama:11434"
TOOL_MODELS = ("qwen2.5:7b", "qwen2.5:3b", "llama3.2:3b", "phi4-mini", "mistral-nemo")


@dataclass
class UserError(Exception):
    """An error explained for the person at the terminal."""

    message: str
    code: ExitCode = ExitCode.TURN_FAILED

    def __post_init__(self) -> None:
        # Whatever went into the message (an exception's text, a URL), no user:password comes out.
        self.message = mask_credentials(self.message)

    def __str__(self) -> str:
        return self.message


def _chain(error: BaseException) -> list[BaseException]:
    """The error and everything it wraps (the framework wraps client errors, sometimes twice)."""
    seen: list[BaseException] = []
    stack: list[BaseException] = [error]
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.append(current)
        if isinstance(current, BaseExceptionGroup):
            stack.extend(current.exceptions)
        for linked in (current.__cause__, current.__context__, *getattr(current, "args", ())[1:2]):
            if isinstance(linked, BaseException):
                stack.append(linked)
        inner = getattr(current, "inner_exception", None)
        if isinstance(inner, BaseException):
            stack.append(inner)
    return seen


def explain(error: BaseException, *, host: str, model: str, mcp_url: str, offline: bool = False) -> UserError:
    """Map an exception from a turn to a UserError. Unknown errors keep their type in the message."""
    chain = _chain(error)
    for exc in chain:
        if isinstance(exc, UserError):
            return exc
    for exc in chain:
        if isinstance(exc, ollama.ResponseError):
            return from_ollama_status(exc.status_code, str(exc.error), host=host, model=model, offline=offline)
    for exc in chain:
        # A dropped or refused connection to Ollama (also mid-stream: RemoteProtocolError/ReadError).
        if isinstance(exc, httpx.TransportError | ConnectionError) and not _is_mcp(chain):
            if isinstance(exc, httpx.ConnectError | ConnectionRefusedError):
                return UserError(
                    f"cannot reach Ollama at {host}; check that it is running and OLLAMA_HOST is right",
                    ExitCode.OLLAMA_UNREACHABLE,
                )
            if isinstance(exc, httpx.TimeoutException):
                return UserError(
                    f"Ollama at {host} did not answer in time; the model may be loading or running on CPU "
                    "(check with: ollama ps), or raise OLLAMA_REQUEST_TIMEOUT",
                    ExitCode.TURN_FAILED,
                )
            return UserError(
                f"the connection to Ollama at {host} broke in the middle of a reply ({type(exc).__name__}); "
                "the turn was stopped; ask again when Ollama is back",
                ExitCode.TURN_FAILED,
            )
    if _is_mcp(chain):
        return UserError(
            f"the tool server at {mcp_url} is not reachable; check that mcp-server is running "
            "and MCP_SERVER_URL is right (the next turn reconnects)",
            ExitCode.MCP_UNREACHABLE,
        )
    for exc in chain:
        if isinstance(exc, pydantic.ValidationError | ValueError) and "tool_calls" in str(exc):
            return UserError(
                f"model {model} sent a malformed tool call (arguments that are not valid JSON); "
                "the turn was stopped; ask again, or use a model with reliable tool calling",
                ExitCode.TURN_FAILED,
            )
    for exc in chain:
        if isinstance(exc, TimeoutError | asyncio.TimeoutError):
            return UserError("the turn took longer than AGENT_TURN_TIMEOUT and was stopped", ExitCode.TURN_FAILED)
    first = chain[0]
    return UserError(f"the turn failed: {type(first).__name__}: {first}".strip(), ExitCode.TURN_FAILED)


def from_ollama_status(status: int, detail: str, *, host: str, model: str, offline: bool = False) -> UserError:
    if status == 404 and offline:
        return UserError(
            f"model {model} is not available on {host}, and OFFLINE=1 means it cannot be pulled: load it with "
            f"scripts/load-bundle.py (an offline bundle) or scripts/import-gguf.sh {model} FILE.gguf",
            ExitCode.MODEL_UNAVAILABLE,
        )
    if status == 404:
        # In compose (and Kubernetes) Ollama sits on a network with no route out: only the seeding
        # job can pull, and `ollama pull` typed in the orchestrator's container cannot work.
        pull = (f"docker compose run --rm -e OLLAMA_EXTRA_MODELS={shlex.quote(model)} ollama-seed (on the host)"
                if host.rstrip("/") == COMPOSE_OLLAMA else f"ollama pull {shlex.quote(model)}")  # fmt: skip
        return UserError(
            f"model {model} is not available on {host}; pull it with: {pull}",
            ExitCode.MODEL_UNAVAILABLE,
        )
    if status == 400 and "tool" in detail.lower():
        others = ", ".join(m for m in TOOL_MODELS if m != model)
        return UserError(
            f"model {model} does not support tool calling; use one that does, e.g. {others} "
            "(set OLLAMA_MODEL or type /model NAME)",
            ExitCode.MODEL_UNAVAILABLE,
        )
    if status == 400 and "invalid model name" in detail.lower():
        return UserError(
            f"Ollama says {model[:60]!r} is not a valid model name; give one such as phi4-mini or qwen2.5:7b "
            "(OLLAMA_MODEL, --model or /model NAME)",
            ExitCode.MODEL_UNAVAILABLE,
        )
    if status in (401, 403):
        return UserError(
            f"Ollama at {host} refused the request ({status}); check OLLAMA_API_KEY or OLLAMA_HEADERS",
            ExitCode.OLLAMA_UNREACHABLE,
        )
    if status >= 500 and "tool" in detail.lower():
        return UserError(
            f"model {model} produced a tool call Ollama could not parse ({detail.strip()[:120]}); "
            "the turn was stopped; ask again, or use a model with reliable tool calling",
            ExitCode.TURN_FAILED,
        )
    if status < 0:  # an error Ollama reported inside a streamed reply (status -1 in the client)
        return UserError(f"Ollama at {host} stopped the reply with an error: {detail.strip()[:200]}",
                         ExitCode.TURN_FAILED)  # fmt: skip
    if status == 503:  # Ollama's queue is full (OLLAMA_MAX_QUEUE requests already waiting)
        return UserError(
            f"Ollama at {host} is busy and refused the request (503: {detail.strip()[:120] or 'no detail'}); "
            "ask again when the running requests are done, or raise OLLAMA_NUM_PARALLEL or OLLAMA_MAX_QUEUE",
            ExitCode.TURN_FAILED,
        )
    if status >= 500:
        return UserError(
            f"Ollama at {host} failed with {status} ({detail.strip()[:160] or 'no detail'}); the model may not "
            "fit in memory or failed to load: look at Ollama's log (docker compose logs ollama) and `ollama ps`, "
            "then ask again, or use a smaller model or OLLAMA_NUM_CTX",
            ExitCode.TURN_FAILED,
        )
    return UserError(
        f"Ollama at {host} answered {status}: {detail.strip()[:200]}; check OLLAMA_HOST and Ollama's log",
        ExitCode.TURN_FAILED,
    )


def _is_mcp(chain: list[BaseException]) -> bool:
    from agent_framework.exceptions import ToolException

    # The framework raises ToolException("Failed to create MCP session: ...") when the tool
    # server cannot be reached, and wraps broken sessions the same way.
    return any(isinstance(exc, ToolException) for exc in chain)

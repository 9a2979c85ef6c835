"""The connection to the MCP tool server: connect, reconnect after it comes back, record each call."""

from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import httpx
from agent_framework import Content, FunctionInvocationContext, FunctionTool, MCPStreamableHTTPTool, MiddlewareFailure
from mcp.shared.exceptions import MCPError
from mcp_types.jsonrpc import CONNECTION_CLOSED

from .errors import ExitCode, UserError
from .settings import without_credentials

logger = logging.getLogger(__name__)


@dataclass
class ToolCall:
    """One tool call as the user sees it in --json output."""

    agent: str
    name: str
    arguments: dict[str, Any]
    duration_ms: float = 0.0
    ok: bool = True
    error: str | None = None
    result: Any = None  # what the tool returned (parsed JSON when it is JSON)
    from_text: bool = False  # the model wrote this call as text; the pipeline recovered it
    forced: bool = False  # an owed call it skipped: asked for with structured output, or made (owed.py)
    repeat: str | None = None  # "cached": the same call as just before, answered from it; "stopped": a third time


@dataclass
class _Previous:
    key: str
    times: int
    result: Any


@dataclass
class CallLog:
    calls: list[ToolCall] = field(default_factory=list)
    previous: dict[str, _Previous] = field(default_factory=dict)  # agent -> its latest call
    stopped: dict[str, str] = field(default_factory=dict)  # agent -> why its tool loop was ended
    made: dict[str, list[str]] = field(default_factory=dict)  # agent -> calls the pipeline made for it, not yet run


REPEAT_NOTE = (
    "Note: you already called {name} with exactly these arguments; the result above is the same. "
    "Do not call it again: use this result and answer."
)
STOP_NOTE = (
    "Note: {name} was called three times in a row with the same arguments. The tools are now closed: "
    "answer now, in plain sentences, from the results above."
)


# The turn being recorded; set by the workflow for the duration of one turn.
current_log: ContextVar[CallLog | None] = ContextVar("current_log", default=None)


def _connection_lost(error: BaseException) -> bool:
    """A transport failure (server gone), as opposed to a tool that answered with an error."""
    pending: list[BaseException] = [error]
    seen: list[BaseException] = []
    while pending:
        current = pending.pop()
        if any(current is s for s in seen):
            continue
        seen.append(current)
        if isinstance(current, httpx.TransportError | ConnectionError):
            return True
        if isinstance(current, MCPError) and current.code == CONNECTION_CLOSED:
            return True
        if type(current).__name__ in ("ClosedResourceError", "BrokenResourceError", "EndOfStream"):
            return True
        # The framework wraps the cause as an argument: ToolExecutionException("...", MCPError(...)).
        linked = [current.__cause__, current.__context__, getattr(current, "inner_exception", None), *current.args]
        pending.extend(item for item in linked if isinstance(item, BaseException))
    return False


class ToolServer:
    """Owns the MCP session. Connects lazily, so a dead server does not stop the REPL."""

    def __init__(self, url: str, timeout: int) -> None:
        self.url = url
        self.shown = without_credentials(url)  # what messages say: no user:password
        self.timeout = timeout
        self._mcp: MCPStreamableHTTPTool | None = None

    @property
    def connected(self) -> bool:
        return self._mcp is not None

    @property
    def functions(self) -> list[FunctionTool]:
        return list(self._mcp.functions) if self._mcp else []

    async def connect(self) -> list[FunctionTool]:
        if self._mcp is not None:
            return self.functions
        mcp = MCPStreamableHTTPTool(
            name="travel-tools",
            url=self.url,
            request_timeout=self.timeout,
            load_prompts=False,
        )
        try:
            await mcp.__aenter__()
        except Exception as error:
            await _quietly_close(mcp)
            raise self.unreachable(error) from None
        self._mcp = mcp
        return self.functions

    async def reset(self) -> None:
        """Drop the session after a failure; the next turn opens a fresh one."""
        mcp, self._mcp = self._mcp, None
        if mcp is not None:
            await _quietly_close(mcp)

    async def close(self) -> None:
        await self.reset()

    def unreachable(self, error: BaseException | None = None) -> UserError:
        cause = f" ({type(error).__name__})" if error is not None else ""
        return UserError(
            f"the tool server at {self.shown} is not reachable{cause}; check that mcp-server is running "
            "and MCP_SERVER_URL is right (the next turn reconnects)",
            ExitCode.MCP_UNREACHABLE,
        )

    def middleware(self, agent: str) -> Callable[..., Awaitable[None]]:
        """Function middleware: times each call, records it, and stops the turn if the server is gone."""

        async def record(context: FunctionInvocationContext, call_next: Callable[[], Awaitable[None]]) -> None:
            args = _plain(context.arguments)
            name = context.function.name
            call = ToolCall(agent=agent, name=name, arguments=args)
            log = current_log.get()
            if log is not None:
                log.calls.append(call)
            # A call the pipeline made for the agent (owed.py) is no repeat of the model's, nor a model's call.
            made = log is not None and name in log.made.get(agent, ())
            if made:
                log.made[agent].remove(name)
            watched = log is not None and not made
            key = name + json.dumps(args, sort_keys=True)
            if watched:
                previous = log.previous.get(agent)
                if previous is not None and previous.key == key:
                    # The same call twice in a row: the cached result and a note to use it; a third
                    # time ends the agent's tool loop (small models often repeat a call instead of
                    # answering from its result).
                    previous.times += 1
                    third = previous.times >= 3
                    call.repeat, call.result = ("stopped" if third else "cached"), previous.result
                    note = (STOP_NOTE if third else REPEAT_NOTE).format(name=name)
                    context.result = [*_as_contents(previous.result), Content.from_text(note)]
                    if third:
                        log.stopped[agent] = f"it called {name} with the same arguments 3 times in a row"
                        with warnings.catch_warnings():  # the framework marks this API experimental
                            warnings.simplefilter("ignore")
                            context.remove_tools([tool.name for tool in context.tools or []])
                    return
                log.previous.pop(agent, None)
            started = time.perf_counter()
            try:
                await call_next()
                call.result = _parsed(context.result)
                if watched:
                    log.previous[agent] = _Previous(key, 1, call.result)
            except Exception as error:
                call.ok, call.error = False, _one_line(error)
                if _connection_lost(error):
                    # Without its tools the team would invent facts: stop the turn and say why.
                    raise MiddlewareFailure(str(self.unreachable(error))) from error
                raise
            finally:
                call.duration_ms = round((time.perf_counter() - started) * 1000, 2)

        return record


def _parsed(result: Any) -> Any:
    """A tool's result for the record: the JSON its text holds, or the text."""
    if isinstance(result, list):
        text = "\n".join(getattr(c, "text", None) or "" for c in result if getattr(c, "type", "") == "text")
    else:
        text = str(result) if result is not None else ""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _as_contents(result: Any) -> list[Content]:
    return [Content.from_text(result if isinstance(result, str) else json.dumps(result, ensure_ascii=False))]


def _plain(arguments: Any) -> dict[str, Any]:
    if hasattr(arguments, "model_dump"):
        arguments = arguments.model_dump()
    try:
        return json.loads(json.dumps(dict(arguments), default=str))
    except (TypeError, ValueError):
        return {"raw": str(arguments)}


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:300]


async def _quietly_close(mcp: MCPStreamableHTTPTool) -> None:
    try:
        await mcp.close()
    except Exception as error:  # closing a session whose server is gone can fail many ways
        logger.debug("closing the MCP session failed: %r", error)

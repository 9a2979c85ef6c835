"""One conversation with the three-agent team: start-up checks, turns, and what each turn recorded.

A turn runs the Agent Framework sequential workflow (Researcher, then Weather, then Planner) and
reports what happens as TurnEvents, which the terminal and the --json mode render.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from agent_framework import AgentResponseUpdate, FunctionInvocationConfiguration, Message
from agent_framework.orchestrations import SequentialBuilder
from opentelemetry.trace import StatusCode

from . import grounding
from .agents import PIPELINE, build_agents
from .context_budget import DEFAULT_CHARS_PER_TOKEN, ContextMeter
from .errors import ExitCode, UserError, explain
from .guarded import (
    FORCED,
    RECOVERED,
    CheckedAgentExecutor,
    Corrected,
    GuardedChatClient,
    Repaired,
    Retrying,
    TurnGuard,
    current_guard,
)
from .ollama_connection import ModelInfo, check_model, make_client, wait_until_reachable
from .settings import Settings
from .telemetry import trace_id_of, turn_span
from .text_calls import strip_calls
from .tool_server import CallLog, ToolCall, ToolServer, current_log

logger = logging.getLogger(__name__)
MAX_CALLS_PER_ROUND = 4
AGENT_NAMES = tuple(spec.name for spec in PIPELINE)
SPECS = {spec.name: spec for spec in PIPELINE}


# --- what a turn reports as it goes -------------------------------------------------------------


@dataclass(frozen=True)
class AgentStarted:
    agent: str
    title: str


@dataclass(frozen=True)
class TextDelta:
    agent: str
    text: str


@dataclass(frozen=True)
class ToolStarted:
    agent: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class ToolFinished:
    agent: str
    call: ToolCall


@dataclass(frozen=True)
class AgentFinished:
    agent: str
    output: str


@dataclass(frozen=True)
class Notice:
    """Something the user should know that does not stop the turn."""

    message: str


TurnEvent = AgentStarted | TextDelta | ToolStarted | ToolFinished | AgentFinished | Notice


# --- what a turn leaves behind ------------------------------------------------------------------


@dataclass
class AgentRecord:
    name: str
    output: str = ""
    model_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    model_s: float = 0.0  # Ollama's own total_duration, summed over this agent's model calls
    tool_rounds: int = 0  # model calls that asked for tools
    hit_tool_limit: bool = False  # AGENT_MAX_TOOL_ROUNDS stopped its tool loop
    tool_calls_from_text: int = 0  # calls it wrote as text, recovered and run as tool calls
    tool_calls_forced: int = 0  # owed calls it skipped: asked for with structured output, or made for it, and run
    tool_loop_stopped: str | None = None  # why its tool loop was ended early (a repeated call)
    retried: str | None = None  # what was wrong with its first answer, when it was asked again
    repaired: list[str] = field(default_factory=list)  # figures no tool returned, left out of its answer
    finish_reason: str | None = None  # Ollama's done_reason for its answer ("stop", "length")
    started_s: float = 0.0
    duration_s: float = 0.0
    first_token_s: float | None = None


@dataclass
class TurnRecord:
    prompt: str
    model: str
    plan: str = ""
    agents: list[AgentRecord] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    total_s: float = 0.0
    first_token_s: float | None = None
    error: str | None = None
    exit_code: int = ExitCode.OK
    trace_id: str | None = None  # the turn's trace in the dashboard, when telemetry is on
    notices: list[str] = field(default_factory=list)
    grounding: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {"grounded": [], "ungrounded": []})
    context: dict[str, Any] = field(default_factory=dict)  # the window and the largest request's estimate

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def model_s(self) -> float:
        return sum(agent.model_s for agent in self.agents)

    @property
    def tools_s(self) -> float:
        return sum(call.duration_ms for call in self.tool_calls) / 1000

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "error": self.error,
            "exit_code": int(self.exit_code),
            "trace_id": self.trace_id,
            "model": self.model,
            "prompt": self.prompt,
            "plan": self.plan,
            "agents": [asdict(agent) for agent in self.agents],
            "tool_calls": [asdict(call) for call in self.tool_calls],
            "grounding": self.grounding,
            "notices": self.notices,
            "context": self.context,
            "usage": {
                "input_tokens": sum(a.input_tokens for a in self.agents),
                "output_tokens": sum(a.output_tokens for a in self.agents),
                "model_calls": sum(a.model_calls for a in self.agents),
            },
            "timings": {
                "total_s": round(self.total_s, 4),
                "first_token_s": None if self.first_token_s is None else round(self.first_token_s, 4),
                "model_s": round(self.model_s, 4),
                "tools_s": round(self.tools_s, 4),
            },
        }


# --- the session ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StartInfo:
    ollama_version: str
    model: ModelInfo
    tools: list[str]


class TravelPlanner:
    """Owns the Ollama client, the tool-server session and the conversation history."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.model = settings.ollama_model
        self.ollama = make_client(settings)
        self.tools = ToolServer(settings.mcp_server_url, settings.mcp_timeout)
        self.history: list[Message] = []
        self.model_ctx: int | None = None  # the model's own context length, from /api/show
        self.chars_per_token = DEFAULT_CHARS_PER_TOKEN  # learnt from Ollama's prompt counts

    async def __aenter__(self) -> TravelPlanner:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.tools.close()
        await self.ollama._client.aclose()

    async def start(self, report: Callable[[str], None], *, require_tools: bool) -> StartInfo:
        """Check every dependency once, so problems show before the first question, not after."""
        version = await wait_until_reachable(self.ollama, self.settings, report)
        info = await check_model(self.ollama, self.model, self.settings.ollama_shown, self.settings.offline)
        self.model_ctx, self.chars_per_token = info.context_length, DEFAULT_CHARS_PER_TOKEN
        try:
            tools = [tool.name for tool in await self.tools.connect()]
        except UserError as error:
            if require_tools:
                raise
            report(f"warning: {error}")
            tools = []
        return StartInfo(version, info, tools)

    async def use_model(self, name: str) -> ModelInfo:
        info = await check_model(self.ollama, name, self.settings.ollama_shown, self.settings.offline)
        self.model, self.model_ctx, self.chars_per_token = name, info.context_length, DEFAULT_CHARS_PER_TOKEN
        return info

    def reset(self) -> None:
        self.history.clear()

    def request_limit(self) -> int:
        """The most characters one request may have: half of what the prompt may take, so the
        agents' instructions, the tool schemas and the tool results still fit beside it."""
        meter = ContextMeter(self.settings.num_ctx, self.model_ctx, self.settings.max_output_tokens,
                             chars_per_token=self.chars_per_token)  # fmt: skip
        return int(meter.prompt_budget // 2 * meter.chars_per_token)

    def too_long(self, prompt: str) -> UserError | None:
        """A request the model's context cannot take, refused before anything is sent."""
        limit = self.request_limit()
        if len(prompt) <= limit:
            return None
        at_most = self.model_ctx is not None and self.settings.num_ctx >= self.model_ctx
        fix = (
            f"shorten it, or use a model with a longer context ({self.model} takes at most {self.model_ctx:,} tokens)"
            if at_most
            else "shorten it, or raise OLLAMA_NUM_CTX (and the model must support that context)"
        )
        return UserError(
            f"the request is {len(prompt):,} characters; with OLLAMA_NUM_CTX={self.settings.num_ctx} model "
            f"{self.model} can take about {limit:,} beside the agents' instructions and tool results; {fix}",
            ExitCode.USAGE,
        )

    def _chat_client(self, agent: str) -> GuardedChatClient:
        return GuardedChatClient(
            agent=agent,
            required=SPECS[agent].required,
            owes=SPECS[agent].owes,
            client=self.ollama,
            model=self.model,
            function_invocation_configuration=FunctionInvocationConfiguration(
                max_iterations=self.settings.max_tool_rounds,
                # Parallel calls count too: a model asking for 50 lookups at once is cut off.
                max_function_calls=self.settings.max_tool_rounds * MAX_CALLS_PER_ROUND,
                max_consecutive_errors_per_request=3,
                # The tool server is ours and its errors say how to fix the call ("Closest known
                # names: Lisbon"); without this the model only reads "Error: Function failed.".
                include_detailed_errors=True,
            ),
        )

    async def run_turn(self, prompt: str, on_event: Callable[[TurnEvent], None]) -> TurnRecord:
        """Run the three agents on one request. Never raises for a failed turn: the record says why.

        Cancellation (Ctrl-C) propagates, after the record of what ran so far is kept.
        """
        refused = self.too_long(prompt)
        if refused is not None:  # nothing sent, nothing added to the conversation
            return TurnRecord(prompt=prompt, model=self.model, error=refused.message, exit_code=refused.code)
        with turn_span(prompt, self.model) as span:
            record = await self._turn(prompt, on_event)
            record.trace_id = trace_id_of(span)
            span.set_attribute("travel.ok", record.ok)
            if not record.ok:
                span.set_status(StatusCode.ERROR, record.error)
            logger.info(
                "turn %s: %d agents, %d tool calls, %d output tokens, %.2f s",
                "finished" if record.ok else f"failed ({record.error})",
                len(record.agents), len(record.tool_calls), sum(a.output_tokens for a in record.agents),
                record.total_s,
            )  # fmt: skip
        return record

    async def _turn(self, prompt: str, on_event: Callable[[TurnEvent], None]) -> TurnRecord:
        record = TurnRecord(prompt=prompt, model=self.model)
        log = CallLog()
        meter = ContextMeter(self.settings.num_ctx, self.model_ctx, self.settings.max_output_tokens,
                             chars_per_token=self.chars_per_token)  # fmt: skip
        guard = TurnGuard(self.model, meter, self.settings.max_output_tokens, request=prompt)
        token, guard_token = current_log.set(log), current_guard.set(guard)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.settings.turn_timeout):
                await self._run(prompt, record, log, guard, started, on_event)
        except asyncio.CancelledError:
            record.error, record.exit_code = "the turn was cancelled", ExitCode.INTERRUPTED
            raise
        except Exception as error:  # every failure becomes one explained line
            logger.debug("turn failed", exc_info=True)  # the full story for --verbose
            explained = explain(
                error,
                host=self.settings.ollama_shown,
                model=self.model,
                mcp_url=self.settings.mcp_shown,
                offline=self.settings.offline,
            )
            overflowed = meter.last_estimate >= 0.9 * meter.prompt_budget
            if explained.code == ExitCode.TURN_FAILED and not isinstance(error, UserError) and overflowed:
                # A request that filled the context, then a broken reply or an Ollama error: the
                # overflow is the cause, whatever the transport said.
                explained = guard.overflow(meter.last_estimate)
            record.error, record.exit_code = explained.message, explained.code
            if explained.code == ExitCode.MCP_UNREACHABLE:
                await self.tools.reset()
        finally:
            current_log.reset(token)
            current_guard.reset(guard_token)
            self.chars_per_token = meter.chars_per_token
            record.tool_calls = log.calls
            record.total_s = time.perf_counter() - started
            record.context = {"window": meter.window, "num_ctx": meter.num_ctx, "model_context_length": meter.model_ctx,
                              "largest_request_tokens_estimate": meter.largest}  # fmt: skip
        if record.ok:
            results = [(call.name, call.result) for call in record.tool_calls if call.ok and call.result is not None]
            record.grounding = grounding.check(record.plan, results, request=prompt)
        if record.ok:
            self.history += [Message("user", [prompt]), Message("assistant", [record.plan])]
        return record

    async def _run(
        self,
        prompt: str,
        record: TurnRecord,
        log: CallLog,
        guard: TurnGuard,
        started: float,
        on_event: Callable[[TurnEvent], None],
    ) -> None:
        # Ollama may have restarted since the last turn: wait for it (bounded) rather than fail at once.
        await wait_until_reachable(self.ollama, self.settings, lambda line: on_event(Notice(line)))
        functions = await self.tools.connect()
        agents = build_agents(
            self._chat_client, functions, self.settings.chat_options(), lambda name: [self.tools.middleware(name)]
        )
        offered = {agent.name: {tool.name for tool in agent.default_options.get("tools") or []} for agent in agents}
        participants = [
            CheckedAgentExecutor(
                agent,
                tools=frozenset(offered[agent.name]),
                required=SPECS[agent.name].required,
                handoff=SPECS[agent.name].handoff,
                earlier_results=SPECS[agent.name].earlier_results,
                # Weather and Planner start on the previous agent's reply; several chat templates
                # answer an assistant-final conversation with nothing, so "please continue." is added.
                ensure_trailing_user_turn=True,
            )
            for agent in agents
        ]
        workflow = SequentialBuilder(
            participants=participants, output_from=[participants[-1]], intermediate_output_from="all_other"
        ).build()
        recovered_ids: set[str] = set()
        forced_ids: set[str] = set()
        by_name: dict[str, AgentRecord] = {}
        results_seen: dict[str, int] = {}
        invented: dict[str, ToolCall] = {}  # call_id -> a call to a tool that does not exist
        invented_ids: set[int] = set()
        asked_for_tools: set[str] = set()  # agents whose current model call asked for tools
        conversation = [*self.history, Message("user", [prompt])]

        def notify(message: str) -> None:
            record.notices.append(message)
            on_event(Notice(message))

        def drain() -> None:
            # The guards note per model call; the same trim of the same agent is said once.
            while guard.notices:
                message = guard.notices.pop(0)
                if message not in record.notices:
                    notify(message)

        async for event in workflow.run(conversation, stream=True):
            drain()
            agent = event.executor_id if event.executor_id in AGENT_NAMES else None
            if agent is None:
                continue
            now = time.perf_counter() - started
            if event.type == "executor_invoked":
                by_name[agent] = AgentRecord(name=agent, started_s=now)
                record.agents.append(by_name[agent])
                on_event(AgentStarted(agent, SPECS[agent].title))
            elif event.type in ("intermediate", "output") and isinstance(event.data, AgentResponseUpdate):
                current = by_name[agent]
                for content in event.data.contents:
                    if content.type == "text" and content.text:
                        if current.first_token_s is None:
                            current.first_token_s = now - current.started_s
                        if record.first_token_s is None:
                            record.first_token_s = now
                        current.output += content.text
                        on_event(TextDelta(agent, content.text))
                    elif content.type == "function_call":
                        name, arguments = content.name or "?", _arguments(content.arguments)
                        asked_for_tools.add(agent)
                        if (content.additional_properties or {}).get(RECOVERED):
                            recovered_ids.add(content.call_id or "")
                            current.tool_calls_from_text += 1
                            notify(f"{agent} wrote a tool call as text; running it as one: {name}")
                        elif forced := (content.additional_properties or {}).get(FORCED):
                            forced_ids.add(content.call_id or "")
                            current.tool_calls_forced += 1
                            if isinstance(forced, str):  # made for it: the request settled every argument
                                notify(f"{agent}: the pipeline made the call the request needs: {forced} "
                                       f"({name} with {_shown(arguments)})")  # fmt: skip
                            else:
                                notify(f"{agent} answered without calling {name}; it was asked for the call alone "
                                       "(structured output), and the call was run")  # fmt: skip
                        on_event(ToolStarted(agent, name, arguments))
                        if name not in offered.get(agent, ()):
                            # The framework answers the model with an error; the middleware never sees it.
                            missing = f"the model asked for a tool that does not exist: {name}"
                            call = ToolCall(agent, name, arguments, ok=False, error=missing)
                            invented[content.call_id or name] = call
                            invented_ids.add(id(call))
                            log.calls.append(call)
                    elif content.type == "function_result":
                        if (content.call_id or "") in invented:
                            on_event(ToolFinished(agent, invented.pop(content.call_id or "")))
                            continue
                        # Results come back in call order; the call log has the timing and outcome.
                        index = results_seen.get(agent, 0)
                        results_seen[agent] = index + 1
                        mine = [c for c in log.calls if c.agent == agent and id(c) not in invented_ids]
                        if index < len(mine):
                            mine[index].from_text = (content.call_id or "") in recovered_ids
                            mine[index].forced = (content.call_id or "") in forced_ids
                            if mine[index].repeat == "cached":
                                notify(f"{agent} called {mine[index].name} again with the same arguments; "
                                       "it was given the same result and told to use it")  # fmt: skip
                            on_event(ToolFinished(agent, mine[index]))
                    elif content.type == "usage" and content.usage_details:
                        current.model_calls += 1
                        usage = content.usage_details
                        if content.merge_mode == "replace":
                            # From an agent's second model call on, the framework streams its usage as
                            # a running total over the agent's calls (agent_framework/_tools.py,
                            # project_cumulative_usage): it replaces what was counted, adding would
                            # count the earlier calls again.
                            current.input_tokens = usage.get("input_token_count") or 0
                            current.output_tokens = usage.get("output_token_count") or 0
                        else:
                            current.input_tokens += usage.get("input_token_count") or 0
                            current.output_tokens += usage.get("output_token_count") or 0
                        # The final chunk of Ollama's reply reports how long the server worked on it.
                        nanoseconds = getattr(content.raw_representation, "total_duration", None) or 0
                        current.model_s += nanoseconds / 1e9
                        if agent in asked_for_tools:
                            asked_for_tools.discard(agent)
                            current.tool_rounds += 1
            elif event.type == "data" and isinstance(event.data, Repaired) and agent in by_name:
                current = by_name[agent]
                current.output, current.repaired = event.data.text, list(event.data.dropped)
                notify(f"{agent}: left out what it said with figures no tool returned "
                       f"({', '.join(event.data.dropped[:5])})")  # fmt: skip
            elif event.type == "data" and isinstance(event.data, Corrected) and agent in by_name:
                current = by_name[agent]
                current.output = event.data.text
                notify(f"{agent}: turned round a time difference the tool gives the other way: "
                       f"{'; '.join(event.data.corrected[:3])}")  # fmt: skip
            elif event.type == "data" and isinstance(event.data, Retrying) and agent in by_name:
                # The answer streamed so far is not handed on: the agent answers once more.
                current = by_name[agent]
                current.retried, current.output = event.data.problem.kind, ""
                notify(f"{agent}: {event.data.problem.cause}; asking it once more")
            elif event.type == "executor_completed" and agent in by_name:
                current = by_name[agent]
                current.duration_s = now - current.started_s
                state = guard.agent(agent)
                current.finish_reason = state.finish_reason
                if state.asked:  # the structured-output requests run beside the framework's usage count
                    tokens_in, tokens_out, seconds = state.forced_usage
                    current.model_calls += sum(state.asked.values())
                    current.input_tokens += tokens_in
                    current.output_tokens += tokens_out
                    current.model_s += seconds
                if agent in log.stopped:
                    current.tool_loop_stopped = log.stopped[agent]
                    notify(f"{agent}'s tool loop was ended: {log.stopped[agent]}")
                if current.tool_rounds >= self.settings.max_tool_rounds:
                    current.hit_tool_limit = True
                    on_event(Notice(f"{agent} reached the limit of {self.settings.max_tool_rounds} tool rounds "
                                    "(AGENT_MAX_TOOL_ROUNDS) and had to answer with what it had"))  # fmt: skip
                if not current.output.strip():
                    on_event(Notice(f"{agent} returned an empty reply (model {self.model})"))
                on_event(AgentFinished(agent, current.output))

        drain()
        planner = by_name.get(AGENT_NAMES[-1])
        if planner is None or not planner.output.strip():
            raise UserError(
                f"the Planner returned no plan: model {self.model} gave an empty reply; ask again, "
                "or use a larger model",
                ExitCode.TURN_FAILED,
            )
        # The answer check passed, so words remain once any stray call syntax is taken out.
        record.plan = strip_calls(planner.output, frozenset(offered.get(AGENT_NAMES[-1], ()))) or planner.output.strip()


def _shown(arguments: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}"
                     for key, value in arguments.items())  # fmt: skip


def _arguments(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    return {"raw": str(raw)} if raw else {}

"""The pipeline's guards around each model call and each agent's answer.

GuardedChatClient is OllamaChatClient with five duties below the framework's tool loop: it fits
the conversation into the model's context (context_budget), recovers tool calls the model wrote
as text (text_calls) so the loop executes them, asks for a required tool's call with structured
output when the model answered without it (Ollama has no tool_choice "required"), makes the calls
the request shows the agent still owes (owed) when the request settles their arguments, and notes
each call's done_reason and prompt size.
CheckedAgentExecutor is the workflow's AgentExecutor with an answer check (answers): an unusable
answer is retried once with a corrective instruction, and a second failure stops the turn with one
line naming the agent, the cause and the fix.

The guard of the turn in progress is a ContextVar, as the tool-call log is.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from agent_framework import (
    AgentExecutor,
    AgentExecutorResponse,
    AgentResponse,
    ChatResponseUpdate,
    Content,
    Message,
    WorkflowEvent,
)
from agent_framework.ollama import OllamaChatClient
from opentelemetry import trace

from . import facts, grounding
from .answers import UNGROUNDED, Problem, check_answer, failure_line, without_figures
from .context_budget import (
    AFTER_TOOLS,
    AFTER_TOOLS_CLOSED,
    ASK_ARGUMENTS_HEAD,
    HANDOFF_HEAD,
    ContextMeter,
    ContextOverflow,
    fit,
    is_request,
    request_chars,
)
from .errors import ExitCode, UserError
from .owed import EarlierResults, Owed, Owes, nothing
from .text_calls import TextCall, declared_only, find_calls, looks_like_call_start
from .tool_server import ToolCall, current_log

logger = logging.getLogger(__name__)
RECOVERED = "recovered_from_text"  # additional_properties flag on a function_call made from text
FORCED = "asked_with_structured_output"  # ... on a required call the pipeline asked the model for
# What the model is told when it answered without a tool it must call; `format` (a JSON schema of
# the tool's arguments) makes Ollama constrain the reply to that schema with a grammar, so even a
# 0.5B model gives arguments that parse. The schema is in the text too: the model sees no tools here.
ASK_ARGUMENTS = (
    ASK_ARGUMENTS_HEAD + " {name}: {description}\n"
    "Reply with only the JSON arguments for {name}, taken from the traveller's request and the "
    "conversation above. Arguments (JSON schema): {schema}"
)
FORCED_MAX_TOKENS = 200  # arguments are short; a model that rambles inside the grammar is cut here
LISTING = "list_destinations"  # its result lists candidate cities, not the trip's places
MAX_ASKS_PER_TOOL = 2  # a model that gives unusable arguments twice is not asked a third time
# (a call the request shows is owed, owed.py, is made or asked for once: it is not required)


@dataclass
class AgentState:
    finish_reason: str | None = None  # of the agent's latest model call
    recovered: int = 0  # tool calls recovered from its text
    forced: int = 0  # owed calls it was asked for with structured output and given, or that were made for it
    asked: dict[str, int] = field(default_factory=dict)  # structured-output requests made, by tool
    made: set[str] = field(default_factory=set)  # owed calls made for it with no model call, by tool
    forced_usage: tuple[int, int, float] = (0, 0, 0.0)  # those requests' input/output tokens, seconds
    retried: str | None = None  # the problem its first answer had


@dataclass
class TurnGuard:
    model: str
    meter: ContextMeter
    max_output: int
    request: str = ""  # the traveller's request this turn (owed.py reads it)
    agents: dict[str, AgentState] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)  # drained by the workflow as the turn goes

    def agent(self, name: str) -> AgentState:
        return self.agents.setdefault(name, AgentState())

    def overflow(self, tokens: int) -> UserError:
        meter = self.meter
        supports = f"; the model supports up to {meter.model_ctx}" if meter.model_ctx else ""
        return UserError(
            f"the conversation no longer fits model {self.model}'s context: about {tokens} tokens where "
            f"{meter.prompt_budget} fit beside the reply (a window of {meter.window}, OLLAMA_NUM_CTX={meter.num_ctx}"
            f"{supports}); type /reset or ask a shorter question, or raise OLLAMA_NUM_CTX",
            ExitCode.TURN_FAILED,
        )


current_guard: ContextVar[TurnGuard | None] = ContextVar("current_guard", default=None)


def _tool_names(options: Mapping[str, Any]) -> frozenset[str]:
    if options.get("tool_choice") == "none":
        return frozenset()
    return frozenset(name for tool in options.get("tools") or [] if (name := getattr(tool, "name", None)))


def _tool(options: Mapping[str, Any], name: str) -> Any:
    return next((t for t in options.get("tools") or [] if getattr(t, "name", None) == name), None)


def _schema(tool: Any) -> dict[str, Any] | None:
    try:
        schema = tool.parameters() if tool is not None else None
    except Exception:  # a tool without a readable schema
        return None
    return schema if isinstance(schema, dict) else None


def _declared(options: Mapping[str, Any], name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return declared_only(arguments, _schema(_tool(options, name)))  # without a schema: what the model wrote


class GuardedChatClient(OllamaChatClient):
    """OllamaChatClient for one agent of the team, with the guards described above."""

    def __init__(self, *, agent: str, required: tuple[str, ...] = (), owes: Owes = nothing,
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(**kwargs)
        self.agent = agent
        self.required = required  # tools the agent must call before it answers (AgentSpec.required)
        self.owes = owes  # calls its request and results show it still owes (AgentSpec.owes)

    def _owed(self, tools: frozenset[str], state: AgentState, request: str) -> list[Owed]:
        """The calls this agent still owes: the first required tool it has not yet called successfully
        in this turn (and has not already been asked for too often), else the calls the request shows
        it owes (each made or asked for once)."""
        done = _succeeded(self.agent)
        required = next((name for name in self.required if name in tools and name not in {c.name for c in done}
                         and state.asked.get(name, 0) < MAX_ASKS_PER_TOOL), None)  # fmt: skip
        if required is not None:
            return [Owed(required)]
        tried = state.made | set(state.asked)
        return [o for o in self.owes(request, done) if o.name in tools and o.name not in tried]

    async def _ask_for_call(self, guard: TurnGuard, sent: list[Message], options: Mapping[str, Any],
                            owed: Owed) -> dict[str, Any] | None:  # fmt: skip
        """The arguments of a call to `owed.name`, asked of the model with Ollama's structured output
        (the arguments the request settles fixed by the schema); None when it gave none that parse
        (the answer check then asks the agent again)."""
        name = owed.name
        tool = _tool(options, name)
        schema = _fixed(_schema(tool), owed.known)
        if schema is None:
            return None
        instruction = ASK_ARGUMENTS.format(name=name, description=" ".join(str(tool.description or "").split()),
                                           schema=json.dumps(schema, separators=(",", ":")))  # fmt: skip
        asked = {key: value for key, value in options.items() if key not in ("tools", "tool_choice")}
        asked["response_format"] = schema
        asked["max_tokens"] = min(FORCED_MAX_TOKENS, int(options.get("max_tokens") or FORCED_MAX_TOKENS))
        state = guard.agent(self.agent)
        try:
            messages = fit([*sent, Message("user", [instruction])], asked, guard.meter)
        except ContextOverflow:
            return None  # no room to ask: the answer check asks the agent again instead
        state.asked[name] = state.asked.get(name, 0) + 1
        started = time.perf_counter()
        try:
            response = await super()._inner_get_response(messages=messages, options=asked, stream=False)
        except Exception as error:  # best effort: an Ollama that refuses `format` must not end the turn
            logger.debug("asking for %s with structured output failed", name, exc_info=True)
            guard.notices.append(f"{self.agent}: asking the model for {name}'s arguments with structured output "
                                 f"failed ({type(error).__name__}); its own answer is checked instead")  # fmt: skip
            return None
        usage = response.usage_details or {}
        seconds = time.perf_counter() - started
        tokens_in, tokens_out, spent = state.forced_usage
        state.forced_usage = (tokens_in + (usage.get("input_token_count") or 0),
                              tokens_out + (usage.get("output_token_count") or 0), spent + seconds)  # fmt: skip
        try:
            arguments = json.loads(response.text or "")
        except ValueError:
            return None
        if not isinstance(arguments, dict):
            return None
        return {k: v for k, v in declared_only(arguments, schema).items() if v is not None} | owed.known

    def _inner_get_response(self, *, messages: Sequence[Message], options: Mapping[str, Any], stream: bool = False,
                            **kwargs: Any) -> Any:  # fmt: skip
        guard = current_guard.get()
        if guard is None or not stream:
            return super()._inner_get_response(messages=messages, options=options, stream=stream, **kwargs)
        return self._build_response_stream(
            self._guarded(guard, list(messages), options, kwargs), response_format=options.get("response_format")
        )

    async def _guarded(self, guard: TurnGuard, messages: list[Message], options: Mapping[str, Any],
                       kwargs: dict[str, Any]) -> AsyncIterable[ChatResponseUpdate]:  # fmt: skip
        try:
            sent = fit(messages, dict(options), guard.meter)
        except ContextOverflow as overflow:
            raise guard.overflow(overflow.tokens) from None
        if guard.meter.trims:
            guard.notices.append(
                f"{self.agent}: the conversation was trimmed to fit model {guard.model}'s context of "
                f"{guard.meter.window} tokens ({', '.join(guard.meter.trims)})"
            )
        state = guard.agent(self.agent)
        tools = _tool_names(options)
        owing = self._owed(tools, state, guard.request)
        if settled := [o for o in owing if _settled(o, options)]:
            # The request and the results give every argument: the calls are made without a model call.
            state.made.update(o.name for o in settled)
            if log := current_log.get():
                log.made.setdefault(self.agent, []).extend(o.name for o in settled)
            state.forced += len(settled)
            trace.get_current_span().set_attribute("travel.tool_calls_forced", state.forced)
            made_event = {"travel.agent": self.agent, "travel.tools": [o.name for o in settled]}
            trace.get_current_span().add_event("owed tool calls made", made_event)
            yield _calls_update([(TextCall(o.name, o.known), {FORCED: o.reason or True}) for o in settled], options)
            return
        owed = owing[0] if owing else None
        if sent and sent[-1].role == "tool":
            sent = [*sent, Message("user", [AFTER_TOOLS if tools else AFTER_TOOLS_CLOSED])]
        chars = request_chars(sent, dict(options))
        inner = super()._inner_get_response(messages=sent, options=options, stream=True, **kwargs)
        text, held, holding, called = "", [], None, False
        try:
            async for update in inner:
                called = called or any(c.type == "function_call" for c in update.contents)
                text += "".join(c.text or "" for c in update.contents if c.type == "text")
                if update.finish_reason is not None:
                    state.finish_reason = str(getattr(update.finish_reason, "value", update.finish_reason))
                for content in update.contents:
                    if content.type == "usage" and content.usage_details:
                        self._measured(guard, chars, content.usage_details.get("input_token_count"))
                if holding is None and tools and text.strip():
                    # A reply that starts like a call written as text is held back until it is complete,
                    # so that a recovered call does not also reach the screen (and the next agent) as text.
                    holding = looks_like_call_start(text)
                    # An agent that owes a required call and answers instead may be given the call
                    # below; its answer without facts is not shown meanwhile.
                    holding = holding or owed is not None
                if holding and not called:
                    held.append(update)
                    continue
                while held:  # it called a tool after all: what it said before goes out first, in order
                    yield held.pop(0)
                yield update
        except Exception:
            # The reply broke off (Ollama died, a timeout): what it said so far is kept, as it is
            # for a reply that was not held.
            for update in held:
                yield update
            raise
        calls = find_calls(text, tools) if tools and not called else []
        span = trace.get_current_span()
        flag = RECOVERED
        if calls:
            state.recovered += len(calls)
            span.set_attribute("travel.tool_calls_recovered", state.recovered)
            span.add_event("tool calls recovered from text", {"travel.agent": self.agent,
                                                              "travel.tools": [c.name for c in calls]})  # fmt: skip
        elif not called and owed is not None and (arguments := await self._ask_for_call(guard, sent, options, owed)):
            calls, flag = [TextCall(owed.name, arguments)], FORCED
            state.forced += 1
            span.set_attribute("travel.tool_calls_forced", state.forced)
            span.add_event("required tool call asked for with structured output",
                           {"travel.agent": self.agent, "travel.tools": [owed.name]})  # fmt: skip
        if not calls:
            for update in held:
                yield update
            return
        for update in held:  # keep what is not text (the final chunk's usage and finish reason)
            rest = [c for c in update.contents if c.type != "text"]
            if rest or update.finish_reason is not None:
                yield ChatResponseUpdate(contents=rest, role=update.role, model=update.model,
                                         created_at=update.created_at, finish_reason=update.finish_reason)  # fmt: skip
        yield _calls_update([(call, {flag: True}) for call in calls], options)

    def _measured(self, guard: TurnGuard, chars: int, prompt_tokens: int | None) -> None:
        meter = guard.meter
        if meter.filled(prompt_tokens):
            guard.notices.append(
                f"{self.agent}: the prompt filled model {guard.model}'s whole context ({prompt_tokens} tokens), "
                "so Ollama left out its oldest part; raise OLLAMA_NUM_CTX or type /reset"
            )
        meter.learn(chars, prompt_tokens)


def _calls_update(calls: Sequence[tuple[TextCall, dict[str, Any]]], options: Mapping[str, Any]) -> ChatResponseUpdate:
    """The calls (each with its flags) as the framework's tool loop takes them from a model's reply."""
    return ChatResponseUpdate(
        contents=[
            Content.from_function_call(
                call_id=f"text-{uuid.uuid4().hex[:12]}",
                name=call.name,
                arguments=_declared(options, call.name, call.arguments),
                additional_properties=flags,
            )
            for call, flags in calls
        ],
        role="assistant",
    )


def _settled(owed: Owed, options: Mapping[str, Any]) -> bool:
    """Whether the request and the results give every argument the tool requires."""
    schema = _schema(_tool(options, owed.name))
    return bool(owed.known) and schema is not None and set(schema.get("required") or ()) <= set(owed.known)


def _fixed(schema: dict[str, Any] | None, known: Mapping[str, Any]) -> dict[str, Any] | None:
    """The tool's argument schema with the settled arguments allowed one value each."""
    if schema is None or not known:
        return schema
    properties = dict(schema.get("properties") or {})
    for key, value in known.items():
        if key in properties:
            properties[key] = {**properties[key], "enum": [value]}
    return {**schema, "properties": properties}


@dataclass(frozen=True)
class Retrying:
    """Workflow event data: the agent's answer was not usable and it is asked once more."""

    agent: str
    problem: Problem


@dataclass(frozen=True)
class Repaired:
    """Workflow event data: the agent's answer is handed on without the sentences whose figures no
    tool returned (a second model call would cost more, and small models repeat the figures)."""

    agent: str
    text: str
    dropped: tuple[str, ...]


@dataclass(frozen=True)
class Corrected:
    """Workflow event data: the agent's answer is handed on with "X is N hours ahead of Y" turned the
    right way round where it contradicted time_difference (the figure was right, the direction not)."""

    agent: str
    text: str
    corrected: tuple[str, ...]


def handoff_message(agent: str, task: str, notes: Sequence[tuple[str, str]], sheet: str = "") -> Message:
    """One text content a teammate, and one for the sheet of facts, so trimming for the context
    shortens each (context_budget)."""
    head = f"{HANDOFF_HEAD}, {agent}: {task}\n\nWhat the team found before you:\n"
    notes_texts = [f"\n{name or 'A teammate'}:\n{text}\n" for name, text in notes]
    return Message("user", [head, *notes_texts, *([f"\n{sheet}\n"] if sheet else [])])


def _without_listings(messages: Sequence[Message]) -> list[Message]:
    """The messages without list_destinations' calls and results: candidates, not this trip's places."""
    listed = {c.call_id for m in messages for c in m.contents if c.type == "function_call" and c.name == LISTING}
    kept = []
    for message in messages:
        contents = [c for c in message.contents if not (c.type in ("function_call", "function_result")
                                                        and c.call_id in listed)]  # fmt: skip
        if contents:
            kept.append(message if len(contents) == len(message.contents)
                        else Message(message.role, contents, author_name=message.author_name))  # fmt: skip
    return kept


def _succeeded(agent: str | None = None) -> list[ToolCall]:
    """The turn's successful tool calls (of one agent, when named), from the turn's call log."""
    log = current_log.get()
    return [c for c in (log.calls if log else []) if c.ok and (agent is None or c.agent == agent)]


def _last_exchange(messages: Sequence[Message]) -> int:
    """Index of the last message holding a tool call or result (-1 when none does)."""
    exchanges = (i for i, m in enumerate(messages)
                 if any(c.type in ("function_call", "function_result") for c in m.contents))  # fmt: skip
    return max(exchanges, default=-1)


def final_text(messages: Sequence[Message]) -> str:
    """What the agent answered: its text after its last tool exchange."""
    last_tool = _last_exchange(messages)
    return "\n".join(m.text for m in messages[last_tool + 1 :] if m.role == "assistant" and m.text).strip()


def _exchange(messages: Sequence[Message]) -> list[Message]:
    """The tool calls and results of an attempt, without its unusable answer."""
    kept = []
    for message in messages:
        contents = [c for c in message.contents if c.type in ("function_call", "function_result")]
        if contents:
            kept.append(Message(message.role, contents, author_name=message.author_name))
    return kept


# Figures an agent must not make up; times and hours are left alone (models write "by 9 h", "2 h").
CHECKED_FIGURES = ("temperature", "money", "distance", "rain")


def _with_answer(messages: Sequence[Message], text: str) -> list[Message]:
    """The messages with their final answer replaced by `text` (the tool exchanges kept)."""
    last_tool = _last_exchange(messages)
    author = next((m.author_name for m in messages[last_tool + 1 :] if m.author_name), None)
    return [*messages[: last_tool + 1], Message("assistant", [text], author_name=author)]


def _repaired(response: Any, text: str) -> AgentResponse:
    """The response with its final answer replaced by `text` (its tool exchanges kept)."""
    return AgentResponse(messages=_with_answer(response.messages, text), agent_id=response.agent_id,
                         usage_details=response.usage_details)  # fmt: skip


def _results() -> list[tuple[str, Any]]:
    """(tool name, result) of the turn's successful calls: what an answer's facts are checked against."""
    return [(c.name, c.result) for c in _succeeded() if c.result is not None]


def _ungrounded(answer: str, request: str) -> list[str]:
    checked = grounding.check(answer, _results(), request=request)
    return [f["figure"] for f in checked["ungrounded"] if f["kind"] in CHECKED_FIGURES]


class CheckedAgentExecutor(AgentExecutor):
    """AgentExecutor whose agent's answer is checked before it is handed to the next agent.

    Overrides the framework's _run_agent_and_emit (streaming runs only; a non-streaming run keeps
    the framework's behaviour) and hands on what the framework hands on: an AgentExecutorResponse
    with the full conversation.
    """

    def __init__(self, agent: Any, *, tools: frozenset[str], required: tuple[str, ...] = (), handoff: str = "",
                 earlier_results: EarlierResults = "raw", **kwargs: Any) -> None:  # fmt: skip
        super().__init__(agent, **kwargs)
        self.tools = tools
        self.required = tuple(name for name in required if name in tools)  # a tool the server lacks is not asked for
        self.handoff = handoff
        self.earlier_results = earlier_results  # AgentSpec.earlier_results

    def _build_invocation_messages(self) -> list[Message]:
        """The conversation this agent is given: earlier agents' answers move out of the assistant
        role into one handoff message that names its task (invocation-only, as the framework's
        "please continue." is). Given a teammate's answer as its own last words, a small model
        carries on from it or says it again (Qwen2.5-Coder-1.5B did)."""
        messages = list(self._cache)
        if not self.handoff or not messages or messages[-1].role != "assistant":
            return super()._build_invocation_messages()
        start = max((i for i, m in enumerate(messages) if is_request(m)), default=-1)
        kept, notes = messages[: start + 1], []
        for message in messages[start + 1 :]:
            text = message.text.strip()
            # (a thinking model's reasoning is left out; its answer is the note)
            is_answer = (
                message.role == "assistant"
                and text
                and not any(c.type in ("function_call", "function_result") for c in message.contents)
            )
            if not is_answer:
                kept.append(message)
            elif notes and notes[-1][0] == (message.author_name or ""):
                notes[-1] = (notes[-1][0], f"{notes[-1][1]}\n{text}")
            else:
                notes.append((message.author_name or "", text))
        sheet = ""
        if self.earlier_results != "raw" and current_log.get() is not None:
            results = _results()
            sheet = facts.sheet(results)
            if self.earlier_results == "sheet" and sheet:
                kept = kept[: start + 1]
            elif any(name == "get_destination" for name, _ in results):
                kept = [*kept[: start + 1], *_without_listings(kept[start + 1 :])]
        return [*kept, handoff_message(self.id, self.handoff, notes, sheet)]

    async def _stream(self, ctx: Any, messages: list[Message], session: Any, options: dict[str, Any] | None) -> Any:
        stream = self._agent.run(messages, stream=True, session=session,
                                 **({"options": options} if options else {}))  # fmt: skip
        async for update in stream:
            await ctx.yield_output(update)
        return await stream.get_final_response()

    async def _run_agent_and_emit(self, ctx: Any) -> None:
        guard = current_guard.get()
        if guard is None or not ctx.is_streaming():
            await super()._run_agent_and_emit(ctx)
            return
        messages = self._build_invocation_messages()
        state = guard.agent(self.id)
        request = next((m.text for m in reversed(messages) if is_request(m)), "")

        # Texts an answer must not merely say back: its instructions, the traveller's request and the
        # earlier agents' answers (small models often repeat what they were given last).
        given = [request, *(m.text for m in messages if m.text.startswith(HANDOFF_HEAD))]
        if hasattr(self._agent, "default_options"):
            given.append(str(self._agent.default_options.get("instructions") or ""))

        def check(answer: str) -> Problem | None:
            ungrounded = _ungrounded(answer, request)
            own = _succeeded(self.id)
            uncalled = [name for name in self.required if name not in {c.name for c in own}]
            results = [(c.name, c.result) for c in own if c.result is not None]
            # "I have already provided the facts about Lisbon." after a full tool result is no answer.
            vague = bool(results and self.required) and grounding.facts_used(answer, results, request) < 2
            return check_answer(answer, state.finish_reason, self.tools, guard.max_output, ungrounded, given, uncalled,
                                vague)  # fmt: skip

        response = await self._stream(ctx, messages, self._session, None)
        kept = list(response.messages)
        answer = final_text(response.messages)
        problem = check(answer)
        if problem is not None and problem.kind == UNGROUNDED:
            dropped = tuple(_ungrounded(answer, request))
            repaired = without_figures(answer, dropped)
            if repaired and check(repaired) is None:
                await ctx.add_event(
                    WorkflowEvent("data", executor_id=self.id, data=Repaired(self.id, repaired, dropped))
                )
                response = _repaired(response, repaired)
                kept, problem = list(response.messages), None
        if problem is not None:
            state.retried = problem.kind
            await ctx.add_event(WorkflowEvent("data", executor_id=self.id, data=Retrying(self.id, problem)))
            exchange = _exchange(response.messages)
            state.finish_reason = None
            retry = await self._stream(
                ctx,
                [*messages, *exchange, Message("user", [problem.instruction])],
                self._agent.create_session(),
                {"tool_choice": "none"} if problem.without_tools else None,
            )
            again = check(final_text(retry.messages))
            if again is not None:
                raise UserError(failure_line(self.id, guard.model, again), ExitCode.TURN_FAILED)
            kept, response = [*exchange, *retry.messages], retry
        fixed, corrected = grounding.correct_time_directions(final_text(kept), _results())
        if corrected:
            await ctx.add_event(
                WorkflowEvent("data", executor_id=self.id, data=Corrected(self.id, fixed, tuple(corrected)))
            )
            response, kept = _repaired(response, fixed), _with_answer(kept, fixed)
        self._full_conversation = [*self._cache, *kept]
        await ctx.send_message(AgentExecutorResponse(self.id, response, full_conversation=self._full_conversation))
        self._cache.clear()

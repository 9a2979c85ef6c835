"""Tool-calling fitness: which model can drive the tools.

    main.py fitness                       # the configured model (OLLAMA_MODEL)
    main.py fitness -m qwen2.5:7b -m phi4-mini --repeat 3
    main.py fitness --all --json          # every installed model, machine-readable

For each model and each MCP tool, one question that needs that tool goes to the model through
Ollama's /api/chat with every tool offered, as the agents see them. The check records whether the
model called the right tool, whether the tool accepted its arguments and they were the ones asked
for, and whether, given the result, it answered with the facts from it. The matrix (model by tool)
is how to pick a model for the CPU or GPU profile.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
import ollama

from ..errors import ExitCode, UserError, from_ollama_status
from ..grounding import Number, check
from ..ollama_connection import make_client, wait_until_reachable
from ..settings import Settings
from ..text_calls import declared_only, find_calls
from .common import mcp_session, ollama_tool, one_line, quiet_logging, settings_or_exit, table, tool_result

SYSTEM = (
    "You are a travel assistant. Answer with the tools you are given: call the one the question needs, "
    "then answer briefly from its result."
)
MAX_ROUNDS = 3  # tool rounds a model gets before it must answer


Fact = str | Number


def _has(arguments: dict[str, Any], key: str, *accepted: str) -> bool:
    value = str(arguments.get(key, "")).casefold()
    return any(a in value for a in accepted)


@dataclass(frozen=True)
class Case:
    tool: str
    question: str
    asked: Callable[[dict[str, Any]], bool]  # were the arguments the ones the question asks for
    facts: Callable[[Any], list[Fact]]  # what a grounded answer states, from the tool's result


CASES: tuple[Case, ...] = (
    Case(
        "get_destination",
        "Which currency and which languages will I need in Lisbon?",
        lambda a: _has(a, "city", "lisbon", "lisboa"),
        lambda r: [r["currency_code"], r["currency_name"]],
    ),
    Case(
        "list_destinations",
        "Which cities in Oceania do you have travel data for?",
        lambda a: _has(a, "continent", "oceania"),
        lambda r: [label.split(",")[0] for label in r["cities"]],
    ),
    Case(
        "get_climate",
        "How warm is it in Reykjavik in July, on average?",
        lambda a: _has(a, "city", "reykjav") and (_has(a, "month", "7", "jul") or _has(a, "start_date", "-07-")),
        lambda r: _temperatures(r["months"][0]),
    ),
    Case(
        "travel_distance",
        "How far is it from Madrid to Barcelona?",
        lambda a: {_fold(a.get("from_city")), _fold(a.get("to_city"))} >= {"madrid", "barcelona"},
        lambda r: [Number(km, max(10.0, 0.1 * km)) for km in (r["distance_km"], r["distance_km"] / 1.609344)],
    ),
    Case(
        "time_difference",
        "What is the time difference from London to Tokyo?",
        lambda a: {_fold(a.get("from_city")), _fold(a.get("to_city"))} >= {"london", "tokyo"},
        lambda r: [Number(r["difference_hours"], 0.0)],
    ),
    Case(
        "convert_currency",
        "How much is 250 USD in EUR?",
        lambda a: _has(a, "amount", "250") and _has(a, "from_currency", "usd") and _has(a, "to_currency", "eur"),
        lambda r: [Number(r["converted"], max(1.0, 0.02 * r["converted"]))],
    ),
)


def _temperatures(month: dict[str, Any]) -> list[Fact]:
    """ "How warm on average" is answered with the mean high, the low, or the day's mean, in °C or °F."""
    high, low = month["high_c"], month["low_c"]
    celsius = [Number(t, 1.0) for t in (high, low, (high + low) / 2)]
    return celsius + [Number(c.value * 9 / 5 + 32, 2.0) for c in celsius]


def _fold(value: Any) -> str:
    return str(value or "").split(",")[0].strip().casefold()


# Outcomes, best first. A cell is PASS only when every stage held.
PASS = "PASS"
TEXT_CALL = "text call"  # every stage held, but the call came as text (the pipeline recovers it)
VAGUE = "vague"  # answered, but stated nothing from the result
NO_ANSWER = "no answer"  # called the tool right, then said nothing (or kept calling tools)
BAD_ARGS = "bad args"  # right tool, arguments refused or not the ones asked for
WRONG_TOOL = "wrong tool"
NO_CALL = "no call"  # answered from memory (or not at all) without calling a tool
BAD_CALL = "bad call"  # Ollama could not parse the model's tool call, or the call was malformed
NO_TOOLS = "no tools"  # the model cannot call tools at all (Ollama's 400)
MISSING = "missing"  # not installed
ERROR = "error"

LEGEND = {
    PASS: "called the right tool with the asked-for arguments, then answered with facts from the result",
    TEXT_CALL: "as PASS, but the call was written as text, which Ollama did not parse: the pipeline recovers "
    "such calls, but a model that uses the tool-call channel is more reliable",
    VAGUE: "right call, but the answer states nothing from the result",
    NO_ANSWER: "right call, then no answer (an empty one, or it kept calling tools)",
    BAD_ARGS: "right tool, arguments refused by the tool or not the ones asked for",
    WRONG_TOOL: "called another tool (or one that does not exist)",
    NO_CALL: "answered without calling a tool",
    BAD_CALL: "the tool call was malformed (Ollama could not parse it)",
    NO_TOOLS: "Ollama says the model cannot call tools",
    MISSING: "not installed on this Ollama",
    ERROR: "Ollama failed, not the model (a timeout, a crashed runner): see the detail, then ask again",
}


@dataclass
class Attempt:
    outcome: str
    detail: str = ""
    called: list[str] = field(default_factory=list)
    arguments: dict[str, Any] = field(default_factory=dict)
    answer: str = ""
    seconds: float = 0.0
    expected: list[Fact] = field(default_factory=list)  # from the result: what a grounded answer states
    ungrounded: list[str] = field(default_factory=list)  # figures the answer states that no tool returned


@dataclass
class Cell:
    tool: str
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def passes(self) -> int:
        return sum(a.outcome == PASS for a in self.attempts)

    @property
    def shown(self) -> str:
        if self.attempts and all(a.outcome == self.attempts[0].outcome for a in self.attempts):
            return self.attempts[0].outcome
        return f"{self.passes}/{len(self.attempts)}"  # mixed results over --repeat runs


@dataclass
class Row:
    model: str
    parameter_size: str = "?"
    cells: list[Cell] = field(default_factory=list)

    @property
    def score(self) -> tuple[int, int]:
        return sum(c.passes for c in self.cells), sum(len(c.attempts) for c in self.cells)

    @property
    def fit(self) -> bool:
        passed, total = self.score
        return total > 0 and passed == total

    def seconds(self) -> float:
        return sum(a.seconds for c in self.cells for a in c.attempts)


class Abort(Exception):
    """The whole row ends here (the model is missing or cannot call tools)."""

    def __init__(self, outcome: str, detail: str) -> None:
        super().__init__(detail)
        self.outcome, self.detail = outcome, detail


async def attempt(client: ollama.AsyncClient, session, tools: list[dict], model: str, case: Case, options) -> Attempt:
    """One question, through as many tool rounds as the model takes (at most MAX_ROUNDS)."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": case.question}]
    result: Attempt | None = None
    results: list[tuple[str, Any]] = []  # what the tools returned, for the grounding check
    offered = frozenset(t["function"]["name"] for t in tools)
    from_text = False
    for _ in range(MAX_ROUNDS + 1):
        try:
            response = await client.chat(model=model, messages=messages, tools=tools, options=options, stream=False)
        except ollama.ResponseError as error:
            if error.status_code == 404:
                raise Abort(MISSING, f"{model} is not installed") from None
            if error.status_code == 400 and "does not support tools" in str(error.error):
                raise Abort(NO_TOOLS, one_line(error.error)) from None
            if error.status_code == 500 and "parsing tool call" in str(error.error):  # the model wrote a broken call
                return Attempt(BAD_CALL, one_line(error.error))
            # e.g. 500 "llama runner process has terminated" (out of memory): not the model's tool calling
            return Attempt(ERROR, f"Ollama answered {error.status_code}: {one_line(error.error)}")
        except httpx.TimeoutException:
            return Attempt(ERROR, f"no reply within OLLAMA_REQUEST_TIMEOUT ({timeout_of(client)})")
        except (ValueError, TypeError) as error:  # a reply the client cannot read (malformed arguments)
            return Attempt(BAD_CALL, one_line(error))
        message = response.message
        calls = [(c.function.name, dict(c.function.arguments)) for c in message.tool_calls or []]
        written = [] if calls else find_calls(message.content or "", offered)
        if written:  # calls written as text, taken as the pipeline takes them
            calls, from_text = [(c.name, _declared(tools, c.name, c.arguments)) for c in written], True
        if not calls:
            answer = (message.content or "").strip()
            if result is None:  # no tool was ever called
                return Attempt(NO_CALL, f"answered: {answer[:80]!r}" if answer else "empty reply", answer=answer)
            result.answer = answer
            result.ungrounded = [f["figure"] for f in check(answer, results, request=case.question)["ungrounded"]]
            if not answer:
                result.outcome, result.detail = NO_ANSWER, "empty answer after the tool result"
            elif result.outcome == PASS and not _grounded(answer, result.expected):
                result.outcome, result.detail = VAGUE, "the answer states nothing from the result"
            elif result.outcome == PASS and from_text:
                result.outcome, result.detail = TEXT_CALL, "the tool call was written as text"
            return result
        messages.append({"role": "assistant", "content": "" if written else message.content or "",
                         "tool_calls": [{"function": {"name": n, "arguments": a}} for n, a in calls]})  # fmt: skip
        for name, arguments in calls:
            ok, payload = await _call_tool(session, name, arguments)
            if ok:
                results.append((name, payload))
            messages.append({"role": "tool", "tool_name": name, "content": _as_text(payload)})
            if result is None or (result.outcome != PASS and name == case.tool):
                result = _judge(case, name, arguments, ok, payload, [n for n, _ in calls])
    # Still calling tools after MAX_ROUNDS rounds: the agents would loop the same way.
    result = result or Attempt(NO_CALL)
    if result.outcome == PASS:
        result.outcome, result.detail = NO_ANSWER, f"still calling tools after {MAX_ROUNDS} rounds, never answered"
    return result


def _declared(tools: list[dict], name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """As the pipeline does for a call written as text: only the arguments the tool declares."""
    schema = next((t["function"].get("parameters") for t in tools if t["function"]["name"] == name), None)
    return declared_only(arguments, schema)


def timeout_of(client: ollama.AsyncClient) -> str:
    read = getattr(getattr(client, "_client", None), "timeout", None)
    return f"{read.read:g} s" if read is not None and read.read is not None else "its limit"


def _judge(case: Case, name: str, arguments: dict, ok: bool, payload: Any, called: list[str]) -> Attempt:
    if case.tool not in called:
        return Attempt(WRONG_TOOL, f"called {', '.join(called)}", called=called, arguments=arguments)
    if not ok:
        return Attempt(BAD_ARGS, f"the tool refused {json.dumps(arguments)}: {one_line(payload, 120)}",
                       called=called, arguments=arguments)  # fmt: skip
    if not case.asked(arguments):
        return Attempt(BAD_ARGS, f"not what was asked: {json.dumps(arguments)}", called=called, arguments=arguments)
    try:
        facts = case.facts(payload)
    except (KeyError, TypeError, IndexError):
        facts = []
    return Attempt(PASS, called=called, arguments=arguments, expected=facts)


def _grounded(answer: str, facts: list[Fact]) -> bool:
    if not facts:
        return bool(answer)
    folded = answer.casefold()
    return any(f.found_in(answer) if isinstance(f, Number) else (f and f.casefold() in folded) for f in facts)


async def _call_tool(session, name: str, arguments: dict[str, Any]) -> tuple[bool, Any]:
    try:
        return tool_result(await session.call_tool(name, arguments))
    except Exception as error:  # an unknown tool, or a result the SDK rejects: the model sees the error
        return False, f"Error: {one_line(error)}"


def _as_text(payload: Any) -> str:
    return payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)


async def run(settings: Settings, models: list[str] | None, every: bool, repeat: int, progress) -> list[Row]:
    client = make_client(settings)
    await wait_until_reachable(client, settings, progress)
    installed = await client.list()
    names = [m.model for m in installed.models if m.model]
    if every:
        models = sorted(names)
        if not models:
            raise UserError(
                f"no models are installed on {settings.ollama_shown}; pull one first", ExitCode.MODEL_UNAVAILABLE
            )
    models = models or [settings.ollama_model]
    options = {"num_ctx": settings.num_ctx, "temperature": settings.temperature, "num_predict": 512}
    rows: list[Row] = []
    async with mcp_session(settings.mcp_server_url) as session:
        tools = [ollama_tool(t) for t in (await session.list_tools()).tools]
        offered = {t["function"]["name"] for t in tools}
        cases = [c for c in CASES if c.tool in offered]
        for model in models:
            row = Row(model)
            rows.append(row)
            try:
                shown = await client.show(model)
                row.parameter_size = (shown.details.parameter_size if shown.details else None) or "?"
            except ollama.ResponseError as error:
                if error.status_code != 404:
                    raise
                row.cells = [Cell(c.tool, [Attempt(MISSING, f"{model} is not installed")]) for c in cases]
                missing = from_ollama_status(404, "", host=settings.ollama_shown, model=model, offline=settings.offline)
                progress(f"{model}: {missing}")
                continue
            capabilities = shown.capabilities or ()  # Ollama lists them since 0.6
            if capabilities and "tools" not in capabilities:  # e.g. an embedding model under --all
                detail = f"{model} does not support tools (capabilities: {', '.join(capabilities)})"
                row.cells = [Cell(c.tool, [Attempt(NO_TOOLS, detail)]) for c in cases]
                progress(f"{model}: {detail}")
                continue
            for case in cases:
                cell = Cell(case.tool)
                row.cells.append(cell)
                try:
                    for _ in range(repeat):
                        started = time.perf_counter()
                        result = await attempt(client, session, tools, model, case, options)
                        result.seconds = round(time.perf_counter() - started, 3)
                        cell.attempts.append(result)
                        progress(f"{model:<24} {case.tool:<18} {result.outcome:<10} {result.seconds:6.2f} s"
                                 + (f"  {result.detail}" if result.detail else ""))  # fmt: skip
                except Abort as stop:
                    cell.attempts = [Attempt(stop.outcome, stop.detail)]
                    row.cells += [Cell(c.tool, [Attempt(stop.outcome, stop.detail)]) for c in cases[len(row.cells) :]]
                    progress(f"{model}: {stop.detail}")
                    break
    return rows


def render(rows: list[Row]) -> str:
    tools = [c.tool for c in rows[0].cells] if rows else []
    body = [
        [r.model, r.parameter_size, *(c.shown for c in r.cells), f"{r.score[0]}/{r.score[1]}", f"{r.seconds():.1f} s"]
        for r in rows
    ]
    lines = [table(body, ["model", "size", *tools, "score", "time"]), ""]
    used = {c.attempts[0].outcome for r in rows for c in r.cells if c.attempts} | {PASS}
    lines += [f"  {name:<10} {text}" for name, text in LEGEND.items() if name in used]
    fit = [r for r in rows if r.fit]
    if fit:
        fastest = min(fit, key=Row.seconds)
        lines += ["", f"fit for the agents: {', '.join(r.model for r in fit)} (fastest here: {fastest.model})"]
    else:
        lines += ["", "no model tested passed every tool; try qwen2.5:7b (GPU) or phi4-mini (CPU)"]
    return "\n".join(lines)


def report(rows: list[Row], settings: Settings, repeat: int) -> dict[str, Any]:
    return {
        "ollama": settings.ollama_shown,
        "mcp_server": settings.mcp_shown,
        "repeat": repeat,
        "models": [
            {
                "model": r.model,
                "parameter_size": r.parameter_size,
                "fit": r.fit,
                "passed": r.score[0],
                "attempts": r.score[1],
                "seconds": round(r.seconds(), 3),
                "tools": {c.tool: {"result": c.shown, "attempts": [asdict(a) for a in c.attempts]} for c in r.cells},
            }
            for r in rows
        ],
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="main.py fitness",
        description="Drive each MCP tool through a model and print a model-by-tool matrix of what worked.",
        epilog="exit codes: 0 every model tested passed every tool, 1 some did not, 2 bad argument, "
        "3 Ollama not reachable, 4 the model is not installed, 5 tool server not reachable",
    )
    parser.add_argument("-m", "--model", action="append", help="model to test (repeatable; default OLLAMA_MODEL)")
    parser.add_argument("--all", action="store_true", help="test every installed model")
    parser.add_argument("--repeat", type=int, default=1, help="ask each question this many times (default 1)")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of the matrix")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    args = parser.parse_args(argv)
    if args.all and args.model:
        parser.error("give --model or --all, not both")
    if not 1 <= args.repeat <= 20:
        parser.error("--repeat must be between 1 and 20")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    quiet_logging(args.verbose)
    settings = settings_or_exit()

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        rows = asyncio.run(run(settings, args.model, args.all, args.repeat, progress))
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return int(error.code)
    except (httpx.TransportError, ConnectionError) as error:
        print(f"error: lost Ollama at {settings.ollama_shown} during the check ({one_line(error)}); "
              "check that it is still running (its log tells why it stopped)", file=sys.stderr)  # fmt: skip
        return ExitCode.OLLAMA_UNREACHABLE
    except ollama.ResponseError as error:  # e.g. a proxy's 401, or a 500 listing or showing a model
        explained = from_ollama_status(error.status_code, str(error.error), host=settings.ollama_shown,
                                       model=settings.ollama_model, offline=settings.offline)  # fmt: skip
        print(f"error: {explained}", file=sys.stderr)
        return int(explained.code)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    if args.json:
        print(json.dumps(report(rows, settings, args.repeat), ensure_ascii=False, indent=2))
    else:
        print(render(rows))
    if any(c.attempts[0].outcome == MISSING for r in rows for c in r.cells) and not args.all:
        return ExitCode.MODEL_UNAVAILABLE
    return ExitCode.OK if rows and all(r.fit for r in rows) else ExitCode.TURN_FAILED

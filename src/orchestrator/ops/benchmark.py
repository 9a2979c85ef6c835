"""`main.py benchmark`: how fast is it here.

Latency (mean, p50, p95, p99), time to first token and tokens/s for short, medium and long prompts at
several concurrency levels, asked of Ollama directly and through the three-agent pipeline, so that
the pipeline's own cost shows as a ratio. Writes a JSON report and a PNG chart;
`benchmark compare A.json B.json` compares two reports (two models, two machines, before and after).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import re
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from .. import __version__
from ..errors import ExitCode, UserError, explain, from_ollama_status
from ..settings import Settings
from .benchmark_report import (
    DEFINITIONS,
    MODES,
    SCHEMA,
    SIZES,
    Level,
    ReportError,
    Sample,
    compare,
    ratios,
    row_key,
    summarize,
    targets,
    validate,
)
from .common import one_line, processor, quiet_logging, running_model, settings_or_exit

logger = logging.getLogger(__name__)

EPILOG = """examples:
  main.py benchmark                                  everything: both modes, 3 sizes, concurrency 1,2,4,8
  main.py benchmark --mode direct --sizes short --concurrency 1,4 --requests 8
  main.py benchmark compare before.json after.json --chart compare.png

Output: a table as it goes, a summary (pipeline-to-direct ratio, the targets), and in --output
benchmark-MODEL-TIME.json and .png. In the container, mount a writable directory:
  docker compose run --rm --user "$(id -u):$(id -g)" -v "$PWD/benchmark-results:/out" \\
      orchestrator benchmark --output /out
See docs/operations.md for what the figures mean.

exit codes: 0 measured (failed requests are in the report), 1 no request succeeded, 2 bad argument,
setting or report file, 3 Ollama not reachable, 4 model not available, 5 tool server not
reachable (pipeline), 130 interrupted (the partial report is still written)
"""

# --- prompts ------------------------------------------------------------------------------------

CITIES = ("Lisbon", "Kyoto", "Rome", "Vienna", "Seville", "Prague", "Edinburgh", "Istanbul")
NOTES = (
    "{city} rewards slow walking, and its old quarter is best seen on foot early in the morning.",
    "Public transport in {city} runs from dawn until late, and a day pass pays for itself after three rides.",
    "The markets of {city} open early and the best stalls sell out well before noon.",
    "Many museums in {city} close one day a week, so check the opening days before planning a visit.",
    "Travellers say the food is the highlight of {city}: small family restaurants serve the local dishes.",
    "Evenings in {city} are lively around the main squares, and most kitchens serve dinner late.",
    "The weather in {city} changes with the seasons, so pack layers and comfortable shoes.",
    "Many visitors combine {city} with a day trip to the countryside or the coast nearby.",
)
PROMPT_WORDS = {"short": 20, "medium": 300, "long": 1500}
PROGRESS_EVERY_S = 30.0  # a level still running after this long says how far it got, on stderr


def direct_prompt(size: str, index: int) -> str:
    """About 20, 300 or 1,500 words. The request number comes first, so no prompt shares a prefix
    with an earlier one and a server's prompt cache cannot shorten its evaluation."""
    city = CITIES[index % len(CITIES)]
    ask = (
        f"Request {index}: write a detailed travel guide to {city} with neighbourhoods, food, transport "
        "and a day-by-day plan."
    )
    if size == "short":
        return ask
    notes, words = [], len(ask.split()) + 6
    while words < PROMPT_WORDS[size]:
        note = f"Note {len(notes) + 1}: " + NOTES[(index + len(notes)) % len(NOTES)].format(city=city)
        notes.append(note)
        words += len(note.split())
    return f"{ask}\n\nUse these notes from earlier travellers:\n" + "\n".join(notes)


TRIPS = (
    ("Lisbon", "Porto", "London", "GBP", "May"),
    ("Rome", "Florence", "Berlin", "EUR", "April"),
    ("Madrid", "Seville", "Paris", "EUR", "October"),
    ("Vienna", "Prague", "Amsterdam", "EUR", "September"),
    ("Kyoto", "Osaka", "London", "GBP", "November"),
    ("Edinburgh", "London", "Dublin", "EUR", "June"),
)


def trip_prompt(size: str, index: int) -> str:
    """A travel request for the pipeline, longer and with more to plan from short to long."""
    city, second, origin, currency, month = TRIPS[index % len(TRIPS)]
    if size == "short":
        return f"Plan 2 days in {city} in {month}."
    if size == "medium":
        return (
            f"Plan 4 days in {city} in {month}. I fly from {origin} with 900 {currency}; I like museums, food "
            "markets and long walks, and I would rather not rent a car."
        )
    return (
        f"We are two adults planning 6 days in {city} and {second} in {month}, flying from {origin} with 1800 "
        f"{currency} for everything but the flights. We love old towns, local food, markets, viewpoints and long "
        "walks by the water, and we would like one slow day without museums. Please spread the days sensibly "
        "between the two cities, tell us how to get from one to the other, what the weather will be like and "
        "what to pack, and keep the evenings free for dinner in small family restaurants rather than tourist places."
    )


# --- arguments ----------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, not the usage block
        print(f"error: {message} (see: {self.prog} --help)", file=sys.stderr)
        raise SystemExit(ExitCode.USAGE)


def _choices(allowed: tuple[str, ...]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        items = [item.strip() for item in text.split(",") if item.strip()]
        wrong = [item for item in items if item not in allowed]
        if wrong or not items:
            raise argparse.ArgumentTypeError(f"{text!r}: choose from {','.join(allowed)}")
        return list(dict.fromkeys(items))

    return parse


def _levels(text: str) -> list[int]:
    try:
        levels = sorted({int(item) for item in text.split(",") if item.strip()})
    except ValueError:
        levels = []
    if not levels or levels[0] < 1 or levels[-1] > 256:
        raise argparse.ArgumentTypeError(f"{text!r}: give whole numbers from 1 to 256, e.g. 1,2,4,8")
    return levels


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="main.py benchmark",
        usage="%(prog)s [options]\n       %(prog)s compare A.json B.json [--chart FILE.png] [--json]\n"
        "       %(prog)s chart REPORT.json [-o FILE.png]",
        description=__doc__.split("\n\n")[1],
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--mode", type=_choices(MODES), default=list(MODES), metavar="LIST",
                        help="direct,pipeline (default both)")  # fmt: skip
    parser.add_argument("--sizes", type=_choices(SIZES), default=list(SIZES), metavar="LIST",
                        help="short,medium,long (default all)")  # fmt: skip
    parser.add_argument("--concurrency", type=_levels, default=[1, 2, 4, 8], metavar="LIST",
                        help="requests at once, one level each (default 1,2,4,8)")  # fmt: skip
    parser.add_argument("--requests", type=_positive, metavar="N",
                        help="requests per level (default max(4, 2 x concurrency))")  # fmt: skip
    parser.add_argument("--max-tokens", type=_positive, default=128, metavar="N",
                        help="num_predict of direct requests (default 128)")  # fmt: skip
    parser.add_argument("-m", "--model", help="Ollama model (default OLLAMA_MODEL)")
    parser.add_argument("-o", "--output", type=Path, default=Path("benchmark-results"), metavar="DIR",
                        help="directory for the JSON report and PNG chart (default ./benchmark-results)")  # fmt: skip
    parser.add_argument("--shown-dir", type=Path, metavar="DIR",
                        help="what --output is called where the user looks (make benchmark: the host's "
                        "./benchmark-results, mounted into the container)")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the report as JSON to stdout (table to stderr)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    return parser


# --- the run ------------------------------------------------------------------------------------


def _seconds(nanoseconds: int | None) -> float | None:
    return None if nanoseconds is None else nanoseconds / 1e9


def machine() -> dict[str, Any]:
    """Where the benchmark client ran (with compose: the orchestrator container, on Ollama's host)."""
    info: dict[str, Any] = {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
    }
    try:
        info["memory_bytes"] = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        pass
    return info


def _union(spans: list[list[float]]) -> float:
    """Total time covered by (start, end) spans that may overlap."""
    total, reached = 0.0, float("-inf")
    for start, end in sorted(spans):
        total += max(0.0, end - max(start, reached))
        reached = max(reached, end)
    return total


Request = Callable[[str, int, int], Awaitable[Sample]]


class Benchmark:
    """One benchmark run; what it measured stays here when it is interrupted."""

    def __init__(self, settings: Settings, args: argparse.Namespace) -> None:
        self.settings = settings
        self.args = args
        self.model = settings.ollama_model
        self.started = datetime.now(UTC)
        self.levels: list[Level] = []
        self.environment: dict[str, Any] = {"model": self.model, "ollama_host": settings.ollama_shown}
        self.interrupted = False
        self.terminated = False
        self.counter = 0
        self.rows_to: TextIO = sys.stderr if args.json else sys.stdout
        options = settings.chat_options()  # the app's own num_ctx: no model reload between the modes
        self.keep_alive = options.pop("keep_alive", None)
        options.pop("max_tokens")
        self.options = {**options, "num_predict": args.max_tokens}

    def requests_for(self, concurrency: int) -> int:
        return self.args.requests or max(4, 2 * concurrency)

    # -- top level ----------------------------------------------------------------------------

    async def run(self) -> None:
        loop, task = asyncio.get_running_loop(), asyncio.current_task()
        try:  # SIGTERM (docker stop) ends the run like Ctrl-C: the partial report is still written
            loop.add_signal_handler(signal.SIGTERM, self._terminate, task)
        except (NotImplementedError, RuntimeError):
            pass
        from ..ollama_connection import make_client

        client = make_client(self.settings)
        try:
            await self._prepare(client)
            self._header()
            if "direct" in self.args.mode:
                for size in self.args.sizes:
                    for concurrency in self.args.concurrency:
                        await self._level("direct", size, concurrency, lambda s, i, _w: self._direct(client, s, i))
            if "pipeline" in self.args.mode:
                await self._pipeline()
        finally:
            await client._client.aclose()

    def _terminate(self, task: asyncio.Task[Any] | None) -> None:
        self.terminated = True
        if task is not None:
            task.cancel()

    async def _prepare(self, client: Any) -> None:
        import ollama

        from ..ollama_connection import wait_until_reachable

        version = await wait_until_reachable(client, self.settings, lambda line: print(line, file=sys.stderr))
        host, offline = self.settings.ollama_shown, self.settings.offline
        try:
            shown = await client.show(self.model)
        except ollama.ResponseError as error:
            raise from_ollama_status(error.status_code, str(error.error), host=host, model=self.model,
                                     offline=offline) from None  # fmt: skip
        # The agents need a model that calls tools; a direct run measures any model.
        if "pipeline" in self.args.mode and shown.capabilities and "tools" not in shown.capabilities:
            raise from_ollama_status(400, "does not support tools", host=host, model=self.model)
        details = {
            "parameter_size": (shown.details and shown.details.parameter_size) or "?",
            "quantization": (shown.details and shown.details.quantization_level) or "?",
        }
        was_loaded = await self._running(client) is not None
        # Warm-up: loads the model, so its load time is reported on its own, not in the first level.
        try:
            warm = await self._direct_call(client, direct_prompt("short", 0), 0)
        except Exception as error:
            raise self._explain(error) from None
        running = await self._running(client) or {}
        size, vram = int(running.get("size") or 0), int(running.get("size_vram") or 0)
        self.environment.update(
            {
                "ollama_version": version,
                **details,
                "processor": processor(size, vram) if running else None,
                "model_size_bytes": size or None,
                "model_vram_bytes": vram if running else None,
                "context_length": running.get("context_length"),
                "model_was_loaded": was_loaded,
                "warmup_s": round(warm.latency_s, 4),
                "model_load_s": None if warm.load_s is None else round(warm.load_s, 4),
                "machine": machine(),
                "orchestrator_version": __version__,
                "telemetry_export": bool(self.settings.otel_exporter_otlp_endpoint),
            }
        )
        if "pipeline" in self.args.mode:
            self.environment["mcp_server_url"] = self.settings.mcp_shown

    async def _running(self, client: Any) -> dict[str, Any] | None:
        """This model's entry of /api/ps (what `ollama ps` shows), if it is loaded."""
        try:
            return await running_model(client, self.model)
        except Exception:  # only informative: a proxy may not pass /api/ps
            logger.debug("no /api/ps", exc_info=True)
            return None

    # -- one level -----------------------------------------------------------------------------

    async def _level(self, mode: str, size: str, concurrency: int, request: Request) -> None:
        level = Level(mode, size, concurrency, self.requests_for(concurrency), complete=False)
        self.levels.append(level)
        pending = iter(range(level.requests))

        async def worker(slot: int) -> None:
            for _ in pending:  # shared: each worker takes the next request when it is free
                self.counter += 1
                level.samples.append(await request(size, self.counter, slot))

        async def progress() -> None:  # a level can take many minutes (a CPU, one slot, 8 queued plans)
            while True:
                await asyncio.sleep(PROGRESS_EVERY_S)
                failed = sum(not sample.ok for sample in level.samples)
                print(f"  ... {mode} {size} concurrency {concurrency}: {len(level.samples)}/{level.requests} done"
                      + (f", {failed} failed" if failed else "") + f", {time.perf_counter() - started:.0f} s",
                      file=sys.stderr, flush=True)  # fmt: skip

        started = time.perf_counter()
        ticker = asyncio.create_task(progress())
        try:
            await asyncio.gather(*(worker(slot) for slot in range(min(concurrency, level.requests))))
        finally:
            level.wall_s = time.perf_counter() - started
            ticker.cancel()
        level.complete = True
        self._row(summarize(level))

    # -- direct ---------------------------------------------------------------------------------

    async def _direct_call(self, client: Any, prompt: str, index: int) -> Sample:
        started = time.perf_counter()
        ttft, final = None, None
        stream = await client.chat(
            model=self.model,
            messages=[{"role": "user", "content": prompt}],
            stream=True,
            options=self.options,
            keep_alive=self.keep_alive,
        )
        async for part in stream:
            if ttft is None and part.message.content:
                ttft = time.perf_counter() - started
            if part.done:
                final = part
        latency = time.perf_counter() - started
        if final is None:
            return Sample(index, False, latency, error="the reply ended without Ollama's final chunk")
        return Sample(
            index,
            True,
            latency,
            ttft,
            output_tokens=final.eval_count or 0,
            prompt_tokens=final.prompt_eval_count or 0,
            ollama_s=_seconds(final.total_duration),
            load_s=_seconds(final.load_duration),
            prompt_eval_s=_seconds(final.prompt_eval_duration),
            eval_s=_seconds(final.eval_duration),
        )

    async def _direct(self, client: Any, size: str, index: int) -> Sample:
        started = time.perf_counter()
        try:
            return await self._direct_call(client, direct_prompt(size, index), index)
        except Exception as error:  # recorded with its one line; the benchmark goes on
            logger.debug("direct request failed", exc_info=True)
            return Sample(index, False, time.perf_counter() - started, error=self._explain(error).message)

    def _explain(self, error: BaseException) -> UserError:
        return explain(
            error,
            host=self.settings.ollama_shown,
            model=self.model,
            mcp_url=self.settings.mcp_shown,
            offline=self.settings.offline,
        )

    # -- pipeline -------------------------------------------------------------------------------

    async def _pipeline(self) -> None:
        from ..workflow import TravelPlanner

        async with AsyncExitStack() as stack:
            planners = [
                await stack.enter_async_context(TravelPlanner(self.settings)) for _ in range(max(self.args.concurrency))
            ]
            for planner in planners:  # one per concurrent user, each with its own tool-server session
                await planner.start(lambda line: print(line, file=sys.stderr), require_tools=True)
            started = time.perf_counter()
            warm = await self._plan(planners[0], "short", 0)  # imports, connections, the agents' prompts
            self.environment["pipeline_warmup_s"] = round(time.perf_counter() - started, 4)
            if not warm.ok:
                print(f"warning: the pipeline's warm-up plan failed: {warm.error}", file=sys.stderr)
            for size in self.args.sizes:
                for concurrency in self.args.concurrency:
                    await self._level("pipeline", size, concurrency,
                                      lambda s, i, worker: self._plan(planners[worker], s, i))  # fmt: skip

    async def _plan(self, planner: Any, size: str, index: int) -> Sample:
        from ..workflow import ToolFinished, ToolStarted

        # When tools held the plan up: the union of each call's span from the model asking for it to
        # its result. Summing the calls' durations would count calls the model asked for together
        # (they run at once) several times over.
        spans: list[list[float]] = []

        def on_event(event: object) -> None:
            now = time.perf_counter()
            if isinstance(event, ToolStarted):
                spans.append([now, 0.0])
            elif isinstance(event, ToolFinished):  # results arrive in the order the calls were made
                span = next((span for span in spans if not span[1]), None)
                if span is not None:
                    span[1] = now

        planner.reset()  # every plan starts a new conversation
        started = time.perf_counter()
        record = await planner.run_turn(trip_prompt(size, index), on_event)
        latency = time.perf_counter() - started
        if not record.ok:
            return Sample(index, False, latency, error=record.error)
        return Sample(
            index,
            True,
            latency,
            record.first_token_s,
            output_tokens=sum(agent.output_tokens for agent in record.agents),
            prompt_tokens=sum(agent.input_tokens for agent in record.agents),
            ollama_s=record.model_s,
            model_calls=sum(agent.model_calls for agent in record.agents),
            tools_s=_union([span for span in spans if span[1]]),
        )

    # -- output ---------------------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        rows = sorted((summarize(level) for level in self.levels), key=row_key)
        return {
            "schema": SCHEMA,
            "created_at": self.started.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "interrupted": self.interrupted,
            "environment": self.environment,
            "parameters": {
                "modes": self.args.mode,
                "sizes": self.args.sizes,
                "concurrency": self.args.concurrency,
                "requests_per_level": {c: self.requests_for(c) for c in self.args.concurrency},
                "max_tokens": self.args.max_tokens,
                "num_ctx": self.settings.num_ctx,
                "temperature": self.settings.temperature,
                "keep_alive": self.keep_alive,
                "pipeline_max_output_tokens": self.settings.max_output_tokens,
                "pipeline_max_tool_rounds": self.settings.max_tool_rounds,
                "prompt_words": {
                    "direct": {s: len(direct_prompt(s, 1).split()) for s in self.args.sizes},
                    "pipeline": {s: len(trip_prompt(s, 1).split()) for s in self.args.sizes},
                },
            },
            "definitions": DEFINITIONS,
            "ratios": ratios(rows),
            "targets": targets(rows, self.environment.get("processor")),
            "results": rows,
        }

    def _header(self) -> None:
        env = self.environment
        load = env.get("model_load_s")
        print(
            f"benchmark: {self.model} ({env.get('parameter_size')}, {env.get('quantization')}) on {env['ollama_host']} "
            f"(Ollama {env.get('ollama_version')}), {env.get('processor') or 'processor unknown'}; "
            + (
                "the model was already loaded"
                if env.get("model_was_loaded")
                else ("model load time unknown" if load is None else f"model loaded in {load:.2f} s")
            )
            + f"; warm-up request {env['warmup_s']:.2f} s",
            file=self.rows_to,
        )
        print(
            f"{'mode':<9}{'size':<7}{'conc':>5}{'ok':>8}  {'latency s: mean':>15}{'p50':>8}{'p95':>8}{'p99':>8}"
            f"  {'ttft s: mean':>12}{'p50':>8}{'p95':>8}  {'tok/s: req':>10}{'decode':>8}{'aggr':>8}",
            file=self.rows_to,
            flush=True,
        )

    def _row(self, row: dict[str, Any]) -> None:
        def number(value: float | None, width: int, digits: int = 3) -> str:
            return f"{value:>{width}.{digits}f}" if value is not None else f"{'-':>{width}}"

        latency, ttft = row["latency_s"], row["ttft_s"]
        line = (
            f"{row['mode']:<9}{row['size']:<7}{row['concurrency']:>5}{row['ok']:>4}/{row['requests']:<3}  "
            f"{number(latency['mean'], 15)}{number(latency['p50'], 8)}{number(latency['p95'], 8)}"
            f"{number(latency['p99'], 8)}  {number(ttft['mean'], 12)}{number(ttft['p50'], 8)}{number(ttft['p95'], 8)}"
            f"  {number(row['tokens_per_s'], 10, 1)}{number(row.get('decode_tokens_per_s'), 8, 1)}"
            f"{number(row['aggregate_tokens_per_s'], 8, 1)}"
        )
        if row["errors"]:
            line += f"  {row['errors']} failed: {one_line(row['error_messages'][0], 100)}"
        print(line, file=self.rows_to, flush=True)

    def summary(self, report: dict[str, Any]) -> str:
        lines = []
        if report["ratios"]:
            lines += [
                "",
                "pipeline to direct: wall time per second of Ollama's own work (its total_duration), through the",
                "pipeline / asked directly; 1.00 = the pipeline adds nothing to the time its model calls take:",
                f"{'conc':>6}{'direct':>9}{'pipeline':>10}{'ratio':>8}{'calls/plan':>12}   plan time: Ollama / tools / "
                "orchestrator   aggr tok/s: direct / pipeline",
            ]
            for r in report["ratios"]:
                share = r["plan_time_pct"]
                lines.append(
                    f"{r['concurrency']:>6}{r['direct_wall_per_ollama_s']:>9.3f}{r['pipeline_wall_per_ollama_s']:>10.3f}"
                    f"{r['pipeline_to_direct']:>8.3f}{r['model_calls_per_plan']:>12.1f}   "
                    f"{share['ollama']:>6.1f} % / {share['tools']:.1f} % / {share['orchestrator']:.1f} %"
                    f"{r['direct_tokens_per_s'] or 0:>21.1f} / {r['pipeline_tokens_per_s'] or 0:.1f}"
                )
        goals = report["targets"]
        if goals:
            verdict = {True: "PASS", False: "MISS"}
            where = f"direct, concurrency {goals['concurrency']}"
            decode, ttft = goals["decode_tokens_per_s"], goals["ttft_p50_s"]
            lines += [
                "",
                "targets from the original plan (informative; they do not fail the command):",
                f"  decode tokens/s {decode['target']}, {where}: "
                + ", ".join(f"{size} {value:.1f}" for size, value in decode["by_size"].items())
                + f"  {verdict[decode['pass']]}"
                + ("" if goals["on_gpu"] else " (the model does not run fully on a GPU here)"),
                f"  first token p50 {ttft['target']}, {where}: "
                + ", ".join(f"{size} {value:.2f} s" for size, value in ttft["by_size"].items())
                + f"  {verdict[ttft['pass']]}",
            ]
        return "\n".join(lines)


# --- files --------------------------------------------------------------------------------------


def _check_writable(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=directory, prefix=".benchmark-"):
        pass


def shown_as(path: Path, shown_dir: Path | None) -> Path:
    """PATH as the user sees it: under --shown-dir when the output directory is a container's mount."""
    return shown_dir / path.name if shown_dir else path


def _write(
    report: dict[str, Any], directory: Path, model: str, started: datetime, shown_dir: Path | None = None
) -> tuple[Path, Path | None]:
    stem = f"benchmark-{re.sub(r'[^A-Za-z0-9._-]+', '-', model)}-{started.strftime('%Y%m%dT%H%M%SZ')}"
    json_path = directory / f"{stem}.json"
    json_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    png_path: Path | None = directory / f"{stem}.png"
    from .chart import HOW_TO_DRAW, ChartUnavailable, write_chart

    try:
        write_chart(report, png_path)  # type: ignore[arg-type]
    except ChartUnavailable as reason:  # the image: the host draws it
        shown = shown_as(json_path, shown_dir)
        print(f"note: no chart: {reason}; on a host with it: {HOW_TO_DRAW.format(report=shown)}", file=sys.stderr)
        png_path = None
    except Exception as error:  # the figures are in the JSON; a chart that fails is not worth losing them
        logger.debug("chart failed", exc_info=True)
        print(f"warning: no chart: {type(error).__name__}: {one_line(error)}", file=sys.stderr)
        png_path = None
    return json_path, png_path


# --- entry points -------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    if argv[:1] == ["compare"]:
        return compare_main(argv[1:])
    if argv[:1] == ["chart"]:
        return chart_main(argv[1:])
    args = build_parser().parse_args(argv)
    quiet_logging(args.verbose)
    settings = settings_or_exit(ollama_model=args.model)
    try:
        _check_writable(args.output)
    except OSError as error:
        print(
            f"error: cannot write to {args.output} ({error.strerror or error}); give --output a writable directory "
            '(in the container: -v "$PWD/benchmark-results:/out" --output /out)',
            file=sys.stderr,
        )
        return ExitCode.USAGE
    stop_telemetry: Callable[[], None] = lambda: None  # noqa: E731
    if "pipeline" in args.mode:  # measure the pipeline as it runs for a user: with its telemetry
        from ..telemetry import configure

        stop_telemetry = configure(settings)
    bench = Benchmark(settings, args)
    code: int = ExitCode.OK
    try:
        asyncio.run(bench.run())
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        code = error.code
    except (KeyboardInterrupt, asyncio.CancelledError):
        bench.interrupted = True
        code = 128 + signal.SIGTERM if bench.terminated else ExitCode.INTERRUPTED
        print("\ninterrupted: writing what was measured so far", file=sys.stderr)
    except Exception as error:  # nothing explained it: still one line; -v shows the traceback
        logger.debug("benchmark failed", exc_info=True)
        print(f"error: unexpected {type(error).__name__}: {one_line(error)} (run with -v for details)", file=sys.stderr)
        code = ExitCode.TURN_FAILED
    finally:
        stop_telemetry()
    if not bench.levels:
        return code
    report = bench.report()
    json_path, png_path = _write(report, args.output, bench.model, bench.started, args.shown_dir)
    json_path, png_path = shown_as(json_path, args.shown_dir), png_path and shown_as(png_path, args.shown_dir)
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    print(bench.summary(report), file=bench.rows_to)
    print(f"\nreport: {json_path}" + (f"\nchart:  {png_path}" if png_path else ""), file=bench.rows_to)
    if code == ExitCode.OK and not any(row["ok"] for row in report["results"]):
        print("error: no request succeeded; the report lists why", file=sys.stderr)
        code = ExitCode.TURN_FAILED
    return int(code)


def _read_report(path: Path) -> dict[str, Any] | None:
    """A benchmark report from a file, or None after one line saying why it cannot be used."""
    try:
        return validate(json.loads(path.read_text()))
    except OSError as error:
        print(f"error: cannot read {path}: {error.strerror or error}", file=sys.stderr)
    except (ValueError, ReportError) as error:
        reason = f"not JSON ({error})" if isinstance(error, json.JSONDecodeError) else str(error)
        print(f"error: {path}: {one_line(reason)}", file=sys.stderr)
    return None


def chart_main(argv: list[str]) -> int:
    """`benchmark chart REPORT.json [-o FILE.png]`: the chart of a report written where matplotlib
    is not installed (the orchestrator's image)."""
    parser = _Parser(prog="main.py benchmark chart", description="Draw the PNG chart of a benchmark report.")
    parser.add_argument("report", type=Path, metavar="REPORT.json")
    parser.add_argument("-o", "--output", type=Path, metavar="FILE.png", help="default: the report's name with .png")
    args = parser.parse_args(argv)
    report = _read_report(args.report)
    if report is None:
        return ExitCode.USAGE
    from .chart import ChartUnavailable, write_chart

    target = args.output or args.report.with_suffix(".png")
    try:
        write_chart(report, target)
    except ChartUnavailable as reason:
        print(f"error: {reason}; run it with: uv run --extra charts python main.py benchmark chart ...",
              file=sys.stderr)  # fmt: skip
        return ExitCode.USAGE
    except OSError as error:
        print(f"error: cannot write {target}: {error.strerror or error}", file=sys.stderr)
        return ExitCode.USAGE
    print(f"chart: {target}")
    return 0


def compare_main(argv: list[str]) -> int:
    parser = _Parser(
        prog="main.py benchmark compare",
        description="Compare two benchmark reports row by row (same mode, prompt size and concurrency): "
        "B's change against A.",
    )
    parser.add_argument("a", type=Path, metavar="A.json", help="the baseline report")
    parser.add_argument("b", type=Path, metavar="B.json", help="the report compared with it")
    parser.add_argument("--chart", type=Path, metavar="FILE.png", help="also write a comparison chart")
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON")
    args = parser.parse_args(argv)
    a, b = _read_report(args.a), _read_report(args.b)
    if a is None or b is None:
        return ExitCode.USAGE
    result = compare(a, b)
    if not result["rows"]:
        print(f"error: {args.a} and {args.b} have no mode, size and concurrency in common", file=sys.stderr)
        return ExitCode.USAGE
    if args.json:
        print(json.dumps({"a": str(args.a), "b": str(args.b), **result}, indent=2))
    else:
        print(_comparison_table(args.a, a, args.b, b, result))
    if args.chart:
        from .chart import ChartUnavailable, write_comparison_chart

        try:
            write_comparison_chart(a, b, args.chart)
        except ChartUnavailable as reason:
            print(f"error: {reason}; run it with: uv run --extra charts python main.py benchmark compare ...",
                  file=sys.stderr)  # fmt: skip
            return ExitCode.USAGE
        except OSError as error:
            print(f"error: cannot write {args.chart}: {error.strerror or error}", file=sys.stderr)
            return ExitCode.USAGE
        print(f"chart: {args.chart}", file=sys.stderr if args.json else sys.stdout)
    return 0


def _comparison_table(path_a: Path, a: dict[str, Any], path_b: Path, b: dict[str, Any], result: dict[str, Any]) -> str:
    def who(path: Path, report: dict[str, Any]) -> str:
        env = report.get("environment") or {}
        return (
            f"{path}: {env.get('model', '?')} on {env.get('ollama_host', '?')} (Ollama {env.get('ollama_version', '?')}"
            f", {env.get('processor') or '?'}), {report.get('created_at', '?')}"
        )

    def pair(values: tuple[float | None, float | None], digits: int) -> str:
        return " -> ".join("-" if v is None else f"{v:.{digits}f}" for v in values)

    def change(value: float | None) -> str:
        return "-" if value is None else f"{value:+.1f} %"

    lines = [
        f"A: {who(path_a, a)}",
        f"B: {who(path_b, b)}",
        "",
        f"{'mode':<9}{'size':<7}{'conc':>5}  {'latency p50 s A -> B':>22}{'change':>10}  {'ttft p50 s A -> B':>20}"
        f"{'change':>10}  {'aggr tok/s A -> B':>20}{'change':>10}  faster",
    ]
    for r in result["rows"]:
        lines.append(
            f"{r['mode']:<9}{r['size']:<7}{r['concurrency']:>5}  {pair(r['latency_p50_s'], 3):>22}"
            f"{change(r['latency_p50_change_pct']):>10}  {pair(r['ttft_p50_s'], 3):>20}"
            f"{change(r['ttft_p50_change_pct']):>10}  {pair(r['aggregate_tokens_per_s'], 1):>20}"
            f"{change(r['aggregate_tokens_per_s_change_pct']):>10}  {r['faster'] or '-'}"
        )
    counts = result["faster_counts"]
    lines += [
        "",
        f"by latency p50: B faster in {counts['B']} rows, A faster in {counts['A']}, about the same (within 5 %) "
        f"in {counts['same']}",
    ]
    if result["differences"]:
        lines.append("note: the runs also differ in " + "; ".join(result["differences"]))
    return "\n".join(lines)

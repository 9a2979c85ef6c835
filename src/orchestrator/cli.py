"""Command line: interactive by default, one-shot with --prompt, machine-readable with --json."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from typing import NoReturn

from . import __version__
from .errors import ExitCode, UserError
from .settings import SettingsError, load_settings, mask_credentials_in_logs
from .telemetry import trace_link

EPILOG = """operator commands (each has --help):
  doctor               check every service, the models and a short generation
  fitness              which installed model can drive the tools (model-by-tool matrix)
  benchmark            latency and tokens/s by prompt size and concurrency, direct and through
                       the pipeline; `benchmark compare A.json B.json` compares two reports

environment (also read from .env):
  OLLAMA_HOST          Ollama URL (default http://ollama:11434)
  OLLAMA_MODEL         model name (OLLAMA_MODEL_ID also accepted; default phi4-mini)
  MCP_SERVER_URL       tool server (default http://mcp-server:8090/mcp)
  see docs/configuration.md for every setting

exit codes:
  0    the plan was made (or the session ended normally)
  1    the turn failed: the model or a tool misbehaved
  2    bad setting or argument
  3    Ollama not reachable
  4    model not available (not pulled, or cannot call tools)
  5    tool server not reachable
  130  interrupted (Ctrl-C)
"""


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake never repeats a long input back (a request pasted without
    --prompt would come back whole), and a request given as plain words says how to give it."""

    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments: "):
            given = message.removeprefix("unrecognized arguments: ")
            shown = given if len(given) <= 60 else given[:57] + "..."
            message = f'unrecognized arguments: {shown!r}; to plan a trip, give the request with --prompt "..."'
        elif len(message) > 300:
            message = message[:297] + "..."
        super().error(message)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = _Parser(
        prog="main.py",
        usage="%(prog)s [-p PROMPT [--json]] [-m MODEL] [-v]\n       %(prog)s {doctor,fitness,benchmark} [--help]",
        description="Plan a trip with three agents (Researcher, Weather, Planner) on a local Ollama model.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-p", "--prompt", help="plan once for this request, print the plan and exit")
    parser.add_argument("--json", action="store_true", help="with --prompt: print one JSON document")
    parser.add_argument("-m", "--model", help="Ollama model to use (overrides OLLAMA_MODEL)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    parser.add_argument(
        "--standby",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="print how to reach this terminal, then wait for Enter before starting the session "
        "(what `docker compose up` runs: nobody is at its terminal until `docker compose attach`)",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    args = parser.parse_args(argv)
    if args.json and not args.prompt:
        parser.error("--json needs --prompt")
    if args.standby and args.prompt:
        parser.error("--standby is for the interactive session, not with --prompt")
    if args.prompt is not None and not args.prompt.strip():
        parser.error("--prompt is empty")
    return args


def configure_logging(verbose: bool) -> None:
    """INFO and up reach the telemetry pipeline (when export is on); the terminal shows them only
    with -v. Every failure the user must know about is explained on screen anyway, so the
    framework's own error logs would only repeat it as noise."""
    mask_credentials_in_logs()
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.DEBUG if verbose else logging.CRITICAL)
    console.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.addHandler(console)


def _terminated(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    from .ops import COMMANDS

    if argv and argv[0] in COMMANDS:
        from .ops import run

        return run(argv[0], argv[1:])
    args = parse_args(argv)
    configure_logging(args.verbose)
    try:
        settings = load_settings(**({"ollama_model": args.model} if args.model else {}))
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return ExitCode.USAGE
    for warning in settings.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    from .telemetry import configure

    stop_telemetry = configure(settings)
    # SIGTERM (docker stop, a job's timeout) ends one-shot mode like Ctrl-C: through the finally
    # below, so buffered telemetry is flushed. The REPL installs its own handler.
    signal.signal(signal.SIGTERM, _terminated)
    try:
        if args.prompt:
            return asyncio.run(one_shot(settings, args.prompt, as_json=args.json))
        if args.standby and not standby(settings):
            return ExitCode.OK
        return asyncio.run(interactive(settings))
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except Exception as error:  # a failure nothing explained: still one line; -v shows the traceback
        logging.getLogger(__name__).debug("unexpected failure", exc_info=True)
        print(f"error: unexpected {type(error).__name__}: {error} (run with -v for details)", file=sys.stderr)
        return ExitCode.TURN_FAILED
    finally:
        stop_telemetry()  # flush what is buffered, within the exporters' timeout


def standby(settings) -> bool:
    """Under `docker compose up` the terminal is there but nobody is at it: say once how to reach it
    and wait for Enter, instead of drawing a prompt into the logs. False when stdin closes first."""
    login = f"; dashboard: {settings.dashboard_url}" if settings.dashboard_url else ""
    print(
        "planner ready: `docker compose attach orchestrator` and press Enter "
        f"(`make chat` opens a session of your own){login}",
        flush=True,
    )
    try:
        return bool(sys.stdin.readline())
    except (OSError, ValueError):  # no stdin at all
        return False


async def one_shot(settings, prompt: str, *, as_json: bool) -> int:
    # Imported here: they load the agent framework, which the operator commands do not need.
    from .render import TurnPrinter
    from .workflow import TravelPlanner

    # Progress goes to stderr, the plan (or the JSON document) alone to stdout: easy to pipe. When
    # both are the same terminal, the agents' text is not streamed: the plan would show twice.
    progress = TurnPrinter(sys.stderr, show_text=not as_json and not sys.stdout.isatty())
    async with TravelPlanner(settings) as planner:
        try:
            await planner.start(lambda line: print(line, file=sys.stderr), require_tools=True)
        except UserError as error:
            return _fail(error, as_json, prompt, planner.model)
        record = await planner.run_turn(prompt, progress if not as_json else (lambda _event: None))
    if as_json:
        print(json.dumps(record.to_json(), ensure_ascii=False, indent=2))
    else:
        if record.ok:
            print(record.plan)
        if record.trace_id:  # through the printer, as the error below: on a line of its own
            link = trace_link(settings.dashboard_url, record.trace_id) or record.trace_id
            progress.info(f"trace: {link}")
    if not record.ok:  # after a reply cut mid-line, on a new line
        progress.error(record.error or "the turn failed")
    return int(record.exit_code)


def _fail(error: UserError, as_json: bool, prompt: str, model: str) -> int:
    if as_json:
        from .workflow import TurnRecord

        record = TurnRecord(prompt=prompt, model=model, error=error.message, exit_code=error.code)
        print(json.dumps(record.to_json(), ensure_ascii=False, indent=2))
    print(f"error: {error}", file=sys.stderr)
    return int(error.code)


async def interactive(settings) -> int:
    from .render import TurnPrinter
    from .repl import HELP, Repl
    from .workflow import TravelPlanner

    printer = TurnPrinter(sys.stdout)
    async with TravelPlanner(settings) as planner:
        try:
            info = await planner.start(printer.info, require_tools=False)
        except UserError as error:
            printer.error(str(error))
            return int(error.code)
        printer.info(
            f"offline-agents {__version__} · model {info.model.name} ({info.model.parameter_size}) "
            f"on {settings.ollama_shown} (Ollama {info.ollama_version}) · "
            f"{len(info.tools)} tools from {settings.mcp_shown}"
        )
        if settings.dashboard_url:
            printer.info(f"traces, metrics and logs: {settings.dashboard_url}")
        printer.info(HELP.splitlines()[0] + "  Type /help for commands.")
        return await Repl(planner, printer).run()

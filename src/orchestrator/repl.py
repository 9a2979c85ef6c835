"""The interactive terminal: line editing and history, live agent output, slash commands.

Ctrl-C cancels the turn in progress and keeps the session; Ctrl-D (or /quit) leaves.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from .errors import UserError
from .render import TurnPrinter
from .workflow import TravelPlanner, TurnRecord

HELP = """Ask for a trip, e.g. "4 days in Lisbon in May, I fly from London with 800 GBP".
Commands:
  /help          this text
  /reset         start a new conversation (forget earlier turns)
  /model [NAME]  show the model, or switch to NAME (it must be pulled in Ollama)
  /quit          leave (Ctrl-D does the same)
Ctrl-C stops the answer in progress; the session goes on."""


def history_path() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "offline-agents" / "history"


class Repl:
    def __init__(self, planner: TravelPlanner, printer: TurnPrinter) -> None:
        self.planner = planner
        self.printer = printer
        self._turn: asyncio.Task[TurnRecord] | None = None
        self._main: asyncio.Task[object] | None = None
        self._stop = False

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._terminate)
        self._main = asyncio.current_task()
        read = self._prompt_reader()
        try:
            while not self._stop:
                try:
                    line = await read()
                except KeyboardInterrupt:  # Ctrl-C at the prompt: clear the line, keep going
                    continue
                except EOFError:  # Ctrl-D
                    break
                if line is None:
                    break
                line = line.strip()
                if not line:
                    continue
                if line.startswith("/"):
                    await self._command(line)
                else:
                    await self._ask(line)
        except asyncio.CancelledError:
            if not self._stop:
                raise
        finally:
            loop.remove_signal_handler(signal.SIGTERM)
        self.printer.info("bye")
        return 0

    def _prompt_reader(self):
        if sys.stdin.isatty() and sys.stdout.isatty():
            from prompt_toolkit import PromptSession
            from prompt_toolkit.history import FileHistory, InMemoryHistory

            path = history_path()
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                history = FileHistory(str(path))
            except OSError:  # a read-only home (container): keep history for this session only
                history = InMemoryHistory()
            session: PromptSession[str] = PromptSession(history=history)

            async def read() -> str | None:
                return await session.prompt_async("you> ")

            return read

        async def read_plain() -> str | None:  # piped input: one request per line
            sys.stdout.write("you> ")
            sys.stdout.flush()
            line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
            return line if line else None

        return read_plain

    def _interrupt(self) -> None:
        if self._turn is not None and not self._turn.done():
            self._turn.cancel()

    def _terminate(self) -> None:
        """SIGTERM (docker stop): stop the turn and leave promptly, even from the prompt."""
        self._stop = True
        self._interrupt()
        if self._main is not None:
            self._main.cancel()

    async def _ask(self, text: str) -> None:
        loop = asyncio.get_running_loop()
        self._turn = asyncio.create_task(self.planner.run_turn(text, self.printer))
        # Ctrl-C during a turn cancels only that turn. Installed per turn: prompt_toolkit removes
        # any SIGINT handler when a prompt ends (it reads Ctrl-C as a key while prompting).
        loop.add_signal_handler(signal.SIGINT, self._interrupt)
        try:
            record = await self._turn
        except asyncio.CancelledError:
            self.printer.error("stopped; the conversation keeps what was said before this question")
            return
        finally:
            loop.remove_signal_handler(signal.SIGINT)
            self._turn = None
        if record.ok:
            self.printer.info(summary(record))
        else:
            self.printer.error(record.error or "the turn failed")

    async def _command(self, line: str) -> None:
        name, _, argument = line.partition(" ")
        argument = argument.strip()
        if name in ("/quit", "/exit", "/q"):
            self._stop = True
        elif name in ("/help", "/?"):
            self.printer.info(HELP)
        elif name == "/reset":
            self.planner.reset()
            self.printer.info("new conversation: earlier turns are forgotten")
        elif name == "/model":
            await self._model(argument)
        else:
            self.printer.error(f"unknown command {name}; type /help")

    async def _model(self, name: str) -> None:
        if not name:
            self.printer.info(f"model: {self.planner.model}")
            try:
                listed = await self.planner.ollama.list()
                names = ", ".join(m.model or "?" for m in listed.models) or "none"
                self.printer.info(f"pulled in Ollama: {names}")
            except Exception as error:  # listing is a convenience; say why it is missing
                self.printer.error(f"cannot list models: {type(error).__name__}")
            return
        try:
            info = await self.planner.use_model(name)
        except UserError as error:
            self.printer.error(str(error))
            return
        except Exception as error:
            self.printer.error(f"cannot reach Ollama to check {name}: {type(error).__name__}")
            return
        self.printer.info(f"model: {info.name} ({info.parameter_size}, {info.quantization})")


def summary(record: TurnRecord) -> str:
    data = record.to_json()
    usage = data["usage"]
    return (
        f"[{len(record.agents)} agents, {len(record.tool_calls)} tool calls, "
        f"{usage['input_tokens']}+{usage['output_tokens']} tokens, {record.total_s:.1f} s]"
    )

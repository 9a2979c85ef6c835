"""The interactive terminal: line editing and history, live agent output, slash commands.

Ctrl-C cancels whatever is running (a turn or a command) and keeps the session; Ctrl-D (or /quit)
leaves; SIGTERM (docker stop) leaves promptly, even from an idle prompt.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from .errors import UserError
from .render import TurnPrinter
from .telemetry import trace_link
from .workflow import TravelPlanner, TurnRecord

HELP = """Ask for a trip, e.g. "4 days in Lisbon in May, I fly from London with 800 GBP".
Commands:
  /help          this text
  /reset         start a new conversation (forget earlier turns)
  /model [NAME]  show the model, or switch to NAME (it must be pulled in Ollama)
  /trace         the last turn's trace in the dashboard
  /quit          leave (Ctrl-D does the same)
Ctrl-C stops the answer in progress; the session goes on."""

Reader = Callable[[], Awaitable[str | None]]
# What Ollama takes as a model name: [host/][namespace/]model[:tag], no spaces.
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,199}")

# Terminal control sequences that reach a line as text (a paste of coloured output, a key the line
# editor does not know): CSI (ESC [ ... final), OSC (ESC ] ... BEL or ST), any other ESC pair,
# and the bare C0/C1 control characters. Tabs and newlines are text.
_CONTROL = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor keys, bracketed-paste markers
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC: window titles, hyperlinks
    r"|\x1b[P^_][^\x1b]*(?:\x1b\\)?"  # DCS, PM, APC strings
    r"|\x1b.?"  # any other escape
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f]"
)


class _EscapeSwallower:
    """The rest of an escape sequence after ESC, byte by byte: CSI (ESC [ params final), OSC
    (ESC ] ... BEL or ESC \\), DCS/PM/APC (ESC P|^|_ ... ESC \\). `take` says whether a byte
    was part of the sequence (dropped) or is ordinary text (the sequence was only an Escape)."""

    def __init__(self) -> None:
        self.state = ""

    @property
    def active(self) -> bool:
        return bool(self.state)

    def start(self) -> None:
        """An Escape key: a new sequence, or the ESC of the ST that ends a string sequence."""
        self.state = "string-end" if self.state.startswith("string") else "escape"

    def take(self, data: str) -> bool:
        state, self.state = self.state, ""
        if state == "escape":
            if data == "[":
                self.state = "csi"
            elif data == "]":
                self.state = "string-bel"
            elif data in ("P", "^", "_"):
                self.state = "string"
            else:
                return False  # a lone Escape, then a typed character
            return True
        if state == "csi":
            if not ("@" <= data <= "~"):  # parameter and intermediate bytes
                self.state = "csi"
            return True
        if state in ("string", "string-bel"):  # to BEL (OSC) or ST (ESC \\), both dropped
            if data == "\x07" and state == "string-bel":
                return True
            self.state = state if data != "\x1b" else "string-end"
            return True
        if state == "string-end":
            return True  # the backslash of ST
        return False


def clean_input(text: str) -> tuple[str, int]:
    """The line without terminal control sequences, and how many were removed."""
    cleaned, removed = _CONTROL.subn("", text)
    return cleaned.replace("\t", " "), removed


def history_path() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "offline-agents" / "history"


def private_history(path: Path) -> Any:
    """The line history: a file only its owner can read in a folder only its owner can open (it
    holds every request typed), without blank lines or terminal control sequences; in memory only
    when the file cannot be made (a read-only home)."""
    from prompt_toolkit.history import FileHistory, InMemoryHistory

    class NoBlankLines:
        def append_string(self, string: str) -> None:
            string = clean_input(string)[0]
            if string.strip():
                super().append_string(string)  # type: ignore[misc]

    class PrivateHistory(NoBlankLines, FileHistory):
        pass

    class MemoryHistory(NoBlankLines, InMemoryHistory):
        pass

    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(path.parent, 0o700)  # also a folder made earlier with the umask's mode
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
        os.chmod(path, 0o600)  # also a file an older version made with the umask's mode
        return PrivateHistory(str(path))
    except OSError:
        return MemoryHistory()


class Repl:
    def __init__(self, planner: TravelPlanner, printer: TurnPrinter) -> None:
        self.planner = planner
        self.printer = printer
        self._busy: asyncio.Task[Any] | None = None
        self._last_trace: str | None = None
        self._main: asyncio.Task[Any] | None = None
        self._stop = False

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._terminate)
        self._main = asyncio.current_task()
        read = await self._reader()
        try:
            while not self._stop:
                loop.add_signal_handler(signal.SIGINT, self._interrupt)  # piped input: Ctrl-C is a signal
                try:
                    line = await read()
                except KeyboardInterrupt:  # Ctrl-C at the prompt: clear the line, keep going
                    continue
                except EOFError:  # Ctrl-D
                    break
                finally:
                    # prompt_toolkit takes SIGINT over while it prompts (Ctrl-C is a key there) and,
                    # when the prompt ends, leaves Python's default handler behind: take it back.
                    loop.add_signal_handler(signal.SIGINT, self._interrupt)
                if line is None:
                    break
                line, removed = clean_input(line)
                line = line.strip()
                if removed:
                    self.printer.info(
                        f"note: removed {removed} terminal control sequence{'s' * (removed > 1)} from the input"
                        + ("; nothing left to send" if not line else "")
                    )
                if line:
                    await self._cancellable(self._command(line) if line.startswith("/") else self._ask(line))
        except asyncio.CancelledError:
            if not self._stop:
                raise
        finally:
            loop.remove_signal_handler(signal.SIGTERM)
            loop.remove_signal_handler(signal.SIGINT)
        self.printer.info("bye")
        return 0

    async def _reader(self) -> Reader:
        if sys.stdin.isatty() and sys.stdout.isatty():
            return self._prompt_toolkit_reader()
        return await self._pipe_reader()

    def _prompt_toolkit_reader(self) -> Reader:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.filters import Condition
        from prompt_toolkit.key_binding import KeyBindings
        from prompt_toolkit.keys import Keys

        bindings = KeyBindings()

        # The prompt does not use the mouse, so a mouse report is never wanted. Typed or pasted by
        # hand (ESC [ M and three bytes), prompt_toolkit's own handler fails on bytes it has no
        # entry for and stops the prompt with "Unhandled exception in event loop".
        @bindings.add(Keys.Vt100MouseEvent)
        def _ignore_mouse(_event: Any) -> None:
            return None

        # NUL (Ctrl-Space, Ctrl-@, or a NUL in pasted text) would start a selection that the next
        # typed characters replace: the rest of the line would be lost.
        @bindings.add("c-@")
        def _ignore_nul(_event: Any) -> None:
            return None

        # A sequence prompt_toolkit does not know (ESC [ 9 9 ~, a focus report, a window title)
        # arrives as the Escape key and then its other bytes as typed text: "[99~" would land in
        # the request. After a lone Escape, the bytes of such a sequence are dropped; any other
        # key after it is typed as usual (Alt+key bindings match before this one).
        swallow = _EscapeSwallower()

        @bindings.add(Keys.Escape, eager=False)
        def _escape(_event: Any) -> None:
            swallow.start()

        @bindings.add(Keys.Any, filter=Condition(lambda: swallow.active), eager=True)
        def _sequence_byte(event: Any) -> None:
            for press in event.key_sequence:
                if not swallow.take(press.data):
                    event.current_buffer.insert_text(press.data)

        session: Any = PromptSession(history=private_history(history_path()), key_bindings=bindings)

        async def read() -> str | None:
            return await session.prompt_async("you> ")

        return read

    async def _pipe_reader(self) -> Reader:
        """Piped input, one request per line, read by the event loop so SIGTERM never waits on it."""
        loop = asyncio.get_running_loop()
        stream = asyncio.StreamReader()
        try:
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stream), sys.stdin)
        except (ValueError, OSError):  # a regular file: reading it never blocks for long
            stream = None  # type: ignore[assignment]

        async def read() -> str | None:
            sys.stdout.write("you> ")
            sys.stdout.flush()
            if stream is None:
                line = sys.stdin.readline()
            else:
                line = (await stream.readline()).decode(errors="replace")
            return line if line else None

        return read

    async def _cancellable(self, work: Coroutine[Any, Any, None]) -> None:
        self._busy = asyncio.create_task(work)
        try:
            await self._busy
        except asyncio.CancelledError:
            if self._stop:
                raise
            # The user's own Ctrl-C: a notice on its own line, not an error.
            self.printer.info("stopped (Ctrl-C); the conversation keeps what was said before")
        finally:
            self._busy = None

    def _interrupt(self) -> None:
        if self._busy is not None and not self._busy.done():
            self._busy.cancel()

    def _terminate(self) -> None:
        """SIGTERM (docker stop): stop what runs and leave promptly, even from the prompt."""
        self._stop = True
        self._interrupt()
        if self._main is not None:
            self._main.cancel()

    async def _ask(self, text: str) -> None:
        record = await self.planner.run_turn(text, self.printer)
        if record.ok:
            self.printer.info(summary(record))
        else:
            self.printer.error(record.error or "the turn failed")
        if record.trace_id:  # telemetry is on
            self._last_trace = record.trace_id
            self._show_trace()

    def _show_trace(self) -> None:
        if self._last_trace is None:
            self.printer.info("no trace yet (telemetry is on when OTEL_EXPORTER_OTLP_ENDPOINT is set)")
            return
        link = trace_link(self.planner.settings.dashboard_url, self._last_trace)
        self.printer.info(f"trace {self._last_trace}" + (f": {link}" if link else ""))

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
        elif name == "/trace":
            self._show_trace()
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
        if not MODEL_NAME.fullmatch(name):
            shown = name if len(name) <= 40 else name[:39] + "…"
            self.printer.error(
                f"{shown!r} is not a model name; /model takes one name such as qwen2.5:7b "
                "(letters, digits and . _ : / -, at most 200 characters)"
            )
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
    usage = record.to_json()["usage"]
    limited = [a.name for a in record.agents if a.hit_tool_limit]
    note = f", tool limit reached by {', '.join(limited)}" if limited else ""
    return (
        f"[{len(record.agents)} agents, {len(record.tool_calls)} tool calls, "
        f"{usage['input_tokens']}+{usage['output_tokens']} tokens, {record.total_s:.1f} s{note}]"
    )

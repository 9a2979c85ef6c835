"""How a turn looks in a terminal: a header per agent, its words as they stream, tool calls as they happen."""

from __future__ import annotations

import json
import os
import sys
from typing import Any, TextIO

from .workflow import AgentFinished, AgentStarted, Notice, TextDelta, ToolFinished, ToolStarted, TurnEvent

ARG_WIDTH = 60


class Style:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.enabled else text

    def header(self, text: str) -> str:
        return self("1;36", text)

    def dim(self, text: str) -> str:
        return self("2", text)

    def good(self, text: str) -> str:
        return self("32", text)

    def bad(self, text: str) -> str:
        return self("31", text)

    def warn(self, text: str) -> str:
        return self("33", text)


def short_arguments(arguments: dict[str, Any], width: int = ARG_WIDTH) -> str:
    text = ", ".join(f"{key}={json.dumps(value, ensure_ascii=False)}" for key, value in arguments.items())
    return text if len(text) <= width else text[: width - 1] + "…"


class TurnPrinter:
    """Renders TurnEvents to a stream. `show_text=False` prints only headers and tool calls."""

    def __init__(self, out: TextIO | None = None, *, show_text: bool = True, color: bool | None = None) -> None:
        self.out = out or sys.stdout
        self.show_text = show_text
        if color is None:  # colour on terminals, unless NO_COLOR is set (https://no-color.org)
            color = getattr(self.out, "isatty", lambda: False)() and not os.environ.get("NO_COLOR")
        self.style = Style(color)
        self._mid_line = False

    def _line(self, text: str) -> None:
        if self._mid_line:
            self.out.write("\n")
            self._mid_line = False
        self.out.write(text + "\n")
        self.out.flush()

    def __call__(self, event: TurnEvent) -> None:
        s = self.style
        if isinstance(event, AgentStarted):
            self._line("")
            self._line(s.header(f"── {event.title} ──"))
        elif isinstance(event, TextDelta):
            if self.show_text:
                self.out.write(event.text)
                self.out.flush()
                self._mid_line = not event.text.endswith("\n")
        elif isinstance(event, ToolStarted):
            self._line(s.dim(f"  → {event.name}({short_arguments(event.arguments)})"))
        elif isinstance(event, ToolFinished):
            call = event.call
            took = f"{call.duration_ms:.0f} ms"
            if call.ok:
                self._line(s.dim(f"  {s.good('✓')} {call.name} {took}"))
            else:
                self._line(s.dim(f"  {s.bad('✗')} {call.name} {took}: {call.error}"))
        elif isinstance(event, AgentFinished):
            if self._mid_line:
                self._line("")
        elif isinstance(event, Notice):
            self._line(s.warn(f"! {event.message}"))

    def error(self, message: str) -> None:
        self._line(self.style.bad(f"error: {message}"))

    def info(self, message: str) -> None:
        self._line(self.style.dim(message))

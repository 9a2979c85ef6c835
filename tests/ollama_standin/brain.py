"""The stand-in's "model": decides what a reply says, given what a real model would see.

The HTTP layer (server.py) owns the protocol; a Brain only decides content and tool calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class Reply:
    """What the model answers for one /api/chat or /api/generate request.

    content: the assistant text (streamed word by word by the server).
    tool_calls: Ollama-shaped tool calls: [{"function": {"name": str, "arguments": dict}}].
        `arguments` may also be a str to imitate a model that emits broken JSON.
    abort_after_chunks: when set, the server drops the connection after sending this many
        streamed chunks (imitates Ollama dying mid-reply).
    error: when set, (status, message) the server answers with instead of a reply.
    """

    content: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    abort_after_chunks: int | None = None
    error: tuple[int, str] | None = None


class Brain(Protocol):
    def reply(
        self,
        model: str,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        options: dict[str, Any],
    ) -> Reply: ...


class EchoBrain:
    """Answers with the last user message; used until a scripted brain is chosen."""

    def reply(self, model, messages, tools, options) -> Reply:
        last = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
        return Reply(content=f"You said: {last}")


def default_brain() -> Brain:
    return EchoBrain()

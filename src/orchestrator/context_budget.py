"""What a model call sends, against the context the model has.

The context a request gets is OLLAMA_NUM_CTX, capped by the model's own context length (Ollama
loads no more than the model was trained for). Before each model call the conversation is sized;
if it would not fit beside the room kept for the answer, earlier material is trimmed, least
useful first: earlier turns, then the raw tool results earlier agents already summarised, then
the longest earlier answers. What the current agent itself is doing, its instructions and the
traveller's latest request are kept. A conversation that still does not fit is a clear error.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agent_framework import Message

from .answers import CORRECTIONS

# Without a measurement, a token is taken as 3 characters: English prose runs near 4 and JSON
# near 3, so this errs on the side of trimming early. After a reply, Ollama's prompt_eval_count
# gives the model's real ratio (ContextMeter.learn).
DEFAULT_CHARS_PER_TOKEN = 3.0
TRIMMED_RESULT = "[tool result left out to fit the model's context; the agent's summary above has its facts]"
TRIMMED_TEXT = "\n[... the rest was left out to fit the model's context]"
CONTINUATION = "please continue."
# How the message that hands an agent its turn begins (guarded.CheckedAgentExecutor): it carries the
# earlier agents' answers, so it is the team's words, not the traveller's request.
HANDOFF_HEAD = "Your turn in the travel team"
# Sent (not kept) after tool results: small models given a tool result as the last message often
# say the traveller's request back instead of going on (Qwen2.5-Coder-1.5B did, every time). Answering
# comes first: told "Go on ...: call another of your tools if you still need one, otherwise answer", the
# same model answered 2 times in 9 (three prompts it really read, three seeds; 6 times "I'm sorry, but
# I can't assist with that."), and 8 times in 9 with this line (scripts/prompt-variants.py).
AFTER_TOOLS = "Answer from the tool results above, or call another of your tools if you still need one."
AFTER_TOOLS_CLOSED = "Answer now from the tool results above."  # when the agent's tools are closed
ASK_ARGUMENTS_HEAD = "Before answering, you must call"  # guarded.ASK_ARGUMENTS


# The pipeline's own user lines: whole, or by how they begin (corrections carry figures).
_OUR_LINES = (CONTINUATION, AFTER_TOOLS, AFTER_TOOLS_CLOSED)
_OUR_STARTS = (HANDOFF_HEAD, ASK_ARGUMENTS_HEAD, *(c.split("{")[0] for c in CORRECTIONS))


def is_request(message: Message) -> bool:
    """A message in the traveller's words: not the framework's "please continue.", not a handoff,
    not one of the pipeline's own lines (a correction on a retry, a request for a call)."""
    text = message.text.strip()
    return message.role == "user" and text not in _OUR_LINES and not text.startswith(_OUR_STARTS)


def _content_chars(content: Any) -> int:
    kind = content.type
    if kind == "text":
        return len(content.text or "")
    if kind == "function_call":
        arguments = content.arguments
        return len(content.name or "") + len(arguments if isinstance(arguments, str) else json.dumps(arguments or {}))
    if kind == "function_result":
        if content.items:
            return sum(len(item.text or "") for item in content.items if item.type == "text")
        return len(str(content.result or ""))
    return 0


def message_chars(message: Message) -> int:
    return 12 + sum(_content_chars(c) for c in message.contents)  # role markers and separators


def request_chars(messages: Sequence[Message], options: dict[str, Any]) -> int:
    tools = options.get("tools") or []
    schemas = 0
    for tool in tools:
        spec = getattr(tool, "to_json_schema_spec", None)
        schemas += len(json.dumps(spec())) if callable(spec) else len(str(tool))
    return sum(message_chars(m) for m in messages) + len(str(options.get("instructions") or "")) + schemas


@dataclass
class ContextMeter:
    """The context window one model call may fill, and how many characters make a token."""

    num_ctx: int  # OLLAMA_NUM_CTX
    model_ctx: int | None  # the model's own context length (/api/show model_info), when known
    max_output: int  # OLLAMA_MAX_OUTPUT_TOKENS, room kept for the reply
    chars_per_token: float = DEFAULT_CHARS_PER_TOKEN
    last_estimate: int = 0  # tokens the latest request was estimated at
    largest: int = 0  # the largest request of the turn, as sent
    trims: list[str] = field(default_factory=list)

    @property
    def window(self) -> int:
        return min(self.num_ctx, self.model_ctx) if self.model_ctx else self.num_ctx

    @property
    def prompt_budget(self) -> int:
        """Tokens the prompt may take: the window less the room for the reply (at most a quarter of
        the window is kept, so a small window still takes a prompt)."""
        return self.window - min(self.max_output, self.window // 4)

    def tokens(self, chars: int) -> int:
        return math.ceil(chars / self.chars_per_token)

    def learn(self, chars: int, prompt_tokens: int | None) -> None:
        """Ollama counted the prompt: keep the smallest ratio seen (the most tokens per character)."""
        if prompt_tokens and prompt_tokens > 50 and prompt_tokens < self.window - 8:
            self.chars_per_token = max(1.5, min(self.chars_per_token, chars / prompt_tokens))

    def filled(self, prompt_tokens: int | None) -> bool:
        """Ollama's count says the prompt took the whole window: Ollama cut it to fit."""
        return bool(prompt_tokens) and prompt_tokens >= self.window - 8  # type: ignore[operator]


class ContextOverflow(Exception):
    def __init__(self, tokens: int, meter: ContextMeter) -> None:
        super().__init__(f"about {tokens} tokens against a prompt budget of {meter.prompt_budget}")
        self.tokens, self.meter = tokens, meter


def _last_request(messages: Sequence[Message]) -> int:
    """Index of the traveller's latest request."""
    for index in range(len(messages) - 1, -1, -1):
        if is_request(messages[index]):
            return index
    return 0


def _last_user(messages: Sequence[Message]) -> int:
    return max((i for i, m in enumerate(messages) if m.role == "user"), default=0)


def _with_results_trimmed(message: Message) -> Message:
    contents = []
    for content in message.contents:
        if content.type == "function_result" and _content_chars(content) > len(TRIMMED_RESULT):
            content = copy.copy(content)
            content.items = None
            content.result = TRIMMED_RESULT
        contents.append(content)
    return Message(message.role, contents, author_name=message.author_name)


def _longest_text(message: Message) -> int:
    return max((len(c.text or "") for c in message.contents if c.type == "text"), default=0)


def _with_text_cut(message: Message, keep: int) -> Message:
    contents = []
    for content in message.contents:
        if content.type == "text" and len(content.text or "") > keep:
            content = copy.copy(content)
            content.text = (content.text or "")[:keep].rstrip() + TRIMMED_TEXT
        contents.append(content)
    return Message(message.role, contents, author_name=message.author_name)


def fit(messages: list[Message], options: dict[str, Any], meter: ContextMeter) -> list[Message]:
    """The messages, trimmed (copies; the caller's list is untouched) until they fit the budget.

    Raises ContextOverflow when even the trimmed conversation does not fit.
    """
    meter.trims = []
    budget_chars = int(meter.prompt_budget * meter.chars_per_token)
    fixed = request_chars([], options)  # instructions and tool schemas: always sent

    def size(current: list[Message]) -> int:
        return fixed + sum(message_chars(m) for m in current)

    out = list(messages)
    meter.last_estimate = meter.tokens(size(out))
    if size(out) <= budget_chars:
        meter.largest = max(meter.largest, meter.last_estimate)
        return out
    request = _last_request(out)
    # 1. Earlier turns of the conversation, oldest first (system messages stay).
    dropped = 0
    while size(out) > budget_chars and request > 0:
        index = next((i for i in range(request) if out[i].role != "system"), None)
        if index is None:
            break
        del out[index]
        request -= 1
        dropped += 1
    if dropped:
        meter.trims.append(f"{dropped} message(s) of earlier turns")
    # 2. Raw tool results of the agents before this one (their answers summarise them).
    own = _last_user(out)
    if size(out) > budget_chars:
        changed = 0
        for index in range(request + 1, own):
            if any(c.type == "function_result" for c in out[index].contents):
                out[index] = _with_results_trimmed(out[index])
                changed += 1
        if changed:
            meter.trims.append(f"{changed} earlier tool result(s)")
    # 3. The longest earlier answers, halved until they fit (at least 400 characters stay). They are
    # assistant messages, or the handoff that carries them, one text content a teammate.
    cut = 0
    while size(out) > budget_chars:
        candidates = [
            (_longest_text(out[i]), i)
            for i in range(request + 1, own + 1)
            if ((out[i].role == "assistant" and i < own) or out[i].text.startswith(HANDOFF_HEAD))
            and _longest_text(out[i]) > 400 + len(TRIMMED_TEXT) + 12
        ]
        if not candidates:
            break
        length, index = max(candidates)
        out[index] = _with_text_cut(out[index], max(400, length // 2))
        cut += 1
    if cut:
        meter.trims.append("earlier agents' answers shortened")
    # 4. The current agent's own tool results, when they alone are too large.
    if size(out) > budget_chars:
        for index in range(own + 1, len(out)):
            if any(c.type == "function_result" for c in out[index].contents) and size(out) > budget_chars:
                out[index] = _with_results_trimmed(out[index])
                meter.trims.append("this agent's own tool results")
    meter.last_estimate = meter.tokens(size(out))
    meter.largest = max(meter.largest, meter.last_estimate)
    if size(out) > budget_chars:
        raise ContextOverflow(meter.last_estimate, meter)
    return out

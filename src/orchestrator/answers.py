"""Is an agent's answer one the next agent (or the traveller) can use?

Checked before it is handed on: an empty reply, a reply made only of tool-call syntax, one cut at
the output-token limit (Ollama's done_reason "length"), or one that repeats itself. Each problem
carries the corrective instruction for the one retry, and the cause and fix for the one line the
user sees when the retry fails too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from .text_calls import only_calls

EMPTY, TOOL_SYNTAX, CUT, REPETITIVE = "empty", "tool-call syntax", "cut at the token limit", "repeats itself"
UNGROUNDED = "figures no tool returned"
FITNESS_FIX = (
    "use a larger model (e.g. qwen2.5:7b or phi4-mini), and check which models drive the tools with: main.py fitness"
)


@dataclass(frozen=True)
class Problem:
    kind: str
    cause: str  # what the user reads: "its reply was only tool-call syntax"
    instruction: str  # what the agent is told on its retry
    fix: str
    without_tools: bool = True  # the retry answers from what the agent has, with no further tool calls


def repeats_itself(text: str) -> bool:
    """Long text whose lines or word runs come back again and again (a model stuck in a loop)."""
    lines = [re.sub(r"\W+", " ", line).strip().casefold() for line in text.splitlines()]
    lines = [line for line in lines if len(line) >= 15]
    if lines and max(lines.count(line) for line in set(lines)) >= 3 and len(set(lines)) <= 0.6 * len(lines):
        return True
    words = text.casefold().split()
    if len(words) < 60:
        return False
    shingles = [" ".join(words[i : i + 6]) for i in range(len(words) - 5)]
    return len(set(shingles)) < 0.5 * len(shingles)


def check_answer(
    text: str, finish_reason: str | None, tools: frozenset[str], max_tokens: int, ungrounded: Sequence[str] = ()
) -> Problem | None:
    """The first problem with an agent's final answer, or None when it can be handed on.

    `ungrounded`: the figures (temperatures, amounts, distances, rain) the answer states that no
    tool result and not the traveller's request holds (grounding.check).
    """
    if not re.search(r"[^\W\d_]{2,}", text):
        return Problem(
            EMPTY,
            "its reply was empty",
            "Your last reply was empty. Answer now, in plain sentences, using the tool results above.",
            FITNESS_FIX,
            without_tools=False,
        )
    if only_calls(text, tools):
        return Problem(
            TOOL_SYNTAX,
            "its reply was only tool-call syntax, not an answer",
            "Your last reply was tool-call syntax (JSON), not an answer. Do not write JSON or tool calls. "
            "Write your answer in plain sentences, using the tool results above.",
            FITNESS_FIX,
        )
    if finish_reason == "length":
        words = max(60, int(max_tokens * 0.4))
        return Problem(
            CUT,
            f"its reply was cut at the output-token limit ({max_tokens} tokens, OLLAMA_MAX_OUTPUT_TOKENS)",
            f"Your last reply was too long and was cut off. Answer again, complete, in at most {words} words.",
            f"raise OLLAMA_MAX_OUTPUT_TOKENS (now {max_tokens}), or {FITNESS_FIX}",
        )
    if repeats_itself(text):
        return Problem(
            REPETITIVE,
            "its reply kept repeating itself",
            "Your last reply repeated itself. Answer again, briefly, saying each thing once.",
            FITNESS_FIX,
        )
    if ungrounded:
        shown = ", ".join(ungrounded[:5])
        return Problem(
            UNGROUNDED,
            f"its answer states figures no tool returned ({shown})",
            f"Your last answer stated figures that no tool returned: {shown}. Use only the figures in the "
            "tool results above, and leave out any figure you do not have. Answer again.",
            FITNESS_FIX,
        )
    return None


def failure_line(agent: str, model: str, problem: Problem) -> str:
    return f"{agent} gave no usable answer with model {model}: {problem.cause}, also when asked again; {problem.fix}"

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
ECHO = "repeats its instructions"
VAGUE = "uses nothing its tools returned"
NO_CALL = "answered without its tools"
# What an agent is told on its retry (the cut and the made-up-figures ones take numbers).
ANSWER_NOW = "Now write your answer for the traveller, in plain sentences, from the tool results above."
CUT_OFF = "Your last reply was too long and was cut off. Answer again, complete, in at most {words} words."
REPEATED = "Your last reply repeated itself. Answer again, briefly, saying each thing once."
MADE_UP = (
    "Your last answer stated figures that no tool returned: {shown}. Use only the figures in the tool results "
    "above, and leave out any figure you do not have. Answer again."
)
CALL_FIRST = "First call {names} with what the traveller asked for, then answer from the result."
CORRECTIONS = (ANSWER_NOW, CUT_OFF, REPEATED, MADE_UP, CALL_FIRST)
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
    """Long text whose lines or word runs come back again and again (a model stuck in a loop).

    An itinerary repeats a little by nature ("Pack: light layers" on each day, the same headings):
    a loop is a line said four times or more that, with its copies, makes most of the text.
    """
    lines = [re.sub(r"\W+", " ", line).strip().casefold() for line in text.splitlines()]
    lines = [line for line in lines if len(line) >= 15]
    if lines and max(lines.count(line) for line in set(lines)) >= 4 and len(set(lines)) <= 0.5 * len(lines):
        return True
    words = text.casefold().split()
    if len(words) < 60:
        return False
    shingles = [" ".join(words[i : i + 6]) for i in range(len(words) - 5)]
    return len(set(shingles)) < 0.4 * len(shingles)


def _grams(text: str, n: int = 4) -> list[str]:
    words = re.findall(r"[^\W_]+", text.casefold())
    return [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]


def echoes(text: str, sources: Sequence[str]) -> bool:
    """An answer made mostly of the words it was given to follow (its instructions, a correction):
    small models often say the instruction back instead of carrying it out."""
    answer = _grams(text)
    if not answer or not sources:
        return False
    given = {gram for source in sources for gram in _grams(source)}
    return sum(gram in given for gram in answer) >= 0.5 * len(answer)


def check_answer(
    text: str,
    finish_reason: str | None,
    tools: frozenset[str],
    max_tokens: int,
    ungrounded: Sequence[str] = (),
    given: Sequence[str] = (),
    uncalled: Sequence[str] = (),
    vague: bool = False,
) -> Problem | None:
    """The first problem with an agent's final answer, or None when it can be handed on.

    `ungrounded`: the figures (temperatures, amounts, distances, rain) the answer states that no
    tool result and not the traveller's request holds (grounding.check). `given`: the texts the
    agent was told to follow (its instructions, corrections); an answer that says them back is none.
    `uncalled`: the tools the agent must call and has not called successfully (AgentSpec.required).
    `vague`: the agent's tools returned results and the answer states hardly anything from them.
    """
    if not re.search(r"[^\W\d_]{2,}", text):
        return Problem(
            EMPTY,
            "its reply was empty",
            ANSWER_NOW,
            FITNESS_FIX,
            without_tools=False,
        )
    if uncalled:
        names = " and ".join(uncalled)
        return Problem(
            NO_CALL,
            f"it answered without calling {names}, so it had no facts to give",
            CALL_FIRST.format(names=names),
            FITNESS_FIX,
            without_tools=False,
        )
    if only_calls(text, tools):
        return Problem(
            TOOL_SYNTAX,
            "its reply was only tool-call syntax, not an answer",
            ANSWER_NOW + " No JSON.",
            FITNESS_FIX,
        )
    if echoes(text, [*given, *CORRECTIONS]):
        return Problem(
            ECHO,
            "its reply repeated its instructions instead of answering",
            ANSWER_NOW,
            FITNESS_FIX,
        )
    if finish_reason == "length":
        words = max(60, int(max_tokens * 0.4))
        return Problem(
            CUT,
            f"its reply was cut at the output-token limit ({max_tokens} tokens, OLLAMA_MAX_OUTPUT_TOKENS)",
            CUT_OFF.format(words=words),
            f"raise OLLAMA_MAX_OUTPUT_TOKENS (now {max_tokens}), or {FITNESS_FIX}",
        )
    if repeats_itself(text):
        return Problem(
            REPETITIVE,
            "its reply kept repeating itself",
            REPEATED,
            FITNESS_FIX,
        )
    if ungrounded:
        shown = ", ".join(ungrounded[:5])
        return Problem(
            UNGROUNDED,
            f"its answer states figures no tool returned ({shown})",
            MADE_UP.format(shown=shown),
            FITNESS_FIX,
        )
    if vague:
        return Problem(
            VAGUE,
            "its answer used nothing its tools returned",
            ANSWER_NOW,
            FITNESS_FIX,
        )
    return None


def without_figures(text: str, shown: Sequence[str]) -> str:
    """The answer without the sentences (or list lines) that state one of the figures `shown`: the
    rest of an answer stays usable when a small model adds a figure no tool returned."""
    kept_lines = []
    for line in text.splitlines():
        sentences = re.split(r"(?<=[.!?])\s+", line)
        kept = [s for s in sentences if not any(re.search(rf"(?<![\d.,]){re.escape(f)}(?!\d)", s) for f in shown)]
        if len(kept) == len(sentences):
            kept_lines.append(line)
        elif kept and re.search(r"[^\W\d_]{2,}", " ".join(kept)):
            kept_lines.append(" ".join(kept))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept_lines)).strip()


def failure_line(agent: str, model: str, problem: Problem) -> str:
    return f"{agent} gave no usable answer with model {model}: {problem.cause}, also when asked again; {problem.fix}"

"""Tool calls that a model wrote as text instead of through Ollama's tool-call channel.

Small local models (0.5B-8B) often print the call they mean to make: a bare JSON object, one a
line, in a ```json fence, between <tool_call> tags, after [TOOL_CALLS] or functools, or as a list
such as [get_destination(city="Lisbon")], or in XML-like tags (<function=get_destination>{...}</function>,
<function name="get_destination" arguments='{...}'/>). Ollama only parses the form its template declares, so the
rest reaches the client as plain text. `find_calls` recovers the calls that name a tool the agent
has; `strip_calls` removes call-shaped syntax of any name, to tell an answer from garbage.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from typing import Any

_DECODER = json.JSONDecoder()
# Wrappers around the JSON that carry no meaning of their own.
_MARKERS = re.compile(
    r"```(?:json|tool_code|tool_call|python)?|```|</?tool_calls?>|<\|?/?tool_call\|?>|\[/?TOOL_CALLS\]|\[ARGS\]"
    r"|<\|python_tag\|>|<\|eom_id\|>|<\|eot_id\|>|\bfunctools\b|<function_calls>|</function_calls>"
    r"|</?tool_response>|</?tools>|</function>",
    re.IGNORECASE,
)
# Keys under which models put a call's arguments.
_ARGUMENT_KEYS = ("arguments", "parameters", "args", "input", "params")
_NAME_KEYS = ("name", "tool", "tool_name", "function_name")


@dataclass(frozen=True)
class TextCall:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Span:
    start: int
    end: int
    value: Any


def _json_spans(text: str) -> list[_Span]:
    """Every top-level JSON object or array in the text, in order, that parses."""
    spans: list[_Span] = []
    index = 0
    while index < len(text):
        match = re.compile(r"[{\[]").search(text, index)
        if match is None:
            break
        start = match.start()
        try:
            value, end = _DECODER.raw_decode(text, start)
        except ValueError:
            index = start + 1
            continue
        if isinstance(value, dict | list):
            spans.append(_Span(start, end, value))
            index = end
        else:
            index = start + 1
    return spans


def _as_call(value: Any) -> TextCall | None:
    """A JSON value shaped like one tool call, whatever tool it names."""
    if not isinstance(value, dict):
        return None
    if isinstance(value.get("function"), dict):  # {"type": "function", "function": {...}} (OpenAI shape)
        return _as_call(value["function"])
    name = next((value[k] for k in _NAME_KEYS if isinstance(value.get(k), str)), None)
    if not name or not re.fullmatch(r"[A-Za-z_][\w.-]{0,63}", name):
        return None
    raw = next((value[k] for k in _ARGUMENT_KEYS if k in value), None)
    if isinstance(raw, str):  # arguments sent as a JSON string, as the OpenAI API does
        try:
            raw = json.loads(raw) if raw.strip() else {}
        except ValueError:
            return None
    if raw is None:
        # {"name": "get_destination", "city": "Lisbon"}: the arguments flattened beside the name
        raw = {k: v for k, v in value.items() if k not in (*_NAME_KEYS, "type", "id")}
    if not isinstance(raw, dict):
        return None
    return TextCall(name, raw)


def _calls_in(value: Any) -> list[TextCall]:
    items = value if isinstance(value, list) else [value]
    calls = [_as_call(item) for item in items]
    return [c for c in calls if c is not None] if all(c is not None for c in calls) else []


def _pythonic(text: str, names: set[str]) -> list[tuple[int, int, TextCall]]:
    """[get_destination(city="Lisbon"), ...] or a line that is only name(key=value): Llama 3.2's
    and several fine-tunes' form. Only literal arguments are accepted."""
    found: list[tuple[int, int, TextCall]] = []
    if not names:
        return found
    pattern = re.compile(r"(?:^|(?<=[\[\s,]))(" + "|".join(map(re.escape, sorted(names))) + r")\s*\(", re.M)
    for match in pattern.finditer(text):
        depth, end = 0, None
        for i in range(match.end() - 1, len(text)):
            if text[i] == "(":
                depth += 1
            elif text[i] == ")":
                depth -= 1
                if depth == 0:
                    end = i + 1
                    break
        if end is None:
            continue
        try:
            node = ast.parse(text[match.start() : end].strip(), mode="eval").body
        except SyntaxError:
            continue
        if not isinstance(node, ast.Call) or node.args:
            continue
        try:
            arguments = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords if kw.arg}
        except ValueError:
            continue
        # A call inside prose ("you could call get_destination(...)") does not count: the line, or
        # the bracketed list it sits in, must hold nothing but calls.
        line_start = text.rfind("\n", 0, match.start()) + 1
        line_end = text.find("\n", end)
        line = text[line_start : len(text) if line_end < 0 else line_end]
        if re.sub(r"[\[\],\s]", "", _without(line, names)) == "":
            found.append((match.start(), end, TextCall(match.group(1), arguments)))
    return found


def _without(line: str, names: set[str]) -> str:
    """The line with every name(...) call removed (balanced parentheses, no nesting needed)."""
    return re.sub(r"(" + "|".join(map(re.escape, names)) + r")\s*\([^()]*(\([^()]*\)[^()]*)*\)", "", line)


# Mistral's newer form: [TOOL_CALLS]get_destination[ARGS]{"city": "Lisbon"}
_MISTRAL = re.compile(r"\[TOOL_CALLS\]\s*([A-Za-z_][\w.-]*)\s*\[ARGS\]\s*")


def _mistral(text: str) -> list[tuple[int, int, TextCall]]:
    found = []
    for match in _MISTRAL.finditer(text):
        try:
            arguments, end = _DECODER.raw_decode(text, match.end())
        except ValueError:
            continue
        if isinstance(arguments, dict):
            found.append((match.start(), end, TextCall(match.group(1), arguments)))
    return found


# Llama 3.1's custom form <function=NAME>{...}</function>, and the attribute form small Qwen models
# write: <function name="NAME" arguments='{...}'/> (arguments in either quote).
_TAGGED = re.compile(
    r"<function=([A-Za-z_][\w.-]*)>\s*|<function\s+name=[\"']([A-Za-z_][\w.-]*)[\"']\s+(?:arguments|parameters)=(['\"])"
)


def _tagged(text: str) -> list[tuple[int, int, TextCall]]:
    found = []
    for match in _TAGGED.finditer(text):
        try:
            arguments, end = _DECODER.raw_decode(text, match.end())
        except ValueError:
            continue
        if not isinstance(arguments, dict):
            continue
        closing = re.compile(r"\s*</function>" if match.group(1) else re.escape(match.group(3)) + r"\s*/?>")
        if tail := closing.match(text, end):
            end = tail.end()
        found.append((match.start(), end, TextCall(match.group(1) or match.group(2), arguments)))
    return found


def find_calls(text: str, tools: set[str] | frozenset[str]) -> list[TextCall]:
    """The tool calls written in `text` that name one of `tools`, in order, duplicates removed.

    Text that names no tool of the agent yields nothing: it stays text.
    """
    if not text or not tools or not re.search(r"[{\[(]", text):
        return []
    tagged = [*_mistral(text), *_tagged(text)]
    located: list[tuple[int, TextCall]] = [(start, call) for start, _, call in tagged if call.name in tools]
    for span in _json_spans(text):
        for call in _calls_in(span.value):
            if call.name in tools:
                located.append((span.start, call))
    located += [(start, call) for start, _end, call in _pythonic(text, set(tools))]
    unique: list[TextCall] = []
    for _, call in sorted(located, key=lambda item: item[0]):
        if call not in unique:
            unique.append(call)
    return unique


def strip_calls(text: str, tools: set[str] | frozenset[str] = frozenset()) -> str:
    """The text without call-shaped JSON (of any tool name), pythonic calls of `tools`, and the
    markers around them: what is left is what the model said in words."""
    for start, end, _ in sorted([*_mistral(text), *_tagged(text)], reverse=True):
        text = text[:start] + text[end:]
    pieces: list[str] = []
    last = 0
    for span in _json_spans(text):
        if _calls_in(span.value):
            pieces.append(text[last : span.start])
            last = span.end
    pieces.append(text[last:])
    rest = "".join(pieces)
    spans = _pythonic(rest, set(tools))
    for start, end, _ in reversed(spans):
        rest = rest[:start] + rest[end:]
    rest = _MARKERS.sub("", rest)
    rest = re.sub(r"^[\[\],\s]+$", "", rest, flags=re.M)  # what a list of calls leaves behind
    return re.sub(r"\n\s*\n\s*\n+", "\n\n", rest).strip()


def only_calls(text: str, tools: set[str] | frozenset[str] = frozenset()) -> bool:
    """True when the text holds call syntax and next to no words besides (an answer made of calls)."""
    if not text.strip():
        return False
    rest = strip_calls(text, tools)
    if rest == text.strip():
        return False
    return len(re.findall(r"[^\W\d_]{2,}", rest)) < 4


def looks_like_call_start(text: str) -> bool:
    """Whether a reply that begins like this may be a call written as text (worth holding back
    from the screen until the reply is complete)."""
    head = text.lstrip()[:16]
    if not head:
        return False
    return head[0] in "{[<`" or head.lower().startswith(("functools", "[tool_calls]"))


def declared_only(arguments: dict[str, Any], schema: Any) -> dict[str, Any]:
    """A recovered call's arguments without keys its tool's JSON schema does not declare: small
    models writing a call as text often paste the result they expect into it ("summary": ...)."""
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(properties, dict):
        return arguments
    return {key: value for key, value in arguments.items() if key in properties}

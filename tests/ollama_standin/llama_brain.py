"""A real model behind the stand-in: a GGUF run by llama.cpp (llama-cpp-python), answering the way
Ollama 0.12 would answer with the same weights.

    STANDIN_GGUF=/path/model.gguf python -m ollama_standin --brain ollama_standin.llama_brain:llama_brain

What it reproduces of Ollama (ollama/ollama at the 0.12 line), so a client cannot tell the difference:

* The prompt: the model's chat template (here the GGUF's own `tokenizer.chat_template`, rendered with
  jinja2 like Hugging Face does; Ollama renders its Go TEMPLATE, which for Qwen2.5 differs only in
  details, listed in README.md), with the tools as the client sent them and the generation prompt.
  History that does not fit num_ctx is dropped as server/prompt.go chatPrompt drops it: oldest
  messages first, always keeping the latest message and the system messages before the kept part.
* The runner: n_ctx = options.num_ctx (default 4096) capped at the GGUF's `<arch>.context_length`,
  reloaded when it changes; Ollama's sampling defaults (temperature 0.8, top_k 40, top_p 0.9,
  repeat_penalty 1.1 over the last 64 tokens, a random seed unless `seed` is given); num_predict
  and stop sequences; done_reason "length" at num_predict; eval_count counts the sampled tokens
  (the end-of-generation token too, as the runner's numPredicted does); prompt_eval_count is the
  real token count of the prompt.
* Tool calls: the output goes, token by token, through a port of tools/tools.go's Parser with the
  tag taken from the model's TEMPLATE as tools/template.go parseTag does, and through ChatHandler's
  per-chunk handling (server/routes.go). So exactly what Ollama would turn into
  `message.tool_calls` becomes tool calls; everything else stays text, or is dropped where Ollama
  drops it (after the tag, output that is not a complete call is swallowed).

* Structured output: `format` "json" or a JSON schema constrains sampling with a grammar, as the
  runner does (llm/server.go: "json" is the JSON grammar, a schema goes through llama.cpp's
  json-schema-to-grammar); with a format, no tool calls are parsed from the output.

Not reproduced: context shifting (a reply that reaches the end of the context stops there with
done_reason "length"; Ollama would shift and go on), the runner's input truncation beyond keeping
num_keep tokens, images, and parameters stored in the model's Modelfile (only the request's
options count).
"""

from __future__ import annotations

import codecs
import datetime as dt
import json
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import gguf
from .brain import Reply

log = logging.getLogger("ollama_standin.llama_brain")

DEFAULT_NUM_CTX = 4096  # Ollama 0.12's default context (OLLAMA_CONTEXT_LENGTH unset)

# api/types.go DefaultOptions() of the 0.12 line.
OLLAMA_DEFAULTS: dict[str, Any] = {
    "num_keep": 4,
    "temperature": 0.8,
    "top_k": 40,
    "top_p": 0.9,
    "min_p": 0.0,
    "typical_p": 1.0,
    "repeat_last_n": 64,
    "repeat_penalty": 1.1,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
    "seed": -1,
    "num_predict": -1,
}


# --- tools/template.go: the tool-call tag from a Go template ---------------------------------------


@dataclass
class _Node:
    kind: str  # "text", "action", "if", "range", "with"
    text: str = ""  # text of a text node; pipeline of an action / if / range / with
    body: list[_Node] = field(default_factory=list)
    orelse: list[_Node] | None = None


_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)


def _parse_go_template(source: str) -> list[_Node]:
    """Just enough of text/template's parse tree for parseTag: text, actions and if/range/with
    blocks with their else branches ("else if" nests as in Go). Comments are dropped."""
    tokens: list[tuple[str, str]] = []
    position = 0
    for match in _ACTION.finditer(source):
        text = source[position : match.start()]
        if match.group(1):
            text = text.rstrip()
        if tokens and tokens[-1][0] == "trim-next":
            tokens.pop()
            text = text.lstrip()
        if text:
            tokens.append(("text", text))
        inner = match.group(2).strip()
        if not inner.startswith("/*"):
            tokens.append(("action", inner))
        if match.group(3):
            tokens.append(("trim-next", ""))
        position = match.end()
    tail = source[position:]
    if tokens and tokens[-1][0] == "trim-next":
        tokens.pop()
        tail = tail.lstrip()
    if tail:
        tokens.append(("text", tail))

    def block(index: int) -> tuple[list[_Node], int, str]:
        """Nodes up to an {{else...}} or {{end}}; returns (nodes, next index, the closing action)."""
        nodes: list[_Node] = []
        while index < len(tokens):
            kind, value = tokens[index]
            index += 1
            if kind == "text":
                nodes.append(_Node("text", value))
                continue
            word = value.split(None, 1)[0] if value else ""
            if word in ("end", "else"):
                return nodes, index, value
            if word in ("if", "range", "with"):
                node, index = control(word, value[len(word) :].strip(), index)
                nodes.append(node)
            elif word in ("define", "block"):
                _, index, _ = block(index)  # a separate tree in Go: not searched
            elif word in ("template", "break", "continue"):
                nodes.append(_Node("other", value))
            else:
                nodes.append(_Node("action", value))
        return nodes, index, ""

    def control(word: str, pipeline: str, index: int) -> tuple[_Node, int]:
        node = _Node(word, pipeline)
        node.body, index, closing = block(index)
        if closing.startswith("else"):
            rest = closing[4:].strip()
            if rest.split(None, 1)[:1] in (["if"], ["with"]):
                inner_word = rest.split(None, 1)[0]
                inner, index = control(inner_word, rest[len(inner_word) :].strip(), index)
                node.orelse = [inner]  # {{else if}} ends with the chain's single {{end}}
            else:
                node.orelse, index, _ = block(index)
        return node, index

    nodes, _, _ = block(0)
    return nodes


_TOOL_CALLS_FIELD = re.compile(r"(?:^|\s)\.(?:\w+\.)*ToolCalls\b")
_PARENTHESIZED = re.compile(r"\([^()]*\)")


def _mentions_tool_calls(pipeline: str) -> bool:
    """isToolCallsNode: a field like .ToolCalls among the commands' own arguments (not inside
    parentheses, which are pipelines of their own, nor $variable.ToolCalls)."""
    previous = None
    while previous != pipeline:
        previous, pipeline = pipeline, _PARENTHESIZED.sub(" ", pipeline)
    return bool(_TOOL_CALLS_FIELD.search(pipeline.replace("|", " ")))


def _find_tool_call_node(nodes: list[_Node]) -> _Node | None:
    for node in nodes:
        if node.kind == "if" and _mentions_tool_calls(node.text):
            return node
        if node.kind in ("if", "range", "with"):
            found = _find_tool_call_node(node.body) or _find_tool_call_node(node.orelse or [])
            if found is not None:
                return found
    return None


def _find_text_node(nodes: list[_Node]) -> str | None:
    """findTextNode: the first non-blank text, not looking past an action or a block."""
    for node in nodes:
        if node.kind == "text":
            if node.text.strip():
                return node.text
        elif node.kind == "action":
            return None
        elif node.kind in ("if", "range", "with"):
            found = _find_text_node(node.body)
            if found is None and node.orelse is not None:
                found = _find_text_node(node.orelse)
            return found
        # {{template}}, {{break}}, {{continue}}: other node types, passed over
    return None


def tool_tag(template: str | None) -> str:
    """parseTag: the first text after the template's `if .ToolCalls`, cut before any "{", trimmed;
    "{" (parse bare JSON objects) when there is none. Qwen 2.5's template gives "<tool_call>"."""
    if not template:
        return "{"
    node = _find_tool_call_node(_parse_go_template(template))
    if node is None:
        return "{"
    text = _find_text_node(node.body)
    if text is None:
        return "{"
    tag = text.replace("\r\n", "\n").split("{", 1)[0].strip()
    return tag or "{"


# --- tools/tools.go: Ollama's tool-call parser ------------------------------------------------------


def _go_unmarshal_object(text: str) -> tuple[dict[str, Any] | None, bool]:
    """json.Unmarshal into map[string]any: (value, ok). JSON null gives (None, True) as in Go."""

    def reject(constant: str) -> Any:
        raise ValueError(constant)  # Go's decoder has no NaN / Infinity

    try:
        value = json.loads(text, parse_constant=reject)
    except ValueError:
        return None, False
    if value is None:
        return None, True
    if isinstance(value, dict):
        return value, True
    return None, False


def _properties(tool: dict[str, Any]) -> dict[str, Any]:
    return ((tool.get("function") or {}).get("parameters") or {}).get("properties") or {}


def _tool_name(tool: dict[str, Any]) -> str:
    return str((tool.get("function") or {}).get("name") or "")


def _find_tool(tools: list[dict[str, Any]], buffer: str) -> tuple[dict[str, Any] | None, int]:
    """findTool: the earliest (then longest) tool name in the buffer; none while the buffer ends
    with the beginning of a tool name (more output may make it a different name)."""
    if not buffer:
        return None, 0
    names = [_tool_name(t) for t in tools]
    longest = max((len(n) for n in names), default=0)
    for i in range(1, min(len(buffer), longest) + 1):
        tail = buffer[-i:]
        if any(len(tail) < len(name) and name.startswith(tail) for name in names):
            return None, 0
    found, start, end = None, -1, -1
    for tool, name in zip(tools, names, strict=True):
        pos = buffer.find(name)
        if pos == -1:
            continue
        if start != -1 and (pos > start or (pos == start and len(name) <= end - start)):
            continue
        found, start, end = tool, pos, pos + len(name)
    return (found, end) if found is not None else (None, 0)


def _find_object(tool: dict[str, Any], obj: dict[str, Any]) -> tuple[dict[str, Any] | None, bool]:
    """findObject: the arguments inside a parsed object ("name" + "arguments"/"parameters", or an
    object keyed by the tool's name), searched depth-first."""

    def find_map(key: str) -> tuple[dict[str, Any] | None, bool]:
        value = obj.get(key)
        if isinstance(value, dict):
            return value, True
        if isinstance(value, str):
            return _go_unmarshal_object(value)
        return None, False

    if "name" in obj:
        for key in ("arguments", "parameters"):
            args, ok = find_map(key)
            if ok:
                return args, True
        return None, True
    args, ok = find_map(_tool_name(tool))
    if ok:
        return args, True
    for value in obj.values():
        if isinstance(value, dict):
            children = [value]
        elif isinstance(value, list):
            children = [item for item in value if isinstance(item, dict)]
        else:
            children = []
        for child in children:
            result, found = _find_object(tool, child)
            if found:
                return result, True
    return None, False


def _find_arguments(tool: dict[str, Any], buffer: str) -> tuple[dict[str, Any] | None, int]:
    """findArguments: the first complete JSON object in the buffer (braces inside strings do not
    count) that parses, and the index of its closing brace."""
    start, braces = -1, 0
    in_string = escaped = False
    for i, c in enumerate(buffer):
        if escaped:
            escaped = False
            continue
        if c == "\\":
            escaped = True
            continue
        if c == '"':
            in_string = not in_string
            continue
        if in_string:
            continue
        if c == "{":
            if braces == 0:
                start = i
            braces += 1
        elif c == "}":
            braces -= 1
            if braces == 0 and start != -1:
                data, ok = _go_unmarshal_object(buffer[start : i + 1])
                if not ok or data is None:
                    start = -1  # not a valid object, keep looking
                    continue
                args, found = _find_object(tool, data)
                return (args, i) if found else (data, i)
            braces = max(braces, 0)
    return None, 0


class ToolCallParser:
    """tools.Parser: fed the model's output chunk by chunk, returns (tool calls, content)."""

    LOOKING, CALLING, DONE = range(3)

    def __init__(self, tag: str, tools: list[dict[str, Any]]) -> None:
        self.tag = tag
        self.tools = list(tools)
        self.state = self.LOOKING
        self.buffer = ""
        self.n = 0

    def add(self, s: str) -> tuple[list[dict[str, Any]], str]:
        if self.state == self.DONE:
            return [], s
        self.buffer += s
        content = ""
        if self.state == self.LOOKING:
            i, found = self._find_tag()
            if i == -1:
                content, self.buffer = self.buffer, ""
            else:
                content, self.buffer = self.buffer[:i], self.buffer[i:]
            # With { or [ as the tag, only output that starts with it can be a tool call.
            if self.tag in ("{", "[") and content.strip():
                self.state = self.DONE
                rest, self.buffer = self.buffer, ""
                return [], content + rest
            if not found:
                return [], content
            self.state = self.CALLING
        calls = []
        while (call := self._parse_tool_call()) is not None:
            calls.append(call)
        if self._done():
            self.state = self.DONE
            content, self.buffer = self.buffer, ""
        return calls, content

    def content(self) -> str:
        """Parser.Content(): what is left for the user when the output ends."""
        if self.n > 0:
            return ""
        return self.buffer if self.tag in ("{", "[") else ""

    def _find_tag(self) -> tuple[int, bool]:
        i = self.buffer.find(self.tag)
        if i > -1:
            return i, True
        for size in range(min(len(self.buffer), len(self.tag)), 0, -1):
            if self.buffer.endswith(self.tag[:size]):
                return len(self.buffer) - size, False
        return -1, False

    def _parse_tool_call(self) -> dict[str, Any] | None:
        tool, end = _find_tool(self.tools, self.buffer)
        if tool is None:
            return None
        args, i = _find_arguments(tool, self.buffer)
        if args is None:
            return None
        end = max(end, i)
        call = {"function": {"index": self.n, "name": _tool_name(tool), "arguments": args}}
        self.n += 1
        self.buffer = self.buffer[end:]
        return call

    def _done(self) -> bool:
        pairs = {"{": ("{", "}"), "[": ("[", "]")}
        if self.tag not in pairs:
            return False
        opening, closing = pairs[self.tag]
        count = 0
        for c in self.buffer:
            if c == opening:
                count += 1
            elif c == closing:
                count -= 1
                if count == 0:
                    return True
        return False


def parse_output(chunks: Iterable[str], tools: list[dict[str, Any]], tag: str) -> tuple[str, list[dict[str, Any]]]:
    """What ChatHandler (server/routes.go) makes of the runner's chunks when tools were offered:
    per chunk, the parser's content if there is any (a chunk's tool calls are then dropped), else
    its tool calls; when the output ends, whatever Parser.Content() still holds."""
    parser = ToolCallParser(tag, tools)
    content: list[str] = []
    calls: list[dict[str, Any]] = []
    pieces = [*chunks, ""]  # the runner's final (done) response carries no content
    for index, chunk in enumerate(pieces):
        found, text = parser.add(chunk)
        if text:
            content.append(text)
        elif found:
            calls.extend(found)
        elif index == len(pieces) - 1:
            content.append(parser.content())
    wired = [{"function": {"name": c["function"]["name"], "arguments": c["function"]["arguments"]}} for c in calls]
    return "".join(content), wired


# --- the prompt -------------------------------------------------------------------------------------


def template_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ollama's api.Message -> the shape Hugging Face chat templates expect."""
    shaped = []
    for message in messages:
        role = str(message.get("role") or "")
        entry: dict[str, Any] = {"role": role, "content": str(message.get("content") or "")}
        if message.get("tool_calls"):
            entry["tool_calls"] = [
                {
                    "type": "function",
                    "function": {
                        "name": (call.get("function") or {}).get("name", ""),
                        "arguments": (call.get("function") or {}).get("arguments") or {},
                    },
                }
                for call in message["tool_calls"]
            ]
        if role == "tool" and message.get("tool_name"):
            entry["name"] = message["tool_name"]
        shaped.append(entry)
    return shaped


class ChatTemplate:
    """A GGUF's tokenizer.chat_template, rendered as transformers renders chat templates."""

    def __init__(self, source: str, bos_token: str = "", eos_token: str = "") -> None:
        import jinja2
        import jinja2.ext
        import jinja2.sandbox

        def raise_exception(message: str) -> None:
            raise jinja2.exceptions.TemplateError(message)

        def tojson(value: Any, ensure_ascii: bool = False, indent: Any = None, separators: Any = None,
                   sort_keys: bool = False) -> str:  # fmt: skip
            return json.dumps(
                value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
            )

        env = jinja2.sandbox.ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols]
        )
        env.filters["tojson"] = tojson
        env.globals["raise_exception"] = raise_exception
        env.globals["strftime_now"] = lambda fmt: dt.datetime.now().strftime(fmt)
        self.template = env.from_string(source)
        self.bos_token, self.eos_token = bos_token, eos_token

    def render(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> str:
        return self.template.render(
            messages=template_messages(messages),
            tools=tools or None,
            add_generation_prompt=True,
            bos_token=self.bos_token,
            eos_token=self.eos_token,
        )


def chat_prompt(
    render: Callable[[list[dict[str, Any]]], str],
    tokenize: Callable[[str], list[int]],
    messages: list[dict[str, Any]],
    num_ctx: int,
) -> tuple[list[int], int]:
    """server/prompt.go chatPrompt (0.12): going back from the latest message, keep what fits
    num_ctx (with the system messages that come before it); the latest message always stays.
    Returns the prompt's tokens and how many messages were dropped."""
    n = len(messages) - 1
    system: list[dict[str, Any]] = []
    for i in range(n, -1, -1):
        if i == n:
            continue  # the last message is always included
        system = [m for m in messages[:i] if m.get("role") == "system"]
        if len(tokenize(render(system + messages[i:]))) > num_ctx:
            break
        n = i
    kept = system + messages[n:]
    return tokenize(render(kept)), len(messages) - len(kept)


# --- the brain --------------------------------------------------------------------------------------


def _number(options: dict[str, Any], key: str) -> Any:
    value = options.get(key)
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return OLLAMA_DEFAULTS[key]
    return value


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class LlamaBrain:
    """The Brain protocol with a real GGUF behind it (one llama.cpp context, one reply at a time)."""

    wants_template = True  # the server passes the model's Ollama TEMPLATE (for the tool-call tag)
    accepts_format = True  # and the request's `format` (structured output)

    def __init__(self, gguf_path: str | os.PathLike[str], *, threads: int | None = None) -> None:
        self.path = Path(gguf_path)
        with self.path.open("rb") as handle:
            header = gguf.decode(handle)
        self.architecture = header.architecture
        self.context_length = header.arch_int("context_length") or DEFAULT_NUM_CTX
        source = header.chat_template
        if not source:
            raise ValueError(f"{self.path} has no tokenizer.chat_template")
        self.add_bos = bool(header.kv.get("tokenizer.ggml.add_bos_token", False))
        self.chat_template = ChatTemplate(source)
        self.threads = threads or _cores()
        self.lock = threading.Lock()
        self.llm: Any = None
        self.n_ctx = 0
        self.last_raw = ""  # the model's last output, before any tool-call parsing
        self.last_prompt = ""
        self.prompts = 0  # prompts written to STANDIN_PROMPT_LOG

    # -- model -------------------------------------------------------------------------------------

    def _load(self, n_ctx: int) -> int:
        """Load (or reload with a new context size) the model; returns the nanoseconds it took."""
        if self.llm is not None and self.n_ctx == n_ctx:
            return 0
        from llama_cpp import Llama

        started = time.perf_counter_ns()
        if self.llm is not None:
            self.llm.close()
            self.llm = None
        self.llm = Llama(
            str(self.path),
            n_ctx=n_ctx,
            n_threads=self.threads,
            n_threads_batch=self.threads,
            n_batch=512,  # Ollama's num_batch
            last_n_tokens_size=OLLAMA_DEFAULTS["repeat_last_n"],
            verbose=False,
        )
        self.n_ctx = n_ctx
        elapsed = time.perf_counter_ns() - started
        log.info("loaded %s with n_ctx=%d, %d threads in %.2f s", self.path.name, n_ctx, self.threads, elapsed / 1e9)
        bos = self.llm.detokenize([self.llm.token_bos()], special=True).decode(errors="replace")
        eos = self.llm.detokenize([self.llm.token_eos()], special=True).decode(errors="replace")
        self.chat_template.bos_token, self.chat_template.eos_token = bos, eos
        return elapsed

    def tokenize(self, text: str) -> list[int]:
        assert self.llm is not None
        return list(self.llm.tokenize(text.encode(), add_bos=self.add_bos, special=True))

    def _is_eog(self, token: int) -> bool:
        import llama_cpp

        try:
            return bool(llama_cpp.llama_vocab_is_eog(self.llm._model.vocab, token))
        except AttributeError:  # another llama-cpp-python layout
            return token == self.llm.token_eos()

    # -- Brain -------------------------------------------------------------------------------------

    def reply(
        self,
        model: str,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        options: dict[str, Any],
        template: str | None = None,
        format: str | dict[str, Any] | None = None,
    ) -> Reply:
        num_ctx = options.get("num_ctx")
        if not isinstance(num_ctx, int) or isinstance(num_ctx, bool) or num_ctx <= 0:
            num_ctx = DEFAULT_NUM_CTX
        num_ctx = min(num_ctx, self.context_length)
        with self.lock:
            load_ns = self._load(num_ctx)
            tokens, dropped = chat_prompt(
                lambda kept: self.chat_template.render(kept, tools), self.tokenize, messages, num_ctx
            )
            if dropped:
                log.info("truncating input messages which exceed context length: %d dropped", dropped)
            if len(tokens) >= num_ctx:
                # The runner keeps num_keep tokens and drops the ones after them (here one more,
                # so at least one token can be generated without a context shift).
                keep = min(max(int(_number(options, "num_keep")), 0), num_ctx - 1)
                discard = len(tokens) - (num_ctx - 1)
                tokens = tokens[:keep] + tokens[keep + discard :]
            self.last_prompt = self.llm.detokenize(tokens, special=True).decode(errors="replace")
            if prompts := os.environ.get("STANDIN_PROMPT_LOG"):  # a directory: each prompt as the model read it
                self.prompts += 1
                Path(prompts).mkdir(parents=True, exist_ok=True)
                (Path(prompts) / f"{self.prompts:03d}.txt").write_text(self.last_prompt)
            grammar = _grammar(format)
            if grammar is False:
                return Reply(error=(500, "invalid JSON schema in format"))
            pieces, eval_count, done_reason, prompt_ns, eval_ns = self._generate(tokens, options, grammar)
        raw = "".join(pieces)
        self.last_raw = raw
        log.info(
            "prompt %d tokens in %.2f s, %d tokens in %.2f s (%s): %r",
            len(tokens), prompt_ns / 1e9, eval_count, eval_ns / 1e9, done_reason, raw[:500],
        )  # fmt: skip
        if tools and format is None:
            content, calls = parse_output(pieces, tools, tool_tag(template))
        else:
            content, calls = raw, []
        return Reply(
            content=content,
            tool_calls=calls,
            done_reason=done_reason,
            eval_count=eval_count,
            prompt_eval_count=len(tokens),
            load_duration=load_ns,
            prompt_eval_duration=prompt_ns,
            eval_duration=eval_ns,
        )

    def _generate(self, tokens: list[int], options: dict[str, Any],
                  grammar: Any = None) -> tuple[list[str], int, str, int, int]:  # fmt: skip
        """Sample until an end-of-generation token, num_predict, a stop sequence or the end of the
        context. Returns (text pieces, one per token, the tokens sampled, done_reason, prompt ns, eval ns)."""
        llm = self.llm
        seed = int(_number(options, "seed"))
        llm.set_seed(seed if seed >= 0 else random.SystemRandom().randrange(2**31))
        num_predict = int(_number(options, "num_predict"))
        stops = [s for s in options.get("stop") or [] if isinstance(s, str) and s]
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pieces: list[str] = []
        text = ""
        count = 0
        done_reason = "stop"
        started = time.perf_counter_ns()
        first = 0
        generator = llm.generate(
            tokens,
            top_k=int(_number(options, "top_k")),
            top_p=float(_number(options, "top_p")),
            min_p=float(_number(options, "min_p")),
            typical_p=float(_number(options, "typical_p")),
            temp=float(_number(options, "temperature")),
            repeat_penalty=float(_number(options, "repeat_penalty")),
            presence_penalty=float(_number(options, "presence_penalty")),
            frequency_penalty=float(_number(options, "frequency_penalty")),
            reset=True,
            grammar=grammar,
        )
        try:
            for token in generator:
                if not first:
                    first = time.perf_counter_ns()
                count += 1
                if self._is_eog(token):
                    break
                piece = decoder.decode(llm.detokenize([token], special=True))
                if piece:
                    pieces.append(piece)
                    text += piece
                cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
                if cut >= 0:
                    # The runner ends the reply before the stop sequence (done_reason "stop").
                    pieces = _truncate(pieces, cut)
                    break
                if 0 < num_predict <= count:
                    done_reason = "length"
                    break
                if len(tokens) + count >= self.n_ctx:
                    done_reason = "length"  # no context shift here
                    break
        finally:
            generator.close()
        ended = time.perf_counter_ns()
        first = first or ended
        return pieces, count, done_reason, first - started, ended - first


def _grammar(format: str | dict[str, Any] | None) -> Any:
    """The sampling grammar for a request's `format`: None without one, False for a schema
    llama.cpp cannot turn into a grammar (Ollama: "invalid JSON schema in format")."""
    if format is None:
        return None
    from llama_cpp import LlamaGrammar
    from llama_cpp.llama_grammar import JSON_GBNF

    try:
        if format == "json":
            return LlamaGrammar.from_string(JSON_GBNF, verbose=False)
        return LlamaGrammar.from_json_schema(json.dumps(format), verbose=False)
    except (ValueError, RuntimeError, KeyError, TypeError):
        return False


def _truncate(pieces: list[str], length: int) -> list[str]:
    kept, total = [], 0
    for piece in pieces:
        if total + len(piece) >= length:
            if length - total:
                kept.append(piece[: length - total])
            break
        kept.append(piece)
        total += len(piece)
    return kept


def llama_brain() -> LlamaBrain:
    """--brain ollama_standin.llama_brain:llama_brain; STANDIN_GGUF names the GGUF, STANDIN_THREADS
    the threads (default: the CPUs this process may use)."""
    path = os.environ.get("STANDIN_GGUF", "")
    if not path:
        raise SystemExit("STANDIN_GGUF must name a GGUF file for --brain ollama_standin.llama_brain:llama_brain")
    if not Path(path).is_file():
        raise SystemExit(f"STANDIN_GGUF={path}: no such file")
    threads = int(os.environ.get("STANDIN_THREADS", "0") or 0) or None
    return LlamaBrain(path, threads=threads)

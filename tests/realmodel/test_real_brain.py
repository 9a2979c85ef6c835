"""The real-model brain of the Ollama stand-in (ollama_standin/llama_brain.py).

The first half needs no model and always runs: Ollama 0.12's tool-call parser (tools/tools.go,
tools/template.go, ChatHandler's per-chunk handling) on sample outputs, the context truncation of
chatPrompt, and the server reporting a real brain's own figures. The second half talks to
Qwen2.5-Coder (0.5B, or REAL_MODEL_SIZE=1.5b) through the stand-in with the official `ollama` client
(REAL_MODEL=1).
"""

from __future__ import annotations

import json
import re

import httpx
import ollama
import pytest
from ollama_standin.brain import Reply
from ollama_standin.config import StandinConfig
from ollama_standin.llama_brain import chat_prompt, parse_output, template_messages, tool_tag
from ollama_standin.testing import run_in_thread

from realmodel.real_ollama import QWEN25_CODER_TEMPLATE

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city",
        "parameters": {
            "type": "object",
            "required": ["city"],
            "properties": {"city": {"type": "string", "description": "The city name"}},
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Get the current time in a time zone",
        "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}},
    },
}
TOOLS = [WEATHER, TIME]
PARIS = {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
CET = {"function": {"name": "get_time", "arguments": {"zone": "CET"}}}
CALL = '{"name": "get_weather", "arguments": {"city": "Paris"}}'


def tokens(text: str) -> list[str]:
    """Token-sized chunks as the runner streams them (Qwen's <tool_call> is one token)."""
    pieces = re.findall(r"</?tool_call>|\s*[^\s<]{1,3}|\s*<|\s+", text)
    assert "".join(pieces) == text
    return pieces


# --- the tag, from the model's TEMPLATE (tools/template.go parseTag) --------------------------------


@pytest.mark.parametrize(
    ("template", "tag"),
    [
        (QWEN25_CODER_TEMPLATE, "<tool_call>"),
        ("{{- if .ToolCalls }}[TOOL_CALLS] [{{ range .ToolCalls }}{{ .Function.Name }}{{ end }}]{{ end }}",
         "[TOOL_CALLS] ["),
        ('{{ if .Message.ToolCalls }}\n  <|python_tag|>{"name": "x"}{{ end }}', "<|python_tag|>"),
        # No `if .ToolCalls`, or it starts with an action or a block: bare JSON objects are tried.
        ("{{ .Prompt }}", "{"),
        ('{{ if .ToolCalls }}{{ range .ToolCalls }}{"name": "{{ .Function.Name }}"}{{ end }}{{ end }}', "{"),
        ("{{ if gt (len .ToolCalls) 0 }}<tool_call>{{ end }}", "{"),
        (None, "{"),
    ],
)  # fmt: skip
def test_the_tool_call_tag_comes_from_the_template_as_ollama_finds_it(template, tag):
    assert tool_tag(template) == tag


# --- what Ollama makes of an output (tools/tools.go + ChatHandler) ---------------------------------


@pytest.mark.parametrize(
    ("output", "content", "calls"),
    [
        pytest.param(f"<tool_call>\n{CALL}\n</tool_call>", "", [PARIS], id="tagged"),
        pytest.param(
            f'<tool_call>\n{CALL}\n</tool_call>\n<tool_call>\n{{"name": "get_time", "arguments": {{"zone": "CET"}}}}\n'
            "</tool_call>",
            "",
            [PARIS, CET],
            id="two-tagged",
        ),
        pytest.param(f"Let me look.\n<tool_call>\n{CALL}\n</tool_call>", "Let me look.\n", [PARIS],
                     id="prose-then-tag"),
        pytest.param("It is sunny in Paris today.", "It is sunny in Paris today.", [], id="prose"),
        # After the tag, output that is no complete call is swallowed: the reply is empty.
        pytest.param('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}\n</tool_call>', "", [],
                     id="tagged-malformed"),
        pytest.param('<tool_call>\n{"name": "book_flight", "arguments": {"city": "Paris"}}\n</tool_call>', "", [],
                     id="tagged-unknown-tool"),
        pytest.param('<tool_call>\n{"name": "get_weather"}\n</tool_call>', "", [], id="tagged-no-arguments"),
        # Ollama's parser is lenient inside the tags...
        pytest.param('<tool_call>\n{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}\n</tool_call>', "",
                     [PARIS], id="string-arguments"),
        pytest.param('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Pa}ris"}}\n</tool_call>', "",
                     [{"function": {"name": "get_weather", "arguments": {"city": "Pa}ris"}}}], id="brace-in-string"),
        # ...but without the tag nothing is parsed: bare or fenced JSON stays text.
        pytest.param(CALL, CALL, [], id="bare-json"),
        pytest.param(f"```json\n{CALL}\n```", f"```json\n{CALL}\n```", [], id="fenced-json"),
        pytest.param(f"{CALL}\n{CALL}", f"{CALL}\n{CALL}", [], id="bare-json-lines"),
        # A reply ending in the start of the tag is held back, then dropped.
        pytest.param("See you <tool_", "See you ", [], id="partial-tag-at-end"),
    ],
)  # fmt: skip
def test_ollama_parses_qwen_tool_calls_only_inside_the_tags(output, content, calls):
    assert parse_output(tokens(output), TOOLS, "<tool_call>") == (content, calls)


def test_with_the_brace_tag_only_json_at_the_start_is_a_call():
    assert parse_output(tokens(CALL), TOOLS, "{") == ("", [PARIS])
    prose = f"Here it is: {CALL}"
    assert parse_output(tokens(prose), TOOLS, "{") == (prose, [])


def test_a_chunk_with_text_and_a_call_keeps_only_the_text_as_chat_handler_does():
    # routes.go: `if len(content) > 0 { ... } else if len(toolCalls) > 0 { ... }`
    whole = "Let me look.\n" + f"<tool_call>\n{CALL}\n</tool_call>"
    assert parse_output([whole], TOOLS, "<tool_call>") == ("Let me look.\n", [])


# --- the prompt --------------------------------------------------------------------------------------


def test_history_that_does_not_fit_is_dropped_oldest_first_keeping_system_and_the_latest():
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "word " * 50},
        {"role": "assistant", "content": "word " * 50},
        {"role": "user", "content": "and now?"},
    ]
    seen: list[list[str]] = []

    def render(kept):
        seen.append([m["role"] for m in kept])
        return " ".join(m["content"] for m in kept)

    prompt, dropped = chat_prompt(render, str.split, messages, num_ctx=40)
    assert dropped == 2
    assert prompt == ["be", "brief", "and", "now?"]
    assert seen[-1] == ["system", "user"]
    prompt, dropped = chat_prompt(render, str.split, messages, num_ctx=60)
    assert dropped == 1 and seen[-1] == ["system", "assistant", "user"]
    everything, dropped = chat_prompt(render, str.split, messages, num_ctx=500)
    assert dropped == 0 and len(everything) == 104


def test_ollama_messages_take_the_chat_template_shape():
    shaped = template_messages(
        [
            {"role": "assistant", "content": "", "tool_calls": [{"function": {"index": 0, **PARIS["function"]}}]},
            {"role": "tool", "content": "sunny", "tool_name": "get_weather"},
        ]
    )
    assert shaped == [
        {"role": "assistant", "content": "", "tool_calls": [{"type": "function", **PARIS}]},
        {"role": "tool", "content": "sunny", "name": "get_weather"},
    ]


# --- the server reports a real brain's own figures ---------------------------------------------------


class MeasuredBrain:
    wants_template = True

    def __init__(self) -> None:
        self.templates: list[str | None] = []

    def reply(self, model, messages, tools, options, template=None) -> Reply:
        self.templates.append(template)
        return Reply(
            content="one two three four five six seven eight nine ten",
            done_reason="length",
            eval_count=8,
            prompt_eval_count=123,
            load_duration=5_000_000,
            prompt_eval_duration=250_000_000,
            eval_duration=1_000_000_000,
        )


@pytest.mark.parametrize("stream", [False, True])
def test_the_server_reports_what_the_runner_measured(stream):
    brain = MeasuredBrain()
    with run_in_thread(StandinConfig(models=["qwen2.5:7b"]), brain=brain) as standin:
        client = ollama.Client(standin.url)
        request = {
            "model": "qwen2.5:7b",
            "messages": [{"role": "user", "content": "hi"}],
            "options": {"num_predict": 8},
        }
        if stream:
            chunks = list(client.chat(**request, stream=True))
            final, text = chunks[-1], "".join(c.message.content for c in chunks)
        else:
            final = client.chat(**request)
            text = final.message.content
        generated = client.generate(model="qwen2.5:7b", prompt="hi")
    # The brain stopped at num_predict itself: the server sends all it wrote, with its figures.
    assert text == "one two three four five six seven eight nine ten"
    assert (final.done_reason, final.eval_count, final.prompt_eval_count) == ("length", 8, 123)
    assert (final.prompt_eval_duration, final.eval_duration) == (250_000_000, 1_000_000_000)
    assert final.load_duration >= 5_000_000 and final.total_duration >= 1_250_000_000
    assert (generated.done_reason, generated.eval_count, generated.prompt_eval_count) == ("length", 8, 123)
    assert brain.templates and all(t and ".Tools" in t for t in brain.templates)  # the model's TEMPLATE


# --- the real model (REAL_MODEL=1) -------------------------------------------------------------------

realmodel = pytest.mark.realmodel
GREEDY = {"temperature": 0, "seed": 42}


@realmodel
def test_the_imported_gguf_shows_like_an_ollama_import(real_ollama):
    show = httpx.post(f"{real_ollama.url}/api/show", json={"model": real_ollama.model}, timeout=30).json()
    assert show["model_info"]["qwen2.context_length"] == 32768
    assert show["model_info"]["general.architecture"] == "qwen2"
    assert {"completion", "tools"} <= set(show["capabilities"])
    assert show["details"]["quantization_level"] == "Q4_K_M"
    assert "<tool_call>" in show["template"]


@realmodel
def test_the_official_client_chats_with_the_real_model(real_ollama):
    client = real_ollama.client()
    messages = [{"role": "user", "content": "What is the capital of France? Answer in one short sentence."}]
    answer = client.chat(model=real_ollama.model, messages=messages, options={**GREEDY, "num_predict": 48})
    assert "paris" in answer.message.content.lower()
    assert answer.done and answer.done_reason in ("stop", "length")
    assert 0 < answer.eval_count <= 48 and answer.prompt_eval_count > 10
    assert answer.eval_duration > 0 and answer.prompt_eval_duration > 0

    chunks = list(client.chat(model=real_ollama.model, messages=messages, options={**GREEDY, "num_predict": 48},
                              stream=True))  # fmt: skip
    streamed = "".join(chunk.message.content for chunk in chunks)
    assert len(chunks) > 3 and chunks[-1].done and not any(c.done for c in chunks[:-1])
    assert streamed == answer.message.content  # greedy: the same words, now in pieces
    assert chunks[-1].eval_count == answer.eval_count

    ps = client.ps()
    assert [m.model for m in ps.models] == [real_ollama.model]


@realmodel
def test_a_question_that_needs_a_tool_gets_a_call_or_call_text(real_ollama, record_property):
    client = real_ollama.client()
    messages = [{"role": "user", "content": "What is the weather like in Paris right now?"}]
    answer = client.chat(
        model=real_ollama.model, messages=messages, tools=[WEATHER], options={**GREEDY, "num_predict": 96}
    )
    calls = answer.message.tool_calls or []
    if calls:
        form = "message.tool_calls"
        assert calls[0].function.name == "get_weather"
        assert "paris" in str(calls[0].function.arguments.get("city", "")).lower()
    else:
        # The 0.5B model often writes the call as bare JSON, which Ollama 0.12 leaves as text.
        form = "text in content"
        assert "get_weather" in answer.message.content, answer.message.content
    record_property("tool_call_form", form)
    print(f"tool call came as {form}: content={answer.message.content!r} tool_calls={calls!r}")


@realmodel
def test_num_predict_stops_the_model_with_length(real_ollama):
    answer = real_ollama.client().chat(
        model=real_ollama.model,
        messages=[{"role": "user", "content": "Write a long story about a lighthouse keeper."}],
        options={"num_predict": 8},
    )
    assert (answer.done_reason, answer.eval_count) == ("length", 8)
    assert answer.message.content.strip()


@realmodel
def test_a_seed_and_temperature_zero_repeat_the_same_answer(real_ollama):
    client = real_ollama.client()
    messages = [{"role": "user", "content": "Name three colours."}]
    first, second = (
        client.chat(model=real_ollama.model, messages=messages, options={**GREEDY, "num_predict": 32}) for _ in range(2)
    )
    assert first.message.content and first.message.content == second.message.content


@realmodel
def test_a_conversation_longer_than_num_ctx_loses_its_oldest_messages(real_ollama):
    history = []
    for i in range(12):
        history += [
            {"role": "user", "content": f"Note {i}: " + "the quick brown fox jumps over the lazy dog " * 8},
            {"role": "assistant", "content": f"Noted {i}."},
        ]
    messages = [{"role": "system", "content": "You are terse."}, *history, {"role": "user", "content": "Say OK."}]
    answer = real_ollama.client().chat(
        model=real_ollama.model, messages=messages, options={**GREEDY, "num_ctx": 512, "num_predict": 8}
    )
    # The whole history is ~1,300 tokens: only what fits 512 was evaluated, and the model answered.
    assert 100 < answer.prompt_eval_count <= 512
    assert answer.message.content.strip()
    assert any("dropped" in line for line in real_ollama.output)


def test_format_constrains_the_reply_to_the_json_schema(real_ollama):
    # Structured output, as Ollama's runner does it with a grammar: what the pipeline uses to ask a
    # model for a required tool call it skipped. Even the 0.5B model answers with the schema's shape.
    schema = {
        "type": "object",
        "required": ["city", "month"],
        "properties": {"city": {"type": "string"}, "month": {"type": "integer", "minimum": 1, "maximum": 12}},
    }
    messages = [{"role": "user", "content": "I go to Lisbon in May. Give the city and the month number as JSON."}]
    answer = real_ollama.client().chat(
        model=real_ollama.model, messages=messages, format=schema, options={**GREEDY, "num_predict": 64}
    )
    reply = json.loads(answer.message.content)
    assert set(reply) == {"city", "month"} and isinstance(reply["month"], int), reply
    assert "lisbo" in reply["city"].lower()  # Lisbon, or Lisboa
    # (the official client refuses such a format itself; Ollama's own answer, over HTTP)
    body = {"model": real_ollama.model, "messages": messages, "format": "yaml", "stream": False}
    refused = httpx.post(f"{real_ollama.url}/api/chat", json=body, timeout=60)
    assert refused.status_code == 500 and "invalid format" in refused.json()["error"]

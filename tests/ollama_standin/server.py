"""The HTTP side of the stand-in: Ollama's REST API as served by its Go server (gin).

Shapes, status codes and error texts follow ollama/ollama server/routes.go, server/images.go
and api/types.go of the 0.12 line (see DEFAULT_VERSION in config.py). Where the stand-in
deliberately mirrors a quirk, the comment names the upstream behaviour.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import random
import re
import string
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .brain import Brain, Reply, default_brain
from .catalog import ModelInfo, ModelName
from .config import StandinConfig
from .create import DIGEST, ERR_FILE_PATH, ERR_INVALID_DIGEST, ERR_INVALID_NAME, CreateError, Creation, valid_fs_path
from .modelfile import Command, Modelfile
from .state import InstalledModel, LoadedModel, RequestRecord, StandinState
from .wire import DurationError, go_json, go_time, parse_keep_alive

log = logging.getLogger("ollama_standin")

_NS = 1_000_000_000


# --- responses ----------------------------------------------------------------------------


class GoJSONResponse(Response):
    """gin's c.JSON: Go-encoded body, "application/json; charset=utf-8"."""

    media_type = "application/json; charset=utf-8"

    def render(self, content: Any) -> bytes:
        return go_json(content)


def error_response(status: int, message: str) -> GoJSONResponse:
    return GoJSONResponse({"error": message}, status_code=status)


def _text(body: str, status: int = 200, content_type: str = "text/plain; charset=utf-8") -> Response:
    return Response(body, status_code=status, headers={"Content-Type": content_type})


class _Abort:
    """Marker an NDJSON producer yields to drop the connection like a crashed server."""


ABORT = _Abort()

Producer = Callable[[asyncio.Event], AsyncGenerator["bytes | _Abort", None]]


class NDJSONStream:
    """Ollama's streamResponse: one JSON object per line, Content-Type application/x-ndjson.

    Returning from the ASGI call without the final more_body=False message makes uvicorn
    close the socket without the chunked terminator: the client sees a broken stream, as it
    would if Ollama died mid-reply.
    """

    def __init__(self, produce: Producer) -> None:
        self.produce = produce

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        disconnected = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            disconnected.set()

        watcher = asyncio.create_task(watch())
        items = self.produce(disconnected)
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/x-ndjson")],
                }
            )
            async for item in items:
                if isinstance(item, _Abort):
                    return
                await send({"type": "http.response.body", "body": item, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            watcher.cancel()
            await items.aclose()  # run the producer's cleanup (model release) right away


class TruncatedJSON:
    """A non-streamed JSON answer cut off mid-body (abort_after_chunks with stream=false)."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [
            (b"content-type", b"application/json; charset=utf-8"),
            (b"content-length", str(len(self.body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": self.body[: len(self.body) // 2], "more_body": True})


# What a handler may return: a Starlette response or one of the raw ASGI answers above.
Answer = Response | NDJSONStream | TruncatedJSON


class _DropIncompleteResponseLog(logging.Filter):
    """uvicorn logs an intentional abort as an error; keep test output quiet about it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "ASGI callable returned without completing response."


_abort_filter = _DropIncompleteResponseLog()


# --- request parsing ----------------------------------------------------------------------


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


_GO_KIND = {dict: "object", list: "array", str: "string", bool: "bool", int: "number", float: "number"}


def _go_kind(value: Any) -> str:
    return _GO_KIND.get(type(value), "value")


async def read_body(request: Request, go_type: str) -> dict[str, Any]:
    """gin's ShouldBindJSON: an empty body is io.EOF, bad JSON is a decoder error, both 400."""
    raw = await request.body()
    if not raw.strip():
        raise BadRequest("missing request body")
    try:
        body = json.loads(raw)
    except json.JSONDecodeError as exc:
        if exc.pos >= len(exc.doc.rstrip()):
            raise BadRequest("unexpected EOF") from None
        char = exc.doc[exc.pos]
        raise BadRequest(f"invalid character '{char}' looking for beginning of value") from None
    if not isinstance(body, dict):
        raise BadRequest(f"json: cannot unmarshal {_go_kind(body)} into Go value of type {go_type}")
    return body


def _expect(value: Any, kind: type, field_path: str, go_type: str) -> None:
    if (value is not None and not isinstance(value, kind)) or (kind is int and isinstance(value, bool)):
        raise BadRequest(
            f"json: cannot unmarshal {_go_kind(value)} into Go struct field {field_path} of type {go_type}"
        )


def validate_messages(messages: Any) -> list[dict[str, Any]]:
    """What decoding into []api.Message rejects (Go's json errors, verbatim in form)."""
    _expect(messages, list, "ChatRequest.messages", "[]api.Message")
    result: list[dict[str, Any]] = []
    for message in messages or []:
        _expect(message, dict, "ChatRequest.messages", "api.Message")
        if message is None:
            message = {}
        for key in ("role", "content", "thinking", "tool_name"):
            _expect(message.get(key), str, f"Message.messages.{key}", "string")
        _expect(message.get("tool_calls"), list, "Message.messages.tool_calls", "[]api.ToolCall")
        for call in message.get("tool_calls") or []:
            _expect(call, dict, "Message.messages.tool_calls", "api.ToolCall")
            function = (call or {}).get("function")
            _expect(function, dict, "ToolCall.messages.tool_calls.function", "api.ToolCallFunction")
            arguments = (function or {}).get("arguments")
            # api.ToolCallFunctionArguments is a map: a model's stringified arguments echoed
            # back in the history make Ollama reject the whole request.
            _expect(
                arguments,
                dict,
                "ToolCallFunction.messages.tool_calls.function.arguments",
                "api.ToolCallFunctionArguments",
            )
        normalized = dict(message)
        normalized["role"] = str(message.get("role") or "").lower()  # Message.UnmarshalJSON lowercases
        result.append(normalized)
    return result


def _int_option(options: dict[str, Any], key: str) -> int | None:
    """api.Options.FromMap: numbers become ints (JSON floats truncate), anything else fails."""
    if key not in options or options[key] is None:
        return None
    value = options[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRequest(f'option "{key}" must be of type integer', status=500)
    return int(value)


def _think_requested(value: Any) -> bool:
    return bool(value) if not isinstance(value, str) else value != ""


# --- token accounting ---------------------------------------------------------------------


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def prompt_tokens(messages: list[dict[str, Any]], tools: list[Any] | None) -> int:
    """A plausible prompt_eval_count: ~4 characters per token plus template overhead."""
    total = 0
    for message in messages:
        total += 4 + estimate_tokens(str(message.get("content") or ""))
        if message.get("tool_calls"):
            total += estimate_tokens(json.dumps(message["tool_calls"]))
    if tools:
        total += estimate_tokens(json.dumps(tools))
    return max(1, total)


_TOKEN = re.compile(r"\s*\S+")


def split_tokens(content: str) -> list[str]:
    """Word-sized chunks whose concatenation is exactly `content` (leading whitespace kept)."""
    pieces = _TOKEN.findall(content)
    rest = content[sum(len(p) for p in pieces) :]
    if rest:
        if pieces:
            pieces[-1] += rest
        else:
            pieces = [rest]
    return pieces


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version)[:3])


def _sorted_maps(value: Any) -> Any:
    """Go marshals map[string]any with sorted keys (tool arguments are such a map in 0.12)."""
    if isinstance(value, dict):
        return {k: _sorted_maps(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted_maps(v) for v in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return int(value)  # Go prints float64(2) as 2, not 2.0
    return value


def _tool_call_id() -> str:
    # server/routes.go toolCallId(): "call_" + 8 characters of [a-z0-9].
    return "call_" + "".join(random.choices(string.ascii_lowercase + string.digits, k=8))


def wire_tool_calls(calls: list[dict[str, Any]], version: str) -> list[dict[str, Any]]:
    """Ollama's api.ToolCall JSON. `index` sits inside `function`; an `id` exists from 0.12.10
    (ollama/ollama#12956). String arguments pass through untouched: a broken model's output."""
    wired = []
    for index, call in enumerate(calls):
        function = call.get("function", call)
        arguments = function.get("arguments", {})
        entry: dict[str, Any] = {}
        if _version_tuple(version) >= (0, 12, 10):
            entry["id"] = call.get("id") or _tool_call_id()
        entry["function"] = {
            "index": index,
            "name": function.get("name", ""),
            "arguments": arguments if isinstance(arguments, str) else _sorted_maps(arguments),
        }
        wired.append(entry)
    return wired


@dataclass
class Plan:
    """What one generation emits, decided before any byte is sent."""

    pieces: list[str]
    tool_calls: list[dict[str, Any]]
    tool_tokens: int
    done_reason: str
    eval_count: int

    @property
    def content(self) -> str:
        return "".join(self.pieces)


def plan_generation(
    reply: Reply, tools_offered: bool, options: dict[str, Any], num_predict: int | None, version: str
) -> Plan:
    content = reply.content
    calls = list(reply.tool_calls)
    stops = [s for s in options.get("stop") or [] if isinstance(s, str) and s]
    cut = min((i for i in (content.find(s) for s in stops) if i >= 0), default=-1)
    if cut >= 0:
        # The runner ends the reply before a stop sequence (done_reason stays "stop").
        content, calls = content[:cut], []
    if calls and not tools_offered:
        # Without `tools` Ollama runs no tool parser: a model's tool-call output is just text.
        rendered = [
            {"name": c.get("function", c).get("name"), "arguments": c.get("function", c).get("arguments")}
            for c in calls
        ]
        content += json.dumps(rendered[0] if len(rendered) == 1 else rendered)
        calls = []
    pieces = split_tokens(content)
    wired = wire_tool_calls(calls, version) if calls else []
    tool_tokens = estimate_tokens(json.dumps(wired)) if wired else 0
    if reply.eval_count is not None:
        # A real model: it already stopped where its runner did and counted its own tokens.
        return Plan(pieces, wired, tool_tokens, reply.done_reason or "stop", max(1, reply.eval_count))
    done_reason = reply.done_reason or "stop"
    eval_count = len(pieces) + tool_tokens
    # The runner stops with "length" once num_predict tokens are out (only positive values
    # limit; -1 and -2 mean unlimited / fill the context).
    if num_predict is not None and num_predict > 0 and eval_count > num_predict:
        done_reason = "length"
        pieces = pieces[:num_predict]
        wired, tool_tokens = [], 0
        eval_count = num_predict
    return Plan(pieces, wired, tool_tokens, done_reason, max(1, eval_count))


# --- generation ---------------------------------------------------------------------------


@dataclass
class Timings:
    start: int  # perf_counter_ns at request arrival
    loaded: int  # the scheduler handed out the (loaded) model
    slot: int = 0  # a parallel slot was free: prompt evaluation starts
    first: int = 0  # end of prompt evaluation
    end: int = 0
    measured: Reply | None = None  # a real model's own durations, when it reports them

    def metrics(self, prompt_count: int, eval_count: int) -> dict[str, int]:
        # Field order of api.Metrics; every duration is nanoseconds and strictly positive,
        # as a real runner's always are. As in Ollama, load_duration is the scheduler's wait
        # (loading included), the prompt and eval durations are the runner's own, and only
        # total_duration also holds the wait for a parallel slot (llm/server.go acquires it
        # after the load, and the runner's timings start once it has it).
        load = max(1, self.loaded - self.start)
        prompt = max(1, self.first - (self.slot or self.loaded))
        evaluation = max(1, self.end - self.first)
        real = self.measured
        if real is not None:
            # The model ran inside the brain, before the (unpaced) stream: its own clock counts.
            load += real.load_duration or 0
            prompt = max(1, real.prompt_eval_duration) if real.prompt_eval_duration is not None else prompt
            evaluation = max(1, real.eval_duration) if real.eval_duration is not None else evaluation
        return {
            "total_duration": max(load + prompt + evaluation, self.end - self.start),
            "load_duration": load,
            "prompt_eval_count": prompt_count,
            "prompt_eval_duration": prompt,
            "eval_count": eval_count,
            "eval_duration": evaluation,
        }


class Pacer:
    """Sleeps so a reply takes as long as the configured model would.

    Prompt evaluation: first_token_delay plus prompt_count / prompt_tokens_per_second. Then
    tokens come out at tokens_per_second, every parallel slot at the full rate.
    """

    def __init__(self, config: StandinConfig, prompt_count: int) -> None:
        self.tps = config.tokens_per_second
        rate = config.prompt_tokens_per_second
        self.prompt_s = config.first_token_delay + (prompt_count / rate if rate > 0 else 0.0)
        self.origin = 0.0

    async def prompt_evaluated(self) -> None:
        if self.prompt_s:
            await asyncio.sleep(self.prompt_s)
        self.origin = time.perf_counter()

    async def until_token(self, count: int) -> None:
        """Wait until `count` tokens would have been generated (absolute schedule, no drift)."""
        if self.tps <= 0:
            await asyncio.sleep(0)
            return
        delay = self.origin + count / self.tps - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)


# sched.go's ErrMaxQueue: GetRunner's answer when the queue is full; routes.go sends it as 503.
ERR_MAX_QUEUE = "server busy, please try again.  maximum pending requests exceeded"


class Scheduler:
    """How Ollama 0.12 shares a model between requests.

    A model loads once, however many requests ask for it at the same time. To generate, a
    request then needs one of the runner's OLLAMA_NUM_PARALLEL slots (the semaphore in
    llm/server.go's Completion); the others wait for a free slot, first come first served. At
    most OLLAMA_MAX_QUEUE requests wait; one more is refused with 503.
    """

    def __init__(self, state: StandinState) -> None:
        self.state = state
        self.slots: dict[str, asyncio.Semaphore] = {}
        self.loads: dict[str, asyncio.Lock] = {}
        self.admitted: dict[str, int] = {}  # requests holding a lease, running or waiting, per model

    async def get_runner(self, entry: InstalledModel, num_ctx: int, keep_alive_ns: int) -> Lease:
        key, config = entry.name.key, self.state.config
        # Counted on admission, not when a request reaches its slot: requests arriving together
        # queue behind each other even before the first of them starts generating.
        if self.admitted.get(key, 0) - config.num_parallel >= config.max_queue:
            raise BadRequest(ERR_MAX_QUEUE, status=503)
        self.admitted[key] = self.admitted.get(key, 0) + 1
        try:
            async with self.loads.setdefault(key, asyncio.Lock()):
                loaded = await _acquire(self.state, entry, num_ctx, keep_alive_ns)
        except BaseException:
            self.admitted[key] -= 1
            raise
        return Lease(self, key, loaded, keep_alive_ns)


class Lease:
    """One request's hold on a loaded model: waiting for a slot, generating, released."""

    def __init__(self, scheduler: Scheduler, key: str, loaded: LoadedModel, keep_alive_ns: int) -> None:
        self.scheduler = scheduler
        self.key = key
        self.loaded = loaded
        self.keep_alive_ns = keep_alive_ns
        self.slots = scheduler.slots.setdefault(key, asyncio.Semaphore(scheduler.state.config.num_parallel))
        self.has_slot = False
        self.released = False

    async def slot(self, disconnected: asyncio.Event | None = None) -> bool:
        """Wait for a free slot; False when the client went away first (the request is dropped)."""
        acquire = asyncio.ensure_future(self.slots.acquire())
        gone = asyncio.ensure_future(disconnected.wait()) if disconnected is not None else None
        try:
            await asyncio.wait({acquire} | ({gone} if gone else set()), return_when=asyncio.FIRST_COMPLETED)
        finally:
            if gone is not None:
                gone.cancel()
            if not acquire.done():
                acquire.cancel()
        self.has_slot = acquire.done() and not acquire.cancelled()
        if disconnected is not None and disconnected.is_set():
            self.release()
        return self.has_slot

    def release(self) -> None:
        """The request is over: free its slot and its place, start the model's keep-alive timer."""
        if self.has_slot:
            self.has_slot = False
            self.slots.release()
        if not self.released:
            self.released = True
            self.scheduler.admitted[self.key] -= 1
            self.scheduler.state.release(self.loaded, self.keep_alive_ns)


async def _acquire(state: StandinState, entry: InstalledModel, num_ctx: int, keep_alive_ns: int) -> LoadedModel:
    """The scheduler's GetRunner: load on first use or when the context size changes."""
    loaded = state.loaded_model(entry)
    if loaded is None or loaded.context_length != num_ctx:
        if state.config.load_delay:
            await asyncio.sleep(state.config.load_delay)
        loaded = state.mark_loaded(entry, num_ctx, keep_alive_ns)
    state.acquire(loaded, keep_alive_ns)
    return loaded


def _details(info: ModelInfo, parent_model: str = "") -> dict[str, Any]:
    # api.ModelDetails; parent_model has no omitempty, so it is always present. /api/show
    # fills it from the model layer's "from"; /api/tags and /api/ps leave it empty.
    return {
        "parent_model": parent_model,
        "format": "gguf",
        "family": info.family,
        # A created model's config.model_families is what was appended (null when nothing was).
        "families": (list(info.families) or None) if info.created else info.all_families,
        "parameter_size": info.parameter_size,
        "quantization_level": info.quantization_level,
    }


class Handlers:
    def __init__(self, state: StandinState) -> None:
        self.state = state
        self.config = state.config
        self.scheduler = Scheduler(state)

    # -- simple endpoints ------------------------------------------------------------------

    async def root(self, request: Request) -> Response:
        return _text("Ollama is running")

    async def version(self, request: Request) -> Response:
        return GoJSONResponse({"version": self.config.version})

    async def tags(self, request: Request) -> Response:
        models = [
            {
                "name": m.name.short,
                "model": m.name.short,
                "modified_at": go_time(m.modified_ns, utc=False),
                "size": m.image.size,
                "digest": m.image.digest,
                "details": _details(m.info),
            }
            for m in self.state.list_installed()
        ]
        return GoJSONResponse({"models": models})

    async def ps(self, request: Request) -> Response:
        models = []
        for loaded in self.state.running():
            entry = loaded.model
            size = loaded.memory_size()
            models.append(
                {
                    "name": entry.name.short,
                    "model": entry.name.short,
                    "size": size,
                    "digest": entry.image.digest,
                    "details": _details(entry.info),
                    "expires_at": go_time(loaded.expires_ns, utc=False),
                    "size_vram": size if self.config.processor == "gpu" else 0,
                    "context_length": loaded.context_length,
                }
            )
        return GoJSONResponse({"models": models})

    def _lookup(self, raw: str) -> tuple[ModelName | None, InstalledModel | None]:
        name = ModelName.parse(raw)
        return name, (self.state.resolve(name) if name else None)

    async def show(self, request: Request) -> Response:
        body = await read_body(request, "api.ShowRequest")
        raw = body.get("model") or body.get("name") or ""
        if not raw:
            return error_response(400, "model is required")
        name, entry = self._lookup(raw)
        if name is None:
            return error_response(400, "invalid model name")
        if entry is None:
            return error_response(404, f"model '{raw}' not found")
        info = entry.info
        weights = next((b for b in entry.image.layers if b.media_type == "application/vnd.ollama.image.model"), None)
        weights = weights or entry.image.layers[0]
        # Model.String(): FROM, TEMPLATE, SYSTEM, parameters, LICENSE, MESSAGE, each through
        # parser.Command.String() (which quotes only values with newlines or edge spaces).
        commands = [Command("model", self.state.blob_location(weights.digest)), Command("template", info.template)]
        if info.system:
            commands.append(Command("system", info.system))
        parameters = []
        for key, value in info.params.items():
            for item in value if isinstance(value, list) else [value]:
                commands.append(Command(key, _go_v(item)))
                parameters.append(f"{key:<30} {_go_sharp_v(item)}")
        for text in info.licenses or ((info.license,) if info.license else ()):
            commands.append(Command("license", text))
        for message in info.messages:
            commands.append(Command("message", f"{message.get('role', '')}: {message.get('content', '')}"))
        modelfile = (
            '# Modelfile generated by "ollama show"\n'
            "# To build a new Modelfile based on this, replace FROM with:\n"
            f"# FROM {entry.name.short}\n\n" + str(Modelfile(commands))
        )
        # api.ShowResponse field order: license, modelfile, parameters, template, system, ...
        response: dict[str, Any] = {}
        if info.license:
            response["license"] = info.license
        response["modelfile"] = modelfile
        if parameters:
            response["parameters"] = "\n".join(parameters)
        response["template"] = info.template
        if info.system:
            response["system"] = info.system
        response["details"] = _details(info, info.parent_model)
        if info.messages:
            response["messages"] = [{"role": m.get("role", ""), "content": m.get("content", "")} for m in info.messages]
        response["model_info"] = dict(sorted(info.model_info().items()))  # Go sorts map keys
        response["capabilities"] = list(info.capabilities)
        response["modified_at"] = go_time(entry.modified_ns, utc=False)
        return GoJSONResponse(response)

    async def delete(self, request: Request) -> Response:
        body = await read_body(request, "api.DeleteRequest")
        raw = body.get("model") or body.get("name") or ""
        name, entry = self._lookup(raw)
        if name is None:
            return error_response(400, f'name "{raw}" is invalid')
        if entry is None:
            return error_response(404, f"model '{raw}' not found")
        self.state.uninstall(entry)
        return Response(status_code=200)  # DeleteHandler writes no body

    async def copy(self, request: Request) -> Response:
        body = await read_body(request, "api.CopyRequest")
        source, destination = str(body.get("source") or ""), str(body.get("destination") or "")
        src_name, entry = self._lookup(source)
        if src_name is None:
            return error_response(400, f'source "{source}" is invalid')
        dst_name = ModelName.parse(destination)
        if dst_name is None:
            return error_response(400, f'destination "{destination}" is invalid')
        if entry is None:
            return error_response(404, f'model "{source}" not found')
        self.state.install(dst_name, entry.image)
        return Response(status_code=200)

    # -- blobs & create --------------------------------------------------------------------

    async def head_blob(self, request: Request) -> Response:
        """HeadBlobHandler: 200 if the blob file exists, else 404 (JSON error, no body on HEAD)."""
        digest = request.path_params["digest"]
        if not DIGEST.match(digest):
            return error_response(400, ERR_INVALID_DIGEST)
        if not self.state.has_blob(digest):
            return error_response(404, f'blob "{digest}" not found')
        return Response(status_code=200)

    async def create_blob(self, request: Request) -> Response:
        """CreateBlobHandler: 200 if already there, 201 once stored, 400 on a digest mismatch."""
        digest = request.path_params["digest"]
        if not DIGEST.match(digest):
            return error_response(400, ERR_INVALID_DIGEST)
        if self.state.has_blob(digest):
            # Ollama answers without reading the body; the stand-in drains it so the client
            # can finish sending without a connection reset.
            async for _ in request.stream():
                pass
            return Response(status_code=200)
        actual = await self.state.receive_blob(request.stream())
        if actual != digest:
            return error_response(400, f'digest mismatch, expected "{digest}", got "{actual}"')
        return Response(status_code=201)

    async def create(self, request: Request) -> Answer:
        """CreateHandler (server/create.go of the 0.12 line)."""
        body = await read_body(request, "api.CreateRequest")
        for key in ("model", "name", "from", "template", "system", "quantize", "quantization", "remote_host"):
            _expect(body.get(key), str, f"CreateRequest.{key}", "string")
        for key in ("files", "adapters"):
            _expect(body.get(key), dict, f"CreateRequest.{key}", "map[string]string")
            for value in (body.get(key) or {}).values():
                _expect(value, str, f"CreateRequest.{key}", "string")
        _expect(body.get("parameters"), dict, "CreateRequest.parameters", "map[string]interface {}")
        _expect(body.get("messages"), list, "CreateRequest.messages", "[]api.Message")
        for path in body.get("files") or {}:
            if not valid_fs_path(path):
                return error_response(400, ERR_FILE_PATH)
        name = ModelName.parse(body.get("model") or body.get("name") or "")
        if name is None:
            return error_response(400, ERR_INVALID_NAME)
        existing = self.state.resolve(name)  # getExistingName: keep the installed spelling
        if existing is not None:
            name = existing.name
        events = Creation(self.state, body, name, self._pull_events).events()
        return await _progress_answer(events, stream=body.get("stream") is not False)

    async def not_implemented(self, request: Request) -> Response:
        return error_response(501, f"{request.url.path} is not implemented by the ollama stand-in")

    # -- pull ------------------------------------------------------------------------------

    async def pull(self, request: Request) -> Answer:
        body = await read_body(request, "api.PullRequest")
        raw = body.get("model") or body.get("name") or ""
        name = ModelName.parse(raw)
        if name is None:
            return error_response(400, "invalid model name")
        stream = body.get("stream") is not False
        events = self._pull_events(name)
        if stream:

            async def produce(disconnected: asyncio.Event) -> AsyncGenerator[bytes | _Abort, None]:
                async for event in events:
                    if disconnected.is_set():
                        return
                    yield go_json(event) + b"\n"

            return NDJSONStream(produce)
        # waitForStream: only the last progress is returned; an error becomes a 500.
        last: dict[str, Any] = {}
        async for event in events:
            if "error" in event:
                return error_response(500, event["error"])
            last = event
        return GoJSONResponse(last)

    async def _pull_events(self, name: ModelName) -> AsyncIterator[dict[str, Any]]:
        step = self.config.pull_step_delay
        yield {"status": "pulling manifest"}
        if not self.state.is_pullable(name):
            # images.go PullModel wraps the registry's 404 (os.ErrNotExist) like this.
            yield {"error": "pull model manifest: file does not exist"}
            return
        existing = self.state.resolve(name)
        image = existing.image if existing else self.state.image_for(name)
        for blob in image.blobs():
            status = f"pulling {blob.digest[7:19]}"
            if self.state.has_blob(blob.digest):
                yield {"status": status, "digest": blob.digest, "total": blob.size, "completed": blob.size}
                continue
            fractions = (0.0, 0.25, 0.5, 0.75, 1.0) if blob.size > 1_000_000 else (1.0,)
            for fraction in fractions:
                await asyncio.sleep(step)
                event: dict[str, Any] = {"status": status, "digest": blob.digest, "total": blob.size}
                completed = int(blob.size * fraction)
                if completed:  # ProgressResponse.Completed is omitempty
                    event["completed"] = completed
                yield event
        await asyncio.sleep(step)
        yield {"status": "verifying sha256 digest"}
        yield {"status": "writing manifest"}
        await run_in_threadpool(self.state.install, name, image)
        yield {"status": "success"}

    # -- chat & generate -------------------------------------------------------------------

    async def chat(self, request: Request) -> Answer:
        timings = Timings(start=time.perf_counter_ns(), loaded=0)
        body = await read_body(request, "api.ChatRequest")
        raw = body.get("model") or ""
        name, entry = self._lookup(raw) if raw else (None, None)
        if name is None:
            return error_response(400, "model is required")
        if entry is None:
            return error_response(404, f"model '{raw}' not found")
        messages = validate_messages(body.get("messages"))
        tools = body.get("tools") or []
        _expect(body.get("tools"), list, "ChatRequest.tools", "api.Tools")
        options = body.get("options") or {}
        _expect(body.get("options"), dict, "ChatRequest.options", "map[string]interface {}")
        keep_alive = self._keep_alive(body)
        # Only an explicit keep_alive of 0 with no messages means "unload" (ChatHandler).
        if not messages and body.get("keep_alive") is not None and keep_alive == 0:
            self.state.unload(entry)
            return GoJSONResponse(self._chat_frame(raw, "", done_reason="unload", done=True))
        if _think_requested(body.get("think")) and "thinking" not in entry.info.capabilities:
            return error_response(400, f'"{raw}" does not support thinking')
        missing = [c for c in (["completion"] + (["tools"] if tools else [])) if c not in entry.info.capabilities]
        if missing == ["completion"]:
            return error_response(400, f'"{raw}" does not support chat')
        if missing:
            # scheduleRunner: fmt.Errorf("%s %w", name, "does not support <caps>")
            return error_response(400, f"{name.full} does not support {' '.join(missing)}")
        num_ctx = _int_option(options, "num_ctx") or self.config.default_num_ctx
        num_predict = _int_option(options, "num_predict")
        lease = await self.scheduler.get_runner(entry, num_ctx, keep_alive)
        timings.loaded = time.perf_counter_ns()
        if not messages:
            lease.release()
            return GoJSONResponse(self._chat_frame(raw, "", done_reason="load", done=True))
        try:
            reply = await run_in_threadpool(self._ask_brain, entry, raw, messages, tools or None, dict(options),
                                            body.get("format"))  # fmt: skip
        except Exception:
            lease.release()
            raise
        if reply.error is not None:
            lease.release()
            return error_response(*reply.error)
        plan = plan_generation(reply, bool(tools), options, num_predict, self.config.version)
        if reply.prompt_eval_count is not None:
            prompt_count = reply.prompt_eval_count
        else:
            prompt_count = min(prompt_tokens(messages, tools), num_ctx)  # longer prompts get truncated
        timings.measured = reply

        def frame(content: str, tool_calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
            return self._chat_frame(raw, content, tool_calls=tool_calls)

        def final(content: str, tool_calls: list[dict[str, Any]] | None) -> dict[str, Any]:
            return self._chat_frame(
                raw,
                content,
                tool_calls=tool_calls,
                done_reason=plan.done_reason,
                done=True,
                metrics=timings.metrics(prompt_count, plan.eval_count),
            )

        return await self._respond(body, plan, prompt_count, timings, lease, reply, frame, final)

    async def generate(self, request: Request) -> Answer:
        timings = Timings(start=time.perf_counter_ns(), loaded=0)
        body = await read_body(request, "api.GenerateRequest")
        raw = body.get("model") or ""
        name, entry = self._lookup(raw) if raw else (None, None)
        if name is None or entry is None:
            # GenerateHandler answers 404 for invalid names too ("keeping with what the API
            # currently returns").
            return error_response(404, f"model '{raw}' not found")
        for key in ("prompt", "system", "suffix", "template"):
            _expect(body.get(key), str, f"GenerateRequest.{key}", "string")
        options = body.get("options") or {}
        _expect(body.get("options"), dict, "GenerateRequest.options", "map[string]interface {}")
        prompt, system = body.get("prompt") or "", body.get("system") or ""
        keep_alive = self._keep_alive(body)
        if not prompt and body.get("keep_alive") is not None and keep_alive == 0:
            self.state.unload(entry)
            return GoJSONResponse(
                {"model": raw, "created_at": go_time(), "response": "", "done": True, "done_reason": "unload"}
            )
        if body.get("raw") and (body.get("template") or system or body.get("context")):
            return error_response(400, "raw mode does not support template, system, or context")
        if _think_requested(body.get("think")) and "thinking" not in entry.info.capabilities:
            return error_response(400, f'"{raw}" does not support thinking')
        missing = [
            c for c in (["completion"] + (["insert"] if body.get("suffix") else [])) if c not in entry.info.capabilities
        ]
        if missing == ["completion"]:
            return error_response(400, f'"{raw}" does not support generate')
        if missing:
            return error_response(400, f"{name.full} does not support {' '.join(missing)}")
        num_ctx = _int_option(options, "num_ctx") or self.config.default_num_ctx
        num_predict = _int_option(options, "num_predict")
        lease = await self.scheduler.get_runner(entry, num_ctx, keep_alive)
        timings.loaded = time.perf_counter_ns()
        if not prompt:
            lease.release()
            return GoJSONResponse(
                {"model": raw, "created_at": go_time(), "response": "", "done": True, "done_reason": "load"}
            )
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        try:
            reply = await run_in_threadpool(self._ask_brain, entry, raw, messages, None, dict(options),
                                            body.get("format"))  # fmt: skip
        except Exception:
            lease.release()
            raise
        if reply.error is not None:
            lease.release()
            return error_response(*reply.error)
        plan = plan_generation(reply, False, options, num_predict, self.config.version)
        if reply.prompt_eval_count is not None:
            prompt_count = reply.prompt_eval_count
        else:
            prompt_count = min(prompt_tokens(messages, None), num_ctx)
        timings.measured = reply

        def frame(content: str, tool_calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
            return {"model": raw, "created_at": go_time(), "response": content, "done": False}

        def final(content: str, tool_calls: list[dict[str, Any]] | None) -> dict[str, Any]:
            # GenerateResponse order: ..., done, done_reason, context, metrics.
            out: dict[str, Any] = {
                "model": raw,
                "created_at": go_time(),
                "response": content,
                "done": True,
                "done_reason": plan.done_reason,
            }
            if not body.get("raw"):
                out["context"] = _context_tokens(prompt + plan.content, prompt_count + plan.eval_count)
            out.update(timings.metrics(prompt_count, plan.eval_count))
            return out

        return await self._respond(body, plan, prompt_count, timings, lease, reply, frame, final)

    def _ask_brain(
        self,
        entry: InstalledModel,
        raw: str,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        options: dict[str, Any],
        format: Any = None,
    ) -> Reply:
        """Brain.reply (in a worker thread); brains that want them also get the model's TEMPLATE
        and the request's `format` ("json" or a JSON schema: structured output)."""
        brain = self.state.brain
        extra: dict[str, Any] = {}
        if getattr(brain, "wants_template", False):
            extra["template"] = entry.info.template
        if format not in (None, "") and not (format == "json" or isinstance(format, dict)):
            # llm/server.go Completion: anything else is refused before the runner sees it.
            expected = 'expected "json" or a valid JSON Schema object'
            return Reply(error=(500, f"invalid format: {json.dumps(format)}; {expected}"))
        if getattr(brain, "accepts_format", False):
            extra["format"] = format or None
        return brain.reply(raw, messages, tools, options, **extra)

    def _keep_alive(self, body: dict[str, Any]) -> int:
        try:
            return parse_keep_alive(body.get("keep_alive"), int(self.config.default_keep_alive * _NS))
        except DurationError as exc:
            raise BadRequest(str(exc)) from None

    @staticmethod
    def _chat_frame(
        model: str,
        content: str,
        *,
        tool_calls: list[dict[str, Any]] | None = None,
        done_reason: str | None = None,
        done: bool = False,
        metrics: dict[str, int] | None = None,
    ) -> dict[str, Any]:
        # api.ChatResponse field order: model, created_at, message, done_reason, done, metrics.
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if tool_calls:
            message["tool_calls"] = tool_calls
        frame: dict[str, Any] = {"model": model, "created_at": go_time(), "message": message}
        if done_reason:
            frame["done_reason"] = done_reason
        frame["done"] = done
        if metrics:
            frame.update(metrics)
        return frame

    async def _respond(
        self,
        body: dict[str, Any],
        plan: Plan,
        prompt_count: int,
        timings: Timings,
        lease: Lease,
        reply: Reply,
        frame: Callable[..., dict[str, Any]],
        final: Callable[[str, list[dict[str, Any]] | None], dict[str, Any]],
    ) -> Answer:
        pacer = Pacer(self.config, prompt_count)
        abort_after = reply.abort_after_chunks

        if body.get("stream") is False:
            try:
                await lease.slot()
                timings.slot = time.perf_counter_ns()
                await pacer.prompt_evaluated()
                timings.first = time.perf_counter_ns()
                await pacer.until_token(len(plan.pieces) + plan.tool_tokens)
                timings.end = time.perf_counter_ns()
            finally:
                lease.release()
            payload = go_json(final(plan.content, plan.tool_calls or None))
            if abort_after is not None:
                return TruncatedJSON(payload)
            return Response(payload, media_type="application/json; charset=utf-8")

        async def produce(disconnected: asyncio.Event) -> AsyncGenerator[bytes | _Abort, None]:
            sent = 0
            try:
                if not await lease.slot(disconnected):
                    return
                timings.slot = time.perf_counter_ns()
                await pacer.prompt_evaluated()
                timings.first = time.perf_counter_ns()
                for index, piece in enumerate(plan.pieces):
                    await pacer.until_token(index + 1)
                    if disconnected.is_set():
                        return
                    if abort_after is not None and sent >= abort_after:
                        yield ABORT
                        return
                    yield go_json(frame(piece)) + b"\n"
                    sent += 1
                if plan.tool_calls:
                    # Tool calls arrive whole, in one chunk with empty content, once the
                    # parser has seen the complete call.
                    await pacer.until_token(len(plan.pieces) + plan.tool_tokens)
                    if abort_after is not None and sent >= abort_after:
                        yield ABORT
                        return
                    yield go_json(frame("", plan.tool_calls)) + b"\n"
                    sent += 1
                if abort_after is not None:
                    yield ABORT  # never reaches the final chunk
                    return
                timings.end = time.perf_counter_ns()
                yield go_json(final("", None)) + b"\n"
            finally:
                lease.release()

        return NDJSONStream(produce)


def _context_tokens(text: str, count: int) -> list[int]:
    """A stand-in for the deprecated `context` token list: stable fake token ids."""
    seed = hashlib.sha256(text.encode()).digest()
    return [int.from_bytes(seed[(i * 2) % 30 : (i * 2) % 30 + 2], "big") + i % 97 for i in range(count)]


def _go_sharp_v(value: Any) -> str:
    """fmt's %#v for the scalar types found in Modelfile parameters."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        number = float(value)
        text = f"{number:g}" if abs(number) >= 1e6 or (number and abs(number) < 1e-4) else repr(number)
        return text[:-2] if text.endswith(".0") else text
    return str(value)


def _go_v(value: Any) -> str:
    """fmt's %v, which Model.String() uses for parameter values in the Modelfile."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_sharp_v(value)
    return str(value)


async def _progress_answer(events: AsyncIterator[dict[str, Any]], stream: bool) -> Answer:
    """streamResponse / waitForStream for a progress channel whose errors carry a status.

    An error before anything was written becomes a plain JSON error with its status; after
    that, streaming can only append {"error": ...} and stop. Without streaming, the last
    progress (or the error, with its status) is the whole answer.
    """
    json_type = "application/json"  # the handler sets this header before gin's c.JSON

    def error_json(exc: CreateError) -> Response:
        return Response(go_json({"error": exc.message}), status_code=exc.status, media_type=json_type)

    if not stream:
        last: dict[str, Any] = {}
        try:
            async for event in events:
                last = event
        except CreateError as exc:
            return error_json(exc)
        return Response(go_json(last), media_type=json_type)
    try:
        first = await anext(events)
    except StopAsyncIteration:
        first = None
    except CreateError as exc:
        return error_json(exc)

    async def produce(disconnected: asyncio.Event) -> AsyncGenerator[bytes | _Abort, None]:
        if first is not None:
            yield go_json(first) + b"\n"
        try:
            async for event in events:
                if disconnected.is_set():
                    return
                yield go_json(event) + b"\n"
        except CreateError as exc:
            yield go_json({"error": exc.message}) + b"\n"

    return NDJSONStream(produce)


# --- middleware & app ---------------------------------------------------------------------


def _go_duration_string(ns: int) -> str:
    """time.Duration.String() for the latencies in gin's log line."""
    if ns < 1_000:
        return f"{ns}ns"
    for unit, size in (("µs", 1_000), ("ms", 1_000_000)):
        if ns < size * 1_000:
            return f"{ns / size:.9g}{unit}".replace("e+", "e")
    seconds = ns / _NS
    if seconds < 60:
        return f"{seconds:.9g}s"
    minutes, secs = divmod(seconds, 60)
    return f"{int(minutes)}m{secs:.9g}s"


class RecordingMiddleware:
    """Records every request (path + JSON body) and logs one gin-style line per request."""

    def __init__(self, app: ASGIApp, state: StandinState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter_ns()
        if scope["path"].startswith("/api/blobs/"):
            # Blob uploads can be gigabytes of weights: pass them through, record no body.
            await self._passthrough(scope, receive, send, started)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        raw = b"".join(chunks)
        try:
            parsed: Any = json.loads(raw) if raw.strip() else None
        except ValueError:
            parsed = None
        record = RequestRecord(
            method=scope["method"],
            path=scope["path"],
            query=scope.get("query_string", b"").decode(),
            body=parsed,
            raw=raw,
        )
        self.state.record(record)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return await receive()

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                record.status = message["status"]
            await send(message)

        try:
            await self.app(scope, replay, capture)
        finally:
            self._log(scope, record, started)

    async def _passthrough(self, scope: Scope, receive: Receive, send: Send, started: int) -> None:
        record = RequestRecord(
            method=scope["method"],
            path=scope["path"],
            query=scope.get("query_string", b"").decode(),
            body=None,
            raw=b"",
        )
        self.state.record(record)

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                record.status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            self._log(scope, record, started)

    @staticmethod
    def _log(scope: Scope, record: RequestRecord, started: int) -> None:
        latency = _go_duration_string(time.perf_counter_ns() - started)
        client = (scope.get("client") or ("", 0))[0]
        log.info(
            '[GIN] %s | %3d | %13s | %15s | %-7s "%s"',
            time.strftime("%Y/%m/%d - %H:%M:%S"),
            record.status or 0,
            latency,
            client,
            record.method,
            record.path,
        )


async def _on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    # gin's default 404/405 bodies, served as bare text/plain.
    if exc.status_code == 405:
        return _text("405 method not allowed", 405, "text/plain")
    return _text("404 page not found", exc.status_code, "text/plain")


async def _on_bad_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BadRequest)
    return error_response(exc.status, exc.message)


async def _on_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error serving %s", request.url.path)
    return error_response(500, str(exc) or type(exc).__name__)


def create_app(config: StandinConfig, brain: Brain | None = None) -> Starlette:
    """Build the stand-in ASGI app; its state is on app.state.standin (a StandinState)."""
    state = StandinState(config, brain or default_brain())
    h = Handlers(state)

    def route(path: str, endpoint: Callable[[Request], Awaitable[Any]], methods: list[str]) -> Route:
        return Route(path, endpoint, methods=methods)

    routes = [
        route("/", h.root, ["GET", "HEAD"]),
        route("/api/version", h.version, ["GET", "HEAD"]),
        route("/api/tags", h.tags, ["GET", "HEAD"]),
        route("/api/ps", h.ps, ["GET"]),
        route("/api/show", h.show, ["POST"]),
        route("/api/pull", h.pull, ["POST"]),
        route("/api/delete", h.delete, ["DELETE"]),
        route("/api/copy", h.copy, ["POST"]),
        route("/api/create", h.create, ["POST"]),
        route("/api/blobs/{digest}", h.create_blob, ["POST"]),
        route("/api/blobs/{digest}", h.head_blob, ["HEAD"]),
        route("/api/chat", h.chat, ["POST"]),
        route("/api/generate", h.generate, ["POST"]),
    ]
    # Routes real Ollama has but the stand-in does not imitate: an honest 501, not a 404.
    for path in (
        "/api/push",
        "/api/embed",
        "/api/embeddings",
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/embeddings",
    ):
        routes.append(route(path, h.not_implemented, ["POST"]))
    routes.append(route("/v1/models", h.not_implemented, ["GET"]))

    app = Starlette(
        routes=routes,
        exception_handlers={
            404: _on_http_exception,
            405: _on_http_exception,
            BadRequest: _on_bad_request,
            Exception: _on_error,
        },
    )
    app.state.standin = state
    app.state.request_log = state.request_log
    app.add_middleware(RecordingMiddleware, state=state)
    logging.getLogger("uvicorn.error").addFilter(_abort_filter)
    return app

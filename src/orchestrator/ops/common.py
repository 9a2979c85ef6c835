"""What the operator commands share: settings, the MCP session, the model-facing tool list, tables."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from ..errors import ExitCode, UserError
from ..settings import Settings, SettingsError, load_settings, mask_credentials_in_logs


def settings_or_exit(**overrides: Any) -> Settings:
    """The settings, or one line naming the bad one and exit 2."""
    try:
        settings = load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(ExitCode.USAGE) from None
    for warning in settings.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return settings


def quiet_logging(verbose: bool) -> None:
    """The libraries' own logs only with -v: every failure is explained in the command's output."""
    mask_credentials_in_logs()
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.CRITICAL,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@asynccontextmanager
async def mcp_session(url: str) -> AsyncIterator[ClientSession]:
    """An initialized MCP session; UserError (exit 5) when the server cannot be reached.

    Only connecting is translated: an error raised by the caller's own code passes through as is
    (unwrapped from the exception group the SDK's task group puts around it).
    """
    ready = False
    try:
        async with streamable_http_client(url) as (read, write, *_), ClientSession(read, write) as session:
            await session.initialize()
            ready = True
            yield session
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as error:
        if ready:
            raise _unwrapped(error) from None
        cause = _unwrapped(error)
        raise UserError(
            f"the tool server at {url} is not reachable ({type(cause).__name__}: {one_line(cause, 80)}); "
            "check that mcp-server is running and MCP_SERVER_URL is right",
            ExitCode.MCP_UNREACHABLE,
        ) from None


def _unwrapped(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    if isinstance(error, BaseExceptionGroup):  # the first real failure, not the cancellations it caused
        error = next((e for e in error.exceptions if not isinstance(e, asyncio.CancelledError)), error)
    return error


def ollama_tool(tool: Any) -> dict[str, Any]:
    """An MCP tool as Ollama's /api/chat takes it."""
    return {
        "type": "function",
        "function": {"name": tool.name, "description": tool.description or "", "parameters": tool.input_schema},
    }


def tool_result(result: Any) -> tuple[bool, Any]:
    """(ok, payload) of an MCP CallToolResult: structured content when there is some, else its text."""
    text = " ".join(getattr(block, "text", "") for block in result.content or []).strip()
    if result.is_error:
        return False, text or "the tool reported an error"
    if result.structured_content is not None:
        return True, result.structured_content
    try:
        return True, json.loads(text)
    except ValueError:
        return True, text


def one_line(error: BaseException | str, limit: int = 200) -> str:
    text = str(error).strip().splitlines()
    line = text[0] if text else (type(error).__name__ if isinstance(error, BaseException) else "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    """A plain-text table, columns padded to their widest cell."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in [header, *rows]]  # fmt: skip
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def model_key(name: str) -> str:
    """A model name as Ollama resolves it: host and namespace filled in, tag `latest` by default,
    case-insensitive. `qwen2.5:7b`, `library/qwen2.5:7b` and `registry.ollama.ai/library/Qwen2.5:7B`
    are one model; /api/ps shows the short form whichever one a request used."""
    base, tag = name.strip().partition("@")[0], "latest"
    colon = base.rfind(":")
    if colon > base.rfind("/"):  # a tag, not a registry's port
        base, tag = base[:colon], base[colon + 1 :] or "latest"
    parts = base.split("/")
    if len(parts) == 1:
        parts = ["library", *parts]
    if len(parts) == 2:
        parts = ["registry.ollama.ai", *parts]
    return "/".join(parts).casefold() + ":" + tag.casefold()


def loaded_entry(models: Sequence[dict[str, Any]], name: str, digest: str | None = None) -> dict[str, Any] | None:
    """This model's entry of /api/ps. By name first; else by digest: Ollama runs one copy of the
    weights, listed under the name that loaded it first, so a second tag of the same model
    (`qwen2.5:7b` and `qwen2.5:7b-instruct-q4_K_M`) shows under the other name."""
    wanted = model_key(name)
    for entry in models:
        if any(entry.get(k) and model_key(entry[k]) == wanted for k in ("model", "name")):
            return entry
    if digest:
        return next((e for e in models if e.get("digest") == digest), None)
    return None


async def running_model(client: Any, name: str) -> dict[str, Any] | None:
    """The model's /api/ps entry with every field Ollama sends (context_length included), or None
    when it is not loaded. Raises what the request raises."""
    response = await client._client.get("/api/ps", timeout=10.0)
    response.raise_for_status()
    models = response.json().get("models") or []
    entry = loaded_entry(models, name)
    if entry is None and models:
        entry = loaded_entry(models, name, await installed_digest(client, name))
    return entry


def processor(size: int, vram: int) -> str:
    """Where a loaded model sits, as `ollama ps` shows it: 100% GPU, 100% CPU or a CPU/GPU split."""
    if vram == 0:
        return "100% CPU"
    if size == 0:
        return "unknown"
    if vram >= size:
        return "100% GPU"
    cpu = round((size - vram) / size * 100)
    return f"{cpu}%/{100 - cpu}% CPU/GPU"


async def installed_digest(client: Any, name: str) -> str | None:
    """The digest /api/tags lists for a model (None when it cannot tell)."""
    try:
        listed = await client.list()
    except Exception:  # only used to recognise the model in /api/ps
        return None
    wanted = model_key(name)
    return next((m.digest for m in listed.models if m.model and model_key(m.model) == wanted), None)

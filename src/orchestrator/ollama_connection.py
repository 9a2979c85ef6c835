"""The connection to Ollama: the client, waiting for the server, and checking the model before use."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import ollama

from .errors import COMPOSE_OLLAMA, ExitCode, UserError, from_ollama_status
from .settings import Settings

Report = Callable[[str], None]


def make_client(settings: Settings) -> ollama.AsyncClient:
    """The official client, with the auth headers and timeout a remote Ollama may need."""
    return ollama.AsyncClient(
        host=settings.ollama_host,
        headers=settings.ollama_request_headers(),
        timeout=httpx.Timeout(settings.request_timeout, connect=10.0),
    )


async def wait_until_reachable(client: ollama.AsyncClient, settings: Settings, report: Report) -> str:
    """Poll /api/version with backoff for at most OLLAMA_CONNECT_WAIT seconds; return the version."""
    deadline = time.monotonic() + settings.connect_wait
    delay, announced = 0.25, False
    while True:
        try:
            response = await client._client.get("/api/version", timeout=5.0)
            if response.status_code in (401, 403):
                raise from_ollama_status(response.status_code, "", host=settings.ollama_shown, model="")
            response.raise_for_status()
            try:
                return str(response.json()["version"])
            except (ValueError, KeyError, TypeError):
                # Something answers, but not Ollama (a proxy's login page, another service).
                raise UserError(
                    f"{settings.ollama_shown} answers, but not as Ollama does (no version on /api/version); "
                    "check OLLAMA_HOST",
                    ExitCode.OLLAMA_UNREACHABLE,
                ) from None
        except (httpx.TransportError, httpx.HTTPStatusError) as error:
            left = deadline - time.monotonic()
            if left <= 0:
                # In the compose stack the fix is starting it: `run` does not start a profile's service.
                fix = (
                    "start the stack with `make up-cpu` or `make up-gpu` (docker compose --profile cpu up -d)"
                    if settings.ollama_host.rstrip("/") == COMPOSE_OLLAMA
                    else "check that it is running and that OLLAMA_HOST points to it"
                )
                raise UserError(
                    f"cannot reach Ollama at {settings.ollama_shown} ({transport_reason(error)}); {fix}",
                    ExitCode.OLLAMA_UNREACHABLE,
                ) from None
            if not announced:
                report(
                    f"waiting for Ollama at {settings.ollama_shown} ({transport_reason(error)}); "
                    f"retrying for up to {settings.connect_wait:.0f} s"
                )
                announced = True
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 2, 5.0)


@dataclass(frozen=True)
class ModelInfo:
    name: str
    parameter_size: str
    quantization: str
    capabilities: tuple[str, ...]
    context_length: int | None = None  # what the model was trained for (/api/show model_info)


async def check_model(client: ollama.AsyncClient, model: str, host: str, offline: bool = False) -> ModelInfo:
    """Fail early, with the fix, when the model is not pulled or cannot call tools."""
    try:
        shown = await client.show(model)
    except ollama.ResponseError as error:
        raise from_ollama_status(error.status_code, str(error.error), host=host, model=model, offline=offline) from None
    capabilities = tuple(shown.capabilities or ())
    # Ollama reports capabilities since 0.6; an older server says nothing, so let the first chat tell.
    if capabilities and "tools" not in capabilities:
        raise from_ollama_status(400, "does not support tools", host=host, model=model)
    details = shown.details
    return ModelInfo(
        name=model,
        parameter_size=(details.parameter_size if details else None) or "?",
        quantization=(details.quantization_level if details else None) or "?",
        capabilities=capabilities,
        context_length=context_length(shown.modelinfo),
    )


def context_length(model_info: Any) -> int | None:
    """`<architecture>.context_length` from /api/show's model_info, as Ollama reads it."""
    info = dict(model_info or {})
    architecture = info.get("general.architecture")
    value = info.get(f"{architecture}.context_length") if architecture else None
    if value is None:  # an older server or a stripped header: any key of that name
        value = next((v for k, v in info.items() if k.endswith(".context_length")), None)
    return int(value) if isinstance(value, int | float) and value > 0 else None


def transport_reason(error: Exception) -> str:
    """Why a request did not get through, in a few words for a one-line message."""
    if isinstance(error, httpx.ConnectError):
        return "connection refused" if "refused" in str(error).lower() else "cannot connect"
    if isinstance(error, httpx.TimeoutException):
        return "timed out"
    if isinstance(error, httpx.HTTPStatusError):
        return f"HTTP {error.response.status_code}"
    return type(error).__name__

"""OpenTelemetry for the orchestrator: traces, metrics and logs over OTLP, configured once at start.

Agent Framework instruments itself (workflow, agents, model calls with token counts, tool calls);
this module turns export on when OTEL_EXPORTER_OTLP_ENDPOINT is set, opens one span per turn so a
turn is one trace, says at most once when export fails, and flushes what is buffered at exit.
Prompt and completion text stay out of telemetry unless ENABLE_SENSITIVE_DATA=true.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from urllib.parse import urlsplit

from opentelemetry import trace

from . import __version__
from .settings import Settings

# Bounded export: a slow or absent dashboard must never hold up a reply or the exit.
EXPORT_TIMEOUT_S = 5.0
tracer = trace.get_tracer("orchestrator", __version__)


def turn_span(prompt: str, model: str) -> AbstractContextManager[trace.Span]:
    """The root of one turn's trace: the workflow, every agent, model and tool call nest under it."""
    return tracer.start_as_current_span(
        "travel_plan", attributes={"gen_ai.request.model": model, "travel.prompt_chars": len(prompt)}
    )


def trace_id_of(span: trace.Span) -> str | None:
    context = span.get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def trace_link(dashboard_url: str | None, trace_id: str | None) -> str | None:
    """The dashboard page of one trace (DASHBOARD_URL may be its login address)."""
    if not dashboard_url or not trace_id:
        return None
    parts = urlsplit(dashboard_url)
    return f"{parts.scheme}://{parts.netloc}/traces/detail/{trace_id}"


class _OneWarning(logging.Handler):
    """The exporters log every failed batch; a person needs to hear it once. Transient errors they
    retry (a dashboard still starting) are logged as warnings and pass; a batch given up on, or a
    refused key, is an error."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(logging.ERROR)
        self.endpoint = endpoint
        self.told = False

    def emit(self, record: logging.LogRecord) -> None:
        if self.told:
            return
        self.told = True
        reason = record.getMessage().splitlines()[0][:160].rstrip("; .")
        hint = " (check OTLP_API_KEY)" if "UNAUTHENTICATED" in reason or "401" in reason else ""
        print(
            f"warning: telemetry export to {self.endpoint} is failing{hint}: {reason}; answers are not affected",
            file=sys.stderr,
            flush=True,
        )


def configure(settings: Settings) -> Callable[[], None]:
    """Turn export on if an endpoint is configured; returns the function that flushes and stops it."""
    if not settings.otel_exporter_otlp_endpoint:
        return lambda: None
    if settings.otel_exporter_otlp_headers:  # e.g. the key read from OTLP_API_KEY_FILE
        os.environ.setdefault("OTEL_EXPORTER_OTLP_HEADERS", settings.otel_exporter_otlp_headers)
    from agent_framework.observability import configure_otel_providers

    # Export failures go to one stderr line, never into the log pipeline (that would loop).
    otel_logs = logging.getLogger("opentelemetry")
    otel_logs.propagate = False
    otel_logs.addHandler(_OneWarning(settings.otel_exporter_otlp_endpoint))
    configure_otel_providers(
        service_name=settings.otel_service_name,
        service_version=__version__,
        otlp_timeout=EXPORT_TIMEOUT_S,
    )
    # The framework sends its own logger's records; ours go the same way, with the trace id.
    from opentelemetry._logs import get_logger_provider
    from opentelemetry.sdk._logs import LoggingHandler

    logging.getLogger("orchestrator").addHandler(LoggingHandler(logger_provider=get_logger_provider()))

    def shutdown() -> None:
        from opentelemetry import metrics
        from opentelemetry._logs import get_logger_provider

        providers = (trace.get_tracer_provider(), metrics.get_meter_provider(), get_logger_provider())
        stops = [threading.Thread(target=p.shutdown, daemon=True) for p in providers if hasattr(p, "shutdown")]
        for stop in stops:
            stop.start()
        deadline = time.monotonic() + EXPORT_TIMEOUT_S + 1
        for stop in stops:  # all three flush at once; together they may not keep the program longer
            stop.join(max(0.0, deadline - time.monotonic()))

    return shutdown

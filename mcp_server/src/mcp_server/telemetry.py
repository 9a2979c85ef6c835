"""Telemetry of the tool server: spans in the caller's trace, per-tool metrics, logs with trace ids.

Export is on when OTEL_EXPORTER_OTLP_ENDPOINT is set; the standard OTEL_* variables choose the
protocol and headers (the dashboard's API key). FastMCP opens a span for every tools/call, parented
on the trace context the client put in the request's `_meta`; the tools add what they looked up.

Privacy: what a caller asked (cities, months, currencies, and the error messages that repeat them)
leaves this process only with ENABLE_SENSITIVE_DATA=true, the orchestrator's switch. Off, the
telemetry holds tool names, outcomes, durations and counts; log lines, span attributes, span status
and exception events are cut to that before they are exported.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastmcp.server.middleware import Middleware, MiddlewareContext
from opentelemetry import metrics, trace
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import __version__

logger = logging.getLogger("mcp_server.tools")
EXPORT_TIMEOUT_S = 5.0
# Attributes that say how much, not what: kept when sensitive data is off.
COUNTS = frozenset({"months", "results"})
_sensitive = False


def sensitive_data() -> bool:
    """ENABLE_SENSITIVE_DATA, as configure() was given it."""
    return _sensitive


def annotate(**attributes: Any) -> None:
    """Add what a tool looked up to its span (`travel.city`, `travel.months`, ...); with sensitive
    data off only the counts (`travel.months`, `travel.results`)."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes(
            {
                f"travel.{key}": value
                for key, value in attributes.items()
                if value is not None and (_sensitive or key in COUNTS)
            }
        )


class ToolMetrics(Middleware):
    """Calls, errors and duration per tool, and one log line per call (inside the call's span, so
    the log record carries the trace id)."""

    def __init__(self, meter: metrics.Meter | None = None) -> None:
        meter = meter or metrics.get_meter("mcp_server")
        self.calls = meter.create_counter("mcp_server.tool.calls", description="Tool calls")
        self.errors = meter.create_counter("mcp_server.tool.errors", description="Tool calls that failed")
        self.duration = meter.create_histogram("mcp_server.tool.duration", unit="s", description="Tool call time")

    async def on_call_tool(self, context: MiddlewareContext, call_next):  # type: ignore[override]
        tool = context.message.name
        started = time.perf_counter()
        outcome = "ok"
        try:
            return await call_next(context)
        except Exception as error:
            outcome = type(error).__name__
            self.errors.add(1, {"tool": tool, "error": outcome})
            raise
        finally:
            seconds = time.perf_counter() - started
            self.calls.add(1, {"tool": tool})
            self.duration.record(seconds, {"tool": tool})
            if _sensitive:
                logger.info("%s %s: %s in %.1f ms", tool, _short(context.message.arguments), outcome, seconds * 1000)
            else:
                logger.info("%s: %s in %.1f ms", tool, outcome, seconds * 1000)


def _short(arguments: dict[str, Any] | None) -> str:
    text = json.dumps(arguments or {}, ensure_ascii=False, default=str)
    return text if len(text) <= 120 else text[:117] + "..."


def traceparent_from_header(app: ASGIApp) -> ASGIApp:
    """Honour a W3C `traceparent` HTTP header from clients that do not put it in `_meta`.

    FastMCP joins the caller's trace from the JSON-RPC request's `params._meta.traceparent`; a
    client that only sends the header is given the same treatment by copying it there.
    """

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        header = _header(scope, b"traceparent") if scope["type"] == "http" and scope["method"] == "POST" else None
        if header is None:
            await app(scope, receive, send)
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        body = _with_meta(body, header)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await app(scope, replay, send)

    return wrapped


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _with_meta(body: bytes, traceparent: str) -> bytes:
    try:
        request = json.loads(body)
    except ValueError:
        return body  # not ours to judge: the MCP layer answers with its own error
    if not isinstance(request, dict) or not isinstance(request.get("params"), dict):
        return body
    meta = request["params"].setdefault("_meta", {})
    if isinstance(meta, dict) and "traceparent" not in meta:
        meta["traceparent"] = traceparent
        return json.dumps(request).encode()
    return body


class _OneWarning(logging.Handler):
    """The exporters log every failed batch; a person needs to hear it once. Retried transient
    errors (the dashboard still starting) are warnings and pass; a batch given up on is an error."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.told = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.told:
            self.told = True
            endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")
            reason = record.getMessage().splitlines()[0][:160].rstrip("; .")
            print(
                f"mcp-server: warning: telemetry export to {endpoint} is failing ({reason}); the tools work without it",
                file=sys.stderr,
            )


class PrivateSpans:
    """A span exporter in front of the real one that keeps what callers asked out of the spans:
    FastMCP records a failed call's exception (its message repeats the arguments: "unknown city
    'Peking'", and a stack trace) as an event and as the span's status. Off: the event keeps only
    `exception.type`, the status only the error type."""

    def __init__(self, exporter: Any) -> None:
        self.exporter = exporter

    def export(self, spans: Any) -> Any:
        return self.exporter.export([_private(span) for span in spans])

    def shutdown(self) -> None:
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.exporter.force_flush(timeout_millis)


def _private(span: Any) -> Any:
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.trace import Status

    events = [
        Event("exception", {"exception.type": str(e.attributes.get("exception.type", ""))}, e.timestamp)
        if e.name == "exception" and e.attributes
        else e
        for e in span.events
    ]
    status = span.status
    if status.description:
        kind = (span.attributes or {}).get("error.type") or "error"
        status = Status(status.status_code, str(kind))
    attributes = {k: v for k, v in (span.attributes or {}).items() if not k.startswith("travel.") or k[7:] in COUNTS}
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=attributes,
        events=events,
        links=span.links,
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def configure(sensitive: bool = False) -> Callable[[], None]:
    """Set up export if OTEL_EXPORTER_OTLP_ENDPOINT is set; returns the flush-and-stop function.
    `sensitive` (ENABLE_SENSITIVE_DATA) lets the tools' arguments into logs and spans."""
    global _sensitive
    _sensitive = sensitive
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return lambda: None
    if not os.environ.get("OTEL_EXPORTER_OTLP_HEADERS") and os.environ.get("OTLP_API_KEY_FILE"):
        key, problem = _key_from_file(os.environ["OTLP_API_KEY_FILE"])
        if not key:  # the tools still answer; only their telemetry is lost
            print(f"warning: telemetry export is off: {problem}", file=sys.stderr, flush=True)
            return lambda: None
        os.environ["OTEL_EXPORTER_OTLP_HEADERS"] = f"x-otlp-api-key={key}"
    from opentelemetry._logs import set_logger_provider
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    span_exporter, metric_exporter, log_exporter = _exporters()
    resource = Resource.create(
        {SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME", "mcp-server"), SERVICE_VERSION: __version__}
    )
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter if sensitive else PrivateSpans(span_exporter)))
    trace.set_tracer_provider(tracer_provider)
    meter_provider = MeterProvider(resource=resource, metric_readers=[PeriodicExportingMetricReader(metric_exporter)])
    metrics.set_meter_provider(meter_provider)
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(log_exporter))
    set_logger_provider(logger_provider)
    logging.getLogger("mcp_server").addHandler(LoggingHandler(logger_provider=logger_provider))
    # Export failures: one line on stderr, never a log record to export (that would loop).
    otel_logs = logging.getLogger("opentelemetry")
    otel_logs.propagate = False
    otel_logs.addHandler(_OneWarning())

    def shutdown() -> None:
        # All three flush at once, together bounded: `docker stop` waits 10 s before SIGKILL.
        stops = [threading.Thread(target=p.shutdown, daemon=True)
                 for p in (tracer_provider, meter_provider, logger_provider)]  # fmt: skip
        for stop in stops:
            stop.start()
        deadline = time.monotonic() + EXPORT_TIMEOUT_S + 1
        for stop in stops:
            stop.join(max(0.0, deadline - time.monotonic()))

    return shutdown


def _key_from_file(path: str) -> tuple[str | None, str | None]:
    """The OTLP key compose and Kubernetes keep in a file (the secrets volume, a Secret)."""
    try:
        key = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or type(error).__name__
        return None, (
            f"OTLP_API_KEY_FILE {path} cannot be read ({reason}); rerun the job with `docker compose run --rm "
            "secrets`, or remove the volume offline-agents_secrets and start again"
        )
    if not key or any(c.isspace() or c == "," or not c.isprintable() for c in key):
        return (
            None,
            f"OTLP_API_KEY_FILE {path} holds no usable key; rerun the job with `docker compose run --rm secrets`",
        )
    return key, None


def _exporters() -> tuple[Any, Any, Any]:
    protocol = os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    else:  # http/protobuf; the exporters read the endpoint and headers from the environment
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    return (
        OTLPSpanExporter(timeout=EXPORT_TIMEOUT_S),
        OTLPMetricExporter(timeout=EXPORT_TIMEOUT_S),
        OTLPLogExporter(timeout=EXPORT_TIMEOUT_S),
    )

"""OpenTelemetry for the orchestrator: traces, metrics and logs over OTLP, configured once at start.

Agent Framework instruments itself (workflow, agents, model calls, tool calls); this module only
turns export on when OTEL_EXPORTER_OTLP_ENDPOINT is set, and flushes what is buffered at exit.
Prompt and completion text stay out of telemetry (ENABLE_SENSITIVE_DATA is the framework's switch).
"""

from __future__ import annotations

from collections.abc import Callable

from . import __version__
from .settings import Settings

# Bounded export: a slow or absent dashboard must never hold up a reply or the exit.
EXPORT_TIMEOUT_S = 5.0


def configure(settings: Settings) -> Callable[[], None]:
    """Turn export on if an endpoint is configured; returns the function that flushes and stops it."""
    if not settings.otel_exporter_otlp_endpoint:
        return lambda: None
    from agent_framework.observability import configure_otel_providers

    configure_otel_providers(
        service_name=settings.otel_service_name,
        service_version=__version__,
        otlp_timeout=EXPORT_TIMEOUT_S,
    )

    def shutdown() -> None:
        from opentelemetry import metrics, trace
        from opentelemetry._logs import get_logger_provider

        for provider in (trace.get_tracer_provider(), metrics.get_meter_provider(), get_logger_provider()):
            stop = getattr(provider, "shutdown", None)
            if stop is not None:
                stop()

    return shutdown

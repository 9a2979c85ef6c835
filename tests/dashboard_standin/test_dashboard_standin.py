"""The stand-in driven by the official OpenTelemetry Python exporters, over gRPC and HTTP/protobuf.

Each test talks to a real `python -m dashboard_standin` process, the way the project's services
talk to the dashboard container.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from grpc import Compression
from opentelemetry._logs import SeverityNumber
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from dashboard_standin.config import (
    ConfigError,
    FrontendAuthMode,
    OtlpAuthMode,
    Settings,
    load_configuration,
    resolve_settings,
)
from dashboard_standin.testing import TESTS_DIR, RunningDashboard, child_environment, run_process

PRIMARY_KEY = "primary-" + "a1" * 16
SECONDARY_KEY = "secondary-" + "b2" * 16
TOKEN = "c3" * 16
TRANSPORTS = ["grpc", "http"]


@pytest.fixture(scope="module")
def dashboard() -> Iterator[RunningDashboard]:
    env = {
        "Dashboard__Frontend__AuthMode": "BrowserToken",
        "Dashboard__Frontend__BrowserToken": TOKEN,
        "Dashboard__Otlp__AuthMode": "ApiKey",
        "Dashboard__Otlp__PrimaryApiKey": PRIMARY_KEY,
        "Dashboard__Otlp__SecondaryApiKey": SECONDARY_KEY,
    }
    with run_process(env) as running:
        yield running


@pytest.fixture
def fresh(dashboard: RunningDashboard) -> RunningDashboard:
    dashboard.clear()
    return dashboard


class Exporters:
    """The three official exporters for one transport, pointed at the stand-in."""

    def __init__(self, dashboard: RunningDashboard, transport: str, headers: dict[str, str]) -> None:
        if transport == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            options: dict[str, Any] = {"endpoint": dashboard.otlp_grpc_endpoint, "insecure": True}
            self.spans = OTLPSpanExporter(headers=headers, timeout=5, **options)
            self.metrics = OTLPMetricExporter(headers=headers, timeout=5, **options)
            self.logs = OTLPLogExporter(headers=headers, timeout=5, **options)
        else:
            from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogs
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetrics
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpans

            base = dashboard.otlp_http_endpoint
            self.spans = HttpSpans(endpoint=f"{base}/v1/traces", headers=headers, timeout=5)
            self.metrics = HttpMetrics(endpoint=f"{base}/v1/metrics", headers=headers, timeout=5)
            self.logs = HttpLogs(endpoint=f"{base}/v1/logs", headers=headers, timeout=5)


def finished_spans(count: int = 1, service: str = "orchestrator") -> list[ReadableSpan]:
    """Real SDK spans, to hand to an exporter's export() directly."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("tests")
    for index in range(count):
        with tracer.start_as_current_span(f"trace-{index}"), tracer.start_as_current_span(f"child-{index}"):
            pass
    return list(memory.get_finished_spans())


def trace_request(trace_id: bytes = b"\x01" * 16) -> bytes:
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name = trace_id, b"\x02" * 8, "raw"
    return request.SerializeToString()


# --- exporting -----------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_spans_metrics_and_logs_arrive_with_ids_parents_and_service(fresh: RunningDashboard, transport: str) -> None:
    exporters = Exporters(fresh, transport, {"x-otlp-api-key": PRIMARY_KEY})
    service = f"orchestrator-{transport}"
    resource = Resource.create({"service.name": service, "service.instance.id": "one"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporters.spans))
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(exporters.logs))
    reader = PeriodicExportingMetricReader(exporters.metrics, export_interval_millis=3_600_000)
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    try:
        otel_logger = logger_provider.get_logger("orchestrator.tools")
        tracer = tracer_provider.get_tracer("orchestrator.workflow", "1.2.3")
        meter = meter_provider.get_meter("orchestrator.tools")
        calls = meter.create_counter("tool.calls", unit="{call}", description="tool calls")
        duration = meter.create_histogram("tool.duration", unit="s")
        with tracer.start_as_current_span("plan_trip", kind=SpanKind.SERVER) as root:
            attributes = {"tool.name": "weather", "retries": 2, "ok": True, "ratio": 0.5, "cities": ["Oslo", "Lima"]}
            with tracer.start_as_current_span("call_tool", attributes=attributes) as child:
                # No context given: the record takes the current span's ids, as a logging bridge does.
                otel_logger.emit(
                    body="calling weather",
                    severity_number=SeverityNumber.WARN,
                    severity_text="WARN",
                    attributes={"tool.name": "weather"},
                    event_name="tool.call",
                )
                child.set_status(StatusCode.ERROR, "tool failed")
            calls.add(3, {"tool.name": "weather"})
            duration.record(0.25, {"tool.name": "weather"})
        assert meter_provider.force_flush(5_000)

        recorded = fresh.wait_for(lambda t: len(t["spans"]) == 2 and t["logs"] and len(t["metrics"]) == 2)
    finally:
        tracer_provider.shutdown()
        logger_provider.shutdown()
        meter_provider.shutdown()

    trace_id = format(root.get_span_context().trace_id, "032x")
    root_id = format(root.get_span_context().span_id, "016x")
    child_id = format(child.get_span_context().span_id, "016x")
    spans = {span["name"]: span for span in recorded["spans"]}
    assert spans["plan_trip"]["trace_id"] == spans["call_tool"]["trace_id"] == trace_id
    assert spans["plan_trip"]["span_id"] == root_id and spans["plan_trip"]["parent_span_id"] is None
    assert spans["call_tool"]["span_id"] == child_id and spans["call_tool"]["parent_span_id"] == root_id
    assert {span["service"] for span in spans.values()} == {service}
    assert spans["plan_trip"]["kind"] == "server" and spans["call_tool"]["kind"] == "internal"
    assert spans["call_tool"]["attributes"] == attributes
    assert spans["call_tool"]["status"] == {"code": "error", "message": "tool failed"}
    assert spans["plan_trip"]["scope"] == {"name": "orchestrator.workflow", "version": "1.2.3"}
    assert spans["plan_trip"]["resource"]["service.instance.id"] == "one"
    assert 0 < spans["call_tool"]["start_time_unix_nano"] <= spans["call_tool"]["end_time_unix_nano"]
    assert recorded["traces"] == [
        {
            "trace_id": trace_id,
            "name": "plan_trip",
            "service": service,
            "services": [service],
            "span_count": 2,
            "start_time_unix_nano": spans["plan_trip"]["start_time_unix_nano"],
            "end_time_unix_nano": spans["plan_trip"]["end_time_unix_nano"],
            "error": True,
        }
    ]

    [log] = recorded["logs"]
    assert log["body"] == "calling weather"
    assert (log["severity_number"], log["severity_text"]) == (13, "WARN")
    assert (log["attributes"], log["event_name"]) == ({"tool.name": "weather"}, "tool.call")
    assert log["scope"]["name"] == "orchestrator.tools"
    assert (log["trace_id"], log["span_id"], log["service"]) == (trace_id, child_id, service)

    metrics = {metric["name"]: metric for metric in recorded["metrics"]}
    assert metrics["tool.calls"]["service"] == service
    assert metrics["tool.calls"]["type"] == "sum" and metrics["tool.calls"]["monotonic"] is True
    assert metrics["tool.calls"]["unit"] == "{call}" and metrics["tool.calls"]["description"] == "tool calls"
    assert metrics["tool.calls"]["latest"]["value"] == 3
    assert metrics["tool.calls"]["latest"]["attributes"] == {"tool.name": "weather"}
    assert metrics["tool.duration"]["type"] == "histogram"
    assert (metrics["tool.duration"]["latest"]["count"], metrics["tool.duration"]["latest"]["sum"]) == (1, 0.25)

    other = "http" if transport == "grpc" else "grpc"
    assert all(recorded["accepted"][transport][signal] >= 1 for signal in ("traces", "metrics", "logs"))
    assert recorded["accepted"][other] == {"traces": 0, "metrics": 0, "logs": 0}
    assert recorded["rejected"] == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_secondary_key_is_accepted(fresh: RunningDashboard, transport: str) -> None:
    exporters = Exporters(fresh, transport, {"x-otlp-api-key": SECONDARY_KEY})
    assert exporters.spans.export(finished_spans()) is SpanExportResult.SUCCESS
    assert len(fresh.telemetry()["spans"]) == 2
    exporters.spans.shutdown()


def test_grpc_takes_gzip_compressed_exports(fresh: RunningDashboard) -> None:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    exporter = OTLPSpanExporter(
        endpoint=fresh.otlp_grpc_endpoint, insecure=True, headers=fresh.otlp_headers, compression=Compression.Gzip
    )
    assert exporter.export(finished_spans()) is SpanExportResult.SUCCESS
    exporter.shutdown()
    assert len(fresh.telemetry()["spans"]) == 2


def test_http_does_not_decompress_bodies(fresh: RunningDashboard) -> None:
    """The dashboard has no request-decompression middleware; a gzip body fails to parse (here: 400)."""
    from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    exporter = OTLPSpanExporter(
        endpoint=f"{fresh.otlp_http_endpoint}/v1/traces", headers=fresh.otlp_headers, compression=HttpCompression.Gzip
    )
    assert exporter.export(finished_spans()) is SpanExportResult.FAILURE
    exporter.shutdown()
    # The stand-in is another process: its log line may reach the file a moment after the answer.
    deadline = time.monotonic() + 15
    while "Content-Encoding: gzip is not decoded" not in fresh.log_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "Content-Encoding: gzip is not decoded" in fresh.log_text()


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("headers", [{"x-otlp-api-key": "wrong"}, {}], ids=["wrong-key", "no-key"])
def test_a_bad_key_is_rejected_and_counted(fresh: RunningDashboard, transport: str, headers: dict[str, str]) -> None:
    exporters = Exporters(fresh, transport, headers)
    assert exporters.spans.export(finished_spans()) is SpanExportResult.FAILURE
    exporters.spans.shutdown()
    recorded = fresh.telemetry()
    assert recorded["spans"] == []
    assert recorded["rejected"] == 1
    assert recorded["rejected_by"][transport]["traces"] == 1


def test_http_rejections_look_like_the_dashboards(fresh: RunningDashboard) -> None:
    url = f"{fresh.otlp_http_endpoint}/v1/traces"
    protobuf = {"content-type": "application/x-protobuf"}
    unauthorized = httpx.post(url, content=trace_request(), headers={**protobuf, "x-otlp-api-key": "nope"})
    assert (unauthorized.status_code, unauthorized.content) == (401, b"")
    # Exactly one key header: two are refused even when one of them is right.
    twice = [("content-type", "application/x-protobuf"), ("x-otlp-api-key", PRIMARY_KEY), ("x-otlp-api-key", "x")]
    assert httpx.post(url, content=trace_request(), headers=twice).status_code == 401
    # gRPC status code 15 (UNIMPLEMENTED) in a JSON body, as the dashboard answers.
    text = httpx.post(url, content=b"hello", headers={"content-type": "text/plain", "x-otlp-api-key": PRIMARY_KEY})
    assert text.status_code == 415 and text.json()["code"] == 15
    assert httpx.get(url).status_code == 405
    garbage = httpx.post(url, content=b"\xff\xff\xff", headers={**protobuf, "x-otlp-api-key": PRIMARY_KEY})
    assert garbage.status_code == 400
    assert fresh.telemetry()["rejected_by"]["http"]["traces"] == 2


# OTLP/JSON as the specification writes it: ids in hex, enums as numbers, 64-bit integers as strings.
OTLP_JSON = {
    "resourceSpans": [
        {
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "browser"}}]},
            "scopeSpans": [
                {
                    "spans": [
                        {
                            "traceId": "5B8EFFF798038103D269B633813FC60C",
                            "spanId": "EEE19B7EC3C1B174",
                            "parentSpanId": "EEE19B7EC3C1B173",
                            "name": "fetch",
                            "kind": 3,
                            "startTimeUnixNano": "1544712660000000000",
                            "endTimeUnixNano": "1544712661000000000",
                            "attributes": [{"key": "http.status", "value": {"intValue": "200"}}],
                        }
                    ]
                }
            ],
        }
    ]
}


def test_http_answers_otlp_json_with_415_like_the_pinned_dashboard(fresh: RunningDashboard) -> None:
    url = f"{fresh.otlp_http_endpoint}/v1/traces"
    response = httpx.post(url, json=OTLP_JSON, headers={"x-otlp-api-key": PRIMARY_KEY})
    assert response.status_code == 415
    assert response.json() == {
        "code": 15,
        "message": "Content type 'application/json' is not supported. Only 'application/x-protobuf' is supported.",
    }
    assert fresh.telemetry()["spans"] == []


def test_otlp_json_with_hex_ids_when_switched_on() -> None:
    with run_process({"Standin__Otlp__AcceptJson": "true"}) as dashboard:
        response = httpx.post(
            f"{dashboard.otlp_http_endpoint}/v1/traces", json=OTLP_JSON, headers=dashboard.otlp_headers
        )
        assert response.status_code == 200 and response.json() == {}
        [span] = dashboard.telemetry()["spans"]
    assert span["trace_id"] == "5b8efff798038103d269b633813fc60c"
    assert (span["span_id"], span["parent_span_id"]) == ("eee19b7ec3c1b174", "eee19b7ec3c1b173")
    assert (span["kind"], span["service"], span["attributes"]) == ("client", "browser", {"http.status": 200})
    assert span["start_time_unix_nano"] == 1544712660000000000


# --- the browser side ----------------------------------------------------------------------------


def test_browser_token_login(dashboard: RunningDashboard) -> None:
    assert f"Login to the dashboard at {dashboard.ui_url}/login?t={TOKEN}" in dashboard.log_text()
    with httpx.Client(base_url=dashboard.ui_url) as browser:
        home = browser.get("/")
        assert (home.status_code, home.headers["location"]) == (302, "/login?returnUrl=%2F")
        assert browser.get("/login").status_code == 200  # the token form

        wrong = browser.get("/login", params={"t": "not-the-token", "returnUrl": "/"})
        assert (wrong.status_code, wrong.headers["location"]) == (302, "/login?returnUrl=%2F")
        assert ".Aspire.Dashboard.Auth" not in browser.cookies
        assert browser.get("/").status_code == 302

        right = browser.get("/login", params={"t": TOKEN})
        assert (right.status_code, right.headers["location"]) == (302, "/")
        assert ".Aspire.Dashboard.Auth" in browser.cookies
        page = browser.get("/")
        assert page.status_code == 200 and "<h1>Traces</h1>" in page.text
        assert browser.get("/api/telemetry").status_code == 200  # the cookie is enough


def test_traces_page_lists_recorded_traces(fresh: RunningDashboard) -> None:
    Exporters(fresh, "grpc", {"x-otlp-api-key": PRIMARY_KEY}).spans.export(finished_spans(service="mcp-server"))
    trace_id = fresh.telemetry()["spans"][0]["trace_id"]
    with httpx.Client(base_url=fresh.ui_url) as browser:
        browser.get("/login", params={"t": TOKEN})
        page = browser.get("/").text
    assert trace_id in page and "mcp-server" in page and "trace-0" in page


def test_telemetry_api_needs_the_token(dashboard: RunningDashboard) -> None:
    api = f"{dashboard.ui_url}/api/telemetry"
    assert httpx.get(api).status_code == 401
    assert httpx.get(api, params={"t": "wrong"}).status_code == 401
    assert httpx.delete(api).status_code == 401
    assert httpx.get(api, params={"t": TOKEN}).status_code == 200
    assert httpx.get(f"{dashboard.ui_url}/health").status_code == 200  # open: the harness's probe


def test_allow_anonymous_turns_both_checks_off() -> None:
    with run_process({"ASPIRE_DASHBOARD_UNSECURED_ALLOW_ANONYMOUS": "true"}) as dashboard:
        assert (dashboard.token, dashboard.api_key) == (None, None)
        assert "Login to the dashboard" not in dashboard.log_text()
        assert "OTLP server is unsecured" in dashboard.log_text()
        for transport in TRANSPORTS:
            assert Exporters(dashboard, transport, {}).spans.export(finished_spans()) is SpanExportResult.SUCCESS
        assert httpx.get(f"{dashboard.ui_url}/").status_code == 200
        assert httpx.get(f"{dashboard.ui_url}/login").headers["location"] == "/"
        assert len(httpx.get(f"{dashboard.ui_url}/api/telemetry").json()["spans"]) == 4


# --- limits and lifecycle ------------------------------------------------------------------------


def test_memory_bound_drops_the_oldest_traces_and_logs() -> None:
    env = {
        "DASHBOARD__TELEMETRYLIMITS__MAXTRACECOUNT": "3",  # spelled as in the docs' docker run example
        "DASHBOARD__TELEMETRYLIMITS__MAXLOGCOUNT": "2",
    }
    with run_process(env) as dashboard:
        exporters = Exporters(dashboard, "grpc", dashboard.otlp_headers)
        spans = finished_spans(5)  # five traces of two spans each
        for index in range(5):
            assert (
                exporters.spans.export([s for s in spans if s.name.endswith(f"-{index}")]) is SpanExportResult.SUCCESS
            )
        provider = LoggerProvider(resource=Resource.create({"service.name": "orchestrator"}))
        provider.add_log_record_processor(SimpleLogRecordProcessor(exporters.logs))
        logger = provider.get_logger("tests")
        for index in range(4):
            logger.emit(body=f"log {index}")
        provider.shutdown()
        exporters.spans.shutdown()

        recorded = dashboard.telemetry()
    kept = [trace["name"] for trace in recorded["traces"]]
    assert kept == ["trace-2", "trace-3", "trace-4"]
    assert len(recorded["spans"]) == 6
    assert [log["body"] for log in recorded["logs"]] == ["log 2", "log 3"]
    assert recorded["dropped"] == {"traces": 2, "spans": 4, "logs": 2, "metric_points": 0}
    assert recorded["limits"]["max_trace_count"] == 3


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stops_promptly_and_cleanly(sig: int) -> None:
    with run_process() as dashboard:
        # Leave a gRPC channel and an HTTP keep-alive connection open, as running services would.
        grpc_exporters = Exporters(dashboard, "grpc", dashboard.otlp_headers)
        http_exporters = Exporters(dashboard, "http", dashboard.otlp_headers)
        assert grpc_exporters.spans.export(finished_spans()) is SpanExportResult.SUCCESS
        assert http_exporters.spans.export(finished_spans()) is SpanExportResult.SUCCESS
        took = dashboard.stop(sig)
        assert dashboard.process.returncode == 0, dashboard.log_text()
        assert took < 1.5
        grpc_exporters.spans.shutdown()
        http_exporters.spans.shutdown()


def _run_to_exit(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dashboard_standin", *args],
        env=child_environment(env),
        capture_output=True,
        text=True,
        timeout=20,
        cwd=TESTS_DIR,
    )


def test_api_key_mode_without_a_key_fails_to_start_like_the_dashboard() -> None:
    result = _run_to_exit(env={"Dashboard__Otlp__AuthMode": "ApiKey", "Dashboard__Otlp__PrimaryApiKey": ""})
    assert result.returncode == 1
    assert "Failed to start the dashboard due to 1 configuration error(s)." in result.stdout
    assert "PrimaryApiKey is required when OTLP authentication mode is API key." in result.stdout


def test_a_busy_port_fails_the_start() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _run_to_exit(
            f"--frontend-url=http://127.0.0.1:{port}",
            "--otlp-grpc-url=http://127.0.0.1:0",
            "--otlp-http-url=http://127.0.0.1:0",
        )
    assert result.returncode == 1
    assert "Failed to bind to address" in result.stdout


# --- configuration, read like the dashboard reads it ---------------------------------------------


def settings_from(env: dict[str, str], command_line: dict[str, str] | None = None) -> Settings:
    return resolve_settings(load_configuration(env, command_line or {}))


def test_defaults_are_the_container_images() -> None:
    settings = settings_from({})
    assert [(e.host, e.port) for e in settings.frontend] == [("0.0.0.0", 18888)]
    assert settings.otlp_grpc is not None and (settings.otlp_grpc.host, settings.otlp_grpc.port) == ("0.0.0.0", 18889)
    assert settings.otlp_http is not None and (settings.otlp_http.host, settings.otlp_http.port) == ("0.0.0.0", 18890)
    assert settings.frontend_auth_mode is FrontendAuthMode.BROWSER_TOKEN
    assert settings.browser_token is not None and len(settings.browser_token) == 32  # generated
    assert settings.otlp_auth_mode is OtlpAuthMode.UNSECURED
    assert (settings.limits.max_trace_count, settings.limits.max_log_count, settings.limits.max_metrics_count) == (
        10_000,
        10_000,
        50_000,
    )


def test_names_are_case_insensitive_and_aliases_win_in_the_dashboards_order(tmp_path: Path) -> None:
    env = {
        "DASHBOARD__OTLP__AUTHMODE": "apikey",
        "Dashboard__Otlp__PrimaryApiKey": "from-env",
        "DOTNET_DASHBOARD_OTLP_ENDPOINT_URL": "http://+:4317",  # what the image itself sets
        "ASPIRE_DASHBOARD_OTLP_ENDPOINT_URL": "http://127.0.0.1:14317",  # the current name wins
        "ASPNETCORE_URLS": "http://localhost:19999",
    }
    settings = settings_from(env, {"Dashboard:Otlp:SecondaryApiKey": "from-args"})
    assert settings.otlp_auth_mode is OtlpAuthMode.API_KEY
    assert settings.api_keys() == ("from-env", "from-args")
    assert settings.otlp_grpc is not None and (settings.otlp_grpc.host, settings.otlp_grpc.port) == ("127.0.0.1", 14317)
    assert [(e.host, e.port) for e in settings.frontend] == [("127.0.0.1", 19999)]

    config_file = tmp_path / "dashboard.json"
    config_file.write_text(json.dumps({"Dashboard": {"Otlp": {"PrimaryApiKey": "from-file"}}}))
    settings = settings_from({**env, "ASPIRE_DASHBOARD_CONFIG_FILE_PATH": str(config_file)})
    assert settings.primary_api_key == "from-file"  # the file is added last, so it wins


def test_allow_anonymous_overrides_both_modes() -> None:
    settings = settings_from(
        {
            "ASPIRE_DASHBOARD_UNSECURED_ALLOW_ANONYMOUS": "True",
            "Dashboard__Frontend__AuthMode": "BrowserToken",
            "Dashboard__Otlp__AuthMode": "ApiKey",
        }
    )
    assert settings.frontend_auth_mode is FrontendAuthMode.UNSECURED
    assert settings.otlp_auth_mode is OtlpAuthMode.UNSECURED
    assert settings.browser_token is None and settings.api_keys() == ()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"Dashboard__Otlp__AuthMode": "Sometimes"}, "Unexpected value 'Sometimes' for Dashboard:Otlp:AuthMode"),
        ({"Dashboard__Frontend__AuthMode": "OpenIdConnect"}, "not supported by the stand-in"),
        ({"ASPNETCORE_URLS": "https://+:18888"}, "plain http only"),
        ({"Dashboard__TelemetryLimits__MaxTraceCount": "lots"}, "not a valid integer"),
    ],
)
def test_invalid_settings_are_reported(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings_from(env)

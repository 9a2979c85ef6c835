"""The two OTLP receivers: gRPC (TraceService/MetricsService/LogsService Export) and HTTP (/v1/*).

Both answer the way the dashboard does (Aspire.Dashboard/Otlp, Authentication/OtlpApiKey):
* In ApiKey mode every request needs exactly one `x-otlp-api-key` header equal to the primary or
  the secondary key. The dashboard's auth handler then challenges: HTTP 401 with an empty body,
  which a gRPC client sees as UNAUTHENTICATED. Rejections are counted in the store.
* OTLP/HTTP takes application/x-protobuf and answers 415 with {"code": 15, "message": ...} for any
  other content type, application/json included, as dashboards before 13.x do (the compose file
  pins 9.x). Standin:Otlp:AcceptJson=true takes OTLP/JSON as newer ones do. Bodies over 4 MiB: 400.
* A successful export answers with the empty Export*ServiceResponse, in the request's encoding.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .config import OtlpAuthMode, Settings
from .store import TelemetryStore, decode_hex_ids

log = logging.getLogger("Aspire.Dashboard.Otlp")

API_KEY_HEADER = "x-otlp-api-key"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
MAX_REQUEST_BYTES = 4 * 1024 * 1024  # the dashboard's limit, the same as gRPC's default

# signal -> (request type, response type)
MESSAGES: dict[str, tuple[type[Message], type[Message]]] = {
    "traces": (trace_service_pb2.ExportTraceServiceRequest, trace_service_pb2.ExportTraceServiceResponse),
    "metrics": (metrics_service_pb2.ExportMetricsServiceRequest, metrics_service_pb2.ExportMetricsServiceResponse),
    "logs": (logs_service_pb2.ExportLogsServiceRequest, logs_service_pb2.ExportLogsServiceResponse),
}
GRPC_METHODS = {
    "/opentelemetry.proto.collector.trace.v1.TraceService/Export": "traces",
    "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export": "metrics",
    "/opentelemetry.proto.collector.logs.v1.LogsService/Export": "logs",
}


class ApiKeyCheck:
    """Dashboard:Otlp:AuthMode=ApiKey, as OtlpApiKeyAuthenticationHandler decides it."""

    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.otlp_auth_mode is OtlpAuthMode.API_KEY
        self._keys = [key.encode() for key in settings.api_keys()]

    def problem(self, values: list[str]) -> str | None:
        """Why a request with these header values is refused, or None when it may pass."""
        if not self.enabled:
            return None
        if not values:
            return f"API key from '{API_KEY_HEADER}' header is missing."
        if len(values) != 1:
            return f"Multiple '{API_KEY_HEADER}' headers in request."
        offered = values[0].encode()
        # Compare with every key, not stopping early, so timing says nothing about which matched.
        if not any([hmac.compare_digest(key, offered) for key in self._keys]):
            return f"Incoming API key from '{API_KEY_HEADER}' header doesn't match configured API key."
        return None


# --- gRPC --------------------------------------------------------------------------------------


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, store: TelemetryStore) -> None:
        self._store = store

    async def Export(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        self._store.add_traces(request, "grpc")
        return trace_service_pb2.ExportTraceServiceResponse()


class _MetricsService(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, store: TelemetryStore) -> None:
        self._store = store

    async def Export(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        self._store.add_metrics(request, "grpc")
        return metrics_service_pb2.ExportMetricsServiceResponse()


class _LogsService(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, store: TelemetryStore) -> None:
        self._store = store

    async def Export(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        self._store.add_logs(request, "grpc")
        return logs_service_pb2.ExportLogsServiceResponse()


def _refuse(message: str) -> Callable[[bytes, grpc.aio.ServicerContext], Awaitable[None]]:
    async def handler(request: bytes, context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    return handler


class ApiKeyInterceptor(grpc.aio.ServerInterceptor):
    """Checks the key before any service runs, as the dashboard's authorization policy does."""

    def __init__(self, check: ApiKeyCheck, store: TelemetryStore) -> None:
        self._check = check
        self._store = store

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        metadata = handler_call_details.invocation_metadata or ()  # type: ignore[attr-defined]
        values = [str(value) for key, value in metadata if key == API_KEY_HEADER]
        problem = self._check.problem(values)
        if problem is None:
            return await continuation(handler_call_details)
        method = handler_call_details.method  # type: ignore[attr-defined]
        self._store.count_rejected("grpc", GRPC_METHODS.get(method))
        log.debug("Rejected OTLP/gRPC %s: %s", method, problem)
        return grpc.unary_unary_rpc_method_handler(_refuse(problem))


def create_grpc_server(settings: Settings, store: TelemetryStore) -> grpc.aio.Server:
    check = ApiKeyCheck(settings)
    server = grpc.aio.server(
        interceptors=[ApiKeyInterceptor(check, store)] if check.enabled else [],
        # grpc sets SO_REUSEPORT by default, so a second process could silently share a busy port;
        # the dashboard (Kestrel) fails to start instead, and so should this.
        options=[("grpc.so_reuseport", 0)],
    )
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceService(store), server)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_MetricsService(store), server)
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(_LogsService(store), server)
    return server


# --- HTTP --------------------------------------------------------------------------------------


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _unsupported(content_type: str | None) -> Response:
    message = f"Content type '{content_type or ''}' is not supported. Only '{PROTOBUF}' is supported."
    return JSONResponse({"code": 15, "message": message}, status_code=415)  # 15 = gRPC UNIMPLEMENTED


async def _read_body(request: Request) -> bytes | None:
    """The body, or None once it passes the size limit (read no further then)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_REQUEST_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def create_otlp_http_app(settings: Settings, store: TelemetryStore) -> Starlette:
    check = ApiKeyCheck(settings)
    accept_json = settings.accept_json

    def endpoint(signal: str) -> Callable[[Request], Awaitable[Response]]:
        request_type, response_type = MESSAGES[signal]

        async def export(request: Request) -> Response:
            problem = check.problem(request.headers.getlist(API_KEY_HEADER))
            if problem is not None:
                store.count_rejected("http", signal)
                log.debug("Rejected OTLP/HTTP %s: %s", request.url.path, problem)
                return Response(status_code=401)
            content_type = request.headers.get("content-type")
            media_type = _media_type(content_type)
            if media_type not in (PROTOBUF, JSON) or (media_type == JSON and not accept_json):
                log.debug("OTLP/HTTP request with unsupported content type '%s' was rejected.", content_type)
                return _unsupported(content_type)
            body = await _read_body(request)
            if body is None:
                return Response(f"The request body was larger than the max allowed of {MAX_REQUEST_BYTES} bytes.", 400)
            message = request_type()
            try:
                if media_type == PROTOBUF:
                    message.ParseFromString(body)
                else:
                    json_format.ParseDict(decode_hex_ids(json.loads(body)), message, ignore_unknown_fields=True)
            except (DecodeError, json_format.ParseError, ValueError, TypeError) as exc:
                # The dashboard neither decompresses bodies nor catches a parse failure (it answers
                # 500, which exporters retry); 400 fails the export at once with the reason.
                encoding = request.headers.get("content-encoding")
                hint = f" (Content-Encoding: {encoding} is not decoded, as in the dashboard)" if encoding else ""
                log.warning("Could not parse an OTLP/HTTP %s body%s: %s", signal, hint, exc)
                return Response(f"Could not parse the {signal} request{hint}: {exc}", 400)
            store.add(signal, message, "http")
            if media_type == PROTOBUF:
                return Response(response_type().SerializeToString(), media_type=PROTOBUF)
            return Response(json_format.MessageToJson(response_type()), media_type=JSON)

        return export

    routes = [Route(f"/v1/{signal}", endpoint(signal), methods=["POST"]) for signal in MESSAGES]
    return Starlette(routes=routes)

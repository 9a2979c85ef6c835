"""In-memory telemetry, bounded the way the dashboard bounds it, as plain JSON-ready dicts.

Limits follow Dashboard:TelemetryLimits: MaxTraceCount counts whole traces (the oldest trace goes,
with all its spans), MaxLogCount counts log records, and MaxMetricsCount counts metric data points
per resource. Everything is converted from protobuf when it arrives, so a snapshot is cheap and
holds no protobuf objects.
"""

from __future__ import annotations

import base64
import threading
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1 import trace_pb2

from .config import Limits

Json = dict[str, Any]
SIGNALS = ("traces", "metrics", "logs")
TRANSPORTS = ("grpc", "http")
UNKNOWN_SERVICE = "unknown_service"


# --- protobuf -> JSON values -------------------------------------------------------------------


def any_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return attributes(value.kvlist_value.values)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return getattr(value, kind)  # string, bool, int (int64 -> int) or double


def attributes(items: Iterable[KeyValue]) -> Json:
    return {item.key: any_value(item.value) for item in items}


def hex_id(raw: bytes) -> str | None:
    """Trace and span ids as the W3C lower-case hex everyone logs; an all-empty id is "none"."""
    return raw.hex() if raw and any(raw) else None


def _enum_name(enum_type: Any, number: int, prefix: str) -> str:
    try:
        return str(enum_type.Name(number)).removeprefix(prefix).lower()
    except ValueError:  # a number newer than this proto package knows
        return str(number)


def _scope(scope: InstrumentationScope) -> Json:
    return {"name": scope.name, "version": scope.version or None}


class _ResourceInfo:
    """service.name and the attributes of one Resource, shared by all the items under it."""

    __slots__ = ("attributes", "key", "service")

    def __init__(self, resource: Resource) -> None:
        self.attributes = attributes(resource.attributes)
        name = self.attributes.get("service.name")
        self.service = str(name) if name else UNKNOWN_SERVICE
        # The dashboard tells resources apart by name and instance id.
        self.key = (self.service, str(self.attributes.get("service.instance.id") or ""))


def span_json(span: trace_pb2.Span, resource: _ResourceInfo, scope: Json) -> Json:
    return {
        "trace_id": hex_id(span.trace_id),
        "span_id": hex_id(span.span_id),
        "parent_span_id": hex_id(span.parent_span_id),
        "name": span.name,
        "kind": _enum_name(trace_pb2.Span.SpanKind, span.kind, "SPAN_KIND_"),
        "service": resource.service,
        "resource": resource.attributes,
        "scope": scope,
        "trace_state": span.trace_state or None,
        "start_time_unix_nano": span.start_time_unix_nano,
        "end_time_unix_nano": span.end_time_unix_nano,
        "attributes": attributes(span.attributes),
        "events": [
            {"name": event.name, "time_unix_nano": event.time_unix_nano, "attributes": attributes(event.attributes)}
            for event in span.events
        ],
        "links": [
            {
                "trace_id": hex_id(link.trace_id),
                "span_id": hex_id(link.span_id),
                "attributes": attributes(link.attributes),
            }
            for link in span.links
        ],
        "status": {
            "code": _enum_name(trace_pb2.Status.StatusCode, span.status.code, "STATUS_CODE_"),
            "message": span.status.message or None,
        },
    }


def log_json(record: Any, resource: _ResourceInfo, scope: Json) -> Json:
    return {
        "time_unix_nano": record.time_unix_nano,
        "observed_time_unix_nano": record.observed_time_unix_nano,
        "severity_number": record.severity_number,
        "severity_text": record.severity_text or None,
        "body": any_value(record.body),
        "attributes": attributes(record.attributes),
        "trace_id": hex_id(record.trace_id),
        "span_id": hex_id(record.span_id),
        "event_name": getattr(record, "event_name", "") or None,  # newer proto field
        "service": resource.service,
        "resource": resource.attributes,
        "scope": scope,
    }


def _number(point: metrics_pb2.NumberDataPoint) -> int | float | None:
    kind = point.WhichOneof("value")
    return getattr(point, kind) if kind else None


def metric_points(metric: metrics_pb2.Metric) -> tuple[Json, list[Json]]:
    """(what describes the instrument, one summary dict per data point)."""
    kind = metric.WhichOneof("data") or "empty"
    info: Json = {"name": metric.name, "description": metric.description or None, "unit": metric.unit or None}
    info["type"] = kind
    points: list[Json] = []
    if kind in ("gauge", "sum"):
        data = getattr(metric, kind)
        if kind == "sum":
            info["monotonic"] = data.is_monotonic
            info["temporality"] = _enum_name(
                metrics_pb2.AggregationTemporality, data.aggregation_temporality, "AGGREGATION_TEMPORALITY_"
            )
        points = [{"value": _number(p), **_point_common(p)} for p in data.data_points]
    elif kind == "histogram":
        info["temporality"] = _enum_name(
            metrics_pb2.AggregationTemporality, metric.histogram.aggregation_temporality, "AGGREGATION_TEMPORALITY_"
        )
        points = [
            {
                "count": p.count,
                "sum": p.sum if p.HasField("sum") else None,
                "min": p.min if p.HasField("min") else None,
                "max": p.max if p.HasField("max") else None,
                "bucket_counts": list(p.bucket_counts),
                "explicit_bounds": list(p.explicit_bounds),
                **_point_common(p),
            }
            for p in metric.histogram.data_points
        ]
    elif kind == "exponential_histogram":
        info["temporality"] = _enum_name(
            metrics_pb2.AggregationTemporality,
            metric.exponential_histogram.aggregation_temporality,
            "AGGREGATION_TEMPORALITY_",
        )
        points = [
            {
                "count": p.count,
                "sum": p.sum if p.HasField("sum") else None,
                "min": p.min if p.HasField("min") else None,
                "max": p.max if p.HasField("max") else None,
                "scale": p.scale,
                "zero_count": p.zero_count,
                "positive": {"offset": p.positive.offset, "bucket_counts": list(p.positive.bucket_counts)},
                "negative": {"offset": p.negative.offset, "bucket_counts": list(p.negative.bucket_counts)},
                **_point_common(p),
            }
            for p in metric.exponential_histogram.data_points
        ]
    elif kind == "summary":
        points = [
            {
                "count": p.count,
                "sum": p.sum,
                "quantiles": {str(q.quantile): q.value for q in p.quantile_values},
                **_point_common(p),
            }
            for p in metric.summary.data_points
        ]
    return info, points


def _point_common(point: Any) -> Json:
    return {
        "attributes": attributes(point.attributes),
        "start_time_unix_nano": point.start_time_unix_nano,
        "time_unix_nano": point.time_unix_nano,
    }


# --- the store ---------------------------------------------------------------------------------


class TelemetryStore:
    """Everything received, oldest first, within the limits. Safe to call from any thread."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        # A lock although the server runs in one event loop: embedding code or tests may read
        # from another thread, and every critical section is short.
        self._lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        with self._lock:
            self._seq = 0
            # trace id -> [(arrival seq, span)]; insertion order is the order traces first arrived.
            self._traces: OrderedDict[str, list[tuple[int, Json]]] = OrderedDict()
            self._logs: deque[Json] = deque(maxlen=self.limits.max_log_count)
            self._metrics: dict[tuple[str, str], deque[tuple[int, Json]]] = {}
            self._accepted = {transport: dict.fromkeys(SIGNALS, 0) for transport in TRANSPORTS}
            self._rejected = {transport: dict.fromkeys(SIGNALS, 0) for transport in TRANSPORTS}
            self._dropped = {"traces": 0, "spans": 0, "logs": 0, "metric_points": 0}

    # Recording ------------------------------------------------------------------------------

    def add_traces(self, request: ExportTraceServiceRequest, transport: str) -> None:
        converted: list[Json] = []
        for resource_spans in request.resource_spans:
            resource = _ResourceInfo(resource_spans.resource)
            for scope_spans in resource_spans.scope_spans:
                scope = _scope(scope_spans.scope)
                converted.extend(span_json(span, resource, scope) for span in scope_spans.spans)
        with self._lock:
            self._accepted[transport]["traces"] += 1
            for span in converted:
                self._seq += 1
                self._traces.setdefault(span["trace_id"] or "", []).append((self._seq, span))
            while len(self._traces) > self.limits.max_trace_count:
                _, spans = self._traces.popitem(last=False)
                self._dropped["traces"] += 1
                self._dropped["spans"] += len(spans)

    def add_logs(self, request: ExportLogsServiceRequest, transport: str) -> None:
        converted: list[Json] = []
        for resource_logs in request.resource_logs:
            resource = _ResourceInfo(resource_logs.resource)
            for scope_logs in resource_logs.scope_logs:
                scope = _scope(scope_logs.scope)
                converted.extend(log_json(record, resource, scope) for record in scope_logs.log_records)
        with self._lock:
            self._accepted[transport]["logs"] += 1
            for record in converted:
                if len(self._logs) == self._logs.maxlen:
                    self._dropped["logs"] += 1
                self._logs.append(record)

    def add_metrics(self, request: ExportMetricsServiceRequest, transport: str) -> None:
        converted: list[tuple[tuple[str, str], Json]] = []
        for resource_metrics in request.resource_metrics:
            resource = _ResourceInfo(resource_metrics.resource)
            for scope_metrics in resource_metrics.scope_metrics:
                scope = _scope(scope_metrics.scope)
                for metric in scope_metrics.metrics:
                    info, points = metric_points(metric)
                    base = {"service": resource.service, "resource": resource.attributes, "scope": scope, **info}
                    converted.extend((resource.key, {**base, "point": point}) for point in points)
        with self._lock:
            self._accepted[transport]["metrics"] += 1
            for key, point in converted:
                bucket = self._metrics.setdefault(key, deque(maxlen=self.limits.max_metrics_count))
                if len(bucket) == bucket.maxlen:
                    self._dropped["metric_points"] += 1
                self._seq += 1
                bucket.append((self._seq, point))

    def add(self, signal: str, request: Any, transport: str) -> None:
        {"traces": self.add_traces, "metrics": self.add_metrics, "logs": self.add_logs}[signal](request, transport)

    def count_rejected(self, transport: str, signal: str | None) -> None:
        with self._lock:
            counts = self._rejected[transport]
            key = signal if signal in SIGNALS else "other"  # e.g. a gRPC method that doesn't exist
            counts[key] = counts.get(key, 0) + 1

    # Reading --------------------------------------------------------------------------------

    def snapshot(self) -> Json:
        """Everything, as GET /api/telemetry returns it."""
        with self._lock:
            traces = [list(spans) for spans in self._traces.values()]
            logs = list(self._logs)
            metric_points_ = [entry for bucket in self._metrics.values() for entry in bucket]
            accepted = {transport: dict(counts) for transport, counts in self._accepted.items()}
            rejected_by = {transport: dict(counts) for transport, counts in self._rejected.items()}
            dropped = dict(self._dropped)
        spans = [span for _, span in sorted((entry for trace in traces for entry in trace), key=lambda e: e[0])]
        return {
            "spans": spans,
            "traces": [_trace_summary([span for _, span in trace]) for trace in traces],
            "metrics": _group_metrics(metric_points_),
            "logs": logs,
            "accepted": accepted,
            "rejected": sum(sum(counts.values()) for counts in rejected_by.values()),
            "rejected_by": rejected_by,
            "dropped": dropped,
            "limits": {
                "max_trace_count": self.limits.max_trace_count,
                "max_log_count": self.limits.max_log_count,
                "max_metrics_count": self.limits.max_metrics_count,
            },
        }

    def trace_summaries(self) -> list[Json]:
        with self._lock:
            traces = [[span for _, span in spans] for spans in self._traces.values()]
        return [_trace_summary(spans) for spans in traces]


def _trace_summary(spans: list[Json]) -> Json:
    ids = {span["span_id"] for span in spans}
    # The root is the span without a parent; failing that (root not received yet), the earliest.
    roots = [span for span in spans if span["parent_span_id"] is None or span["parent_span_id"] not in ids]
    root = min(roots or spans, key=lambda span: span["start_time_unix_nano"])
    return {
        "trace_id": root["trace_id"],
        "name": root["name"],
        "service": root["service"],
        "services": sorted({span["service"] for span in spans}),
        "span_count": len(spans),
        "start_time_unix_nano": min(span["start_time_unix_nano"] for span in spans),
        "end_time_unix_nano": max(span["end_time_unix_nano"] for span in spans),
        "error": any(span["status"]["code"] == "error" for span in spans),
    }


def _group_metrics(entries: list[tuple[int, Json]]) -> list[Json]:
    """One entry per (service, scope, instrument), its points oldest first."""
    groups: dict[tuple[Any, ...], Json] = {}
    for _, entry in sorted(entries, key=lambda e: e[0]):
        key = (entry["service"], entry["scope"]["name"], entry["name"])
        group = groups.get(key)
        if group is None:
            group = groups[key] = {k: v for k, v in entry.items() if k != "point"} | {"data_points": []}
        group["data_points"].append(entry["point"])
    for group in groups.values():
        group["point_count"] = len(group["data_points"])
        group["latest"] = group["data_points"][-1]
    return list(groups.values())


def decode_hex_ids(node: Any, id_keys: Mapping[str, None] | None = None) -> Any:
    """OTLP/JSON carries trace and span ids as hex; protobuf's JSON mapping wants base64 for bytes."""
    keys = id_keys or dict.fromkeys(("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"))
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in keys and isinstance(value, str):
                out[key] = base64.b64encode(bytes.fromhex(value)).decode("ascii") if value else value
            else:
                out[key] = decode_hex_ids(value, keys)
        return out
    if isinstance(node, list):
        return [decode_hex_ids(item, keys) for item in node]
    return node

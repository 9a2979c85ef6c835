"""The benchmark's figures: statistics of one level, the pipeline-to-direct ratios, the targets, the
report document and the comparison of two reports. Pure functions over plain data, no I/O."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA = "offline-agents/benchmark/1"
MODES = ("direct", "pipeline")
SIZES = ("short", "medium", "long")

# From the original plan: a 7B model on a GPU streams more than 50 tokens/s, and the first token
# arrives in under a second. Informative: a laptop on CPU is not expected to meet them.
TARGET_DECODE_TOKENS_PER_S = 50.0
TARGET_TTFT_S = 1.0
SAME_WITHIN_PCT = 5.0  # compare: differences smaller than this are noise, not "faster"

DEFINITIONS = {
    "latency_s": "wall time of one request as the client sees it: sending to the last byte (pipeline: one whole "
    "plan, three agents and their tool calls)",
    "ttft_s": "time to first token: sending to the first non-empty text chunk (pipeline: the first text of the plan, "
    "after the Researcher's tool calls)",
    "tokens_per_s": "per request, output tokens / latency: the rate a user gets, first-token wait included",
    "decode_tokens_per_s": "direct only, per request: (output tokens - 1) / (latency - ttft), the generation speed "
    "once the first token is out, measured by the client; the GPU target (> 50) refers to it",
    "ollama_eval_tokens_per_s": "direct only, per request: eval_count / eval_duration as Ollama reports them "
    "(the 'eval rate' of `ollama run --verbose`)",
    "aggregate_tokens_per_s": "all output tokens of a level / the level's wall time: what the server delivers to "
    "all concurrent users together",
    "output_tokens": "eval_count, summed over a plan's model calls in the pipeline",
    "prompt_tokens": "prompt_eval_count, summed over a plan's model calls in the pipeline",
    "ollama_s": "pipeline: Ollama's own total_duration summed over the plan's model calls (queueing for a slot "
    "included)",
    "tools_s": "pipeline: time the plan waited for its MCP tool calls, from the model asking for a call to its "
    "result; calls asked for together run at once and count once",
    "overhead_s": "pipeline: latency - ollama_s - tools_s: the orchestrator's own cost (agent framework, hand-offs, "
    "HTTP and parsing)",
    "pipeline_to_direct": "per concurrency: the pipeline's own cost. (plan latency / Ollama's total_duration summed "
    "over the plan's calls) divided by (request latency / total_duration) of direct requests, at the same "
    "concurrency. Ollama's total_duration covers queueing for a slot, prompt evaluation and generation, so the model's "
    "speed, prompt and reply lengths and contention cancel out; 1.00 means the pipeline adds nothing to the time its "
    "model calls take, 1.05 means its tool calls and orchestration add 5 %. plan_time_pct splits a plan's time into "
    "Ollama, tools and orchestrator",
    "percentiles": "linear interpolation between the closest ranks (numpy's default); with few requests p95 and p99 "
    "are close to the maximum",
}


@dataclass
class Sample:
    """One request: a direct chat, or one whole plan through the pipeline."""

    index: int
    ok: bool
    latency_s: float
    ttft_s: float | None = None
    output_tokens: int = 0
    prompt_tokens: int = 0
    error: str | None = None
    # Ollama's own timings (direct: of the one call; pipeline: ollama_s summed over the plan's calls)
    ollama_s: float | None = None
    load_s: float | None = None
    prompt_eval_s: float | None = None
    eval_s: float | None = None
    # pipeline only
    model_calls: int | None = None
    tools_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in asdict(self).items() if v is not None}


@dataclass
class Level:
    """All requests of one mode, prompt size and concurrency."""

    mode: str
    size: str
    concurrency: int
    requests: int
    wall_s: float = 0.0
    samples: list[Sample] = field(default_factory=list)
    complete: bool = True


# --- statistics -----------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: int) -> float | None:
    """The q-th percentile (1-99) by linear interpolation between closest ranks."""
    if not values:
        return None
    if len(values) == 1:
        return float(values[0])
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def _mean(values: Iterable[float]) -> float | None:
    values = list(values)
    return statistics.fmean(values) if values else None


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def decode_rate(sample: Sample) -> float | None:
    if sample.ttft_s is None or sample.output_tokens < 2 or sample.latency_s <= sample.ttft_s:
        return None
    return (sample.output_tokens - 1) / (sample.latency_s - sample.ttft_s)


def summarize(level: Level) -> dict[str, Any]:
    """A level's row of the report: its statistics, then its raw samples."""
    ok = [s for s in level.samples if s.ok]
    latency = [s.latency_s for s in ok]
    ttft = [s.ttft_s for s in ok if s.ttft_s is not None]
    errors = [s.error or "failed" for s in level.samples if not s.ok]
    row: dict[str, Any] = {
        "mode": level.mode,
        "size": level.size,
        "concurrency": level.concurrency,
        "requests": len(level.samples),
        "planned_requests": level.requests,
        "ok": len(ok),
        "errors": len(errors),
        "error_messages": sorted(set(errors))[:5],
        "complete": level.complete,
        "wall_s": _round(level.wall_s),
        "latency_s": {
            "mean": _round(_mean(latency)),
            "p50": _round(percentile(latency, 50)),
            "p95": _round(percentile(latency, 95)),
            "p99": _round(percentile(latency, 99)),
            "min": _round(min(latency, default=None)),
            "max": _round(max(latency, default=None)),
        },
        "ttft_s": {
            "mean": _round(_mean(ttft)),
            "p50": _round(percentile(ttft, 50)),
            "p95": _round(percentile(ttft, 95)),
        },
        "tokens_per_s": _round(_mean(s.output_tokens / s.latency_s for s in ok if s.latency_s > 0), 2),
        # An interrupted level's wall time holds requests cut short: no aggregate for it.
        "aggregate_tokens_per_s": _round(sum(s.output_tokens for s in ok) / level.wall_s, 2)
        if level.wall_s > 0 and level.complete
        else None,
        "output_tokens": _round(_mean(s.output_tokens for s in ok), 1),
        "prompt_tokens": _round(_mean(s.prompt_tokens for s in ok), 1),
    }
    if level.mode == "direct":
        rates = [r for r in map(decode_rate, ok) if r is not None]
        evals = [s.output_tokens / s.eval_s for s in ok if s.eval_s]
        row["decode_tokens_per_s"] = _round(_mean(rates), 2)
        row["ollama_eval_tokens_per_s"] = _round(_mean(evals), 2)
    else:
        overhead = [s.latency_s - (s.ollama_s or 0) - (s.tools_s or 0) for s in ok]
        row["model_calls"] = _round(_mean(s.model_calls or 0 for s in ok), 2)
        row["ollama_s"] = _round(_mean(s.ollama_s or 0 for s in ok))
        row["tools_s"] = _round(_mean(s.tools_s or 0 for s in ok))
        row["overhead_s"] = _round(_mean(overhead))
        row["overhead_pct"] = _round(100 * sum(overhead) / sum(latency), 2) if latency else None
    row["samples"] = [s.to_json() for s in level.samples]
    return row


# --- across levels ---------------------------------------------------------------------------------


def _aggregate(rows: list[dict[str, Any]]) -> float | None:
    """Aggregate tokens/s over several levels: all their output tokens over all their wall time."""
    rows = [r for r in rows if r["complete"]]
    wall = sum(r["wall_s"] or 0 for r in rows)
    tokens = sum(s.get("output_tokens", 0) for r in rows for s in r["samples"] if s["ok"])
    return tokens / wall if wall > 0 and tokens else None


def _wall_per_ollama_s(samples: list[dict[str, Any]]) -> float | None:
    """Seconds the client waited per second Ollama reports working (its total_duration)."""
    ollama = sum(s.get("ollama_s") or 0 for s in samples)
    return sum(s["latency_s"] for s in samples) / ollama if ollama > 0 else None


def ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pipeline's own cost at each concurrency both modes were measured at.

    Ollama's total_duration of a call covers its queueing for a slot, prompt evaluation and
    generation, so wall time per second of it cancels out the model's speed, the lengths of
    prompts and replies, and the contention at that concurrency. What is left: directly, about
    1.0 (HTTP and the client); through the pipeline, also the tool calls and the orchestrator.
    """
    table = []
    for concurrency in sorted({r["concurrency"] for r in rows}):
        direct = [r for r in rows if r["mode"] == "direct" and r["concurrency"] == concurrency]
        pipeline = [r for r in rows if r["mode"] == "pipeline" and r["concurrency"] == concurrency]
        requests = [s for r in direct for s in r["samples"] if s["ok"]]
        plans = [s for r in pipeline for s in r["samples"] if s["ok"]]
        direct_factor, pipeline_factor = _wall_per_ollama_s(requests), _wall_per_ollama_s(plans)
        if not direct_factor or not pipeline_factor:
            continue
        latency = sum(s["latency_s"] for s in plans)
        ollama = sum(s.get("ollama_s") or 0 for s in plans)
        tools = sum(s.get("tools_s") or 0 for s in plans)
        direct_rate, pipeline_rate = _aggregate(direct), _aggregate(pipeline)
        table.append(
            {
                "concurrency": concurrency,
                "pipeline_to_direct": round(pipeline_factor / direct_factor, 4),
                "direct_wall_per_ollama_s": round(direct_factor, 4),
                "pipeline_wall_per_ollama_s": round(pipeline_factor, 4),
                "plans": len(plans),
                "model_calls_per_plan": round(sum(s.get("model_calls") or 0 for s in plans) / len(plans), 2),
                "plan_time_pct": {
                    "ollama": round(100 * ollama / latency, 2),
                    "tools": round(100 * tools / latency, 2),
                    "orchestrator": round(100 * (latency - ollama - tools) / latency, 2),
                },
                "direct_tokens_per_s": None if direct_rate is None else round(direct_rate, 2),
                "pipeline_tokens_per_s": None if pipeline_rate is None else round(pipeline_rate, 2),
            }
        )
    return table


def targets(rows: list[dict[str, Any]], processor: str | None) -> dict[str, Any]:
    """The original plan's targets, checked on direct requests at the lowest concurrency measured."""
    direct = [r for r in rows if r["mode"] == "direct" and r["ok"]]
    if not direct:
        return {}
    lowest = min(r["concurrency"] for r in direct)
    at = sorted((r for r in direct if r["concurrency"] == lowest), key=lambda r: _size_order(r["size"]))
    decode = {r["size"]: r["decode_tokens_per_s"] for r in at if r["decode_tokens_per_s"] is not None}
    ttft = {r["size"]: r["ttft_s"]["p50"] for r in at if r["ttft_s"]["p50"] is not None}
    return {
        "concurrency": lowest,
        "on_gpu": processor is not None and "GPU" in processor and "CPU" not in processor,
        "decode_tokens_per_s": {
            "target": f"> {TARGET_DECODE_TOKENS_PER_S:g} (7B on a GPU)",
            "by_size": decode,
            "pass": bool(decode) and all(v > TARGET_DECODE_TOKENS_PER_S for v in decode.values()),
        },
        "ttft_p50_s": {
            "target": f"< {TARGET_TTFT_S:g} s",
            "by_size": ttft,
            "pass": bool(ttft) and all(v < TARGET_TTFT_S for v in ttft.values()),
        },
    }


def _size_order(size: str) -> int:
    return SIZES.index(size) if size in SIZES else len(SIZES)


def row_key(row: dict[str, Any]) -> tuple[int, str, int]:
    """Report order: mode, then size, then concurrency."""
    mode = MODES.index(row["mode"]) if row["mode"] in MODES else len(MODES)
    return (mode, f"{_size_order(row['size'])}{row['size']}", row["concurrency"])


# --- comparing two reports ---------------------------------------------------------------------------


class ReportError(ValueError):
    """A file that is not a benchmark report."""


def validate(document: Any) -> dict[str, Any]:
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        raise ReportError(f'not a benchmark report (no "schema": "{SCHEMA}")')
    rows = document.get("results")
    if not isinstance(rows, list):
        raise ReportError("not a benchmark report (no results list)")
    for row in rows:
        if not isinstance(row, dict) or not {"mode", "size", "concurrency", "latency_s", "ttft_s"} <= set(row):
            raise ReportError("a result row lacks mode, size, concurrency or its figures")
        if not isinstance(row["latency_s"], dict) or not isinstance(row["ttft_s"], dict):
            raise ReportError("a result row's latency_s or ttft_s is not an object")
    return document


def _change(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or a == 0:
        return None
    return round(100 * (b - a) / a, 2)


def compare(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Row by row (same mode, size and concurrency): B's change against A, in percent."""
    index_b = {(r["mode"], r["size"], r["concurrency"]): r for r in b["results"]}
    rows = []
    for row_a in sorted(a["results"], key=row_key):
        row_b = index_b.get((row_a["mode"], row_a["size"], row_a["concurrency"]))
        if row_b is None:
            continue
        latency = (row_a["latency_s"].get("p50"), row_b["latency_s"].get("p50"))
        p95 = (row_a["latency_s"].get("p95"), row_b["latency_s"].get("p95"))
        ttft = (row_a["ttft_s"].get("p50"), row_b["ttft_s"].get("p50"))
        rate = (row_a.get("aggregate_tokens_per_s"), row_b.get("aggregate_tokens_per_s"))
        change = _change(*latency)
        if change is None:
            faster = None
        elif abs(change) < SAME_WITHIN_PCT:
            faster = "same"
        else:
            faster = "B" if change < 0 else "A"
        rows.append(
            {
                "mode": row_a["mode"],
                "size": row_a["size"],
                "concurrency": row_a["concurrency"],
                "latency_p50_s": latency,
                "latency_p50_change_pct": change,
                "latency_p95_s": p95,
                "latency_p95_change_pct": _change(*p95),
                "ttft_p50_s": ttft,
                "ttft_p50_change_pct": _change(*ttft),
                "aggregate_tokens_per_s": rate,
                "aggregate_tokens_per_s_change_pct": _change(*rate),
                "faster": faster,
            }
        )
    return {
        "rows": rows,
        "faster_counts": {k: sum(r["faster"] == k for r in rows) for k in ("A", "B", "same")},
        "differences": differences(a, b),
    }


COMPARED_PARAMETERS = ("max_tokens", "num_ctx", "temperature", "pipeline_max_output_tokens", "pipeline_max_tool_rounds")


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """What else differs between two runs, beyond what they were meant to compare."""
    params_a, params_b = a.get("parameters") or {}, b.get("parameters") or {}
    found = [
        f"{name} {params_a.get(name)} vs {params_b.get(name)}"
        for name in COMPARED_PARAMETERS
        if params_a.get(name) != params_b.get(name)
    ]
    requests_b = {(r["mode"], r["size"], r["concurrency"]): r.get("requests") for r in b["results"]}
    uneven = sorted(
        {
            (r["concurrency"], r.get("requests"), requests_b[key])
            for r in a["results"]
            if (key := (r["mode"], r["size"], r["concurrency"])) in requests_b and requests_b[key] != r.get("requests")
        }
    )
    found += [f"requests at concurrency {c}: {ra} vs {rb}" for c, ra, rb in uneven]
    return found

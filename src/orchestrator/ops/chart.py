"""PNG charts of benchmark reports: tokens/s and latency by concurrency, one column per mode.

matplotlib is imported here, on first use, with the Agg backend: no display is needed, and
`main.py` does not pay for the import when it only plans trips. It is the optional `charts` extra,
kept out of the orchestrator's image (about 160 MB): the image writes the JSON report, and the
operator's host draws the chart from it (`main.py benchmark chart REPORT.json`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .benchmark_report import MODES, row_key

SIZE_COLOURS = {"short": "tab:blue", "medium": "tab:orange", "long": "tab:green"}


class ChartUnavailable(Exception):
    """matplotlib is not installed here; the message says where to draw the chart instead."""


HOW_TO_DRAW = "uv run --extra charts python main.py benchmark chart {report}"


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ChartUnavailable("matplotlib is not installed here (the optional `charts` extra)") from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _series(report: dict[str, Any], mode: str) -> dict[str, list[dict[str, Any]]]:
    by_size: dict[str, list[dict[str, Any]]] = {}
    for row in sorted(report["results"], key=row_key):
        if row["mode"] == mode and row.get("ok"):
            by_size.setdefault(row["size"], []).append(row)
    return by_size


def _draw(reports: list[tuple[str, dict[str, Any], str]], path: Path, title: str, *, p95: bool) -> None:
    """reports: (label, report, line style). Rows: aggregate tokens/s, latency; columns: modes."""
    plt = _pyplot()
    modes = [m for m in MODES if any(r["mode"] == m for _, report, _ in reports for r in report["results"])]
    modes = modes or [MODES[0]]
    figure, axes = plt.subplots(2, len(modes), figsize=(6.5 * len(modes), 8.5), squeeze=False)
    levels = sorted({r["concurrency"] for _, report, _ in reports for r in report["results"]})
    for column, mode in enumerate(modes):
        rate_axis, latency_axis = axes[0][column], axes[1][column]
        for label, report, style in reports:
            prefix = f"{label} " if len(reports) > 1 else ""
            for size, rows in _series(report, mode).items():
                colour = SIZE_COLOURS.get(size)
                x = [r["concurrency"] for r in rows]
                rate_axis.plot(x, [r.get("aggregate_tokens_per_s") for r in rows], style, marker="o", color=colour,
                               label=f"{prefix}{size}")  # fmt: skip
                latency_axis.plot(x, [r["latency_s"].get("p50") for r in rows], style, marker="o", color=colour,
                                  label=f"{prefix}{size} p50")  # fmt: skip
                if p95:
                    latency_axis.plot(x, [r["latency_s"].get("p95") for r in rows], ":", marker="^", color=colour,
                                      label=f"{prefix}{size} p95")  # fmt: skip
        rate_axis.set_title(f"{mode}: tokens/s, all users together")
        rate_axis.set_ylabel("aggregate tokens/s")
        latency_axis.set_title(f"{mode}: latency per {'plan' if mode == 'pipeline' else 'request'}")
        latency_axis.set_ylabel("seconds")
        for axis in (rate_axis, latency_axis):
            axis.set_xscale("log", base=2)
            axis.set_xticks(levels, [str(level) for level in levels])
            axis.minorticks_off()
            axis.set_xlabel("concurrent requests")
            axis.set_ylim(bottom=0)
            axis.grid(True, alpha=0.3)
            if axis.get_legend_handles_labels()[0]:
                axis.legend(fontsize="small")
    figure.suptitle(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _describe(report: dict[str, Any]) -> str:
    env = report.get("environment") or {}
    where = env.get("processor") or "?"
    return (
        f"{env.get('model', '?')} on Ollama {env.get('ollama_version', '?')} ({where}), {report.get('created_at', '?')}"
    )


def write_chart(report: dict[str, Any], path: Path) -> None:
    _draw([("", report, "-")], path, f"benchmark: {_describe(report)}", p95=True)


def write_comparison_chart(a: dict[str, Any], b: dict[str, Any], path: Path) -> None:
    """The rows both reports have: A solid, B dashed."""
    keys = {(r["mode"], r["size"], r["concurrency"]) for r in a["results"]}
    keys &= {(r["mode"], r["size"], r["concurrency"]) for r in b["results"]}

    def common(report: dict[str, Any]) -> dict[str, Any]:
        rows = [r for r in report["results"] if (r["mode"], r["size"], r["concurrency"]) in keys]
        return {**report, "results": rows}

    title = f"A (solid): {_describe(a)}\nB (dashed): {_describe(b)}"
    _draw([("A", common(a), "-"), ("B", common(b), "--")], path, title, p95=False)

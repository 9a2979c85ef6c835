"""`main.py benchmark` against the Ollama stand-in with scripted timings, so every figure has a known
expected value: 200 tokens/s after 0.05 s (+ prompt tokens / 20,000) of prompt evaluation, 2 parallel
slots, 40-token replies. One request then takes L = 0.25 s; four at once take L, L, 2L, 2L.

Bounds: never faster than the schedule (minus a little), up to 20 % + 50 ms slower (a busy machine);
tight enough that a wrong percentile, a first token taken at the wrong moment or concurrency that does
not queue (or queues everything) fails.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from ollama_standin.testing import run_process
from service_processes import ROOT, ollama_standin, stack_env

from orchestrator.ops import benchmark
from orchestrator.ops.benchmark_report import SCHEMA, Level, Sample, compare, percentile, ratios, summarize
from orchestrator.ops.chart import write_chart

TPS, FIRST, PROMPT_RATE, SLOTS, MAX_TOKENS = 200.0, 0.05, 20000.0, 2, 40
STANDIN = ("--models", "qwen2.5:7b,gemma2:2b", "--tokens-per-second", str(TPS), "--first-token-delay", str(FIRST),
           "--prompt-tokens-per-second", str(PROMPT_RATE), "--num-parallel", str(SLOTS),
           "--brain", "ollama_standin.brain:padded_brain")  # fmt: skip
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def near(measured: float, expected: float) -> bool:
    return expected - 0.012 <= measured <= expected * 1.2 + 0.05


def rate_near(measured: float, expected: float) -> bool:
    return expected / 1.3 <= measured <= expected * 1.04


@pytest.fixture(scope="module")
def standin():
    # padded replies: every answer runs past --max-tokens, so each request yields exactly 40 tokens
    with run_process(STANDIN, env={"STANDIN_PAD_WORDS": "100"}) as url:
        yield url


def bench_env(url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OLLAMA_", "MCP_", "OTEL_"))}
    return {**env, "OLLAMA_HOST": url, "OLLAMA_MODEL": "qwen2.5:7b", "OLLAMA_CONNECT_WAIT": "2", **extra}


def only_report(directory: Path) -> dict:
    [path] = directory.glob("benchmark-qwen2.5-7b-*.json")
    assert path.with_suffix(".png").read_bytes().startswith(PNG_MAGIC)
    return json.loads(path.read_text())


# --- the figures, end to end -----------------------------------------------------------------------


def test_direct_figures_match_the_scripted_timings(standin, tmp_path):
    out = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "benchmark", "--mode", "direct", "--sizes", "short,long",
         "--concurrency", "1,4", "--requests", "4", "--max-tokens", str(MAX_TOKENS), "--output", str(out)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=bench_env(standin),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = only_report(out)
    assert report["schema"] == SCHEMA and not report["interrupted"]
    env = report["environment"]
    assert env["ollama_version"] == "0.12.6" and env["processor"] == "100% GPU" and env["machine"]["cpu_count"]
    assert env["model_load_s"] is not None or env["model_was_loaded"]
    rows = {(r["size"], r["concurrency"]): r for r in report["results"]}
    assert set(rows) == {("short", 1), ("short", 4), ("long", 1), ("long", 4)}

    for size in ("short", "long"):
        one, four = rows[size, 1], rows[size, 4]
        assert one["ok"] == four["ok"] == 4 and one["errors"] == four["errors"] == 0
        assert one["output_tokens"] == four["output_tokens"] == MAX_TOKENS
        evaluation = FIRST + one["prompt_tokens"] / PROMPT_RATE
        ttft, latency = evaluation + 1 / TPS, evaluation + MAX_TOKENS / TPS  # L
        # concurrency 1: every request alone
        assert near(one["latency_s"]["p50"], latency) and near(one["latency_s"]["p99"], latency)
        assert near(one["ttft_s"]["p50"], ttft)
        assert rate_near(one["decode_tokens_per_s"], TPS) and rate_near(one["ollama_eval_tokens_per_s"], TPS)
        assert rate_near(one["aggregate_tokens_per_s"], MAX_TOKENS / latency)
        # concurrency 4 on 2 slots: L, L, 2L, 2L
        assert near(four["latency_s"]["min"], latency) and near(four["latency_s"]["p50"], 1.5 * latency)
        assert near(four["latency_s"]["p95"], 2 * latency) and near(four["latency_s"]["mean"], 1.5 * latency)
        assert near(four["ttft_s"]["p95"], latency + ttft)  # the wait for a slot comes before the first token
        assert rate_near(four["decode_tokens_per_s"], TPS)  # each slot still streams at full speed
        assert rate_near(four["aggregate_tokens_per_s"], SLOTS * MAX_TOKENS / latency)
        queued = [s for s in four["samples"] if s["latency_s"] > 1.5 * latency]
        assert len(queued) == 2 and all(s["ollama_s"] == pytest.approx(s["latency_s"], abs=0.05) for s in queued)
    assert rows["long", 1]["prompt_tokens"] > 10 * rows["short", 1]["prompt_tokens"]  # ~1,500 words vs ~20

    goals = report["targets"]
    assert goals["decode_tokens_per_s"]["pass"] and goals["ttft_p50_s"]["pass"] and goals["on_gpu"]
    assert report["ratios"] == []  # no pipeline run: nothing to compare with
    table = done.stdout
    assert "direct   short      1   4/4" in table and "direct   long       4   4/4" in table
    assert "PASS" in table and "MISS" not in table and "report: " in table and "chart:  " in table


@pytest.fixture
def in_process(monkeypatch, tmp_path):
    """Run main.py benchmark in this process, in a directory without .env, with exactly this environment."""

    def run(env: dict[str, str], *args: str) -> int:
        monkeypatch.chdir(tmp_path)
        for name in list(os.environ):
            if name.startswith(("OLLAMA_", "MCP_", "OTEL_")):
                monkeypatch.delenv(name)
        for name, value in env.items():
            if name.startswith(("OLLAMA_", "MCP_", "OTEL_")):
                monkeypatch.setenv(name, value)
        return benchmark.main(list(args))

    return run


def test_pipeline_runs_the_three_agents_and_shows_its_own_cost(tmp_path, tools, in_process, capsys):
    first, tps = 0.02, 200.0
    args = ("--models", "qwen2.5:7b", "--tokens-per-second", str(tps), "--first-token-delay", str(first),
            "--num-parallel", "2")  # fmt: skip
    with ollama_standin(tmp_path, *args) as travel:
        code = in_process(stack_env(travel, tools), "--sizes", "short", "--concurrency", "1,2", "--requests", "2",
                          "--max-tokens", "40", "--output", str(tmp_path / "out"), "--json")  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = only_report(tmp_path / "out")
    assert json.loads(captured.out) == report  # --json: the report on stdout, the table on stderr
    printed = captured.err
    assert report["environment"]["mcp_server_url"] == tools.url
    plans = {r["concurrency"]: r for r in report["results"] if r["mode"] == "pipeline"}
    assert set(plans) == {1, 2}
    for row in plans.values():
        assert row["ok"] == 2 and row["model_calls"] >= 5  # Researcher and Weather call tools, then answer
        for plan in row["samples"]:
            assert 0 < plan["ttft_s"] < plan["latency_s"]
            assert plan["latency_s"] >= plan["ollama_s"] + plan["tools_s"] - 0.01
            # Ollama's time is the scripted time of exactly the tokens the plan reports
            expected = plan["model_calls"] * first + plan["output_tokens"] / tps
            assert abs(plan["ollama_s"] - expected) <= 0.02 * plan["model_calls"] + 0.05 * expected
        assert row["overhead_s"] >= -0.01 and row["overhead_pct"] < 30
    [one, two] = report["ratios"]
    assert (one["concurrency"], two["concurrency"]) == (1, 2)
    for ratio in (one, two):
        assert 0.97 <= ratio["direct_wall_per_ollama_s"] <= 1.3
        assert 0.97 <= ratio["pipeline_to_direct"] <= 1.5
        assert ratio["pipeline_to_direct"] == pytest.approx(
            ratio["pipeline_wall_per_ollama_s"] / ratio["direct_wall_per_ollama_s"], rel=1e-3
        )
        assert sum(ratio["plan_time_pct"].values()) == pytest.approx(100, abs=0.1)
    assert "pipeline short      2   2/2" in printed and "pipeline to direct" in printed


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["ctrl-c", "sigterm"])
def test_interrupted_run_still_writes_what_it_measured(standin, tmp_path, sig, code):
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "benchmark", "--mode", "direct", "--sizes", "short",
         "--concurrency", "1,2", "--requests", "6", "--max-tokens", str(MAX_TOKENS), "--output", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=bench_env(standin),
    )  # fmt: skip
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("direct   short      1"):  # the first level is done, the second runs
                process.send_signal(sig)
                break
        stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == code, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr and "report: " in stdout
    report = only_report(out)
    assert report["interrupted"]
    first, second = report["results"]
    assert first["complete"] and first["ok"] == 6 and first["aggregate_tokens_per_s"]
    assert not second["complete"] and second["aggregate_tokens_per_s"] is None


def test_failed_requests_are_counted_and_the_run_goes_on(tmp_path, in_process, capsys):
    # One slot and room for one waiting request: of four at once, two are refused with 503.
    args = ("--models", "qwen2.5:7b", "--tokens-per-second", "200", "--num-parallel", "1", "--max-queue", "1")
    with run_process(args) as url:
        code = in_process(bench_env(url), "--mode", "direct", "--sizes", "short", "--concurrency", "4",
                          "--requests", "4", "--max-tokens", "20", "--output", str(tmp_path / "out"))  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0
    [row] = only_report(tmp_path / "out")["results"]
    assert (row["ok"], row["errors"]) == (2, 2)
    assert row["error_messages"] == [
        f"Ollama at {url} is busy and refused the request (503: server busy, please try again.  maximum pending "
        "requests exceeded); ask again when the running requests are done, or raise OLLAMA_NUM_PARALLEL or "
        "OLLAMA_MAX_QUEUE"
    ]
    assert "2 failed: Ollama at" in printed


# --- mistakes get one line and the documented exit code ----------------------------------------------


def test_unreachable_ollama_missing_model_and_bad_arguments(standin, tmp_path, in_process, capsys):
    out = str(tmp_path / "out")
    unreachable = bench_env("http://127.0.0.1:9", OLLAMA_CONNECT_WAIT="0")
    assert in_process(unreachable, "--output", out) == 3
    assert capsys.readouterr().err.startswith("error: cannot reach Ollama at http://127.0.0.1:9")
    assert in_process(bench_env(standin), "--model", "nosuch:1b", "--output", out) == 4
    assert "ollama pull nosuch:1b" in capsys.readouterr().err
    assert in_process(bench_env(standin), "--model", "gemma2:2b", "--output", out) == 4  # the agents need tools
    assert "gemma2:2b does not support tool calling" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert in_process(bench_env(standin), "--output", str(tmp_path / "file" / "dir")) == 2
    assert capsys.readouterr().err.startswith("error: cannot write to ")
    for wrong in (["--concurrency", "0"], ["--sizes", "huge"], ["--mode", "direct,nope"], ["--requests", "x"]):
        with pytest.raises(SystemExit) as exit_info:
            in_process(bench_env(standin), *wrong)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("error: argument ") and err.count("\n") == 1
    with pytest.raises(SystemExit) as exit_info:
        in_process(bench_env(standin, OLLAMA_NUM_CTX="12"))
    assert exit_info.value.code == 2 and "OLLAMA_NUM_CTX" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.json"))


# --- statistics, ratios, compare, chart: known inputs --------------------------------------------------


def test_percentiles_interpolate_between_closest_ranks():
    values = [7.0, 1.0, 3.0, 9.0, 5.0, 2.0, 10.0, 4.0, 8.0, 6.0]  # 1..10, shuffled
    assert percentile(values, 50) == pytest.approx(5.5)
    assert percentile(values, 95) == pytest.approx(9.55)
    assert percentile(values, 99) == pytest.approx(9.91)
    assert percentile([1.0, 2.0, 3.0, 4.0], 95) == pytest.approx(3.85)
    assert percentile([0.3], 99) == 0.3 and percentile([], 50) is None


def direct_level(concurrency: int, latencies: list[float], wall: float, ttft: float = 0.1) -> Level:
    samples = [Sample(i, True, lat, ttft, output_tokens=40, prompt_tokens=30, ollama_s=lat - 0.01, eval_s=0.2)
               for i, lat in enumerate(latencies)]  # fmt: skip
    return Level("direct", "short", concurrency, len(samples), wall, samples)


def pipeline_level(concurrency: int, plans: int, wall: float) -> Level:
    samples = [Sample(i, True, 2.0, 0.5, output_tokens=300, prompt_tokens=5000, ollama_s=1.8, model_calls=6,
                      tools_s=0.1) for i in range(plans)]  # fmt: skip
    return Level("pipeline", "short", concurrency, plans, wall, samples)


def test_summary_of_a_level():
    level = direct_level(2, [0.5, 0.3, 0.4, 0.6], wall=1.0)
    level.samples.append(Sample(9, False, 0.01, error="Ollama at x answered 503: server busy"))
    row = summarize(level)
    assert (row["requests"], row["ok"], row["errors"]) == (5, 4, 1)
    assert row["error_messages"] == ["Ollama at x answered 503: server busy"]
    assert row["latency_s"]["mean"] == pytest.approx(0.45) and row["latency_s"]["p50"] == pytest.approx(0.45)
    assert row["latency_s"]["p95"] == pytest.approx(0.585) and row["latency_s"]["p99"] == pytest.approx(0.597)
    assert row["ttft_s"]["p95"] == pytest.approx(0.1)
    assert row["aggregate_tokens_per_s"] == pytest.approx(160)  # 4 x 40 tokens in 1 s
    decode = sum(39 / (lat - 0.1) for lat in (0.5, 0.3, 0.4, 0.6)) / 4
    assert row["decode_tokens_per_s"] == pytest.approx(decode, rel=1e-3)
    assert row["ollama_eval_tokens_per_s"] == pytest.approx(200)
    assert row["tokens_per_s"] == pytest.approx(sum(40 / lat for lat in (0.5, 0.3, 0.4, 0.6)) / 4, rel=1e-3)


def test_pipeline_to_direct_ratio():
    rows = [summarize(direct_level(1, [1.0, 1.0], wall=2.0)), summarize(pipeline_level(1, 2, wall=4.0)),
            summarize(direct_level(4, [1.0] * 4, wall=1.0))]  # fmt: skip
    [ratio] = ratios(rows)  # only concurrency 1 has both modes
    assert ratio["direct_wall_per_ollama_s"] == pytest.approx(1 / 0.99, rel=1e-3)
    assert ratio["pipeline_wall_per_ollama_s"] == pytest.approx(2.0 / 1.8, rel=1e-3)
    assert ratio["pipeline_to_direct"] == pytest.approx((2.0 / 1.8) * 0.99, rel=1e-3)
    assert ratio["plan_time_pct"] == {"ollama": 90.0, "tools": 5.0, "orchestrator": 5.0}
    assert ratio["model_calls_per_plan"] == 6 and ratio["plans"] == 2
    assert (ratio["direct_tokens_per_s"], ratio["pipeline_tokens_per_s"]) == (40.0, 150.0)


def test_tool_time_counts_calls_made_together_once():
    # three calls asked for at once (0-1, 0.5-2 s), one later (3-4 s): the plan waited 3 s, not 3.5
    assert benchmark._union([[0.0, 1.0], [0.5, 2.0], [3.0, 4.0]]) == 3.0
    assert benchmark._union([[0.0, 2.0], [0.5, 1.0]]) == 2.0 and benchmark._union([]) == 0.0


def report_of(*levels: Level, model: str = "qwen2.5:7b", **parameters) -> dict:
    return {
        "schema": SCHEMA,
        "created_at": "2026-11-01T10:00:00Z",
        "environment": {"model": model, "ollama_version": "0.12.6", "processor": "100% GPU", "ollama_host": "h"},
        "parameters": {"max_tokens": 128, **parameters},
        "results": [summarize(level) for level in levels],
    }


def test_compare_reports_changes_and_the_faster_side():
    a = report_of(direct_level(1, [0.5] * 4, wall=2.0), direct_level(2, [0.5] * 4, wall=1.0),
                  pipeline_level(1, 2, wall=4.0))  # fmt: skip
    b = report_of(direct_level(1, [0.25] * 4, wall=1.0), direct_level(2, [0.51] * 4, wall=1.0),
                  direct_level(8, [1.0] * 8, wall=1.0), max_tokens=64)  # fmt: skip
    result = compare(a, b)
    assert [(r["mode"], r["concurrency"]) for r in result["rows"]] == [("direct", 1), ("direct", 2)]
    first, second = result["rows"]
    assert first["latency_p50_change_pct"] == -50.0 and first["faster"] == "B"
    assert first["aggregate_tokens_per_s_change_pct"] == 100.0
    assert second["faster"] == "same"  # +2 %: noise
    assert result["faster_counts"] == {"A": 0, "B": 1, "same": 1}
    assert result["differences"] == ["max_tokens 128 vs 64"]


def test_compare_command_table_chart_and_bad_files(tmp_path, capsys):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(report_of(direct_level(1, [0.5] * 4, wall=2.0))))
    b.write_text(json.dumps(report_of(direct_level(1, [0.4] * 4, wall=1.6), model="llama3.2:3b")))
    chart = tmp_path / "compare.png"
    assert benchmark.main(["compare", str(a), str(b), "--chart", str(chart)]) == 0
    out = capsys.readouterr().out
    assert "llama3.2:3b" in out and "-20.0 %" in out and "B faster in 1 rows" in out
    assert chart.read_bytes().startswith(PNG_MAGIC)

    unrelated, broken = tmp_path / "other.json", tmp_path / "broken.json"
    unrelated.write_text(json.dumps({"plan": "4 days in Lisbon"}))
    broken.write_text('{"schema": ')
    for bad, says in ((unrelated, "not a benchmark report"), (broken, "not JSON"),
                      (tmp_path / "missing.json", "cannot read")):  # fmt: skip
        assert benchmark.main(["compare", str(a), str(bad)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and says in err and err.count("\n") == 1
    c = tmp_path / "c.json"
    c.write_text(json.dumps(report_of(direct_level(8, [0.4] * 8, wall=1.6))))
    assert benchmark.main(["compare", str(a), str(c)]) == 2
    assert "in common" in capsys.readouterr().err


def test_chart_is_a_real_png(tmp_path):
    import matplotlib.image

    report = report_of(direct_level(1, [0.25] * 4, wall=1.0), direct_level(2, [0.25] * 4, wall=0.5),
                       direct_level(4, [0.5] * 4, wall=0.5), pipeline_level(1, 2, wall=4.0),
                       pipeline_level(2, 2, wall=2.0))  # fmt: skip
    path = tmp_path / "chart.png"
    write_chart(report, path)
    assert path.read_bytes().startswith(PNG_MAGIC) and path.stat().st_size > 20_000
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[0] >= 600 and pixels.shape[1] >= 1000 and pixels.std() > 0.05  # two columns, not blank


def test_the_loaded_model_is_found_under_another_tag_or_spelling():
    from orchestrator.ops.common import loaded_entry

    ps = [{"name": "qwen2.5:7b-instruct-q4_K_M", "model": "qwen2.5:7b-instruct-q4_K_M", "digest": "845dbda0ea48"}]
    assert loaded_entry(ps, "registry.ollama.ai/library/Qwen2.5:7B-Instruct-Q4_K_M") is ps[0]
    assert loaded_entry(ps, "qwen2.5:7b") is None  # another name: only its digest can tell
    assert loaded_entry(ps, "qwen2.5:7b", "845dbda0ea48") is ps[0]  # two tags, one set of weights
    assert loaded_entry(ps, "qwen2.5:3b", "0000") is None


def test_a_long_level_shows_progress(monkeypatch, capsys):
    # One Ollama slot, eight plans queued: a level can run for many minutes; it must not look hung.
    monkeypatch.setattr(benchmark, "PROGRESS_EVERY_S", 0.05)
    args = benchmark.build_parser().parse_args(["--requests", "4", "--json"])
    bench = benchmark.Benchmark.__new__(benchmark.Benchmark)
    bench.args, bench.levels, bench.counter, bench.rows_to = args, [], 0, sys.stderr

    async def slow(_size: str, index: int, _worker: int) -> Sample:
        await asyncio.sleep(0.06)
        return Sample(index, index != 2, 0.06, error=None if index != 2 else "timed out")

    asyncio.run(bench._level("direct", "long", 1, slow))
    err = capsys.readouterr().err
    assert "... direct long concurrency 1: 1/4 done" in err and "1 failed" in err
    assert err.rstrip().splitlines()[-1].startswith("direct   long       1   3/4")  # then the row


def test_without_matplotlib_the_report_is_written_and_the_host_draws_the_chart(tmp_path, capsys, monkeypatch):
    """The orchestrator's image carries no plotting library (the `charts` extra): the JSON report
    is still written, one note says where to draw it, and `benchmark chart` draws it there."""
    report = report_of(direct_level(1, [0.5] * 4, wall=2.0))
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` raises ImportError
    json_path, png_path = benchmark._write(report, tmp_path, "qwen2.5:7b", datetime.now(UTC), Path("results"))
    assert png_path is None and json.loads(json_path.read_text())["results"]
    (note,) = capsys.readouterr().err.splitlines()
    draw = f"uv run --extra charts python main.py benchmark chart results/{json_path.name}"
    assert (
        note
        == f"note: no chart: matplotlib is not installed here (the optional `charts` extra); on a host with it: {draw}"
    )
    assert benchmark.main(["chart", str(json_path)]) == 2
    assert "matplotlib is not installed here" in capsys.readouterr().err
    monkeypatch.undo()  # the module as it was (a fresh import would clash with its loaded submodules)
    assert benchmark.main(["chart", str(json_path)]) == 0
    assert json_path.with_suffix(".png").read_bytes().startswith(PNG_MAGIC)
    assert benchmark.main(["chart", str(tmp_path / "missing.json")]) == 2

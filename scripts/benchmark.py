"""Benchmark the orchestrator against the Ollama stand-in and print the figures.

    uv run python scripts/benchmark.py [--runs 5] [--rate 100] [--json]

Three measurements, each against its target:
  1. overhead: wall time of one three-agent plan against the time the stand-in itself spent
     serving it (Ollama's total_duration) plus the tool calls, with the stand-in streaming at a
     fixed rate. What is left is the orchestrator's own cost. Target: under 5 %.
  2. throughput: streamed tokens per second the orchestrator consumes with the stand-in at full
     speed and long replies. Target: at least 5,000 tokens/s, so it never limits a GPU.
  3. start-up: time from launching `python main.py` to its prompt. Target: under 2 s.
  4. telemetry: one plan's turn time with OTLP export to the dashboard stand-in, against without.
     Target: under 3 %.
  5. a real model: one plan on Qwen2.5-Coder-0.5B (llama.cpp behind the stand-in) when the
     real-model tier is prepared (scripts/real-model.sh): wall time, tokens/s, tool calls, whether
     the plan was made and its figures grounded. No target: it is what a user of a laptop-sized
     model waits. `--real-model-only` runs just this one.
  6. image size: the orchestrator's image over its Python base, both as .env names them, when
     Docker has them (`make build`). Target: at most 150 MB (the benchmark's charts are drawn on
     the host, so no plotting library is in it). `--image-size-only` runs just this one.

Everything runs on this machine: the stand-in and the tool server as real processes on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from service_processes import mcp_server, ollama_standin, stack_env  # noqa: E402

TRIP = "Plan 4 days in Lisbon in May, I fly from London with 800 GBP"


async def plan_once(env: dict[str, str], max_output_tokens: int = 2048) -> dict:
    from orchestrator.settings import load_settings
    from orchestrator.workflow import TravelPlanner

    settings = load_settings(
        ollama_host=env["OLLAMA_HOST"],
        mcp_server_url=env["MCP_SERVER_URL"],
        ollama_model="qwen2.5:7b",
        max_output_tokens=max_output_tokens,
    )
    async with TravelPlanner(settings) as planner:
        await planner.start(lambda _line: None, require_tools=True)
        started = time.perf_counter()
        record = await planner.run_turn(TRIP, lambda _event: None)
        wall = time.perf_counter() - started
    if not record.ok:
        raise SystemExit(f"benchmark plan failed: {record.error}")
    data = record.to_json()
    return {
        "wall_s": wall,
        "model_s": record.model_s,
        "tools_s": record.tools_s,
        "output_tokens": data["usage"]["output_tokens"],
        "model_calls": data["usage"]["model_calls"],
    }


def measure_overhead(tmp: Path, tools, runs: int, rate: float) -> dict:
    with ollama_standin(tmp, "--models", "qwen2.5:7b", "--tokens-per-second", str(rate)) as standin:
        env = stack_env(standin, tools)
        asyncio.run(plan_once(env))  # warm-up: imports, first connections
        samples = [asyncio.run(plan_once(env)) for _ in range(runs)]
    overheads = [s["wall_s"] - s["model_s"] - s["tools_s"] for s in samples]
    shares = [o / s["wall_s"] for o, s in zip(overheads, samples, strict=True)]
    return {
        "rate_tokens_per_s": rate,
        "runs": runs,
        "wall_s_median": statistics.median(s["wall_s"] for s in samples),
        "model_s_median": statistics.median(s["model_s"] for s in samples),
        "tools_s_median": statistics.median(s["tools_s"] for s in samples),
        "overhead_s_median": statistics.median(overheads),
        "overhead_pct_median": 100 * statistics.median(shares),
        "overhead_pct_max": 100 * max(shares),
        "model_calls": samples[0]["model_calls"],
    }


def measure_throughput(tmp: Path, tools, runs: int, words: int) -> dict:
    env_pad = {"STANDIN_PAD_WORDS": str(words)}
    os.environ.update(env_pad)
    with ollama_standin(tmp, "--models", "qwen2.5:7b", "--brain", "ollama_standin.brain:padded_brain") as standin:
        env = stack_env(standin, tools)
        long = 4 * words  # let every reply run to its end (num_predict would cut it at 2,048)
        asyncio.run(plan_once(env, long))
        samples = [asyncio.run(plan_once(env, long)) for _ in range(runs)]
    rates = [s["output_tokens"] / s["wall_s"] for s in samples]
    return {
        "tokens_per_plan": samples[0]["output_tokens"],
        "runs": runs,
        "tokens_per_s_median": statistics.median(rates),
        "tokens_per_s_min": min(rates),
        # How long the stand-in itself took to produce the stream: the rate is bounded by both.
        "standin_s_median": statistics.median(s["model_s"] for s in samples),
        "wall_s_median": statistics.median(s["wall_s"] for s in samples),
    }


def measure_telemetry_cost(tmp: Path, tools, runs: int, rate: float) -> dict:
    """Turn time of `main.py --prompt --json` with export off and on (to the dashboard stand-in)."""
    import subprocess

    from dashboard_standin.testing import run_process as run_dashboard

    def turn_seconds(env: dict[str, str]) -> float:
        done = subprocess.run([sys.executable, str(ROOT / "main.py"), "--prompt", TRIP, "--json"],
                              capture_output=True, text=True, env=env, cwd=tmp, timeout=300, check=True)  # fmt: skip
        return json.loads(done.stdout)["timings"]["total_s"]

    with (
        ollama_standin(tmp, "--models", "qwen2.5:7b", "--tokens-per-second", str(rate)) as standin,
        run_dashboard() as dashboard,
    ):
        off = stack_env(standin, tools)
        on = {**off, "OTEL_EXPORTER_OTLP_ENDPOINT": dashboard.otlp_grpc_endpoint,
              "OTEL_EXPORTER_OTLP_HEADERS": f"x-otlp-api-key={dashboard.api_key}"}  # fmt: skip
        turn_seconds(off)
        # alternate, so drift on a busy machine falls on both sides alike
        pairs = [(turn_seconds(off), turn_seconds(on)) for _ in range(runs)]
    off_s = statistics.median(p[0] for p in pairs)
    on_s = statistics.median(p[1] for p in pairs)
    return {"runs": runs, "off_s_median": off_s, "on_s_median": on_s, "cost_pct": 100 * (on_s - off_s) / off_s}


def measure_startup(tmp: Path, tools, runs: int) -> dict:
    import pexpect

    with ollama_standin(tmp, "--models", "qwen2.5:7b") as standin:
        env = stack_env(standin, tools, PROMPT_TOOLKIT_NO_CPR="1", NO_COLOR="1", XDG_STATE_HOME=str(tmp))
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            child = pexpect.spawn(sys.executable, [str(ROOT / "main.py")], env=env, encoding="utf-8", timeout=30)
            child.expect_exact("you>")
            times.append(time.perf_counter() - started)
            child.sendline("/quit")
            child.expect(pexpect.EOF)
    return {"runs": runs, "seconds_median": statistics.median(times), "seconds_max": max(times)}


def measure_real_model(tools) -> dict | None:
    """One plan on the real model, or None when the real-model tier is not prepared here."""
    import subprocess

    from realmodel.real_ollama import available, serving

    if not available():
        return None
    with serving() as real, tempfile.TemporaryDirectory() as cwd:
        env = stack_env(real, tools, OLLAMA_MODEL=real.model, OLLAMA_MAX_OUTPUT_TOKENS="700",
                        OLLAMA_TEMPERATURE="0.2", OLLAMA_REQUEST_TIMEOUT="900", AGENT_TURN_TIMEOUT="1800")  # fmt: skip
        done = subprocess.run([sys.executable, str(ROOT / "main.py"), "--prompt", TRIP, "--json"],
                              capture_output=True, text=True, env=env, cwd=cwd, timeout=2000)  # fmt: skip
    record = json.loads(done.stdout)
    calls = record["tool_calls"]
    return {
        "model": real.model,
        "ok": record["ok"],
        "error": record["error"],
        "wall_s": record["timings"]["total_s"],
        "model_s": record["timings"]["model_s"],
        "model_calls": record["usage"]["model_calls"],
        "input_tokens": record["usage"]["input_tokens"],
        "output_tokens": record["usage"]["output_tokens"],
        "output_tokens_per_s": record["usage"]["output_tokens"] / max(record["timings"]["model_s"], 1e-9),
        "tool_calls": len(calls),
        "tool_calls_ok": sum(c["ok"] for c in calls),
        "tool_calls_from_text": sum(c["from_text"] for c in calls),
        "tool_calls_forced": sum(c.get("forced", False) for c in calls),
        "retried": [a["name"] for a in record["agents"] if a["retried"]],
        "grounded": len(record["grounding"]["grounded"]),
        "ungrounded": len(record["grounding"]["ungrounded"]),
    }


def print_real_model(real: dict | None) -> None:
    if real is None:
        print(f"{'real model plan':<34}{'not prepared':>22}   (scripts/real-model.sh, then run again)")
        return
    outcome = "plan made" if real["ok"] else f"no plan: {real['error']}"
    print(
        f"{'real model plan (' + real['model'] + ')':<34}{real['wall_s']:>20.1f} s   "
        f"{real['model_calls']} model calls, {real['output_tokens_per_s']:.1f} output tokens per second of model time"
        " (prompt reading included), "
        f"{real['tool_calls']} tool calls ({real['tool_calls_ok']} ok, {real['tool_calls_from_text']} written as text, "
        f"{real['tool_calls_forced']} asked for with structured output)"
    )
    print(f"{'  outcome':<34}{outcome}; figures grounded {real['grounded']}, ungrounded {real['ungrounded']}")


IMAGE_TARGET_MB = 150


def measure_image_size(env_file: Path = ROOT / ".env") -> dict | None:
    """The orchestrator image's size over its base, from `docker image inspect`; None without them."""
    settings = dict(
        line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line and not line.startswith("#")
    )
    sizes = {}
    for variable in ("ORCHESTRATOR_IMAGE", "PYTHON_IMAGE"):
        pinned = os.environ.get(variable) or settings.get(variable, "").strip()
        # Loaded from a bundle, an image has its tag but not the registry digest .env pins.
        for name in dict.fromkeys([pinned, pinned.partition("@")[0]]):
            try:
                done = subprocess.run(["docker", "image", "inspect", "--format", "{{.Size}}", name],
                                      capture_output=True, text=True, timeout=60)  # fmt: skip
            except (OSError, subprocess.TimeoutExpired):
                return None
            if done.returncode == 0:
                break
        if done.returncode != 0 or not done.stdout.strip().isdigit():
            return None
        sizes[variable] = (name, int(done.stdout.strip()) / 1e6)
    (image, image_mb), (base, base_mb) = sizes["ORCHESTRATOR_IMAGE"], sizes["PYTHON_IMAGE"]
    return {"image": image, "image_mb": round(image_mb, 1), "base": base, "base_mb": round(base_mb, 1),
            "over_base_mb": round(image_mb - base_mb, 1), "target_mb": IMAGE_TARGET_MB}  # fmt: skip


def print_image_size(size: dict | None) -> None:
    if size is None:
        print(f"{'orchestrator image over its base':<34}{'not measured':>22}   (no Docker, or `make build` first)")
        return
    verdict = "PASS" if size["over_base_mb"] <= IMAGE_TARGET_MB else "MISS"
    sizes = f"{size['image']} {size['image_mb']:.1f} MB, {size['base']} {size['base_mb']:.1f} MB"
    print(
        f"{'orchestrator image over its base':<34}{size['over_base_mb']:>19.1f} MB   <= {IMAGE_TARGET_MB} MB  "
        f"{verdict}  ({sizes})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="plans per measurement (default 5)")
    parser.add_argument("--rate", type=float, default=100.0, help="stand-in tokens/s for the overhead run")
    parser.add_argument("--pad-words", type=int, default=20000, help="extra words per reply in the throughput run")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    parser.add_argument("--real-model-only", action="store_true", help="only the real-model plan (measurement 5)")
    parser.add_argument("--image-size-only", action="store_true", help="only the image size (measurement 6)")
    args = parser.parse_args()

    if args.image_size_only:
        size = measure_image_size()
        if args.json:
            print(json.dumps({"image_size": size}, indent=2))
        else:
            print_image_size(size)
        return 0

    if args.real_model_only:
        with tempfile.TemporaryDirectory() as name, mcp_server(Path(name)) as tools:
            print("planning once on the real model (minutes on a CPU)...", file=sys.stderr)
            real = measure_real_model(tools)
        if args.json:
            print(json.dumps({"real_model": real}, indent=2))
        else:
            print_real_model(real)
        return 0

    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        with mcp_server(tmp) as tools:
            print("measuring overhead at a fixed streaming rate...", file=sys.stderr)
            overhead = measure_overhead(tmp, tools, args.runs, args.rate)
            print("measuring throughput at full speed...", file=sys.stderr)
            throughput = measure_throughput(tmp, tools, args.runs, args.pad_words)
            print("measuring start-up time...", file=sys.stderr)
            startup = measure_startup(tmp, tools, args.runs)
            print("measuring the cost of telemetry...", file=sys.stderr)
            telemetry = measure_telemetry_cost(tmp, tools, args.runs, args.rate)
            print("planning once on the real model, if prepared (minutes on a CPU)...", file=sys.stderr)
            real = measure_real_model(tools)

    size = measure_image_size()
    report = {"overhead": overhead, "throughput": throughput, "startup": startup, "telemetry": telemetry,
              "real_model": real, "image_size": size}  # fmt: skip
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    verdict = {True: "PASS", False: "MISS"}
    print(f"{'measurement':<34}{'figure':>22}   target")
    print(
        f"{'plan overhead (median of ' + str(args.runs) + ')':<34}"
        f"{overhead['overhead_pct_median']:>20.2f} %   < 5 %  {verdict[overhead['overhead_pct_median'] < 5]}"
    )
    print(
        f"{'  wall / model / tools':<34}"
        f"{overhead['wall_s_median']:>8.2f} / {overhead['model_s_median']:.2f} / {overhead['tools_s_median']:.2f} s"
        f"   at {args.rate:g} tokens/s, {overhead['model_calls']} model calls"
    )
    print(
        f"{'throughput at full speed':<34}{throughput['tokens_per_s_median']:>14,.0f} tokens/s"
        f"   >= 5,000  {verdict[throughput['tokens_per_s_median'] >= 5000]}"
        f"  ({throughput['tokens_per_plan']:,} tokens per plan in {throughput['wall_s_median']:.2f} s;"
        f" the stand-in itself needed {throughput['standin_s_median']:.2f} s)"
    )
    print(
        f"{'start to prompt (median)':<34}{startup['seconds_median']:>20.2f} s   < 2 s  "
        f"{verdict[startup['seconds_median'] < 2]}"
    )
    print(
        f"{'telemetry cost on one plan':<34}{telemetry['cost_pct']:>20.2f} %   < 3 %  "
        f"{verdict[telemetry['cost_pct'] < 3]}  (turn {telemetry['off_s_median']:.2f} s off, "
        f"{telemetry['on_s_median']:.2f} s on)"
    )
    print_real_model(real)
    print_image_size(size)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`main.py --prompt` against real processes: the plan must carry the facts the tools returned."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e

TRIP = "Plan 4 days in Lisbon in May, I fly from London with 800 GBP"


async def test_json_plan_uses_the_tool_facts(run_main, tool_client):
    run = run_main("--prompt", TRIP, "--json")
    assert run.code == 0, run.stderr
    report = run.json()
    lisbon = await tool_client("get_destination", city="Lisbon")
    may = (await tool_client("get_climate", city="Lisbon", month=5))["months"][0]

    plan = report["plan"]
    assert report["ok"] is True and report["error"] is None
    assert "Day 4" in plan and "Day 5" not in plan
    assert f"({lisbon['currency_code']})" in plan  # EUR, from get_destination
    assert f"highs {may['high_c']:g} °C" in plan and f"lows {may['low_c']:g} °C" in plan
    assert lisbon["points_of_interest"][0]["name"] in report["agents"][0]["output"]
    assert "Facts used" in plan

    assert [a["name"] for a in report["agents"]] == ["Researcher", "Weather", "Planner"]
    assert all(a["output"] and a["output_tokens"] > 0 and a["input_tokens"] > 0 for a in report["agents"])
    calls = {(c["agent"], c["name"]) for c in report["tool_calls"]}
    assert {("Researcher", "get_destination"), ("Researcher", "convert_currency"),
            ("Researcher", "time_difference"), ("Weather", "get_climate")} <= calls  # fmt: skip
    climate_call = next(c for c in report["tool_calls"] if c["name"] == "get_climate")
    assert climate_call["arguments"] == {"city": "Lisbon", "month": 5}
    assert all(c["ok"] and c["duration_ms"] > 0 for c in report["tool_calls"])
    assert report["usage"]["model_calls"] >= 5
    assert report["usage"]["input_tokens"] == sum(a["input_tokens"] for a in report["agents"])
    assert 0 < report["timings"]["first_token_s"] < report["timings"]["total_s"]


def test_plain_one_shot_prints_only_the_plan_on_stdout(run_main):
    run = run_main("--prompt", "3 days in Reykjavik in January")
    assert run.code == 0, run.stderr
    assert run.stdout.startswith("# 3-day plan: Reykjavik")
    assert "(ISK)" in run.stdout
    assert "pack warm layers for the cold" in run.stdout
    # progress went to stderr: each agent's header and the tool calls as they happened
    for header in ("── Researcher", "── Weather", "── Planner"):
        assert header in run.stderr
    assert '→ get_climate(city="Reykjavik", month=1)' in run.stderr


def test_two_cities_use_the_distance_tool(run_main):
    run = run_main("--prompt", "A week in Paris and then Rome in June", "--json")
    assert run.code == 0, run.stderr
    report = run.json()
    distance = next(c for c in report["tool_calls"] if c["name"] == "travel_distance")
    assert distance["agent"] == "Planner"
    assert distance["arguments"] == {"from_city": "Paris", "to_city": "Rome"}
    assert "Paris, France to Rome, Italy" in report["plan"]
    assert "Day 7" in report["plan"]


def test_model_id_alias_and_model_flag(run_main):
    run = run_main(
        "--prompt", "3 days in Nairobi in August", "--json", OLLAMA_MODEL=None, OLLAMA_MODEL_ID="llama3.2:3b"
    )
    assert run.code == 0, run.stderr
    assert run.json()["model"] == "llama3.2:3b"
    run = run_main("--prompt", "3 days in Nairobi in August", "--json", "--model", "qwen2.5:7b")
    assert run.code == 0, run.stderr
    assert run.json()["model"] == "qwen2.5:7b"

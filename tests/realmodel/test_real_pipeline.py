"""The whole pipeline on a real small model (Qwen2.5-Coder-0.5B-Instruct, Q4_K_M, llama.cpp) behind the
Ollama stand-in: what a user of a laptop-sized model gets.

A 0.5B model is the weakest a user runs; it often writes tool calls as text, repeats calls and
invents figures. A turn must then either give a plan whose climate and currency figures are the
tools' own, or fail with the one line that names the agent, the cause and the fix. Never a plan
made of tool-call syntax, never ok with figures from nowhere.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from service_processes import ROOT, assert_one_clear_line, mcp_server, stack_env

from orchestrator.text_calls import only_calls

pytestmark = pytest.mark.realmodel

TRIPS = [
    "3 days in Lisbon in May, flying from London with 800 GBP",
    "2 days in Reykjavik in January, flying from New York with 1500 USD",
    "4 days in Kyoto in November, flying from Sydney with 2000 AUD",
]
# Figures the plan must not make up (grounding.py's kinds; hours are left alone).
CHECKED = {"temperature", "money", "distance", "rain"}


@pytest.fixture(scope="module")
def tools(tmp_path_factory):
    with mcp_server(tmp_path_factory.mktemp("mcp")) as service:
        yield service


_plans: dict[str, tuple[int, dict, str]] = {}  # prompt -> its run, made once for every test that reads it


def plan(real_ollama, tools, tmp_path, prompt: str) -> tuple[int, dict, str]:
    if prompt in _plans:
        return _plans[prompt]
    env = stack_env(
        real_ollama,
        tools,
        OLLAMA_MODEL=real_ollama.model,
        OLLAMA_NUM_CTX="8192",
        OLLAMA_MAX_OUTPUT_TOKENS="700",
        OLLAMA_TEMPERATURE="0.2",
        OLLAMA_REQUEST_TIMEOUT="600",
        AGENT_TURN_TIMEOUT="1500",
    )
    done = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "--prompt", prompt, "--json"],
        capture_output=True, text=True, timeout=1800, cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    _plans[prompt] = done.returncode, json.loads(done.stdout), done.stderr
    return _plans[prompt]


def tool_figures(record: dict, name: str) -> list:
    return [c["result"] for c in record["tool_calls"] if c["name"] == name and c["ok"]]


@pytest.mark.timeout(1800)  # a plan is six to twelve model calls on two CPU cores
@pytest.mark.parametrize("prompt", TRIPS, ids=["lisbon", "reykjavik", "kyoto"])
def test_a_real_model_plans_from_the_tools_or_fails_clearly(real_ollama, tools, tmp_path, prompt, record_property):
    code, record, stderr = plan(real_ollama, tools, tmp_path, prompt)
    assert "Traceback" not in stderr
    record_property("real_plan", json.dumps({k: record[k] for k in ("ok", "error", "timings", "usage", "grounding")}))
    print(json.dumps({"prompt": prompt, "ok": record["ok"], "error": record["error"], "timings": record["timings"],
                      "tool_calls": [(c["agent"], c["name"], c["from_text"], c["repeat"], c["ok"])
                                     for c in record["tool_calls"]],
                      "notices": record["notices"], "grounding": record["grounding"],
                      "plan": record["plan"][:1500]}, indent=1, ensure_ascii=False))  # fmt: skip
    # Whatever the model did, the tools were called for real: Ollama's channel or recovered text.
    assert record["tool_calls"], record["notices"]
    if record["ok"]:
        assert code == 0
        # the Researcher and the Weather agent had their facts from their tools
        assert {"get_destination", "get_climate"} <= {c["name"] for c in record["tool_calls"] if c["ok"]}
        # the budget was converted to the destination's currency, and the time difference taken from the
        # traveller's start: by the model, or by the pipeline when the model did not (owed.py)
        city = re.search(r"days in (\w+)", prompt).group(1)
        (code,) = {c["result"]["currency_code"] for c in record["tool_calls"] if c["name"] == "get_destination"
                   and c["ok"] and isinstance(c["result"], dict) and c["result"]["city"] == city}  # fmt: skip
        converted = {str(c["arguments"].get("to_currency")).upper() for c in record["tool_calls"]
                     if c["name"] == "convert_currency" and c["ok"]}  # fmt: skip
        assert code in converted, record["tool_calls"]
        assert any(c["name"] == "time_difference" and c["ok"] for c in record["tool_calls"]), record["tool_calls"]
        assert record["plan"] and not only_calls(record["plan"])
        assert '"arguments"' not in record["plan"]
        ungrounded = [f for f in record["grounding"]["ungrounded"] if f["kind"] in CHECKED]
        assert ungrounded == [], ungrounded
        # A temperature or an amount in the plan is one the tools returned.
        for figure in record["grounding"]["grounded"]:
            if figure["kind"] == "temperature":
                assert figure["source"] in ("get_climate", "request")
            if figure["kind"] == "money":
                assert figure["source"] in ("convert_currency", "request")
    else:
        assert code == 1
        error = record["error"]
        assert record["plan"] == ""
        assert (" gave no usable answer with model " in error and "main.py fitness" in error) or error.startswith(
            "the conversation no longer fits"
        ), error
        assert_one_clear_line(stderr, error)


@pytest.mark.timeout(5400)
def test_the_1_5b_model_makes_a_grounded_plan(real_ollama, tools, tmp_path):
    """Qwen2.5-Coder-1.5B, through the pipeline's checks, plans (three of three on December 6): at
    least one of the trips must give a plan, each checked as above. The 0.5B model never does."""
    if not real_ollama.model.endswith(":1.5b"):
        pytest.skip("the 0.5B model makes no plan; REAL_MODEL_SIZE=1.5b runs this")
    outcomes = [plan(real_ollama, tools, tmp_path, prompt) for prompt in TRIPS]
    made = [record for _, record, _ in outcomes if record["ok"]]
    assert made, [record["error"] for _, record, _ in outcomes]
    for record in made:
        assert {"get_destination", "get_climate"} <= {c["name"] for c in record["tool_calls"] if c["ok"]}


@pytest.mark.timeout(1200)
def test_the_real_models_fitness_matrix(real_ollama, tools, tmp_path):
    """`main.py fitness` on the real model: every cell gets a verdict, none is an Ollama error."""
    env = stack_env(real_ollama, tools, OLLAMA_MODEL=real_ollama.model, OLLAMA_REQUEST_TIMEOUT="600")
    done = subprocess.run([sys.executable, str(ROOT / "main.py"), "fitness", "--json"],
                          capture_output=True, text=True, timeout=1100, cwd=tmp_path, env=env)  # fmt: skip
    assert "Traceback" not in done.stderr
    (model,) = json.loads(done.stdout)["models"]
    print(json.dumps({t: (c["result"], c["attempts"][0]["detail"]) for t, c in model["tools"].items()}, indent=1))
    verdicts = {cell["result"] for cell in model["tools"].values()}
    assert len(model["tools"]) == 6 and "error" not in verdicts and "missing" not in verdicts
    assert done.returncode in (0, 1)

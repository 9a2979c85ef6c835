"""`main.py fitness` against the stand-in, whose models each fail in one known way, and the real
tool server: the matrix must show exactly who called what, with which arguments, and whether the
answer used the result."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import httpx
import ollama
import pytest
from service_processes import ROOT, free_port, ollama_standin, stack_env

from orchestrator.ops import fitness as fitness_module
from orchestrator.ops.fitness import CASES, Number, _grounded, attempt
from orchestrator.settings import load_settings

TOOLS = [
    "get_destination",
    "list_destinations",
    "get_climate",
    "travel_distance",
    "time_difference",
    "convert_currency",
]
MODELS = "qwen2.5:7b,gemma2:2b," + ",".join(
    f"misbehave-{k}" for k in ("notool", "wrongargs", "vague", "empty", "parse500", "loop", "textcalls")
)


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    with ollama_standin(tmp_path_factory.mktemp("ollama"), "--models", MODELS) as service:
        yield service


@pytest.fixture
def fitness(standin, tools, tmp_path):
    def run(*args: str, **env: str | None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(ROOT / "main.py"), "fitness", *args],
            capture_output=True, text=True, timeout=180, cwd=tmp_path, env=stack_env(standin, tools, **env),
        )  # fmt: skip

    return run


def test_every_tool_has_a_question():
    assert [c.tool for c in CASES] == TOOLS


def test_matrix_over_every_installed_model(fitness):
    done = fitness("--all", "--json")
    assert done.returncode == 1, done.stderr  # not every model is fit
    report = {m["model"]: m for m in json.loads(done.stdout)["models"]}
    cells = {name: {t: m["tools"][t]["result"] for t in TOOLS} for name, m in report.items()}
    assert cells["qwen2.5:7b"] == dict.fromkeys(TOOLS, "PASS")
    assert report["qwen2.5:7b"]["fit"] and report["qwen2.5:7b"]["passed"] == 6
    assert cells["gemma2:2b"] == dict.fromkeys(TOOLS, "no tools")
    assert cells["misbehave-notool:latest"] == dict.fromkeys(TOOLS, "wrong tool")
    assert cells["misbehave-wrongargs:latest"] == dict.fromkeys(TOOLS, "bad args")
    assert cells["misbehave-vague:latest"] == dict.fromkeys(TOOLS, "vague")
    assert cells["misbehave-empty:latest"] == dict.fromkeys(TOOLS, "no call")
    assert cells["misbehave-parse500:latest"] == dict.fromkeys(TOOLS, "bad call")
    # Calls get_destination whatever it is asked, round after round, and never answers: not a PASS.
    assert cells["misbehave-loop:latest"] == {**dict.fromkeys(TOOLS, "wrong tool"), "get_destination": "no answer"}
    looped = report["misbehave-loop:latest"]["tools"]["get_destination"]["attempts"][0]
    assert "never answered" in looped["detail"]
    # What was recorded is what happened: the real tool's refusal, the arguments the model sent.
    wrong = report["misbehave-wrongargs:latest"]["tools"]["get_destination"]["attempts"][0]
    assert wrong["arguments"] == {"city": "Atlantis"} and "Unknown city 'Atlantis'" in wrong["detail"]
    good = report["qwen2.5:7b"]["tools"]["convert_currency"]["attempts"][0]
    assert good["arguments"] == {"amount": 250.0, "from_currency": "USD", "to_currency": "EUR"}
    assert good["called"] == ["convert_currency"] and good["answer"]


def test_matrix_as_a_table(fitness):
    done = fitness("-m", "qwen2.5:7b", "-m", "misbehave-vague")
    assert done.returncode == 1
    header, _, qwen, vague = done.stdout.splitlines()[:4]
    assert header.split()[:8] == ["model", "size", *TOOLS]
    assert qwen.split()[:9] == ["qwen2.5:7b", "7.6B", *["PASS"] * 6, "6/6"]
    assert vague.split()[2:9] == [*["vague"] * 6, "0/6"]
    assert "fit for the agents: qwen2.5:7b" in done.stdout
    # progress, one line per question, goes to stderr
    assert sum(line.startswith("misbehave-vague") for line in done.stderr.splitlines()) == 6


def test_one_fit_model_exits_zero_and_repeat_counts_attempts(fitness):
    done = fitness("--repeat", "2", "--json", OLLAMA_MODEL="qwen2.5:7b")
    assert done.returncode == 0, done.stderr
    (model,) = json.loads(done.stdout)["models"]
    assert model["attempts"] == 12 and model["passed"] == 12


def test_missing_model_exits_4_with_the_pull(fitness):
    done = fitness("-m", "llama3.2:3b")
    assert done.returncode == 4
    assert "ollama pull llama3.2:3b" in done.stderr and "missing" in done.stdout


def test_dead_services_are_one_line_errors(fitness):
    done = fitness(MCP_SERVER_URL=f"http://127.0.0.1:{free_port()}/mcp")
    assert done.returncode == 5 and done.stderr.count("\n") == 1 and "MCP_SERVER_URL" in done.stderr
    done = fitness(OLLAMA_HOST=f"http://127.0.0.1:{free_port()}", OLLAMA_CONNECT_WAIT="0")
    assert done.returncode == 3 and done.stderr.count("\n") == 1 and "OLLAMA_HOST" in done.stderr
    done = fitness("--repeat", "0")
    assert done.returncode == 2 and "--repeat" in done.stderr


@pytest.mark.parametrize(
    ("figure", "text", "found"),
    [
        (Number(620.0, 62.0), "about 600 km", True),
        (Number(620.0, 62.0), "some 700 km", False),
        (Number(1234.5, 1.0), "roughly 1,234 km", True),
        (Number(-9.0, 0.0), "Tokyo is 9 hours ahead", True),  # a difference may be stated either way
        (Number(9.0, 0.0), "no figure at all", False),
        (Number(229.87, 4.6), "That is about €230.", True),
        (Number(229.87, 4.6), "250 USD sind 229,87 €.", True),  # a decimal comma
        (Number(1234.0, 1.0), "1,234 km, more or less.", True),
    ],
)
def test_numbers_in_answers_match_within_tolerance(figure, text, found):
    assert figure.found_in(text) is found


@pytest.mark.parametrize(
    ("case", "result", "answer"),
    [
        ("get_climate", {"months": [{"high_c": 14.0, "low_c": 9.0}]}, "July averages about 11.5 °C."),
        ("get_climate", {"months": [{"high_c": 14.0, "low_c": 9.0}]}, "Highs of around 57 °F in July."),
        ("get_climate", {"months": [{"high_c": 14.0, "low_c": 9.0}]}, "Nights cool to 9 °C."),
        ("travel_distance", {"distance_km": 505.0}, "About 314 miles as the crow flies."),
    ],
)
def test_plausible_grounded_answers_are_not_called_vague(case, result, answer):
    (chosen,) = [c for c in CASES if c.tool == case]
    assert _grounded(answer, chosen.facts(result))


class _Failing:
    """A client whose /api/chat fails the way a real Ollama can under load."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(300.0, connect=10.0))

    async def chat(self, **_: object) -> None:
        raise self.error


@pytest.mark.parametrize(
    ("error", "outcome", "said"),
    [
        (ollama.ResponseError("llama runner process has terminated: signal: killed", 500), "error", "terminated"),
        (ollama.ResponseError("error parsing tool call: raw='{\"name\"'", 500), "bad call", "parsing"),
        (httpx.ReadTimeout("timed out"), "error", "OLLAMA_REQUEST_TIMEOUT (300 s)"),
    ],
)
def test_ollama_failures_are_not_blamed_on_the_model(error, outcome, said):
    result = asyncio.run(attempt(_Failing(error), None, [], "qwen2.5:7b", CASES[0], {}))
    assert result.outcome == outcome and said in result.detail


def test_an_unexpected_ollama_status_is_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)  # no .env

    async def refused(*_: object) -> None:
        raise ollama.ResponseError("unauthorized", 401)

    monkeypatch.setattr(fitness_module, "run", refused)
    monkeypatch.setattr(fitness_module, "settings_or_exit", lambda: load_settings())
    code = fitness_module.main([])
    err = capsys.readouterr().err
    assert code != 0 and err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_calls_written_as_text_are_taken_as_the_pipeline_takes_them(fitness):
    done = fitness("-m", "misbehave-textcalls", "--json")
    assert done.returncode == 1, done.stderr  # not PASS: the call did not use the tool-call channel
    (model,) = json.loads(done.stdout)["models"]
    assert {t: model["tools"][t]["result"] for t in TOOLS} == dict.fromkeys(TOOLS, "text call")
    climate = model["tools"]["get_climate"]["attempts"][0]
    assert climate["called"] == ["get_climate"] and climate["ungrounded"] == []

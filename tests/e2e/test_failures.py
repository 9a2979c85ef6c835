"""When something goes wrong, one clear line names the cause and the fix; nothing hangs or crashes."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest
from service_processes import ROOT, assert_one_clear_line, free_port, ollama_standin, stack_env, watch_process

pytestmark = pytest.mark.e2e

TRIP = "3 days in Lisbon in May"


def test_ollama_not_reachable_waits_then_names_ollama_host(run_main):
    port = free_port()
    started = time.monotonic()
    run = run_main("--prompt", TRIP, OLLAMA_HOST=f"127.0.0.1:{port}", OLLAMA_CONNECT_WAIT="1.5")
    assert run.code == 3
    assert time.monotonic() - started < 20
    assert f"waiting for Ollama at http://127.0.0.1:{port}" in run.stderr
    assert_one_clear_line(run.stderr, "cannot reach Ollama", "OLLAMA_HOST")


def test_ollama_that_comes_up_during_the_wait_is_used(standin, tools, tmp_path):
    port = free_port()
    env = stack_env(standin, tools, OLLAMA_HOST=f"http://127.0.0.1:{port}", OLLAMA_CONNECT_WAIT="60")
    # Ollama starts only once main.py says it is waiting: no race with a slow start on a loaded machine.
    waiting = {"waiting": re.compile(r"waiting for Ollama")}
    with watch_process([sys.executable, str(ROOT / "main.py"), "--prompt", TRIP], env=env, ready=waiting,
                       name="main.py", timeout=60) as main:  # fmt: skip
        with ollama_standin(tmp_path, "--models", "qwen2.5:7b", port=port):
            code = main.process.wait(timeout=120)
    output = "\n".join(main.lines)
    assert code == 0, output
    assert "# 3-day plan: Lisbon" in output


def test_model_not_pulled_says_how_to_pull_it(run_main):
    run = run_main("--prompt", TRIP, "--model", "llama3.1:70b")
    assert run.code == 4
    assert_one_clear_line(run.stderr, "model llama3.1:70b is not available on", "ollama pull llama3.1:70b")


def test_model_without_tools_names_models_that_have_them(run_main):
    run = run_main("--prompt", TRIP, "--model", "gemma2:2b")
    assert run.code == 4
    assert_one_clear_line(run.stderr, "gemma2:2b does not support tool calling", "qwen2.5:7b")


def test_tool_server_not_reachable(run_main):
    url = f"http://127.0.0.1:{free_port()}/mcp"
    run = run_main("--prompt", TRIP, MCP_SERVER_URL=url)
    assert run.code == 5
    assert_one_clear_line(run.stderr, f"tool server at {url} is not reachable", "MCP_SERVER_URL")


def test_tool_arguments_that_are_not_json(run_main):
    run = run_main("--prompt", TRIP, "--json", "--model", "misbehave-badjson")
    assert run.code == 1
    assert "malformed tool call" in run.json()["error"]
    assert_one_clear_line(run.stderr, "malformed tool call")


def test_unparseable_tool_call_reported_by_ollama(run_main):
    run = run_main("--prompt", TRIP, "--model", "misbehave-parse500")
    assert run.code == 1
    assert_one_clear_line(run.stderr, "tool call Ollama could not parse")


def test_a_tool_that_does_not_exist_is_recorded_and_the_turn_ends_clearly(run_main):
    run = run_main("--prompt", TRIP, "--json", "--model", "misbehave-notool")
    bogus = [c for c in run.json()["tool_calls"] if c["name"] == "book_flight"]
    assert bogus and not bogus[0]["ok"]
    assert "does not exist" in bogus[0]["error"]
    # It then never called get_destination, so it had no facts: asked once more, then one line.
    assert run.code == 1
    assert_one_clear_line(run.stderr, "Researcher gave no usable answer", "without calling get_destination")


def test_a_tool_loop_that_never_ends_is_bounded_and_reported(run_main):
    started = time.monotonic()
    run = run_main("--prompt", TRIP, "--json", "--model", "misbehave-loop", AGENT_MAX_TOOL_ROUNDS="3")
    assert time.monotonic() - started < 60
    assert run.code == 0, run.stderr
    per_agent = {}
    for call in run.json()["tool_calls"]:
        per_agent[call["agent"]] = per_agent.get(call["agent"], 0) + 1
    assert per_agent["Researcher"] == 3  # AGENT_MAX_TOOL_ROUNDS rounds of one call each
    researcher = run.json()["agents"][0]
    assert researcher["hit_tool_limit"] is True and researcher["tool_rounds"] == 3


def test_the_tool_limit_is_shown_while_it_happens(run_main):
    run = run_main("--prompt", TRIP, "--model", "misbehave-loop", AGENT_MAX_TOOL_ROUNDS="2")
    assert "Researcher reached the limit of 2 tool rounds (AGENT_MAX_TOOL_ROUNDS)" in run.stderr


def test_the_model_reads_the_tool_servers_own_error(run_main):
    # A misspelt city: the tool's error names the close match, and the model must get to read it.
    run = run_main("--prompt", "3 days in Lisbn in May", "--json")
    researcher = run.json()["agents"][0]["output"]
    assert "Unknown city 'Lisbn'" in researcher and "Closest known names: Lisbon" in researcher


def test_something_that_is_not_ollama_at_ollama_host(run_main, tmp_path):
    # A web server answering 200 with a page, as a proxy's login page would.
    (tmp_path / "api").mkdir()
    (tmp_path / "api" / "version").write_text("<html>please log in</html>")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                              cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        time.sleep(1)
        run = run_main("--prompt", TRIP, OLLAMA_HOST=f"http://127.0.0.1:{port}")
    finally:
        server.terminate()
    assert run.code == 3
    assert_one_clear_line(run.stderr, "answers, but not as Ollama does", "OLLAMA_HOST")


def test_credentials_in_ollama_host_stay_out_of_messages(run_main):
    run = run_main("--prompt", TRIP, OLLAMA_HOST=f"http://user:s3cret@127.0.0.1:{free_port()}",
                   OLLAMA_CONNECT_WAIT="0.5")  # fmt: skip
    assert run.code == 3
    assert "s3cret" not in run.stderr and "***" in run.stderr


def test_credentials_in_mcp_server_url_stay_out_of_messages_logs_and_json(run_main, tools):
    # A dead tool server: the error line, --json's error and the -v logs.
    dead = f"http://user:s3cret@127.0.0.1:{free_port()}/mcp"
    run = run_main("--prompt", TRIP, "--json", "-v", MCP_SERVER_URL=dead)
    assert run.code == 5
    assert "s3cret" not in run.stdout + run.stderr
    assert "http://***@127.0.0.1" in run.json()["error"]
    assert "error: the tool server at http://***@127.0.0.1" in run.stderr
    # A live one reached with credentials: httpx logs every request's URL with -v.
    live = tools.url.replace("http://", "http://user:s3cret@")
    run = run_main("--prompt", TRIP, "-v", MCP_SERVER_URL=live)
    assert run.code == 0, run.stderr
    assert "HTTP Request: POST http://***@127.0.0.1" in run.stderr
    assert "s3cret" not in run.stdout + run.stderr
    # A malformed one: the settings line.
    run = run_main("--prompt", TRIP, MCP_SERVER_URL="http://user:s3cret@ bad/mcp")
    assert run.code == 2 and "s3cret" not in run.stderr
    assert_one_clear_line(run.stderr, "invalid setting MCP_SERVER_URL='http://***@ bad/mcp'")


def test_an_empty_reply_is_reported(run_main):
    run = run_main("--prompt", TRIP, "--json", "--model", "misbehave-empty")
    assert run.code == 1
    record = run.json()
    assert record["ok"] is False and record["plan"] == ""
    # The first agent's empty answer is retried once, then the turn stops naming agent, cause and fix.
    assert record["error"].startswith(
        "Researcher gave no usable answer with model misbehave-empty: its reply was empty"
    )
    assert "main.py fitness" in record["error"]
    assert record["agents"][0]["retried"] == "empty"
    assert_one_clear_line(run.stderr, "Researcher gave no usable answer")


def test_ollama_dying_mid_reply_ends_the_turn_clearly(run_main):
    run = run_main("--prompt", TRIP, "--json", "--model", "misbehave-crash")
    assert run.code == 1
    assert_one_clear_line(run.stderr, "connection to Ollama", "broke in the middle of a reply")
    # what streamed before the break is kept
    assert run.json()["agents"][0]["output"].startswith("Lisbon is")


def test_a_reply_cut_mid_line_and_its_error_are_on_separate_lines(run_main):
    run = run_main("--prompt", TRIP, "--model", "misbehave-crash")
    assert run.code == 1
    (line,) = [line for line in run.stderr.splitlines() if "error:" in line]
    assert line.startswith("error: the connection to Ollama"), run.stderr


@pytest.mark.parametrize(
    ("env", "line"),
    [
        ({"OLLAMA_NUM_CTX": "big"}, "invalid setting OLLAMA_NUM_CTX='big'"),
        ({"OLLAMA_HOST": "ftp://ollama"}, "invalid setting OLLAMA_HOST='ftp://ollama': scheme 'ftp'"),
        ({"OLLAMA_TEMPERATURE": "9"}, "invalid setting OLLAMA_TEMPERATURE='9'"),
        ({"OLLAMA_KEEP_ALIVE": "forever"}, "is not a duration"),
        ({"MCP_SERVER_URL": "mcp-server"}, "invalid setting MCP_SERVER_URL='mcp-server'"),
    ],
)
def test_bad_settings_exit_2_with_one_line(run_main, env, line):
    run = run_main("--prompt", TRIP, **env)
    assert run.code == 2
    assert_one_clear_line(run.stderr, line)


@pytest.mark.parametrize(
    ("host", "line"),
    [
        ("http://127.0.0.1:99999", "port 99999 is out of range"),
        ("http://127.0.0.1:abc", "is not a URL"),
        ("::1", "an IPv6 address goes in brackets"),
        ("http://[::1", "an IPv6 address goes in brackets"),
        ("javascript:alert(1)", "is not a URL"),
    ],
)
def test_a_malformed_ollama_host_is_one_settings_line_and_help_still_works(run_main, host, line):
    # The ollama package parses OLLAMA_HOST when it is imported; that must not crash anything.
    for command in (("--prompt", TRIP), ("--prompt", TRIP, "--json"), ("doctor",)):
        run = run_main(*command, OLLAMA_HOST=host)
        assert run.code == 2, (command, run.stderr)
        assert_one_clear_line(run.stderr, f"invalid setting OLLAMA_HOST={host!r}", line)
    for command in (("--help",), ("doctor", "--help"), ("--version",)):
        run = run_main(*command, OLLAMA_HOST=host)
        assert run.code == 0 and "Traceback" not in run.stderr, (command, run.stderr)
        assert "usage:" in run.stdout or "main.py 0." in run.stdout


def test_a_request_too_long_for_the_context_exits_2_before_anything_is_sent(run_main):
    run = run_main("--prompt", "Lisbon " * 10_000, "--json")
    assert run.code == 2
    record = run.json()
    assert record["ok"] is False and record["agents"] == [] and record["tool_calls"] == []
    assert record["error"].startswith("the request is 70,000 characters; with OLLAMA_NUM_CTX=8192")
    assert_one_clear_line(run.stderr, "shorten it, or raise OLLAMA_NUM_CTX")


def test_a_request_too_long_at_the_models_largest_context_does_not_advise_raising_it(run_main):
    run = run_main("--prompt", "Lisbon " * 18_000, OLLAMA_NUM_CTX="32768")  # qwen2.5:7b's own length
    assert run.code == 2
    assert_one_clear_line(
        run.stderr, "shorten it, or use a model with a longer context (qwen2.5:7b takes at most 32,768"
    )
    assert "raise OLLAMA_NUM_CTX" not in run.stderr


def test_bad_arguments_exit_2(run_main):
    run = run_main("--json")
    assert run.code == 2
    assert "--json needs --prompt" in run.stderr


def test_offline_mode_says_how_to_load_a_missing_model(run_main):
    run = run_main("--prompt", TRIP, "--model", "llama3.1:70b", OFFLINE="1")
    assert run.code == 4
    assert_one_clear_line(run.stderr, "OFFLINE=1", "scripts/load-bundle.py", "scripts/import-gguf.sh llama3.1:70b")
    assert "ollama pull" not in run.stderr


def test_ollama_of_the_compose_stack_not_running_says_how_to_start_it(run_main):
    """`docker compose run --rm orchestrator` (make chat) with the stack down: Ollama's profile
    service is not started by `run`, so the fix is starting the stack, not checking OLLAMA_HOST."""
    run = run_main("--prompt", "3 days in Lisbon", OLLAMA_HOST="http://ollama:11434", OLLAMA_CONNECT_WAIT="0")
    assert run.code == 3
    assert_one_clear_line(
        run.stderr, "cannot reach Ollama at http://ollama:11434", "start the stack with `make up-cpu`"
    )

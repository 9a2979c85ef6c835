"""The interactive terminal driven through a real pseudo-terminal, as a person would use it."""

from __future__ import annotations

import sys
import time

import pexpect
import pytest
from service_processes import ROOT, mcp_server, ollama_standin, stack_env

pytestmark = pytest.mark.e2e

PROMPT = "you>"  # prompt_toolkit draws the space with cursor moves


def start(env: dict[str, str], cwd) -> pexpect.spawn:
    # pexpect's terminal does not answer cursor-position requests; a real terminal does.
    env = {**env, "PROMPT_TOOLKIT_NO_CPR": "1", "NO_COLOR": "1"}
    child = pexpect.spawn(
        sys.executable, [str(ROOT / "main.py")], env=env, cwd=str(cwd), encoding="utf-8", timeout=60,
        dimensions=(50, 200),
    )  # fmt: skip
    child.expect_exact(PROMPT)
    return child


def ask(child: pexpect.spawn, text: str) -> str:
    """Type a line, return everything printed until the next prompt."""
    child.sendline(text)
    child.expect_exact("\r\n")  # prompt_toolkit redraws the accepted line (prompt included) first
    child.expect_exact(PROMPT)
    return child.before


@pytest.fixture
def repl_env(standin, tools, tmp_path):
    return stack_env(standin, tools, XDG_STATE_HOME=str(tmp_path / "state"), TERM="xterm")


def test_a_session_streams_each_agent_and_shows_tool_calls(repl_env, tmp_path):
    child = start(repl_env, tmp_path)
    screen = ask(child, "Plan 2 days in Kyoto in November")
    researcher, weather, planner = (screen.index(f"── {name}") for name in ("Researcher", "Weather", "Planner"))
    assert researcher < weather < planner
    assert '→ get_destination(city="Kyoto")' in screen
    assert "✓ get_destination" in screen
    assert '→ get_climate(city="Kyoto", month=11)' in screen
    assert "Day 2 (Kyoto)" in screen and "(JPY)" in screen
    assert "tool calls" in screen and "tokens" in screen  # the turn summary line

    assert "Commands:" in ask(child, "/help")
    assert "model: qwen2.5:7b" in ask(child, "/model")
    assert "model: llama3.2:3b" in ask(child, "/model llama3.2:3b")
    assert "ollama pull nope:1b" in ask(child, "/model nope:1b")
    child.send("\x1b[200~/model " + "x" * 3000 + "\x1b[201~\r")  # not echoed whole, no pull command for it
    child.expect_exact("is not a model name")
    child.expect_exact(PROMPT)
    assert len(child.before) < 300 and "ollama pull" not in child.before
    assert "is not a model name" in ask(child, "/model llama3 please now")
    assert "unknown command /fly" in ask(child, "/fly")
    assert "new conversation" in ask(child, "/reset")
    child.sendline("/quit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    # line history survives the session
    assert "Plan 2 days in Kyoto in November" in (tmp_path / "state/offline-agents/history").read_text()


def test_ctrl_c_cancels_the_turn_and_keeps_the_session(tools, tmp_path):
    # A slow model (5 tokens/s) so the turn is still streaming when Ctrl-C arrives.
    with ollama_standin(tmp_path, "--models", "qwen2.5:7b", "--tokens-per-second", "5") as slow:
        child = start(stack_env(slow, tools, XDG_STATE_HOME=str(tmp_path)), tmp_path)
        child.sendline("Plan 3 days in Lima in March")
        child.expect_exact("── Researcher")
        child.expect_exact("Lima,")  # streaming has begun
        child.sendcontrol("c")
        child.expect_exact("stopped (Ctrl-C); the conversation keeps what was said before")
        assert "error" not in child.before.rsplit("Lima,", 1)[-1]  # the user's own stop is no error
        child.expect_exact(PROMPT)
        assert "Day 1" not in child.before
        # the session is alive: a command answers at once, and the next question gets its plan
        assert "model: qwen2.5:7b" in ask(child, "/model")
        child.sendline("2 days in Madrid in April")
        child.expect_exact("\r\n")
        child.expect_exact(PROMPT, timeout=180)
        assert "Day 2 (Madrid)" in child.before, child.before
        child.sendcontrol("d")  # Ctrl-D leaves cleanly
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0


def test_tool_server_dying_and_coming_back(standin, tmp_path):
    with mcp_server(tmp_path) as first:
        port = first.url.split(":")[-1].split("/")[0]
        env = stack_env(standin, first, XDG_STATE_HOME=str(tmp_path))
        child = start(env, tmp_path)
        assert "Day 3 (Oslo)" in ask(child, "3 days in Oslo in June")
    # the server is gone: the turn fails with one clear line and the REPL stays usable
    screen = ask(child, "3 days in Oslo in July")
    assert f"error: the tool server at http://127.0.0.1:{port}/mcp is not reachable" in screen
    assert "Traceback" not in screen
    with mcp_server(tmp_path, port=int(port)):
        screen = ask(child, "3 days in Oslo in August")
        assert "Day 3 (Oslo)" in screen and "August highs" in screen, screen
    child.sendline("/quit")
    child.expect(pexpect.EOF)


def test_ollama_dying_mid_reply_keeps_the_session(repl_env, tmp_path):
    child = start(repl_env, tmp_path)
    ask(child, "/model misbehave-crash")
    screen = ask(child, "3 days in Lisbon in May")
    assert "error: the connection to Ollama" in screen
    ask(child, "/model qwen2.5:7b")
    assert "Day 3 (Lisbon)" in ask(child, "3 days in Lisbon in May")
    child.sendline("/quit")
    child.expect(pexpect.EOF)


def test_follow_up_question_keeps_the_conversation(repl_env, tmp_path):
    child = start(repl_env, tmp_path)
    ask(child, "Plan 2 days in Cairo in February")
    screen = ask(child, "make it 4 days")  # no city: the team keeps the earlier request's place
    assert "Day 4 (Cairo)" in screen
    ask(child, "/reset")
    screen = ask(child, "make it 4 days")
    assert "Which city" in screen
    child.sendline("/quit")
    child.expect(pexpect.EOF)


def test_ollama_restarting_between_turns_is_waited_for(tools, tmp_path):
    with ollama_standin(tmp_path, "--models", "qwen2.5:7b") as first:
        port = int(first.url.rsplit(":", 1)[1])
        child = start(stack_env(first, tools, XDG_STATE_HOME=str(tmp_path), OLLAMA_CONNECT_WAIT="30"), tmp_path)
        assert "Day 3 (Lima)" in ask(child, "3 days in Lima in March")
    # Ollama is down when the next question is asked, and back a few seconds later.
    child.sendline("3 days in Lima in April")
    child.expect_exact(f"waiting for Ollama at http://127.0.0.1:{port}")
    with ollama_standin(tmp_path, "--models", "qwen2.5:7b", port=port):
        child.expect_exact(PROMPT)
        assert "Day 3 (Lima)" in child.before and "April highs" in child.before, child.before
    child.sendline("/quit")
    child.expect(pexpect.EOF)


def test_sigterm_at_an_idle_piped_prompt_exits_promptly(repl_env, tmp_path):
    # `docker run -i` without -t: stdin is a pipe. `docker stop` must not end in SIGKILL.
    import signal
    import subprocess

    child = subprocess.Popen([sys.executable, str(ROOT / "main.py")], env=repl_env, cwd=tmp_path,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        seen = b""
        while b"you>" not in seen and time.monotonic() < deadline:
            seen += child.stdout.read1(4096)
        assert b"you>" in seen
        started = time.monotonic()
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=5) == 0
        assert time.monotonic() - started < 3
    finally:
        child.kill()


def test_control_sequences_typed_or_pasted_are_cleaned_and_the_line_kept(repl_env, tmp_path):
    child = start(repl_env, tmp_path)
    # A mouse report prompt_toolkit cannot decode (typed by hand: ESC [ M and three bytes), and a
    # NUL: before, the first stopped the prompt with "Unhandled exception in event loop" and the
    # second swallowed the rest of the line.
    for junk in ("\x1b[Mzzz", "\x00"):
        child.send(f"/mod{junk}el\r")
        child.expect_exact("model: qwen2.5:7b")
        child.expect_exact(PROMPT)
        assert "Unhandled exception" not in child.before
    # Sequences prompt_toolkit does not know, typed without bracketed paste (a key code, a focus
    # report, a window title, a DCS string): dropped whole, not left in the line as "[99~".
    for junk in ("\x1b[99~", "\x1b[I", "\x1b]0;title\x07", "\x1bPqabc\x1b\\"):
        child.send(f"/mod{junk}el\r")
        child.expect_exact("model: qwen2.5:7b")
        child.expect_exact(PROMPT)
        assert "unknown command" not in child.before, (junk, child.before)
    # Pasted coloured text: the escape sequences reach the line and are removed from it, with a note.
    child.send("\x1b[200~/mod\x1b[31mel\x1b[0m\x1b[201~\r")
    child.expect_exact("note: removed 2 terminal control sequences from the input")
    child.expect_exact("model: qwen2.5:7b")
    child.expect_exact(PROMPT)
    child.sendline("/quit")
    child.expect(pexpect.EOF)


def test_a_request_too_long_for_the_context_is_refused_and_the_session_goes_on(repl_env, tmp_path):
    child = start({**repl_env, "OLLAMA_NUM_CTX": "3072"}, tmp_path)
    child.send("\x1b[200~" + "Lisbon in May, " * 400 + "\x1b[201~\r")  # 5,999 characters once stripped, pasted
    child.expect_exact("error: the request is 5,999 characters; with OLLAMA_NUM_CTX=3072")
    child.expect_exact(PROMPT)
    assert "── Researcher" not in child.before  # nothing was sent to the model
    assert "Day 3 (Lisbon)" in ask(child, "3 days in Lisbon in May")
    child.sendline("/quit")
    child.expect(pexpect.EOF)


def test_history_is_private_and_keeps_no_blank_lines(repl_env, tmp_path):
    folder = tmp_path / "state/offline-agents"
    folder.mkdir(parents=True, mode=0o755)  # made earlier, with a umask that let others in
    folder.chmod(0o755)
    child = start(repl_env, tmp_path)
    ask(child, "   ")
    ask(child, "/help")
    child.send("/he\u009blp\r")  # a C1 control character (CSI) typed into the line
    child.expect_exact(PROMPT)
    child.sendline("/quit")
    child.expect(pexpect.EOF)
    history = folder / "history"
    assert history.stat().st_mode & 0o777 == 0o600
    assert folder.stat().st_mode & 0o777 == 0o700
    entries = [line[1:] for line in history.read_text().splitlines() if line.startswith("+")]
    assert entries == ["/help", "/help", "/quit"]


def test_a_one_shot_plan_in_a_terminal_shows_once(standin, tools, tmp_path):
    """stdout and stderr on the same terminal: progress (headers, tool calls) and the plan once,
    not the agents' streamed text and then the plan again."""
    env = {**stack_env(standin, tools, XDG_STATE_HOME=str(tmp_path)), "NO_COLOR": "1"}
    child = pexpect.spawn(sys.executable, [str(ROOT / "main.py"), "--prompt", "3 days in Reykjavik in January"],
                          env=env, cwd=str(tmp_path), encoding="utf-8", timeout=120, dimensions=(50, 200))  # fmt: skip
    child.expect(pexpect.EOF)
    child.close()
    screen = child.before
    assert child.exitstatus == 0, screen
    assert screen.count("# 3-day plan: Reykjavik") == 1, screen
    assert "── Researcher" in screen and '→ get_climate(city="Reykjavik", month=1)' in screen

"""What the user reads when a turn fails: one line naming the cause and the fix, per failure kind."""

from __future__ import annotations

import httpx
import ollama
import pytest
from agent_framework.exceptions import ChatClientException, ToolException

from orchestrator.errors import ExitCode, UserError, explain, from_ollama_status

HOST, MODEL, MCP = "http://ollama:11434", "qwen2.5:7b", "http://mcp-server:8090/mcp"


def explained(error: BaseException, host: str = HOST) -> UserError:
    return explain(error, host=host, model=MODEL, mcp_url=MCP)


def wrapped(inner: BaseException) -> BaseException:
    """The framework wraps client errors: ChatClientException(message, inner) from inner."""
    try:
        try:
            raise inner
        except BaseException as error:
            raise ChatClientException("Ollama chat request failed", error) from error
    except ChatClientException as outer:
        return outer


def test_an_invalid_model_name_says_so_not_check_ollama_host():
    error = from_ollama_status(400, "invalid model name", host=HOST, model="a" * 154)
    assert error.code == ExitCode.MODEL_UNAVAILABLE
    assert error.message.startswith("Ollama says 'aaaa") and "is not a valid model name" in error.message
    assert "OLLAMA_HOST" not in error.message and len(error.message) < 200


@pytest.mark.parametrize("wrap", [lambda e: e, wrapped], ids=["raw", "wrapped"])
def test_model_not_pulled_names_the_pull_command(wrap):
    error = explained(wrap(ollama.ResponseError("model 'qwen2.5:7b' not found", 404)))
    assert error.code == ExitCode.MODEL_UNAVAILABLE
    # HOST is the compose service: the seeding job is what can pull there, run from the host
    seed = f"docker compose run --rm -e OLLAMA_EXTRA_MODELS={MODEL} ollama-seed (on the host)"
    assert error.message == f"model {MODEL} is not available on {HOST}; pull it with: {seed}"
    elsewhere = explained(
        wrap(ollama.ResponseError("model 'qwen2.5:7b' not found", 404)), host="http://127.0.0.1:11434"
    )
    assert elsewhere.message.endswith(f"pull it with: ollama pull {MODEL}")


def test_model_without_tools_names_models_that_have_them():
    error = explained(ollama.ResponseError("registry.ollama.ai/library/x does not support tools", 400))
    assert error.code == ExitCode.MODEL_UNAVAILABLE
    assert "does not support tool calling" in error.message and "llama3.2:3b" in error.message


def test_refused_connection_names_ollama_host():
    error = explained(wrapped(httpx.ConnectError("All connection attempts failed")))
    assert error.code == ExitCode.OLLAMA_UNREACHABLE
    assert "OLLAMA_HOST" in error.message


def test_stream_broken_mid_reply():
    error = explained(httpx.RemoteProtocolError("peer closed connection without sending complete message body"))
    assert error.code == ExitCode.TURN_FAILED
    assert "broke in the middle of a reply" in error.message


def test_error_inside_a_streamed_reply_is_not_shown_as_status_minus_one():
    error = explained(ollama.ResponseError("llama runner process has terminated: out of memory", -1))
    assert "-1" not in error.message
    assert "stopped the reply with an error: llama runner process has terminated" in error.message


def test_unauthorised_remote_ollama_names_the_key_settings():
    error = explained(ollama.ResponseError("unauthorized", 401))
    assert "OLLAMA_API_KEY" in error.message


def test_tool_server_gone_names_mcp_server_url():
    error = explained(ToolException("Failed to create MCP session: connection refused"))
    assert error.code == ExitCode.MCP_UNREACHABLE
    assert MCP in error.message and "MCP_SERVER_URL" in error.message


def test_anything_else_keeps_its_type_on_one_line():
    error = explained(RuntimeError("odd\nsecond line"))
    assert error.message.startswith("the turn failed: RuntimeError: odd")


def test_a_server_error_from_ollama_names_where_to_look_and_what_to_change():
    error = explained(ollama.ResponseError("llama runner process has terminated: signal: killed", 500))
    assert error.code == ExitCode.TURN_FAILED
    assert error.message.startswith(f"Ollama at {HOST} failed with 500 (llama runner process has terminated")
    assert "docker compose logs ollama" in error.message and "smaller model" in error.message


def test_credentials_never_reach_a_message_whatever_built_it():
    error = explained(RuntimeError("POST http://user:s3cret@mcp-server:8090/mcp failed"))
    assert "s3cret" not in error.message and "http://***@mcp-server" in error.message

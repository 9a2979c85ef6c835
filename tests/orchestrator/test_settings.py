"""Settings: defaults that work in the compose stack, and one clear line for every bad value."""

from __future__ import annotations

import pytest

from orchestrator.settings import SettingsError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in ("OLLAMA_HOST", "OLLAMA_MODEL", "OLLAMA_MODEL_ID", "MCP_SERVER_URL", "OLLAMA_HEADERS",
                 "OLLAMA_API_KEY", "OLLAMA_KEEP_ALIVE", "OLLAMA_NUM_CTX"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_defaults_are_the_compose_service_names():
    settings = load_settings()
    assert settings.ollama_host == "http://ollama:11434"
    assert settings.mcp_server_url == "http://mcp-server:8090/mcp"
    assert settings.ollama_model == "phi4-mini"  # the same default as .env, the README and --help


def test_one_context_size_for_every_request():
    options = load_settings().chat_options()
    assert options["num_ctx"] == 8192
    assert "keep_alive" not in options  # the server's OLLAMA_KEEP_ALIVE (per profile) decides


def test_keep_alive_is_sent_only_when_set(monkeypatch):
    monkeypatch.setenv("OLLAMA_KEEP_ALIVE", "-1")
    assert load_settings().chat_options()["keep_alive"] == -1


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("ollama:11434", "http://ollama:11434"),
        ("localhost", "http://localhost:11434"),
        ("https://gpu.example.org", "https://gpu.example.org"),
        ("http://10.0.0.5:8080/", "http://10.0.0.5:8080"),
    ],
)
def test_ollama_host_forms_ollama_itself_accepts(monkeypatch, given, expected):
    monkeypatch.setenv("OLLAMA_HOST", given)
    assert load_settings().ollama_host == expected


def test_model_id_is_accepted_as_the_model_name(monkeypatch):
    monkeypatch.setenv("OLLAMA_MODEL_ID", "phi4-mini")
    assert load_settings().ollama_model == "phi4-mini"
    monkeypatch.setenv("OLLAMA_MODEL", "llama3.2:3b")  # the standard name wins
    assert load_settings().ollama_model == "llama3.2:3b"


def test_settings_come_from_dot_env(tmp_path):
    (tmp_path / ".env").write_text("OLLAMA_MODEL=phi4-mini\nOLLAMA_NUM_CTX=4096\n")
    settings = load_settings()
    assert (settings.ollama_model, settings.num_ctx) == ("phi4-mini", 4096)


def test_bearer_token_and_headers_for_a_remote_ollama(monkeypatch):
    monkeypatch.setenv("OLLAMA_API_KEY", "s3cret")
    monkeypatch.setenv("OLLAMA_HEADERS", "X-Team=travel, X-Trace=on")
    headers = load_settings().ollama_request_headers()
    assert headers == {"X-Team": "travel", "X-Trace": "on", "Authorization": "Bearer s3cret"}
    assert "s3cret" not in repr(load_settings())  # secrets stay out of logs and tracebacks


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("OLLAMA_NUM_CTX", "12", "invalid setting OLLAMA_NUM_CTX='12': Input should be greater than or equal to 512"),
        ("OLLAMA_HOST", "gopher://x", "invalid setting OLLAMA_HOST='gopher://x': scheme 'gopher' is not supported"),
        ("OLLAMA_KEEP_ALIVE", "soon", "invalid setting OLLAMA_KEEP_ALIVE='soon': is not a duration"),
        ("OLLAMA_HEADERS", "no-equals", "invalid setting OLLAMA_HEADERS='***': must look like"),
        ("OLLAMA_MODEL", "", "invalid setting OLLAMA_MODEL='': String should have at least 1 character"),
        ("AGENT_MAX_TOOL_ROUNDS", "0", "invalid setting AGENT_MAX_TOOL_ROUNDS='0'"),
        (
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "udp",
            "invalid setting OTEL_EXPORTER_OTLP_PROTOCOL='udp': Input should be 'grpc'",
        ),
    ],
)
def test_a_bad_value_names_the_variable_the_value_and_what_is_accepted(monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_a_huge_value_is_shortened_in_the_message(monkeypatch):
    monkeypatch.setenv("OLLAMA_NUM_CTX", "9" * 5000)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert len(str(caught.value)) < 300


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("ollama:abc", "is not a URL"),
        ("http://ollama:99999", "out of range"),
        ("http://[::1", "is not a URL"),
    ],
)
def test_ollama_host_that_cannot_work_is_refused_at_start(monkeypatch, value, message):
    monkeypatch.setenv("OLLAMA_HOST", value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert message in str(caught.value)


@pytest.mark.parametrize(("name", "value"), [("OLLAMA_HEADERS", "X-A=café"), ("OLLAMA_API_KEY", "tök€n")])
def test_header_values_must_be_plain_ascii(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "plain ASCII" in str(caught.value)
    assert value not in str(caught.value)  # secrets (and header values) are never echoed


def test_credentials_in_ollama_host_are_never_shown(monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", "https://user:s3cret@gpu.example.org")
    settings = load_settings()
    assert "s3cret" in settings.ollama_host  # the client needs them
    assert "s3cret" not in settings.ollama_shown and "***" in settings.ollama_shown


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("http://h:abc/mcp", "is not a URL; give one such as http://mcp-server:8090/mcp"),
        ("http://[::1/mcp", "an IPv6 address goes in brackets: http://[::1]:8090/mcp"),
        ("http://h:99999/mcp", "port 99999 is out of range 1-65535"),
        ("user:s3cret@h/mcp", "is not a URL"),
    ],
)
def test_a_malformed_mcp_server_url_is_the_settings_line(monkeypatch, value, says):
    """Before: `error: unexpected InvalidURL` (exit 1), a traceback from `doctor`, or a port out of
    range taken as "not reachable"."""
    monkeypatch.setenv("MCP_SERVER_URL", value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith("invalid setting MCP_SERVER_URL=") and says in message
    assert "s3cret" not in message


def test_credentials_without_a_scheme_are_not_repeated(monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", "u:pw@::1")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "pw" not in str(caught.value) and "'***@::1'" in str(caught.value)


def test_showing_a_url_never_raises():
    from orchestrator.settings import without_credentials

    assert without_credentials("http://u:pw@h:abc/mcp") == "http://***@h:abc/mcp"

"""Orchestrator settings: one typed class read from the environment and `.env`, validated at start.

Names are the ones the rest of the ecosystem already uses (OLLAMA_HOST, OLLAMA_MODEL, OTEL_*), so
the same `.env` drives the official clients, compose and Kubernetes alike.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import httpx
from pydantic import AliasChoices, Field, PrivateAttr, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

_ANY_USERINFO = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://)[^/?#\s@]*@")
_USERINFO = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/?#]*@")
_BARE_USERINFO = re.compile(r"^(?![a-zA-Z][a-zA-Z0-9+.-]*://)[^/?#@\s]*@")
_DURATION = re.compile(r"^-?\d+(\.\d+)?(ms|s|m|h)?$")


def _host_url(value: str) -> str:
    """Accept what Ollama's own clients accept: 'ollama:11434', 'http://ollama:11434', '0.0.0.0'."""
    value = value.strip().rstrip("/")
    if not value:
        raise ValueError("is empty; give a URL such as http://ollama:11434")
    if "://" not in value:
        value = "http://" + value
    scheme = value.split("://", 1)[0]
    if scheme not in ("http", "https"):
        raise ValueError(f"scheme {scheme!r} is not supported; use http:// or https://")
    try:
        url = httpx.URL(value)
        port = url.port  # raises for a port that is not a number
    except (httpx.InvalidURL, ValueError, TypeError):
        if "::" in value:
            raise ValueError("is not a URL; an IPv6 address goes in brackets: http://[::1]:11434") from None
        raise ValueError("is not a URL; give one such as http://ollama:11434") from None
    if not url.host or " " in value:
        raise ValueError("is not a URL; give one such as http://ollama:11434")
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"port {port} is out of range 1-65535")
    if port is None:
        url = url.copy_with(port=443 if scheme == "https" else 11434)
    return str(url).rstrip("/")


def _mcp_url(value: str) -> str:
    """MCP_SERVER_URL: an http(s) URL with a host and a valid port, as the MCP client will parse it."""
    value = value.strip()
    example = "give one such as http://mcp-server:8090/mcp"
    if not re.match(r"^https?://[^/\s]+(/\S*)?$", value):
        raise ValueError(f"is not a URL; {example}")
    try:
        url = httpx.URL(value)
        port = url.port  # raises for a port that is not a number
    except (httpx.InvalidURL, ValueError, TypeError):
        hint = "an IPv6 address goes in brackets: http://[::1]:8090/mcp" if "::" in value else example
        raise ValueError(f"is not a URL; {hint}") from None
    if not url.host:
        raise ValueError(f"is not a URL; {example}")
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"port {port} is out of range 1-65535")
    return value


def without_credentials(url: str) -> str:
    """The URL as it may be shown: a user:password part is replaced by '***'."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError):
        return mask_credentials(url)  # never raise while showing a URL
    return str(parsed.copy_with(userinfo=b"***")) if parsed.userinfo else url


def mask_credentials(text: str) -> str:
    """Every URL's user:password in a piece of text replaced by '***'."""
    return _ANY_USERINFO.sub(r"\1***@", text) if "@" in text else text


def mask_credentials_in_logs() -> None:
    """Log records never carry a URL's credentials, whichever handler (terminal, OTLP) gets them.

    httpx logs each request's full URL ("HTTP Request: POST http://user:password@host/mcp"); the
    record is rewritten once, when it is made, so no handler added later can miss it."""
    make = logging.getLogRecordFactory()
    if getattr(make, "masks_credentials", False):
        return

    def masked(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        try:
            text = record.getMessage()
        except Exception:  # a broken format: leave it to the handler to report
            return record
        if "@" in text and "://" in text:
            record.msg, record.args = mask_credentials(text), ()
        return record

    masked.masks_credentials = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(masked)


def _ascii(value: str, what: str) -> str:
    if not value.isascii() or any(ch in value for ch in "\r\n"):
        raise ValueError(f"{what} must be plain ASCII on one line (HTTP headers cannot carry other characters)")
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    # --- Ollama ---------------------------------------------------------------------------------
    ollama_host: str = Field("http://ollama:11434", validation_alias="OLLAMA_HOST")
    ollama_model: str = Field(
        "phi4-mini",  # .env's: the CPU default (docs/configuration.md)
        # OLLAMA_MODEL_ID is the name the original plan used; both work.
        validation_alias=AliasChoices("OLLAMA_MODEL", "OLLAMA_MODEL_ID"),
        min_length=1,
        max_length=200,
    )
    # Other models the site keeps (the seeding job pulls them too); `doctor` checks they are there.
    extra_models: Annotated[list[str], NoDecode] = Field(default_factory=list, validation_alias="OLLAMA_EXTRA_MODELS")
    # One context size for every agent: a different num_ctx per request makes Ollama reload the
    # model between agents (ollama/ollama#9977).
    num_ctx: int = Field(8192, ge=512, le=1_048_576, validation_alias="OLLAMA_NUM_CTX")
    # Unset: the server's own OLLAMA_KEEP_ALIVE (tuned per hardware profile in .env) decides.
    keep_alive: str | None = Field(None, validation_alias="OLLAMA_KEEP_ALIVE")
    temperature: float = Field(0.2, ge=0.0, le=2.0, validation_alias="OLLAMA_TEMPERATURE")
    max_output_tokens: int = Field(2048, ge=16, le=131_072, validation_alias="OLLAMA_MAX_OUTPUT_TOKENS")
    # For a remote Ollama behind authentication (a hosted GPU endpoint, a reverse proxy).
    ollama_api_key: SecretStr | None = Field(None, validation_alias="OLLAMA_API_KEY")
    ollama_headers: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict, validation_alias="OLLAMA_HEADERS")
    request_timeout: float = Field(300.0, gt=0, le=3600, validation_alias="OLLAMA_REQUEST_TIMEOUT")
    connect_wait: float = Field(60.0, ge=0, le=3600, validation_alias="OLLAMA_CONNECT_WAIT")
    # An air-gapped site: nothing can be pulled, so errors say how to load a model instead.
    offline: bool = Field(False, validation_alias="OFFLINE")

    # --- MCP tool server -------------------------------------------------------------------------
    mcp_server_url: str = Field("http://mcp-server:8090/mcp", validation_alias="MCP_SERVER_URL")
    mcp_timeout: int = Field(30, ge=1, le=600, validation_alias="MCP_TIMEOUT")  # whole seconds, as MCP takes it

    # --- Agents ----------------------------------------------------------------------------------
    max_tool_rounds: int = Field(6, ge=1, le=40, validation_alias="AGENT_MAX_TOOL_ROUNDS")
    turn_timeout: float = Field(900.0, gt=0, le=86_400, validation_alias="AGENT_TURN_TIMEOUT")

    # --- Telemetry (standard OpenTelemetry names) ------------------------------------------------
    otel_exporter_otlp_endpoint: str | None = Field(None, validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT")
    otel_exporter_otlp_protocol: Literal["grpc", "http/protobuf", "http/json"] = Field(
        "grpc", validation_alias="OTEL_EXPORTER_OTLP_PROTOCOL"
    )
    otel_exporter_otlp_headers: str | None = Field(None, validation_alias="OTEL_EXPORTER_OTLP_HEADERS")
    otel_service_name: str = Field("orchestrator", validation_alias="OTEL_SERVICE_NAME")
    dashboard_url: str | None = Field(None, validation_alias="DASHBOARD_URL")
    # Compose and Kubernetes keep the two secrets in files (the secrets volume, a Secret), not in
    # the environment: the key becomes OTEL_EXPORTER_OTLP_HEADERS, the token DASHBOARD_URL's login.
    otlp_api_key_file: Path | None = Field(None, validation_alias="OTLP_API_KEY_FILE")
    dashboard_token_file: Path | None = Field(None, validation_alias="DASHBOARD_TOKEN_FILE")
    # What could not be read from those files: said once at start; everything else still works.
    _warnings: list[str] = PrivateAttr(default_factory=list)

    @field_validator("ollama_host", "mcp_server_url", mode="after")
    @classmethod
    def _url(cls, value: str, info: Any) -> str:
        if info.field_name == "mcp_server_url":
            return _mcp_url(value)
        return _host_url(value)

    @field_validator("keep_alive")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _DURATION.match(value.strip()):
            raise ValueError("is not a duration; use e.g. 30m, 1h, 300s, 0 (unload) or -1 (keep loaded)")
        return value.strip()

    @field_validator("extra_models", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        """Comma or space separated, as scripts/seed-models.sh reads it."""
        return value.replace(",", " ").split() if isinstance(value, str) else value

    @field_validator("ollama_headers", mode="before")
    @classmethod
    def _headers(cls, value: Any) -> Any:
        """'Name=value,Other=value', the same format as OTEL_EXPORTER_OTLP_HEADERS."""
        if not isinstance(value, str):
            return value
        headers: dict[str, str] = {}
        for item in filter(None, (part.strip() for part in value.split(","))):
            name, sep, content = item.partition("=")
            if not sep or not re.match(r"^[A-Za-z0-9-]+$", name.strip()):
                raise ValueError("must look like 'Header-Name=value,Other=value'")
            headers[name.strip()] = _ascii(content.strip(), "a header value")
        return headers

    @field_validator("ollama_api_key")
    @classmethod
    def _key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            _ascii(value.get_secret_value(), "the key")
        return value

    @model_validator(mode="after")
    def _auth(self) -> Settings:
        if self.ollama_api_key and any(k.lower() == "authorization" for k in self.ollama_headers):
            raise ValueError("set OLLAMA_API_KEY or an Authorization header in OLLAMA_HEADERS, not both")
        return self

    @model_validator(mode="after")
    def _secret_files(self) -> Settings:
        if self.otlp_api_key_file and not self.otel_exporter_otlp_headers and self.otel_exporter_otlp_endpoint:
            key, problem = read_secret_file(self.otlp_api_key_file, "OTLP_API_KEY_FILE")
            if key:
                self.otel_exporter_otlp_headers = f"x-otlp-api-key={key}"
            else:
                self.otel_exporter_otlp_endpoint = None
                self._warnings.append(f"telemetry export is off: {problem}")
        if self.dashboard_token_file and self.dashboard_url and "t=" not in self.dashboard_url:
            token, problem = read_secret_file(self.dashboard_token_file, "DASHBOARD_TOKEN_FILE")
            if token:
                self.dashboard_url = f"{self.dashboard_url.rstrip('/')}/login?t={token}"
            else:
                self._warnings.append(f"the dashboard's login address is shown without its token: {problem}")
        return self

    @property
    def warnings(self) -> list[str]:
        return list(self._warnings)

    @property
    def ollama_shown(self) -> str:
        """OLLAMA_HOST as messages show it, without any user:password."""
        return without_credentials(self.ollama_host)

    @property
    def mcp_shown(self) -> str:
        """MCP_SERVER_URL as messages, logs and reports show it, without any user:password."""
        return without_credentials(self.mcp_server_url)

    def ollama_request_headers(self) -> dict[str, str]:
        headers = dict(self.ollama_headers)
        if self.ollama_api_key:
            headers["Authorization"] = f"Bearer {self.ollama_api_key.get_secret_value()}"
        return headers

    def chat_options(self) -> dict[str, Any]:
        """The same options on every request, so Ollama never reloads the model between agents."""
        options: dict[str, Any] = {
            "num_ctx": self.num_ctx,
            "temperature": self.temperature,
            "max_tokens": self.max_output_tokens,
        }
        if self.keep_alive is not None:  # a keep_alive per request overrides the server's setting
            keep = self.keep_alive
            options["keep_alive"] = int(keep) if keep.lstrip("-").isdigit() else keep
        return options


def read_secret_file(path: Path, variable: str) -> tuple[str | None, str | None]:
    """(value, None), or (None, one line naming the cause and the fix)."""
    fix = "start the stack with `docker compose up` (its `secrets` job makes the file) or unset " + variable
    try:
        value = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None, f"{variable} {path} does not exist; {fix}"
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or type(error).__name__
        return None, (
            f"{variable} {path} cannot be read ({reason}); rerun the job with `docker compose run --rm secrets`, "
            "or remove the volume offline-agents_secrets and start again"
        )
    if not value or any(c.isspace() or c == "," or not c.isprintable() for c in value):
        return None, f"{variable} {path} holds no usable value; rerun the job with `docker compose run --rm secrets`"
    return value, None


SECRET_VARIABLES = {"OLLAMA_API_KEY", "OLLAMA_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS"}


class SettingsError(Exception):
    """A bad setting, explained in one line: the variable, what was given, what is accepted."""


def _env_name(loc: tuple[Any, ...]) -> str:
    if not loc:
        return "settings"
    field = Settings.model_fields.get(str(loc[0]))
    alias = field.validation_alias if field else None
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return str(alias or loc[0]).upper()


def load_settings(**overrides: Any) -> Settings:
    try:
        return Settings(**overrides)
    except ValidationError as error:
        first = error.errors()[0]
        message = first["msg"].removeprefix("Value error, ")
        if not first["loc"]:
            raise SettingsError(f"invalid settings: {message}") from None
        given = first.get("input")
        if _env_name(first["loc"]) in SECRET_VARIABLES:
            given = "***"  # never repeat a secret, not even a malformed one
        elif isinstance(given, str):
            given = _USERINFO.sub(r"\1***@", given)  # a URL's user:password, even in a malformed one
            given = _BARE_USERINFO.sub("***@", given)  # and without a scheme: user:pw@host
        if isinstance(given, str) and len(given) > 80:
            given = given[:77] + "..."
        raise SettingsError(f"invalid setting {_env_name(first['loc'])}={given!r}: {message}") from None

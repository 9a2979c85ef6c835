"""Settings of the tool server, read from the environment (prefix MCP_) and `.env`."""

from __future__ import annotations

import sys
from typing import Annotated

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class ServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MCP_", env_file=".env", extra="ignore")

    host: str = Field("0.0.0.0", description="Address to bind; 0.0.0.0 inside a container.")
    port: int = Field(8090, ge=1, le=65535, description="TCP port.")
    path: str = Field("/mcp", pattern=r"^/[A-Za-z0-9_/-]*$", description="URL path of the MCP endpoint.")
    # Host headers the server answers (DNS-rebinding protection stays on). localhost and
    # 127.0.0.1 are always allowed; the rest are the compose and Kubernetes service names.
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default=["mcp-server", "mcp-server.*.svc", "mcp-server.*.svc.cluster.local"],
        description="Comma-separated Host header patterns the server accepts; `*` matches one DNS label.",
    )
    log_level: str = Field("INFO", pattern=r"(?i)^(debug|info|warning|error)$")
    # The orchestrator's switch (Agent Framework's name): true lets tool arguments into logs and spans.
    sensitive_data: bool = Field(False, validation_alias="ENABLE_SENSITIVE_DATA")

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


def describe_error(error: ValidationError, prefix: str) -> str:
    """One line naming the variable, what was given and what is accepted."""
    first = error.errors()[0]
    field = ServerSettings.model_fields.get(str(first["loc"][0])) if first["loc"] else None
    alias = field.validation_alias if field else None
    if alias is None and first["loc"] and str(first["loc"][0]).isupper():
        alias = first["loc"][0]  # already the variable's own name (a field with an alias)
    name = str(alias) if alias else prefix + "_".join(str(part) for part in first["loc"]).upper()
    given = first.get("input")
    return f"invalid setting {name}={given!r}: {first['msg']}"


def load_settings() -> ServerSettings:
    try:
        return ServerSettings()
    except ValidationError as error:
        print(f"mcp-server: {describe_error(error, 'MCP_')}", file=sys.stderr)
        raise SystemExit(2) from None

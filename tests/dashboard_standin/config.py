"""Configuration, read the way the real dashboard (an ASP.NET Core app) reads it.

.NET configuration is a flat map of case-insensitive keys whose sections are joined by ':'.
Environment variables spell ':' as '__' (DASHBOARD__OTLP__AUTHMODE == Dashboard:Otlp:AuthMode),
command-line arguments look like --Dashboard:Otlp:AuthMode=ApiKey, and a JSON file named by
ASPIRE_DASHBOARD_CONFIG_FILE_PATH is added last, so it wins over both. Names and defaults follow
the dashboard configuration reference (aspire.dev/dashboard/configuration) and the dashboard's
source (PostConfigureDashboardOptions, ValidateDashboardOptions, KnownConfigNames).

The one deliberate difference: with nothing configured, the endpoints are the ones the container
image sets (ASPNETCORE_URLS=http://+:18888, ...OTLP_ENDPOINT_URL=http://+:18889,
...OTLP_HTTP_ENDPOINT_URL=http://+:18890), because the image is what this stands in for.
"""

from __future__ import annotations

import argparse
import json
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

# Aliases the dashboard copies onto its options (PostConfigureDashboardOptions). The ASPIRE_ names
# are current; the DOTNET_ ones are the legacy spellings that the container image itself still sets.
FRONTEND_URLS = ("ASPNETCORE_URLS", "Dashboard:Frontend:EndpointUrls")
OTLP_GRPC_URL = (
    "ASPIRE_DASHBOARD_OTLP_ENDPOINT_URL",
    "DOTNET_DASHBOARD_OTLP_ENDPOINT_URL",
    "Dashboard:Otlp:GrpcEndpointUrl",
)
OTLP_HTTP_URL = (
    "ASPIRE_DASHBOARD_OTLP_HTTP_ENDPOINT_URL",
    "DOTNET_DASHBOARD_OTLP_HTTP_ENDPOINT_URL",
    "Dashboard:Otlp:HttpEndpointUrl",
)
ALLOW_ANONYMOUS = ("ASPIRE_DASHBOARD_UNSECURED_ALLOW_ANONYMOUS", "DOTNET_DASHBOARD_UNSECURED_ALLOW_ANONYMOUS")
CONFIG_FILE_PATH = ("ASPIRE_DASHBOARD_CONFIG_FILE_PATH", "DOTNET_DASHBOARD_CONFIG_FILE_PATH")
FRONTEND_AUTH_MODE = "Dashboard:Frontend:AuthMode"
BROWSER_TOKEN = ("Dashboard:Frontend:BrowserToken", "ASPIRE_DASHBOARD_FRONTEND_BROWSERTOKEN")
OTLP_AUTH_MODE = "Dashboard:Otlp:AuthMode"
PRIMARY_API_KEY = "Dashboard:Otlp:PrimaryApiKey"
SECONDARY_API_KEY = "Dashboard:Otlp:SecondaryApiKey"
MAX_LOG_COUNT = "Dashboard:TelemetryLimits:MaxLogCount"
MAX_TRACE_COUNT = "Dashboard:TelemetryLimits:MaxTraceCount"
MAX_METRICS_COUNT = "Dashboard:TelemetryLimits:MaxMetricsCount"
APPLICATION_NAME = "Dashboard:ApplicationName"
LOG_LEVEL = "Logging:LogLevel:Default"
# The stand-in's own switch (no dashboard has it): take OTLP/JSON as dashboards from 13.x do.
# Off by default, because the pinned dashboard (9.x) answers OTLP/JSON with 415.
ACCEPT_JSON = "Standin:Otlp:AcceptJson"

# The container image's ENV (dotnet/dotnet-docker src/aspire-dashboard/*/Dockerfile).
DEFAULT_FRONTEND_URL = "http://+:18888"
DEFAULT_OTLP_GRPC_URL = "http://+:18889"
DEFAULT_OTLP_HTTP_URL = "http://+:18890"


class FrontendAuthMode(Enum):
    BROWSER_TOKEN = "BrowserToken"
    UNSECURED = "Unsecured"


class OtlpAuthMode(Enum):
    API_KEY = "ApiKey"
    UNSECURED = "Unsecured"


ModeT = TypeVar("ModeT", FrontendAuthMode, OtlpAuthMode)


class ConfigError(Exception):
    """The configuration is invalid; `messages` are shown the way the dashboard lists them."""

    def __init__(self, messages: Sequence[str]) -> None:
        super().__init__("; ".join(messages))
        self.messages = list(messages)


class Configuration:
    """A layered, case-insensitive key/value view; later layers override earlier ones."""

    def __init__(self, layers: Iterable[Mapping[str, str]] = ()) -> None:
        self._values: dict[str, str] = {}
        for layer in layers:
            self.update(layer)

    def update(self, layer: Mapping[str, str]) -> None:
        for key, value in layer.items():
            self._values[normalize_key(key)] = value

    def get(self, *keys: str) -> str | None:
        """The first of `keys` that has a non-empty value (how the dashboard treats aliases)."""
        for key in keys:
            value = self._values.get(normalize_key(key))
            if value:
                return value
        return None

    def get_bool(self, *keys: str) -> bool | None:
        value = self.get(*keys)
        if value is None:
            return None
        # bool.TryParse: only "true"/"false", case-insensitive, surrounding spaces allowed.
        text = value.strip().lower()
        if text not in ("true", "false"):
            raise ConfigError([f"'{value}' is not a valid boolean for {keys[0]}."])
        return text == "true"

    def __contains__(self, key: str) -> bool:
        return normalize_key(key) in self._values


def normalize_key(key: str) -> str:
    return key.replace("__", ":").lower()


def parse_command_line(args: Sequence[str]) -> dict[str, str]:
    """.NET's command-line provider: --Key=Value, --Key Value, /Key=Value and Key=Value."""
    values: dict[str, str] = {}
    index = 0
    while index < len(args):
        arg = args[index]
        index += 1
        if arg.startswith("--"):
            body = arg[2:]
        elif arg.startswith("/"):
            body = arg[1:]
        elif "=" in arg:
            body = arg
        else:
            raise ConfigError([f"Unrecognized argument '{arg}'."])
        if "=" in body:
            key, value = body.split("=", 1)
        elif index < len(args):
            key, value = body, args[index]
            index += 1
        else:
            raise ConfigError([f"The command-line argument '{arg}' has no value."])
        values[key] = value
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dashboard_standin",
        description="Run the Aspire dashboard stand-in. Other --Key=Value arguments are dashboard settings.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--frontend-url", help="UI endpoint(s), ';'-separated (default http://+:18888); port 0 = free")
    parser.add_argument("--otlp-grpc-url", help="OTLP/gRPC endpoint (default http://+:18889)")
    parser.add_argument("--otlp-http-url", help="OTLP/HTTP endpoint (default http://+:18890)")
    parser.add_argument("--allow-anonymous", action="store_true", help="no browser token, no OTLP API key")
    parser.add_argument("--config-file-path", help="a JSON configuration file (appsettings format)")
    return parser


def command_line_settings(argv: Sequence[str]) -> dict[str, str]:
    args, rest = build_parser().parse_known_args(argv)
    values = parse_command_line(rest)
    # The CLI options are shorthands for the dashboard's own settings.
    for option, keys in (
        (args.frontend_url, FRONTEND_URLS),
        (args.otlp_grpc_url, OTLP_GRPC_URL),
        (args.otlp_http_url, OTLP_HTTP_URL),
        (args.config_file_path, CONFIG_FILE_PATH),
    ):
        if option:
            values[keys[0]] = option
    if args.allow_anonymous:
        values[ALLOW_ANONYMOUS[0]] = "true"
    return values


def flatten_json(data: object, prefix: str = "") -> dict[str, str]:
    """appsettings-style JSON to colon keys, the way AddJsonFile does (arrays get index keys)."""
    out: dict[str, str] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            out.update(flatten_json(value, f"{prefix}:{key}" if prefix else str(key)))
    elif isinstance(data, list):
        for position, value in enumerate(data):
            out.update(flatten_json(value, f"{prefix}:{position}"))
    elif data is None:
        out[prefix] = ""
    elif isinstance(data, bool):
        out[prefix] = "true" if data else "false"
    else:
        out[prefix] = str(data)
    return out


def load_configuration(environ: Mapping[str, str], command_line: Mapping[str, str] | None = None) -> Configuration:
    """Environment, then command line, then the optional JSON file, as the dashboard layers them."""
    config = Configuration([environ, command_line or {}])
    path = config.get(*CONFIG_FILE_PATH)
    if path:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8-sig"))
        except FileNotFoundError:
            # AddJsonFile(optional: false) fails the start the same way.
            raise ConfigError([f"The configuration file '{path}' was not found and is not optional."]) from None
        except (OSError, ValueError) as exc:
            raise ConfigError([f"Could not parse the JSON file '{path}': {exc}"]) from None
        config.update(flatten_json(data))
    return config


@dataclass(frozen=True)
class Endpoint:
    """One listening address from an http:// URL. Port 0 means "any free port"."""

    url: str
    host: str  # what to bind: "0.0.0.0" for the wildcards + and *
    port: int

    @classmethod
    def parse(cls, url: str, setting: str) -> Endpoint:
        # urlsplit rejects "+" and "*" hosts in some versions' port parsing; swap them out first.
        scheme, _, rest = url.strip().partition("://")
        if scheme.lower() == "https":
            raise ConfigError([f"{setting}: '{url}' is https; the stand-in serves plain http only (no certificate)."])
        if scheme.lower() != "http" or not rest:
            raise ConfigError([f"{setting}: '{url}' is not an http:// URL."])
        wildcard = rest[:1] in ("+", "*")
        parts = urlsplit("http://" + ("wildcard" + rest[1:] if wildcard else rest))
        try:
            port = parts.port if parts.port is not None else 80
        except ValueError:
            raise ConfigError([f"{setting}: '{url}' has an invalid port."]) from None
        host = parts.hostname or ""
        if wildcard:
            host = "0.0.0.0"
        elif host == "localhost":
            host = "127.0.0.1"  # Kestrel binds both loopbacks for localhost; IPv4 is enough here
        if not host:
            raise ConfigError([f"{setting}: '{url}' has no host."])
        return cls(url=url.strip(), host=host, port=port)


@dataclass(frozen=True)
class Limits:
    max_log_count: int = 10_000
    max_trace_count: int = 10_000
    max_metrics_count: int = 50_000  # data points per resource, as the dashboard counts them


@dataclass(frozen=True)
class Settings:
    frontend: tuple[Endpoint, ...]
    otlp_grpc: Endpoint | None
    otlp_http: Endpoint | None
    frontend_auth_mode: FrontendAuthMode
    browser_token: str | None
    otlp_auth_mode: OtlpAuthMode
    primary_api_key: str | None
    secondary_api_key: str | None
    limits: Limits = field(default_factory=Limits)
    application_name: str = "Aspire"
    log_level: str = "Information"
    accept_json: bool = False

    def api_keys(self) -> tuple[str, ...]:
        return tuple(key for key in (self.primary_api_key, self.secondary_api_key) if key)


def _enum(enum: type[ModeT], value: str, setting: str, errors: list[str]) -> ModeT | None:
    # The configuration binder matches enum names case-insensitively.
    for member in enum:
        if member.value.lower() == value.strip().lower():
            return member
    if setting == FRONTEND_AUTH_MODE and value.strip().lower() == "openidconnect":
        errors.append("Dashboard:Frontend:AuthMode=OpenIdConnect is not supported by the stand-in.")
    elif setting == OTLP_AUTH_MODE and value.strip().lower() in ("clientcertificate", "certificate"):
        errors.append("Dashboard:Otlp:AuthMode=ClientCertificate is not supported by the stand-in (no TLS).")
    else:
        errors.append(f"Unexpected value '{value}' for {setting}. Possible values: {', '.join(m.value for m in enum)}")
    return None


def _positive_int(config: Configuration, key: str, default: int, errors: list[str]) -> int:
    value = config.get(key)
    if value is None:
        return default
    try:
        number = int(value.strip())
    except ValueError:
        errors.append(f"'{value}' is not a valid integer for {key}.")
        return default
    if number < 1:
        errors.append(f"{key} must be at least 1, not {number}.")
        return default
    return number


def resolve_settings(config: Configuration, *, generate_token: bool = True) -> Settings:
    """Apply the dashboard's defaults and validation. Raises ConfigError listing every problem."""
    errors: list[str] = []
    try:
        anonymous = bool(config.get_bool(*ALLOW_ANONYMOUS))
        accept_json = bool(config.get_bool(ACCEPT_JSON))
    except ConfigError as exc:
        errors.extend(exc.messages)
        anonymous = accept_json = False

    frontend_mode: FrontendAuthMode | None
    otlp_mode: OtlpAuthMode | None
    if anonymous:
        # The shortcut overrides both modes, whatever they were set to.
        frontend_mode, otlp_mode = FrontendAuthMode.UNSECURED, OtlpAuthMode.UNSECURED
    else:
        raw = config.get(FRONTEND_AUTH_MODE)
        frontend_mode = (
            _enum(FrontendAuthMode, raw, FRONTEND_AUTH_MODE, errors) if raw else FrontendAuthMode.BROWSER_TOKEN
        )
        raw = config.get(OTLP_AUTH_MODE)
        otlp_mode = _enum(OtlpAuthMode, raw, OTLP_AUTH_MODE, errors) if raw else OtlpAuthMode.UNSECURED

    token = config.get(*BROWSER_TOKEN)
    if frontend_mode is FrontendAuthMode.BROWSER_TOKEN and not token and generate_token:
        token = secrets.token_hex(16)  # what the dashboard prints when none is given

    primary = config.get(PRIMARY_API_KEY)
    if otlp_mode is OtlpAuthMode.API_KEY and not primary:
        errors.append(
            "PrimaryApiKey is required when OTLP authentication mode is API key. "
            "Specify a Dashboard:Otlp:PrimaryApiKey value."
        )

    def endpoint(keys: Sequence[str], default: str) -> Endpoint | None:
        try:
            return Endpoint.parse(config.get(*keys) or default, keys[0])
        except ConfigError as exc:
            errors.extend(exc.messages)
            return None

    frontend_urls = [url for url in (config.get(*FRONTEND_URLS) or DEFAULT_FRONTEND_URL).split(";") if url.strip()]
    frontend: list[Endpoint] = []
    for url in frontend_urls:
        try:
            frontend.append(Endpoint.parse(url, FRONTEND_URLS[0]))
        except ConfigError as exc:
            errors.extend(exc.messages)
    otlp_grpc = endpoint(OTLP_GRPC_URL, DEFAULT_OTLP_GRPC_URL)
    otlp_http = endpoint(OTLP_HTTP_URL, DEFAULT_OTLP_HTTP_URL)

    limits = Limits(
        max_log_count=_positive_int(config, MAX_LOG_COUNT, Limits.max_log_count, errors),
        max_trace_count=_positive_int(config, MAX_TRACE_COUNT, Limits.max_trace_count, errors),
        max_metrics_count=_positive_int(config, MAX_METRICS_COUNT, Limits.max_metrics_count, errors),
    )
    if errors or frontend_mode is None or otlp_mode is None:
        raise ConfigError(errors)
    return Settings(
        frontend=tuple(frontend),
        otlp_grpc=otlp_grpc,
        otlp_http=otlp_http,
        frontend_auth_mode=frontend_mode,
        browser_token=token if frontend_mode is FrontendAuthMode.BROWSER_TOKEN else None,
        otlp_auth_mode=otlp_mode,
        primary_api_key=primary if otlp_mode is OtlpAuthMode.API_KEY else None,
        secondary_api_key=config.get(SECONDARY_API_KEY) if otlp_mode is OtlpAuthMode.API_KEY else None,
        limits=limits,
        application_name=config.get(APPLICATION_NAME) or "Aspire",
        log_level=config.get(LOG_LEVEL) or "Information",
        accept_json=accept_json,
    )

"""`python main.py secrets DIR`: the stack's two secrets, made once and kept in a volume.

The compose job `secrets` runs this before anything else starts, so the literal
`docker compose --profile cpu up` needs no prior step and never writes into a tracked file:

  DIR/dashboard-token   the token the dashboard UI asks for (the orchestrator prints the login address)
  DIR/otlp-api-key      the key every service sends with its telemetry (OTLP_API_KEY_FILE)
  DIR/dashboard.json    the same two values as the dashboard's configuration file
                        (ASPIRE_DASHBOARD_CONFIG_FILE_PATH): its image has no shell to read files with

A value set in the environment (DASHBOARD_TOKEN, OTLP_API_KEY, from .env) wins and is written over
the kept one; an empty one keeps what the volume holds, or makes a random one the first time.
Files are readable by the owner and group only (0440); the readers join the group in compose.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import sys
from pathlib import Path

from ..errors import ExitCode

# file name -> the environment variable whose value wins over the kept one
SECRETS = {"dashboard-token": "DASHBOARD_TOKEN", "otlp-api-key": "OTLP_API_KEY"}
DASHBOARD_CONFIG = "dashboard.json"
# Sent as an HTTP header and typed into a login page: printable ASCII without spaces or commas
# (OTEL_EXPORTER_OTLP_HEADERS separates headers with commas).
_VALID = re.compile(r"^[!-+\--~]{8,256}$")
REMAKE = "docker compose down, then `docker volume rm offline-agents_secrets`, and start again"


class SecretsError(Exception):
    """The volume cannot hold the secrets; the message names the cause and the fix."""


def ensure(directory: Path, environ: dict[str, str] | None = None) -> dict[str, tuple[str, str]]:
    """Make or keep each secret in `directory`; returns name -> (value, where it came from)."""
    environ = dict(os.environ if environ is None else environ)
    if not directory.is_dir():
        raise SecretsError(f"{directory} is not a directory: mount the secrets volume there")
    values: dict[str, tuple[str, str]] = {}
    for name, variable in SECRETS.items():
        given = environ.get(variable, "").strip()
        if given:
            if not _VALID.match(given):
                raise SecretsError(
                    f"{variable} in .env is not usable: give 8 to 256 printable characters without spaces or "
                    f"commas, or leave it empty for a random one"
                )
            values[name] = (given, "from .env")
            continue
        kept = _read(directory / name)
        if kept and _VALID.match(kept):
            values[name] = (kept, "kept")
        else:
            values[name] = (secrets.token_hex(16), "made" if kept is None else "remade (the kept one was damaged)")
    config = {"Dashboard": {"Frontend": {"AuthMode": "BrowserToken", "BrowserToken": values["dashboard-token"][0]},
                            "Otlp": {"AuthMode": "ApiKey", "PrimaryApiKey": values["otlp-api-key"][0]}}}  # fmt: skip
    for name, (value, _) in values.items():
        _write(directory / name, value)
    _write(directory / DASHBOARD_CONFIG, json.dumps(config, indent=2))
    return values


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        raise SecretsError(f"cannot read {path} ({type(error).__name__}: {error}); {REMAKE}") from None


def _write(path: Path, value: str) -> None:
    """Atomically, so a reader never sees half a file; 0440: the owner and the readers' group."""
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        temporary.unlink(missing_ok=True)
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o440)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(value + "\n")
        os.chmod(temporary, 0o440)  # whatever the umask
        os.replace(temporary, path)
    except OSError as error:
        raise SecretsError(
            f"cannot write {path} ({type(error).__name__}: {error.strerror or error}); "
            f"the secrets volume must be writable by uid {os.getuid()}: {REMAKE}"
        ) from None


def login_address(dashboard_url: str, token: str) -> str:
    return f"{dashboard_url.rstrip('/')}/login?t={token}"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="main.py secrets",
        description="Make the dashboard token and the OTLP key once, keep them in DIR (the secrets volume). "
        "DASHBOARD_TOKEN and OTLP_API_KEY, when set, win over the kept values.",
    )
    parser.add_argument("directory", type=Path, help="where to keep them (compose mounts the secrets volume here)")
    args = parser.parse_args(argv)
    try:
        values = ensure(args.directory)
    except SecretsError as error:
        print(f"error: {error}", file=sys.stderr)
        return ExitCode.USAGE
    print("secrets: " + ", ".join(f"{name} {origin}" for name, (_, origin) in values.items()), flush=True)
    dashboard = os.environ.get("DASHBOARD_URL")
    if dashboard:
        # The dashboard prints its own login address the same way: whoever reads these logs can
        # read the volume too.
        print(f"dashboard login: {login_address(dashboard, values['dashboard-token'][0])}", flush=True)
    return 0

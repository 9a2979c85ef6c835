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

`python main.py secrets --kubernetes NAME`, the Kubernetes Job: the same three files as the keys of
Secret NAME in the pod's namespace, created through the API with the Job's ServiceAccount unless
it exists (a Secret a site made itself is kept as it is). The pods mount it at /secrets.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import sys
from collections.abc import Callable
from pathlib import Path

import httpx

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


def _values(environ: dict[str, str], kept: Callable[[str], str | None]) -> dict[str, tuple[str, str]]:
    """name -> (value, where it came from): the environment's, else the kept one, else a new one."""
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
        old = kept(name)
        if old and _VALID.match(old):
            values[name] = (old, "kept")
        else:
            values[name] = (secrets.token_hex(16), "made" if old is None else "remade (the kept one was damaged)")
    return values


def files_of(values: dict[str, tuple[str, str]]) -> dict[str, str]:
    """The three files: the two values and the dashboard's configuration made of them."""
    config = {"Dashboard": {"Frontend": {"AuthMode": "BrowserToken", "BrowserToken": values["dashboard-token"][0]},
                            "Otlp": {"AuthMode": "ApiKey", "PrimaryApiKey": values["otlp-api-key"][0]}}}  # fmt: skip
    return {
        **{name: value for name, (value, _) in values.items()},
        DASHBOARD_CONFIG: json.dumps(config, indent=2),
    }


def ensure(directory: Path, environ: dict[str, str] | None = None) -> dict[str, tuple[str, str]]:
    """Make or keep each secret in `directory`; returns name -> (value, where it came from)."""
    environ = dict(os.environ if environ is None else environ)
    if not directory.is_dir():
        raise SecretsError(f"{directory} is not a directory: mount the secrets volume there")
    values = _values(environ, lambda name: _read(directory / name))
    for name, content in files_of(values).items():
        _write(directory / name, content)
    return values


SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
LABELS = {"app.kubernetes.io/part-of": "offline-agents", "app.kubernetes.io/component": "secrets"}
RBAC_FIX = "the Job's ServiceAccount needs get and create on secrets (deploy/kubernetes/base/secrets-job.yaml)"


def ensure_in_cluster(name: str, *, api: str | None = None, account: Path = SERVICE_ACCOUNT,
                      environ: dict[str, str] | None = None) -> str:  # fmt: skip
    """Create Secret NAME in the pod's namespace unless it exists: "made" or "kept"."""
    environ = dict(os.environ if environ is None else environ)
    try:
        token = (account / "token").read_text().strip()
        namespace = (account / "namespace").read_text().strip()
    except OSError as error:
        raise SecretsError(
            f"no service account token in {account} ({error.strerror or error}): run this as the Kubernetes Job, "
            "whose pod mounts it (automountServiceAccountToken: true)"
        ) from None
    if api is None:
        host, port = environ.get("KUBERNETES_SERVICE_HOST"), environ.get("KUBERNETES_SERVICE_PORT", "443")
        if not host:
            raise SecretsError("KUBERNETES_SERVICE_HOST is not set: this runs inside a Kubernetes pod")
        api = f"https://{f'[{host}]' if ':' in host else host}:{port}"
    verify: str | bool = str(account / "ca.crt") if api.startswith("https") else False
    collection = f"/api/v1/namespaces/{namespace}/secrets"
    try:
        with httpx.Client(base_url=api, headers={"Authorization": f"Bearer {token}"}, verify=verify,
                          timeout=30) as client:  # fmt: skip
            found = client.get(f"{collection}/{name}")
            if found.status_code == 200:
                return "kept"
            if found.status_code != 404:
                raise SecretsError(f"the API server answered {found.status_code} to reading Secret {name}; {RBAC_FIX}")
            values = _values(environ, lambda _name: None)
            body = {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name, "labels": LABELS},
                "type": "Opaque",
                "stringData": files_of(values),
            }
            made = client.post(collection, json=body)
            if made.status_code == 409:  # another run made it a moment ago
                return "kept"
            if made.status_code not in (200, 201):
                raise SecretsError(f"the API server answered {made.status_code} to creating Secret {name}; {RBAC_FIX}")
            return "made"
    except httpx.HTTPError as error:
        raise SecretsError(
            f"cannot reach the Kubernetes API at {api} ({type(error).__name__}: {error}); the NetworkPolicy "
            "secrets-api-egress must let this Job reach it (your API server's address and port)"
        ) from None


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
    parser.add_argument("directory", type=Path, nargs="?",
                        help="where to keep them (compose mounts the secrets volume here)")  # fmt: skip
    parser.add_argument(
        "--kubernetes", metavar="NAME", help="instead: create Secret NAME in this pod's namespace unless it exists"
    )
    args = parser.parse_args(argv)
    if (args.directory is None) == (args.kubernetes is None):
        parser.error("give a directory, or --kubernetes NAME")
    try:
        if args.kubernetes:
            print(f"secrets: Secret {args.kubernetes} {ensure_in_cluster(args.kubernetes)}", flush=True)
            return 0
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

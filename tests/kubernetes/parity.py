"""Compose and Kubernetes describe the same stack: compare them.

Compose is read the way Compose itself resolves it (`docker compose config --no-interpolate`:
extends and anchors applied, `${VAR}` references kept), so every value can be traced to a setting
name in .env. Each check takes plain data and returns a list of differences, one line each; an
empty list means the two agree. The tests feed them altered copies to show they catch drift.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from kubernetes.manifests import ROOT, PodTemplate, find, pod_templates

COMPOSE = Path(sys.executable).parent / "docker-compose"
SECRET_NAMES_SOURCE = ROOT / "src" / "orchestrator" / "ops" / "secrets.py"
IMAGE_VARIABLES = ("OLLAMA_IMAGE", "DASHBOARD_IMAGE", "ORCHESTRATOR_IMAGE", "MCP_SERVER_IMAGE")
CONFIG_MAP = "offline-agents-config"
SECRET = "offline-agents-secrets"

# compose service -> the Kubernetes workloads that play its part. The overlay decides which Ollama
# service of compose the one Deployment `ollama` is compared with.
SHARED_WORKLOADS = {
    "ollama-seed": ["Job/ollama-seed"],
    "mcp-server": ["Deployment/mcp-server"],
    "aspire-dashboard": ["Deployment/aspire-dashboard"],
    "orchestrator": ["Deployment/orchestrator", "Job/orchestrator-plan"],
}
WORKLOADS = {
    "cpu": {"ollama": ["Deployment/ollama"], **SHARED_WORKLOADS},
    "gpu": {"ollama-gpu": ["Deployment/ollama"], **SHARED_WORKLOADS},
}

# Variables Kubernetes sets that compose does not, each for a stated reason.
KUBERNETES_ONLY_ENV = {
    # Ollama runs unprivileged here (root in compose, whose HOME is /root): its HOME must be writable.
    # NVIDIA_VISIBLE_DEVICES=void: pods without a GPU request stay off the node's GPUs (the CPU
    # Ollama and the seeding job); compose's default runtime ignores the variable anyway.
    "Deployment/ollama": {"HOME", "NVIDIA_VISIBLE_DEVICES"},
    "Job/ollama-seed": {"HOME", "NVIDIA_VISIBLE_DEVICES"},
}
# Variables compose sets that Kubernetes does not: OLLAMA_SEEDED comes from `make up-*`, which runs
# the seeding job in the terminal first and then tells `up`'s start of it that nothing is left to do.
COMPOSE_ONLY_ENV = {"ollama-seed": {"OLLAMA_SEEDED"}}
# The official Ollama image runs as root, so in compose $HOME is /root.
COMPOSE_HOME = "/root"

_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(?::?[-?])[^}]*)?\}")
_K8S_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def compose_model(*profiles: str) -> dict:
    """docker-compose.yml as Compose resolves it, without filling in any variable."""
    command = [str(COMPOSE)] + [arg for p in profiles for arg in ("--profile", p)]
    done = subprocess.run([*command, "config", "--no-interpolate", "--format", "json"],
                          capture_output=True, text=True, cwd=ROOT, check=False)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"docker compose config failed: {done.stderr.strip()}")
    return json.loads(done.stdout)


def secret_names(script: str) -> set[str]:
    """The settings `main.py secrets` takes from .env: the values of its SECRETS map."""
    (body,) = re.findall(r"^SECRETS = \{(.*?)\}$", script, flags=re.M)
    return set(re.findall(r'"[a-z-]+": "([A-Z_]+)"', body))


def references(value: str) -> set[str]:
    return set(_REFERENCE.findall(value))


def normalize_compose(value: str) -> str:
    """'x=${OTLP_API_KEY:?message}' -> 'x={OTLP_API_KEY}': what the value is made of."""
    return _REFERENCE.sub(lambda m: "{" + m.group(1) + "}", value).replace("$$", "$")


def compose_env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {name: normalize_compose(str(value)) for name, value in env.items()}


def env_value(var: dict) -> str:
    """A Kubernetes env entry in the same notation: ConfigMap/Secret keys become {KEY}."""
    if "value" in var:
        return var["value"]
    source = var.get("valueFrom") or {}
    for kind in ("configMapKeyRef", "secretKeyRef"):
        if kind in source:
            return "{" + source[kind]["key"] + "}"
    return f"<{sorted(source)}>"


def kubernetes_env(container: dict) -> tuple[dict[str, str], set[str]]:
    """The container's variables in compose's notation, and the helper variables folded away.

    A helper is a variable that only carries a ConfigMap or Secret key of its own name so that
    another value can use it as $(NAME): `OTEL_EXPORTER_OTLP_HEADERS=x-otlp-api-key=$(OTLP_API_KEY)`
    is compose's `x-otlp-api-key=${OTLP_API_KEY}`.
    """
    raw = {var["name"]: env_value(var) for var in container.get("env", [])}
    used = {name for value in raw.values() for name in _K8S_REFERENCE.findall(value)}
    helpers = {name for name in used if raw.get(name) == "{" + name + "}"}
    env = {}
    for name, value in raw.items():
        env[name] = _K8S_REFERENCE.sub(lambda m: raw.get(m.group(1), m.group(0)), value)
    return env, helpers


@dataclass
class Inputs:
    """Everything the checks compare: one compose model, .env, one rendered overlay."""

    compose: dict
    env: dict[str, str]
    docs: list[dict]
    variant: str  # cpu or gpu
    dockerfile_healthcheck: dict  # mcp_server/Dockerfile's HEALTHCHECK, parsed
    mcp_port: int  # MCP_PORT in mcp_server/Dockerfile
    seed_script: str
    secret_names: set[str]

    def service(self, name: str) -> dict:
        return self.compose["services"][name]

    def pairs(self) -> list[tuple[str, PodTemplate]]:
        templates = {t.ref: t for t in pod_templates(self.docs)}
        return [(service, templates[ref]) for service, refs in WORKLOADS[self.variant].items() for ref in refs]

    def main_container(self, pod: PodTemplate) -> dict:
        return pod.spec["containers"][0]

    def value_of(self, compose_value: str) -> str:
        """A compose value with the .env values filled in (defaults only where .env has none)."""

        def fill(match: re.Match) -> str:
            name, rest = match.group(1), match.group(0)[2 + len(match.group(1)) : -1]
            if name in self.env:
                return self.env[name]
            default = re.match(r"^:?-(.*)$", rest)
            return default.group(1) if default else ""

        return _REFERENCE.sub(fill, compose_value)


def parse_healthcheck(dockerfile: str) -> dict:
    """HEALTHCHECK --interval=5s ... CMD [...] -> {'interval': 5, ..., 'cmd': '...'}."""
    text = dockerfile.replace("\\\n", " ")
    (line,) = [ln for ln in text.splitlines() if ln.startswith("HEALTHCHECK")]
    options, _, command = line.partition(" CMD ")
    parsed: dict = {"cmd": command.strip()}
    for option in shlex.split(options)[1:]:
        key, _, value = option.lstrip("-").partition("=")
        parsed[key] = seconds(value)
    return parsed


def dockerfile_env(dockerfile: str, name: str) -> str:
    text = dockerfile.replace("\\\n", " ")
    (value,) = re.findall(rf"\b{name}=(\S+)", text)
    return value


def seconds(duration: str | int) -> int:
    if isinstance(duration, int):
        return duration
    match = re.fullmatch(r"(\d+)(ms|s|m|h)?", duration)
    assert match, f"not a duration: {duration}"
    scale = {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600}[match.group(2)]
    return int(int(match.group(1)) * scale)


def memory_bytes(size: str) -> int:
    """Compose's '12g' (binary units, as Docker reads them) and Kubernetes' '12Gi' alike."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([a-zA-Z]*)", str(size))
    assert match, f"not a memory size: {size}"
    number, unit = float(match.group(1)), match.group(2)
    scale = {
        "": 1, "b": 1, "k": 2**10, "kb": 2**10, "m": 2**20, "mb": 2**20, "g": 2**30, "gb": 2**30,
        "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
    }  # fmt: skip
    key = unit if unit in scale else unit.lower()
    return int(number * scale[key])


# --- the checks ----------------------------------------------------------------------------------


def check_images(i: Inputs, kustomization: dict) -> list[str]:
    """Every image is the version .env pins, both in the kustomization and in what it renders."""
    problems = []
    entries = {e["name"]: e for e in kustomization.get("images", [])}
    for variable in IMAGE_VARIABLES:
        wanted = i.env[variable]
        reference, _, digest = wanted.partition("@")  # name:tag@sha256:... where .env pins a digest
        name, _, tag = reference.rpartition(":")
        entry = entries.get(name)
        if entry is None:
            problems.append(f"images: kustomization has no entry for {name} ({variable})")
        elif (entry.get("newTag"), entry.get("digest", ""), entry.get("newName", name)) != (tag, digest, name):
            pinned = "@" + entry["digest"] if entry.get("digest") else ""
            problems.append(f"images: kustomization pins {entry.get('newName', name)}:{entry.get('newTag')}{pinned}, "
                            f".env {variable}={wanted}")  # fmt: skip
    for service, pod in i.pairs():
        refs = references(i.service(service)["image"])
        (variable,) = refs
        for container in pod.spec["containers"]:
            if container["image"] != i.env[variable]:
                problems.append(f"images: {pod.ref} runs {container['image']}, .env {variable}={i.env[variable]}")
    return problems


def check_environment(i: Inputs) -> list[str]:
    """Same variable names with the same makings (literals and setting names) in both."""
    problems = []
    for service, pod in i.pairs():
        only = COMPOSE_ONLY_ENV.get(service, set())
        wanted = {name: value for name, value in compose_env(i.service(service)).items() if name not in only}
        for container in pod.spec["containers"]:
            env, helpers = kubernetes_env(container)
            helpers -= set(wanted)  # a setting compose has too is compared, not folded away
            extra = KUBERNETES_ONLY_ENV.get(pod.ref, set())
            names = set(env) - helpers - extra
            if names != set(wanted):
                problems.append(f"env: {pod.ref} has {sorted(names - set(wanted))} that compose's {service} lacks, "
                                f"lacks {sorted(set(wanted) - names)}")  # fmt: skip
            for name in sorted(names & set(wanted)):
                if env[name] != wanted[name]:
                    problems.append(f"env: {pod.ref} {name}={env[name]!r}, compose {service} {name}={wanted[name]!r}")
    return problems


def check_settings_source(i: Inputs) -> list[str]:
    """The ConfigMap holds exactly the runtime settings compose takes from .env, with .env's values;
    the Secret exactly the generated secrets; every reference points at a key that exists."""
    problems = []
    used = set()
    for name, service in i.compose["services"].items():
        for variable, value in compose_env(service).items():
            if variable not in COMPOSE_ONLY_ENV.get(name, set()):
                used |= set(re.findall(r"\{([A-Za-z_][A-Za-z0-9_]*)\}", value))
    config = find(i.docs, "ConfigMap", CONFIG_MAP, prefix=True).get("data", {})
    # The Secret is made in the cluster by the secrets Job (`main.py secrets --kubernetes`), with the
    # files `main.py secrets` writes into compose's volume; nothing renders it.
    secret: dict[str, str] = {}
    if any(d["kind"] == "Secret" for d in i.docs):
        problems.append(f"settings: a Secret is rendered; the secrets Job makes {SECRET} in the cluster")
    job = next((p for p in pod_templates(i.docs) if p.ref == "Job/secrets"), None)
    if job is None or job.spec["containers"][0].get("args") != ["secrets", "--kubernetes", SECRET]:
        problems.append(f"settings: no Job/secrets running `main.py secrets --kubernetes {SECRET}`")
    wanted = used - i.secret_names
    if set(config) != wanted:
        problems.append(f"settings: ConfigMap has {sorted(set(config) - wanted)} that compose does not read, "
                        f"lacks {sorted(wanted - set(config))}")  # fmt: skip
    for name in sorted(set(config) & wanted):
        if config[name] != i.env.get(name):
            problems.append(f"settings: ConfigMap {name}={config[name]!r}, .env {name}={i.env.get(name)!r}")
    for name in sorted(config):
        if name not in i.env:
            problems.append(f"settings: {name} is not a setting name in .env")
    for pod in pod_templates(i.docs):
        for container in pod.containers():
            for var in container.get("env", []):
                source = var.get("valueFrom") or {}
                for kind, keys in (("configMapKeyRef", config), ("secretKeyRef", secret)):
                    if kind in source and source[kind]["key"] not in keys:
                        problems.append(f"settings: {pod.ref} {var['name']} reads missing key {source[kind]['key']}")
    return problems


def _service_port(i: Inputs, name: str, port: int) -> str | None:
    """None when Service NAME exposes PORT on pods that listen on PORT; else the difference."""
    services = [d for d in i.docs if d["kind"] == "Service" and d["metadata"]["name"] == name]
    if not services:
        return f"ports: no Service named {name}"
    entries = [p for p in services[0]["spec"]["ports"] if p["port"] == port]
    if not entries:
        return f"ports: Service {name} does not expose {port} (has {[p['port'] for p in services[0]['spec']['ports']]})"
    target = entries[0].get("targetPort", port)
    selector = services[0]["spec"]["selector"]
    pods = [
        t for t in pod_templates(i.docs) if t.kind != "Job" and all(t.labels.get(k) == v for k, v in selector.items())
    ]
    if not pods:
        return f"ports: Service {name} selects no pod"
    for pod in pods:
        numbers = {p["containerPort"] for c in pod.containers() for p in c.get("ports", [])
                   if target in (p.get("name"), p["containerPort"])}  # fmt: skip
        if numbers != {port}:
            return f"ports: Service {name}:{port} reaches {pod.ref} on {sorted(numbers) or 'nothing'}, not {port}"
    return None


def check_ports(i: Inputs) -> list[str]:
    """Every service address compose's clients use exists in the cluster on the same port, and the
    servers listen where compose has them listen."""
    problems = []
    names = set(i.compose["services"])
    addresses = set()
    for service in i.compose["services"].values():
        for value in compose_env(service).values():
            url = urlsplit(i.value_of(value)) if re.match(r"^https?://", i.value_of(value)) else None
            if url and url.hostname in names | {"ollama"}:
                addresses.add((url.hostname, url.port or 80))
    for name, service in i.compose["services"].items():
        for published in service.get("ports", []):
            target = int(str(published).rsplit(":", 1)[-1]) if isinstance(published, str) else published["target"]
            addresses.add((name, target))
    for host, port in sorted(addresses):
        if (problem := _service_port(i, host, port)) is not None:
            problems.append(problem)
    ollama = "ollama" if i.variant == "cpu" else "ollama-gpu"
    listen = int(compose_env(i.service(ollama))["OLLAMA_HOST"].rsplit(":", 1)[1])
    if (problem := _service_port(i, "ollama", listen)) is not None:
        problems.append(problem)
    if (problem := _service_port(i, "mcp-server", i.mcp_port)) is not None:
        problems.append(problem)
    return problems


def check_probes(i: Inputs) -> list[str]:
    """The probes ask what compose's healthchecks ask, as often and as patiently."""
    problems = []
    templates = {t.ref: t for t in pod_templates(i.docs)}
    ollama = i.service("ollama" if i.variant == "cpu" else "ollama-gpu")["healthcheck"]
    container = templates["Deployment/ollama"].container("ollama")
    kind, command = ollama["test"][0], ollama["test"][1:]
    if kind != "CMD":
        problems.append(f"probes: compose's Ollama healthcheck is {kind}, expected CMD")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        got = (container.get(probe) or {}).get("exec", {}).get("command")
        if got != command:
            problems.append(f"probes: Ollama {probe} runs {got}, compose's healthcheck {command}")
        if (container.get(probe) or {}).get("timeoutSeconds") != seconds(ollama["timeout"]):
            problems.append(f"probes: Ollama {probe} timeout differs from compose's {ollama['timeout']}")
    problems += _timing("Ollama", container, seconds(ollama["interval"]), ollama["retries"],
                        seconds(ollama["start_period"]))  # fmt: skip

    check = i.dockerfile_healthcheck
    container = templates["Deployment/mcp-server"].container("mcp-server")
    paths = set(re.findall(r"(/[a-z]+)'", check["cmd"]))
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        http = (container.get(probe) or {}).get("httpGet") or {}
        port = http.get("port")
        port = next((p["containerPort"] for p in container["ports"] if p["name"] == port), port)
        if {http.get("path")} != paths or port != i.mcp_port:
            problems.append(f"probes: mcp-server {probe} asks {http.get('path')}:{port}, the image's "
                            f"HEALTHCHECK {sorted(paths)}:{i.mcp_port}")  # fmt: skip
        if (container.get(probe) or {}).get("timeoutSeconds") != check["timeout"]:
            problems.append(f"probes: mcp-server {probe} timeout differs from the image's {check['timeout']}s")
    problems += _timing("mcp-server", container, check["interval"], check["retries"], check["start-period"])

    if "healthcheck" in i.service("aspire-dashboard"):
        problems.append("probes: compose now has a dashboard healthcheck; mirror it in aspire-dashboard.yaml")
    container = templates["Deployment/aspire-dashboard"].container("aspire-dashboard")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        if not container.get(probe) or "exec" in container[probe]:
            problems.append(f"probes: the distroless dashboard needs a tcpSocket/httpGet {probe}, no exec")
    return problems


def _timing(what: str, container: dict, interval: int, retries: int, start_period: int) -> list[str]:
    problems = []
    ready = container.get("readinessProbe") or {}
    if (ready.get("periodSeconds"), ready.get("failureThreshold")) != (interval, retries):
        problems.append(f"probes: {what} readiness every {ready.get('periodSeconds')} s x "
                        f"{ready.get('failureThreshold')}, compose every {interval} s x {retries}")  # fmt: skip
    startup = container.get("startupProbe") or {}
    if (
        startup.get("periodSeconds") != interval
        or startup.get("periodSeconds", 0) * startup.get("failureThreshold", 0) != start_period
    ):
        problems.append(f"probes: {what} startup probe does not cover compose's start period of {start_period} s")
    return problems


def check_resources(i: Inputs) -> list[str]:
    """Memory limits and GPUs are the ones compose gets from .env."""
    problems = []
    for service, pod in i.pairs():
        limits = (i.service(service).get("deploy") or {}).get("resources", {}).get("limits", {})
        got = (i.main_container(pod).get("resources") or {}).get("limits", {})
        if "memory" in limits:
            wanted = i.value_of(limits["memory"])
            if "memory" not in got or memory_bytes(got["memory"]) != memory_bytes(wanted):
                problems.append(f"resources: {pod.ref} memory limit {got.get('memory')}, compose's {service} {wanted}")
        devices = (i.service(service).get("deploy") or {}).get("resources", {}).get("reservations", {}).get("devices")
        gpus = got.get("nvidia.com/gpu")
        if devices:
            count = i.value_of(str(devices[0].get("count", "all")))
            if gpus is None or (count != "all" and int(gpus) != int(count)):
                problems.append(f"resources: {pod.ref} asks {gpus} GPUs, compose's {service} {count}")
        elif gpus is not None:
            problems.append(f"resources: {pod.ref} asks for GPUs, compose's {service} has none")
    return problems


def check_storage_and_process(i: Inputs) -> list[str]:
    """Volumes at the same places, read-only roots and tmpfs, init, the terminal's TTY, the seeding
    script and command."""
    problems = []
    for service, pod in i.pairs():
        spec = i.service(service)
        container = i.main_container(pod)
        mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
        volumes = {v["name"]: v for v in pod.spec.get("volumes", [])}
        home = next((v["value"] for v in container.get("env", []) if v["name"] == "HOME"), None)
        for volume in spec.get("volumes", []):
            target = volume["target"]
            if target.startswith(COMPOSE_HOME + "/") and home:
                target = home + target[len(COMPOSE_HOME) :]  # $HOME/.ollama in both
            if volume["type"] == "bind" and volume["source"].endswith("scripts/seed-models.sh"):
                folder, _, key = target.rpartition("/")
                source = volumes.get(mounts.get(folder, ""), {}).get("configMap")
                if not source:
                    problems.append(f"storage: {pod.ref} has no ConfigMap mounted at {folder}")
                    continue
                data = find(i.docs, "ConfigMap", source["name"], prefix=True).get("data", {})
                if data.get(key) != i.seed_script:
                    problems.append(f"storage: ConfigMap {source['name']} {key} differs from scripts/seed-models.sh "
                                    "(copy it to deploy/kubernetes/base/)")  # fmt: skip
            elif volume["type"] == "volume" and pod.kind == "Job" and target not in mounts:
                continue  # a one-shot plan keeps no history: compose's `run` mounts it, unused
            elif target not in mounts:
                problems.append(f"storage: {pod.ref} mounts nothing at {target} (compose's {service} does)")
            elif volume["source"] == "secrets":  # compose's secrets volume is the Secret here
                if volumes[mounts[target]].get("secret", {}).get("secretName") != SECRET:
                    problems.append(f"storage: {pod.ref} {target} is not the Secret {SECRET}")
            elif volume["type"] == "volume" and "persistentVolumeClaim" not in volumes[mounts[target]]:
                problems.append(f"storage: {pod.ref} {target} is not on a PersistentVolumeClaim")
        for entry in spec.get("tmpfs", []):
            path = entry.split(":", 1)[0]  # "/home/app:uid=1654,mode=0700": mount options after the path
            if "emptyDir" not in volumes.get(mounts.get(path, ""), {}):
                problems.append(f"storage: {pod.ref} has no emptyDir at {path} (compose's tmpfs)")
        read_only = (container.get("securityContext") or {}).get("readOnlyRootFilesystem") is True
        if spec.get("read_only") and not read_only:
            problems.append(f"storage: {pod.ref} root filesystem is writable, compose's {service} is read_only")
        if spec.get("init") and not pod.spec.get("shareProcessNamespace"):
            problems.append(f"process: {pod.ref} lacks shareProcessNamespace (compose's init: true)")
        if spec.get("entrypoint") and container.get("command") != spec["entrypoint"]:
            problems.append(f"process: {pod.ref} runs {container.get('command')}, compose {spec['entrypoint']}")
        if pod.kind == "Deployment" and spec.get("tty") and not (container.get("tty") and container.get("stdin")):
            problems.append(f"process: {pod.ref} needs stdin and tty for `kubectl attach -it`")
    return problems


def all_checks(i: Inputs, kustomization: dict) -> list[str]:
    return [
        *check_images(i, kustomization),
        *check_environment(i),
        *check_settings_source(i),
        *check_ports(i),
        *check_probes(i),
        *check_resources(i),
        *check_storage_and_process(i),
    ]

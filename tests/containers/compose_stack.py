"""A compose project under test: testcontainers' wrapper plus the commands the tests need."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from containers.docker_host import ROOT
from service_processes import free_port
from testcontainers.compose import DockerCompose


class ProjectCompose(DockerCompose):
    """testcontainers' compose wrapper, with a project name of our own so stacks never collide."""

    project: str = ""

    @property
    def compose_command_property(self) -> list[str]:
        command = super().compose_command_property
        return [*command[:2], "-p", self.project, *command[2:]]


@dataclass
class Stack:
    compose: ProjectCompose
    env: dict[str, str]

    @property
    def project(self) -> str:
        return self.compose.project

    def run(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*self.compose.compose_command_property, *args],
            capture_output=True, text=True, timeout=timeout, cwd=self.compose.context, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        if check and done.returncode != 0:
            raise AssertionError(f"compose {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done

    def up(self) -> float:
        started = time.monotonic()
        self.compose.start()  # up --wait: every service healthy (or started, where it has no healthcheck)
        return time.monotonic() - started

    def down(self, volumes: bool = False) -> float:
        started = time.monotonic()
        self.run("down", *(["--volumes"] if volumes else []), "--timeout", "10")
        return time.monotonic() - started

    def plan(self, prompt: str, *extra: str) -> tuple[int, dict | None, str]:
        done = self.run("run", "--rm", "-T", *extra, "orchestrator", "--prompt", prompt, "--json", check=False)
        try:
            report = json.loads(done.stdout)
        except ValueError:
            report = None
        return done.returncode, report, done.stderr

    def container(self, service: str) -> str:
        return self.run("ps", "-q", service).stdout.strip()

    def states(self) -> dict[str, str]:
        """service -> health (or state where there is no healthcheck), for every running container."""
        rows = self.run("ps", "--all", "--format", "json").stdout
        entries = [json.loads(line) for line in rows.splitlines() if line.strip().startswith("{")]
        if not entries and rows.strip().startswith("["):
            entries = json.loads(rows)
        return {e["Service"]: (e.get("Health") or e["State"]) for e in entries}

    def crash(self, service: str) -> None:
        """Kill the service's process inside its container, as a crash would (not `docker kill`,
        which counts as a manual stop and turns the restart policy off)."""
        self.run("exec", "-T", service, "sh", "-c", "kill -KILL -1", check=False)


def make_stack(env_file: Path, *, files: list[str], profiles: list[str], context: Path = ROOT) -> Stack:
    """A new project (its own containers, volumes and networks) from the session's env file, with
    a dashboard port of its own so that several stacks can run side by side."""
    project = f"oa-test-{uuid.uuid4().hex[:8]}"
    own = env_file.with_name(f"{project}.env")
    lines = [line for line in env_file.read_text().splitlines() if not line.startswith("DASHBOARD_PORT=")]
    own.write_text("\n".join([*lines, f"DASHBOARD_PORT={free_port()}"]) + "\n")
    compose = ProjectCompose(context=context, compose_file_name=files, profiles=profiles, env_file=str(own), wait=True)
    compose.project = project
    env = dict(line.split("=", 1) for line in own.read_text().splitlines() if "=" in line)
    return Stack(compose, env)

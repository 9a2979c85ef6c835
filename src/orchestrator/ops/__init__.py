"""Operator commands: `doctor` (is it healthy), `fitness` (which model can drive the tools) and
`benchmark` (how fast is it here). Each module has `main(argv) -> int`, reached as
`python main.py COMMAND ...`, `offline-agents COMMAND ...` or `docker compose run --rm orchestrator COMMAND`.
"""

from __future__ import annotations

import importlib

COMMANDS = {
    "doctor": "check every service, the models and a short generation; PASS / WARN / FAIL with the fix",
    "fitness": "drive each MCP tool through a model and print a model-by-tool matrix",
    "benchmark": "latency, first token and tokens/s by prompt size and concurrency; JSON report and PNG chart",
    "secrets": "make the dashboard token and the OTLP key once and keep them in a directory (the compose job)",
}


def run(command: str, argv: list[str]) -> int:
    module = importlib.import_module(f"{__name__}.{command}")
    return int(module.main(argv))

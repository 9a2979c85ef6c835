"""What make-bundle.py writes and load-bundle.py reads: the bundle's layout, checksums, errors; and
the .env reader the scripts beside it share."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path

MODELS_IN_VOLUME = "/root/.ollama/models"  # Ollama's store inside its image (OLLAMA_MODELS)


class BundleError(Exception):
    """Something the operator must fix, said in one line naming the file or setting at fault."""


def sha256_of(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def image_state(ref: str) -> tuple[str, list[str]] | None:
    """(ID, layer digests) of the image the engine has under REF, or None: one `docker image inspect`."""
    done = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}} {{json .RootFS.Layers}}", ref],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        return None
    image_id, _, layers = done.stdout.strip().partition(" ")
    return image_id, json.loads(layers or "[]")


def read_env(source: Path | str) -> dict[str, str]:
    """KEY=VALUE lines (of a file, or given) as compose reads them: comments, blank lines, matching
    quotes, and a ` # comment` after an unquoted value dropped."""
    values: dict[str, str] = {}
    for line in (source.read_text() if isinstance(source, Path) else source).splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            name, _, value = line.partition("=")
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            else:
                value = re.sub(r"\s+#.*$", "", value)
            values[name.strip()] = value
    return values

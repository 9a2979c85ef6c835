"""What make-bundle.py writes and load-bundle.py reads: the bundle's layout, checksums, errors."""

from __future__ import annotations

import hashlib
from pathlib import Path

MODELS_IN_VOLUME = "/root/.ollama/models"  # Ollama's store inside its image (OLLAMA_MODELS)


class BundleError(Exception):
    """Something the operator must fix, said in one line naming the file or setting at fault."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

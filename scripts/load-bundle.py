#!/usr/bin/env python3
"""Load an offline bundle on the machine with no network: check it, then load images and models.

    python3 scripts/load-bundle.py /media/usb/offline-agents-bundle

First every file is checked against manifest.json (size and sha256). A missing, truncated or
corrupt file stops the load before anything is changed, naming the file. Then the images are
loaded (docker load) and the models restored into the model volume (blobs first, manifests last),
and what is now available is printed. Loading the same bundle again changes nothing.
Needs only Python 3 and Docker. Then: OFFLINE=1 in .env, and `make up-cpu` (or --profile gpu).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from bundle_format import MODELS_IN_VOLUME, BundleError, image_state, sha256_of  # beside this script


def verify(bundle: Path) -> dict:
    """Check every file the manifest lists; raise on the first that is missing, short or altered."""
    manifest_file = bundle / "manifest.json"
    if not manifest_file.is_file():
        raise BundleError(f"{bundle} is not a complete bundle: manifest.json is missing")
    try:
        manifest = json.loads(manifest_file.read_text())
        files = manifest["files"]
    except (ValueError, KeyError):
        raise BundleError(f"{manifest_file} is damaged: it is not a bundle manifest") from None
    for entry in files:
        path = bundle / entry["path"]
        if not path.is_file():
            raise BundleError(f"bundle file {entry['path']} is missing: the bundle is incomplete")
        size = path.stat().st_size
        if size != entry["size"]:
            raise BundleError(
                f"bundle file {entry['path']} is truncated or altered: {size} bytes, expected {entry['size']}"
            )
        if sha256_of(path) != entry["sha256"]:
            raise BundleError(f"bundle file {entry['path']} is corrupt: its sha256 does not match the manifest")
    print(f"checked {len(files)} files ({manifest['total_bytes'] / 1e6:,.0f} MB): all intact", file=sys.stderr)
    return manifest


def docker(*command: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["docker", *command], capture_output=True, text=True)
    if done.returncode != 0:
        raise BundleError(f"docker {command[0]} failed: {(done.stderr or done.stdout).strip()[:300]}")
    return done


def load_images(bundle: Path, manifest: dict) -> list[str]:
    """Load what is missing, then check each name gives the bundle's content (its layers, as recorded)."""
    images = list(manifest["images"].values())
    missing = [i for i in images if not _same(image_state(i["ref"]), i)]
    if missing:
        print(f"loading {len(missing)} images: {', '.join(i['ref'] for i in missing)}", file=sys.stderr)
        for archive in sorted({image["file"] for image in missing}):
            docker("load", "-q", "-i", str(bundle / archive))
    else:
        print("images already loaded", file=sys.stderr)
    for image in images:
        present = image_state(image["ref"])
        if present is None:
            raise BundleError(f"{image['ref']} is not in images/images.tar: the bundle is incomplete; make it again")
        if "layers" in image and present[1] != image["layers"]:
            raise BundleError(f"{image['ref']} after loading is not the bundle's image (its layers differ from "
                              "manifest.json): make the bundle again")  # fmt: skip
    return [image["ref"] + (f" (registry digest {image['digest']})" if image.get("digest") else "") for image in images]


def _same(present: tuple[str, list[str]] | None, image: dict) -> bool:
    """The engine has this image already: same ID and, where recorded, the same layers."""
    return present is not None and present[0] == image["id"] and present[1] == image.get("layers", present[1])


def restore_models(bundle: Path, manifest: dict, volume: str) -> list[str]:
    ollama_image = manifest["images"]["OLLAMA_IMAGE"]["ref"]
    # Labelled as Compose labels its own (project_volume), so `up` adopts it without a warning.
    project, _, name = volume.partition("_")
    labels = ["--label", f"com.docker.compose.project={project}", "--label", f"com.docker.compose.volume={name}"]
    docker("volume", "create", *(labels if name else []), volume)
    # tar keeps the archive's order: blobs land before the manifests that name them.
    docker("run", "--rm", "--network", "none", "-v", f"{volume}:/root/.ollama",
           "-v", f"{(bundle / 'models').resolve()}:/in:ro", "--entrypoint", "sh", ollama_image, "-c",
           f"mkdir -p {MODELS_IN_VOLUME} && tar -C {MODELS_IN_VOLUME} -xf /in/ollama-models.tar")  # fmt: skip
    listed = docker("run", "--rm", "--network", "none", "-v", f"{volume}:/root/.ollama:ro", "--entrypoint", "sh",
                    ollama_image, "-c", f"cd {MODELS_IN_VOLUME}/manifests && find . -type f").stdout  # fmt: skip
    return sorted(_model_name(line.strip()[2:]) for line in listed.splitlines() if line.strip())


def _model_name(path: str) -> str:
    """registry.ollama.ai/library/phi4-mini/latest -> phi4-mini:latest"""
    parts = path.split("/")
    host, *names, tag = parts
    if host == "registry.ollama.ai" and names[:1] == ["library"]:
        names = names[1:]
    return f"{'/'.join(names)}:{tag}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle", type=Path, help="the bundle folder make-bundle.py wrote")
    parser.add_argument("--volume", default="offline-agents_ollama-models", help="the model volume to fill")
    parser.add_argument("--verify-only", action="store_true", help="check the bundle, change nothing")
    args = parser.parse_args(argv)
    try:
        manifest = verify(args.bundle)
        if args.verify_only:
            return 0
        images = load_images(args.bundle, manifest)
        models = restore_models(args.bundle, manifest, args.volume)
    except BundleError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    wanted = [model["name"] for model in manifest["models"]]
    print("images: " + ", ".join(images))
    print(f"models in volume {args.volume}: " + ", ".join(models))
    print(f"this bundle's models: {', '.join(wanted)}; wheels to rebuild the images: {args.bundle / 'wheels'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

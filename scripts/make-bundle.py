#!/usr/bin/env python3
"""Make an offline bundle on a connected machine: everything the stack needs, in one folder.

    python3 scripts/make-bundle.py --out /media/usb/offline-agents-bundle

Writes images/ (docker save of every pinned image in .env), models/ (Ollama's blobs and manifests
for OLLAMA_MODEL and OLLAMA_EXTRA_MODELS, read from the model volume), wheels/ (to rebuild the
project's images), source/ (this repository) and manifest.json (every file with its size and
sha256, the image versions, the models and their digests). Load it with scripts/load-bundle.py.
Needs only Python 3 and Docker. Run the stack once first (make up-cpu) so the volume holds the models.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

from bundle_format import MODELS_IN_VOLUME, BundleError, image_state, read_env, sha256_of  # beside this script

ROOT = Path(__file__).resolve().parents[1]
IMAGE_VARIABLES = ("OLLAMA_IMAGE", "DASHBOARD_IMAGE", "PYTHON_IMAGE", "ORCHESTRATOR_IMAGE", "MCP_SERVER_IMAGE")


def run(*command: str, **kwargs) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(command), capture_output=True, text=True, **kwargs)
    if done.returncode != 0:
        raise BundleError(f"{' '.join(command[:3])} ... failed: {(done.stderr or done.stdout).strip()[:300]}")
    return done


OWN_IMAGES = ("ORCHESTRATOR_IMAGE", "MCP_SERVER_IMAGE")  # built here, never pulled


def manifest_path(model: str) -> str:
    """'phi4-mini' -> registry.ollama.ai/library/phi4-mini/latest, as Ollama lays out its store."""
    name, _, tag = model.partition(":")
    parts = name.split("/")
    if len(parts) == 1:
        parts = ["registry.ollama.ai", "library", *parts]
    elif len(parts) == 2:
        parts = ["registry.ollama.ai", *parts]
    return "/".join(["manifests", *parts, tag or "latest"])


def in_volume(image: str, volume: str, *command: str, mounts: tuple[str, ...] = ()) -> str:
    """Run a command in a throwaway container of the Ollama image with the model volume mounted."""
    extra = [arg for mount in mounts for arg in ("-v", mount)]
    return run("docker", "run", "--rm", "--network", "none", "-v", f"{volume}:/root/.ollama:ro", *extra,
               "--entrypoint", command[0], image, *command[1:]).stdout  # fmt: skip


def short_name(name: str) -> str:
    """Docker Hub's names as Docker shows them: docker.io/library/python -> python."""
    for prefix in ("docker.io/", "index.docker.io/", "library/"):
        name = name.removeprefix(prefix)
    return name


def save_images(env: dict[str, str], out: Path) -> dict[str, dict[str, object]]:
    """All pinned images in one `docker save`: layers they share (the Python base) are stored once.

    An image .env pins by digest (name:tag@sha256:...) is pulled by that digest. `docker load` gives
    back tags only (the classic image store keeps no registry digest), so the image is saved under
    its tag, and the manifest records the digest and the layers, which load-bundle.py checks.
    """
    images: dict[str, dict[str, object]] = {}
    for variable in IMAGE_VARIABLES:
        ref = env.get(variable)
        if not ref:
            raise BundleError(f"{variable} is not set in the env file")
        tag, _, digest = ref.partition("@")
        if image_state(ref) is None:
            if variable in OWN_IMAGES:  # a registry might hold a stranger's image of that name
                raise BundleError(f"{ref} is not built on this machine: run `make build` first")
            print(f"pulling {ref}", file=sys.stderr)
            run("docker", "pull", ref)
        if digest:
            run("docker", "tag", ref, tag)  # a pull by digest leaves no tag to save
        elif variable not in OWN_IMAGES:
            name = short_name(tag.rpartition(":")[0])
            pulled = json.loads(run("docker", "image", "inspect", "--format", "{{json .RepoDigests}}", tag).stdout)
            digest = next((d.partition("@")[2] for d in pulled if short_name(d.partition("@")[0]) == name), "")
            known = f"records the digest this machine pulled, {digest}" if digest else "knows no registry digest"
            print(f"note: {variable}={ref} is not pinned by digest (python3 scripts/pin-images.py pins it); "
                  f"the bundle {known}", file=sys.stderr)  # fmt: skip
        image_id, layers = image_state(tag) or ("", [])
        images[variable] = {
            "ref": tag,  # what docker load gives back
            "pinned": ref,  # as .env has it
            "digest": digest or None,  # the registry's (index) digest; none for the images built here
            "id": image_id,
            "layers": layers,
            "file": "images/images.tar",
        }
    (out / "images").mkdir(parents=True, exist_ok=True)
    refs = [str(image["ref"]) for image in images.values()]
    print(f"saving {len(refs)} images -> images/images.tar", file=sys.stderr)
    run("docker", "save", "-o", str(out / "images" / "images.tar"), *refs)
    return images


def save_models(env: dict[str, str], volume: str, out: Path) -> list[dict[str, object]]:
    wanted = [env["OLLAMA_MODEL"], *filter(None, env.get("OLLAMA_EXTRA_MODELS", "").replace(",", " ").split())]
    image = env["OLLAMA_IMAGE"]
    models, blobs, manifests = [], [], []
    for model in wanted:
        path = manifest_path(model)
        try:
            raw = in_volume(image, volume, "cat", f"{MODELS_IN_VOLUME}/{path}")
            manifest = json.loads(raw)
        except (BundleError, ValueError):
            raise BundleError(
                f"model {model} is not in the volume {volume}: start the stack once (make up-cpu) so the "
                "seeding job pulls it, then make the bundle"
            ) from None
        layers = [manifest["config"], *manifest["layers"]]
        files = [f"blobs/{layer['digest'].replace(':', '-')}" for layer in layers]
        blobs += [f for f in files if f not in blobs]
        manifests.append(path)
        models.append({
            "name": model,
            "manifest": path,
            "digest": "sha256:" + hashlib.sha256(raw.encode()).hexdigest(),  # what `ollama list` shows as ID
            "layers": [{"digest": layer["digest"], "size": layer["size"], "media_type": layer.get("mediaType")}
                       for layer in layers],
            "size": sum(layer["size"] for layer in layers),
        })  # fmt: skip
    (out / "models").mkdir(parents=True, exist_ok=True)
    # Blobs first, manifests last: a restore stopped half-way leaves no model that points at a
    # missing blob (Ollama lists a model by its manifest).
    print(f"saving {len(models)} models ({len(blobs)} blobs) -> models/ollama-models.tar", file=sys.stderr)
    in_volume(image, volume, "tar", "-C", MODELS_IN_VOLUME, "-cf", "/out/ollama-models.tar", *blobs, *manifests,
              mounts=(f"{out / 'models'}:/out",))  # fmt: skip
    return models


def copy_wheels(out: Path, wheels_from: Path | None) -> None:
    target = out / "wheels"
    if wheels_from is None:
        run("bash", str(ROOT / "scripts/build-wheelhouse.sh"), str(target), cwd=ROOT)
        return
    target.mkdir(parents=True, exist_ok=True)
    for wheel in sorted(wheels_from.glob("*.whl")):
        shutil.copy2(wheel, target / wheel.name)


def archive_source(out: Path) -> None:
    (out / "source").mkdir(parents=True, exist_ok=True)
    target = out / "source" / "offline-agents.tar"
    if (ROOT / ".git").exists():
        run("git", "archive", "--format=tar", "-o", str(target), "HEAD", cwd=ROOT)
    else:  # an unpacked source tree: take it as it is
        run("tar", "-C", str(ROOT), "--exclude=.venv", "--exclude=.cache", "--exclude=wheels", "-cf", str(target), ".")


def offline_kit(out: Path, env_file: Path) -> None:
    """What the offline machine needs before it has the source: the loader, and the settings.

    offline.env is this machine's .env with OFFLINE=1 and WHEELS=offline, and the two secrets
    emptied (the site's first start makes its own): the same images and models as the bundle.
    Images pinned by digest are named by their tag there, which is all `docker load` gives back;
    the digest stays on the line above, as a comment.
    """
    for name in ("load-bundle.py", "bundle_format.py"):
        shutil.copy2(ROOT / "scripts" / name, out / name)
    lines = []
    for line in env_file.read_text().splitlines():
        name = line.partition("=")[0].strip()
        pinned = read_env(line).get(name, "") if name in IMAGE_VARIABLES else ""
        if "@" in pinned:
            lines.append(f"# {pinned} where it was pulled; loaded from the bundle by tag (load-bundle.py checks it)")
            line = f"{name}={pinned.partition('@')[0]}"
        elif name in ("DASHBOARD_TOKEN", "OTLP_API_KEY"):
            line = f"{name}="
        elif name == "OFFLINE":
            line = "OFFLINE=1"
        elif name == "WHEELS":
            line = "WHEELS=offline"
        lines.append(line)
    (out / "offline.env").write_text("\n".join(lines) + "\n")


def write_manifest(out: Path, env: dict[str, str], images: dict, models: list) -> dict:
    files = []
    for path in sorted(p for p in out.rglob("*") if p.is_file() and p.name != "manifest.json"):
        files.append({"path": str(path.relative_to(out)), "size": path.stat().st_size, "sha256": sha256_of(path)})
    manifest = {
        "format": 1,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "app_version": env.get("APP_VERSION"),
        "images": images,
        "models": models,
        "files": files,
        "total_bytes": sum(f["size"] for f in files),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder to write (must not exist yet)")
    parser.add_argument("--env-file", type=Path, default=ROOT / ".env", help="settings and image versions")
    parser.add_argument("--volume", default="offline-agents_ollama-models", help="the model volume to read")
    parser.add_argument("--wheels-from", type=Path, help="copy wheels from here instead of downloading them")
    args = parser.parse_args(argv)
    final = args.out.resolve()  # docker reads a relative mount source as a volume name
    partial = final.with_name(final.name + ".partial")  # renamed only when complete
    try:
        if final.exists() and any(final.iterdir()):
            raise BundleError(f"{final} exists and is not empty; choose a new folder")
        env = read_env(args.env_file)
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        images = save_images(env, partial)
        models = save_models(env, args.volume, partial)
        copy_wheels(partial, args.wheels_from)
        archive_source(partial)
        offline_kit(partial, args.env_file)
        manifest = write_manifest(partial, env, images, models)
        if final.exists():
            final.rmdir()
        partial.rename(final)
    except BundleError as error:
        shutil.rmtree(partial, ignore_errors=True)
        print(f"error: {error}", file=sys.stderr)
        return 1
    args.out = final
    model_gb = sum(m["size"] for m in models) / 1e9
    names = ", ".join(m["name"] for m in models)
    print(f"bundle {args.out}: {len(manifest['files'])} files, {manifest['total_bytes'] / 1e6:,.0f} MB on disk; "
          f"models as Ollama lists them: {model_gb:.2f} GB ({names})")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

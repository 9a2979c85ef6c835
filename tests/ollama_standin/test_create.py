"""`ollama create` against the stand-in: blobs, /api/create, the Modelfile CLI, persistence.

Expected texts and statuses are those of Ollama 0.12 (server/create.go, server/routes.go,
cmd/cmd.go, parser/parser.go); the test names say which behaviour each pins down.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import pytest

from ollama_standin.cli import main as cli_main
from ollama_standin.config import StandinConfig
from ollama_standin.gguf import build_gguf
from ollama_standin.modelfile import ModelfileError, create_request, parse
from ollama_standin.testing import TESTS_DIR, RunningStandin, run_in_thread, run_process

EMPTY_GGUF = b"GGUF" + struct.pack("<IQQ", 3, 0, 0)  # version 3, no tensors, no key/values
TOOLS_TEMPLATE = "{{- if .Tools }}[TOOLS]{{ range .Tools }}{{ . }}{{ end }}[/TOOLS]{{ end }}{{ .Prompt }}"
LLAMA_KV = {
    "general.architecture": "llama",
    "general.name": "tiny",
    "general.file_type": 15,
    "llama.context_length": 8192,
    "llama.embedding_length": 64,
    "llama.block_count": 2,
    "tokenizer.ggml.tokens": ["<s>", "</s>", "hi"],
    "tokenizer.chat_template": "{% for m in messages %}{{ m.content }}{% endfor %}",
}
DIGEST_RE = r"sha256:[0-9a-f]{64}"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def show_raw(url: str, model: str) -> dict[str, object]:
    """/api/show as JSON: ollama 0.5.3's ShowResponse has no `system` field."""
    answer = httpx.post(f"{url}/api/show", json={"model": model})
    answer.raise_for_status()
    return answer.json()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def standin() -> Iterator[RunningStandin]:
    with run_in_thread(StandinConfig(models=["qwen2.5:7b"])) as running:
        yield running


@pytest.fixture
def client(standin: RunningStandin) -> ollama.Client:
    return ollama.Client(host=standin.url, timeout=10)


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.gguf"
    path.write_bytes(build_gguf(LLAMA_KV, [("token_embd.weight", (64, 3)), ("output.weight", (64, 3))]))
    return path


# --- /api/blobs ----------------------------------------------------------------------------


def test_blob_head_and_push(standin: RunningStandin, tmp_path: Path) -> None:
    data = b"GGUF" + os.urandom(64)
    digest = digest_of(data)
    url = f"{standin.url}/api/blobs/{digest}"
    assert httpx.head(url).status_code == 404
    assert httpx.post(url, content=data).status_code == 201
    assert httpx.head(url).status_code == 200
    assert httpx.head(url.replace("sha256:", "sha256-")).status_code == 200  # GetBlobsPath takes both
    assert httpx.post(url, content=data).status_code == 200  # already there
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    assert ollama.Client(standin.url).create_blob(path) == digest  # the official client's upload
    upload = standin.requests(f"/api/blobs/{digest}", "POST")[-1]
    assert upload.raw == b"" and upload.status == 200  # bodies of blob uploads are not kept


def test_blob_digest_mismatch_and_bad_digest(standin: RunningStandin) -> None:
    claimed = "sha256:" + "0" * 64
    refused = httpx.post(f"{standin.url}/api/blobs/{claimed}", content=b"not what was announced")
    assert refused.status_code == 400
    actual = digest_of(b"not what was announced")
    assert refused.json() == {"error": f'digest mismatch, expected "{claimed}", got "{actual}"'}
    assert httpx.head(f"{standin.url}/api/blobs/{claimed}").status_code == 404
    # NewLayer stores the body under its real digest before the comparison fails.
    assert httpx.head(f"{standin.url}/api/blobs/{actual}").status_code == 200
    bad = httpx.post(f"{standin.url}/api/blobs/sha256:xyz", content=b"x")
    assert (bad.status_code, bad.json()) == (400, {"error": "invalid digest format"})
    assert httpx.head(f"{standin.url}/api/blobs/md5:abc").status_code == 400
    assert httpx.get(f"{standin.url}/api/blobs/{actual}").status_code == 405


# --- /api/create with the official client ---------------------------------------------------


def test_create_from_gguf_with_the_python_client(client: ollama.Client, tiny: Path) -> None:
    digest = client.create_blob(tiny)
    progress = list(client.create(model="tiny-py", files={"tiny.gguf": digest}, stream=True))
    assert [p.status for p in progress] == [
        "parsing GGUF",
        f"using existing layer {digest}",
        "writing manifest",
        "success",
    ]
    listed = {m.model: m for m in client.list().models}
    assert "tiny-py:latest" in listed
    entry = listed["tiny-py:latest"]
    assert entry.details is not None
    assert (entry.details.family, entry.details.parameter_size, entry.details.quantization_level) == (
        "llama",
        "384",  # format.HumanNumber of the tensor elements (2 x 64 x 3)
        "Q4_K_M",
    )
    shown = client.show("tiny-py")
    assert shown.capabilities == ["completion"]  # no template mentioning .Tools
    assert shown.template == "{{ .Prompt }}"  # template.DefaultTemplate
    assert shown.details is not None and shown.details.parent_model.endswith(digest.replace(":", "-"))
    assert shown.modelinfo is not None
    assert shown.modelinfo["general.architecture"] == "llama"
    assert shown.modelinfo["general.parameter_count"] == 384
    assert shown.modelinfo["tokenizer.ggml.tokens"] == []  # arrays are emptied unless verbose
    assert "general.name" not in shown.modelinfo and "tokenizer.chat_template" not in shown.modelinfo
    assert (shown.modelfile or "").splitlines()[4] == f"FROM /root/.ollama/models/blobs/{digest.replace(':', '-')}"


def test_template_with_tools_gives_the_tools_capability(
    client: ollama.Client, standin: RunningStandin, tiny: Path
) -> None:
    digest = client.create_blob(tiny)
    result = client.create(
        model="tiny-tools",
        files={"tiny.gguf": digest},
        template=TOOLS_TEMPLATE,
        system="You plan trips.",
        parameters={"temperature": 0.1, "stop": ["[/TOOLS]"], "num_ctx": 4096},
        license=["MIT", "second"],
    )
    assert result.status == "success"
    shown = client.show("tiny-tools")
    assert shown.capabilities == ["completion", "tools"]
    assert (shown.template, shown.license) == (TOOLS_TEMPLATE, "MIT\nsecond")
    assert show_raw(standin.url, "tiny-tools")["system"] == "You plan trips."
    assert shown.parameters is not None and re.search(r"^temperature +0\.1$", shown.parameters, re.M)
    assert re.search(r'^stop +"\[/TOOLS\]"$', shown.parameters, re.M)
    # The model now takes tools in chat, like any tool-capable model.
    reply = client.chat("tiny-tools", messages=[{"role": "user", "content": "hi"}], tools=[_WEATHER])
    assert reply.message is not None


_WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
}


def test_model_without_tools_template_refuses_tools(client: ollama.Client, tiny: Path) -> None:
    client.create(model="tiny-plain", files={"tiny.gguf": client.create_blob(tiny)})
    with pytest.raises(ollama.ResponseError) as refused:
        client.chat("tiny-plain", messages=[{"role": "user", "content": "hi"}], tools=[_WEATHER])
    assert refused.value.status_code == 400
    assert refused.value.error == "registry.ollama.ai/library/tiny-plain:latest does not support tools"


def test_not_gguf_is_refused(client: ollama.Client, standin: RunningStandin, tmp_path: Path) -> None:
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"PK\x03\x04 a zip file, not weights")
    digest = client.create_blob(fake)
    with pytest.raises(ollama.ResponseError) as whole:
        client.create(model="fake", files={"model.gguf": digest})
    assert (whole.value.status_code, whole.value.error) == (400, "supplied file was not in GGUF format")
    # Streaming: "parsing GGUF" is already out, so the error arrives in the stream.
    raw = httpx.post(f"{standin.url}/api/create", json={"model": "fake", "files": {"model.gguf": digest}})
    assert raw.status_code == 200
    assert [json.loads(line) for line in raw.text.splitlines()] == [
        {"status": "parsing GGUF"},
        {"error": "supplied file was not in GGUF format"},
    ]
    # A file name without .gguf is sniffed; content that is not GGUF is of an unknown type.
    unknown = httpx.post(f"{standin.url}/api/create", json={"model": "fake", "files": {"weights": digest}})
    assert (unknown.status_code, unknown.json()) == (400, {"error": "unknown type"})
    assert "fake:latest" not in [m.model for m in client.list().models]


def test_create_errors_mirror_ollama(standin: RunningStandin) -> None:
    def create(body: dict[str, object]) -> httpx.Response:
        return httpx.post(f"{standin.url}/api/create", json={**body, "stream": False})

    missing = "sha256:" + "1" * 64
    gone = create({"model": "m", "files": {"m.gguf": missing}})
    location = f"/root/.ollama/models/blobs/sha256-{'1' * 64}"
    assert (gone.status_code, gone.json()) == (500, {"error": f"open {location}: no such file or directory"})
    assert create({"model": "m"}).json() == {"error": "neither 'from' or 'files' was specified"}
    assert create({"model": "m"}).status_code == 400
    assert create({"model": "bad name!", "from": "qwen2.5:7b"}).json() == {"error": "invalid model name"}
    traversal = create({"model": "m", "files": {"../m.gguf": missing}})
    assert (traversal.status_code, traversal.json()) == (400, {"error": "file path must be relative"})
    bad_template = create({"model": "m", "from": "qwen2.5:7b", "template": "{{ if .System }}unclosed"})
    assert bad_template.status_code == 400
    assert bad_template.json() == {"error": "template error: template: :1: unexpected EOF"}
    absent = create({"model": "m", "from": "no-such-model"})
    assert (absent.status_code, absent.json()) == (500, {"error": "pull model manifest: file does not exist"})
    wrong_type = create({"model": "m", "files": ["m.gguf"]})
    assert wrong_type.status_code == 400
    assert wrong_type.json() == {
        "error": "json: cannot unmarshal array into Go struct field CreateRequest.files of type map[string]string"
    }


def test_create_from_an_installed_model(client: ollama.Client, standin: RunningStandin) -> None:
    progress = [p.status for p in client.create(model="planner", from_="qwen2.5:7b", system="Plan.", stream=True)]
    assert progress[-2:] == ["writing manifest", "success"]
    assert all(re.fullmatch(f"using existing layer {DIGEST_RE}", s) for s in progress[:3])
    assert re.fullmatch(f"creating new layer {DIGEST_RE}", progress[-3])
    shown = client.show("planner")
    assert show_raw(standin.url, "planner")["system"] == "Plan."
    assert shown.capabilities == ["completion", "tools"]  # qwen2.5's template mentions .Tools
    assert shown.details is not None and shown.details.parent_model == "qwen2.5:7b"
    base = {m.model: m for m in client.list().models}["qwen2.5:7b"]
    derived = {m.model: m for m in client.list().models}["planner:latest"]
    assert derived.details is not None and base.details is not None
    assert derived.details.family == base.details.family == "qwen2"


def test_creating_twice_keeps_one_model(client: ollama.Client, standin: RunningStandin, tiny: Path) -> None:
    digest = client.create_blob(tiny)
    first = [p.status for p in client.create(model="Twice", files={"t.gguf": digest}, system="x", stream=True)]
    assert re.fullmatch(f"creating new layer {DIGEST_RE}", first[2])
    again = [p.status for p in client.create(model="twice", files={"t.gguf": digest}, system="x", stream=True)]
    assert again[2] == first[2].replace("creating new layer", "using existing layer")
    names = [m.model for m in client.list().models if m.model.lower() == "twice:latest"]
    assert names == ["Twice:latest"]  # getExistingName keeps the first spelling


# --- persistence -----------------------------------------------------------------------------


def test_created_models_persist_in_the_store(tmp_path: Path, tiny: Path) -> None:
    store = tmp_path / "models"
    with run_in_thread(StandinConfig(store_dir=store)) as first:
        client = ollama.Client(host=first.url, timeout=10)
        digest = client.create_blob(tiny)
        client.create(model="kept", files={"tiny.gguf": digest}, template=TOOLS_TEMPLATE, system="Hi.")
        before = {m.model: (m.digest, m.size) for m in client.list().models}
        shown_before = show_raw(first.url, "kept")
    manifest_path = store / "manifests/registry.ollama.ai/library/kept/latest"
    manifest = json.loads(manifest_path.read_bytes())
    weights = manifest["layers"][0]
    blob_file = store / "blobs" / digest.replace(":", "-")
    assert (weights["mediaType"], weights["digest"], weights["from"]) == (
        "application/vnd.ollama.image.model",
        digest,
        str(blob_file),
    )
    assert blob_file.read_bytes() == tiny.read_bytes()
    config = json.loads((store / "blobs" / manifest["config"]["digest"].replace(":", "-")).read_bytes())
    assert list(config) == [
        "model_format",
        "model_family",
        "model_families",
        "model_type",
        "file_type",
        "architecture",
        "os",
        "rootfs",
    ]
    assert config["rootfs"]["diff_ids"] == [layer["digest"] for layer in manifest["layers"]]

    with run_in_thread(StandinConfig(store_dir=store)) as second:
        client = ollama.Client(host=second.url, timeout=10)
        assert {m.model: (m.digest, m.size) for m in client.list().models} == before
        shown = show_raw(second.url, "kept")
        assert shown["capabilities"] == ["completion", "tools"]
        assert shown == shown_before
        client.delete("kept")
    assert not blob_file.exists()  # its blobs go with it, as RemoveLayers does


def test_uploaded_blobs_survive_unrelated_deletes(tmp_path: Path, tiny: Path) -> None:
    with run_in_thread(StandinConfig(models=["qwen2.5:3b"], store_dir=tmp_path)) as running:
        client = ollama.Client(host=running.url, timeout=10)
        digest = client.create_blob(tiny)
        client.delete("qwen2.5:3b")
        assert httpx.head(f"{running.url}/api/blobs/{digest}").status_code == 200


# --- the Modelfile parser ------------------------------------------------------------------


def test_modelfile_parsing_follows_ollama() -> None:
    parsed = parse(
        "# comment\n"
        "FROM ./w.gguf\n"
        'TEMPLATE """{{ .System }}\n{{ .Prompt }}"""\n'
        "system You plan trips.\n"
        'PARAMETER stop "<|end|>"\n'
        "PARAMETER stop <|user|>\n"
        "PARAMETER temperature 0.1\n"
        "MESSAGE user hello there\n"
    )
    assert [(c.name, c.args) for c in parsed.commands] == [
        ("model", "./w.gguf"),
        ("template", "{{ .System }}\n{{ .Prompt }}"),
        ("system", "You plan trips."),
        ("stop", "<|end|>"),
        ("stop", "<|user|>"),
        ("temperature", "0.1"),
        ("message", "user: hello there"),
    ]
    errors = {
        "SYSTEM hi\n": "no FROM line",
        "FROM x\nFOO bar\n": '(line 2): command must be one of "from", "license", "template", "system", '
        '"adapter", "renderer", "parser", "parameter", "message", or "requires"',
        "FROM x\nMESSAGE robot hi\n": '(line 2): message role must be one of "system", "user", or "assistant"',
        'FROM x\nTEMPLATE """never closed\n': "unexpected EOF",
    }
    for text, message in errors.items():
        with pytest.raises(ModelfileError) as failed:
            parse(text)
        assert str(failed.value) == message


def test_create_request_paths_and_parameters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "w").mkdir()
    weights = tmp_path / "w" / "tiny.gguf"
    weights.write_bytes(EMPTY_GGUF)
    monkeypatch.setenv("HOME", str(tmp_path))
    relative = create_request(
        parse("FROM ./tiny.gguf\nPARAMETER num_ctx 8192\nPARAMETER stop a\nPARAMETER stop b\n"), str(tmp_path / "w")
    )
    assert relative.files == {str(weights): digest_of(EMPTY_GGUF)}
    assert relative.request == {"parameters": {"num_ctx": 8192, "stop": ["a", "b"]}}
    home = create_request(parse("FROM ~/w/tiny.gguf\n"), "/somewhere/else")
    assert home.files == {str(weights): digest_of(EMPTY_GGUF)}
    named = create_request(parse("FROM qwen2.5:7b\nLICENSE MIT\n"), str(tmp_path))  # no such file: a model
    assert named.files == {} and named.request == {"from": "qwen2.5:7b", "license": ["MIT"]}
    with pytest.raises(ModelfileError, match=r"^unknown parameter 'nope'$"):
        create_request(parse("FROM x\nPARAMETER nope 1\n"), str(tmp_path))
    with pytest.raises(ModelfileError, match=r"^invalid int value \[lots\]$"):
        create_request(parse("FROM x\nPARAMETER num_ctx lots\n"), str(tmp_path))
    deprecated = create_request(parse("FROM x\nPARAMETER mirostat 1\n"), str(tmp_path))
    assert (
        deprecated.warnings == ["warning: parameter mirostat is deprecated"] and "parameters" not in deprecated.request
    )


# --- the CLI -------------------------------------------------------------------------------


def test_cli_create_and_show(
    standin: RunningStandin, tiny: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", standin.url)
    modelfile = tiny.parent / "Modelfile"
    modelfile.write_text(
        f'FROM ./{tiny.name}\nTEMPLATE """{TOOLS_TEMPLATE}"""\nSYSTEM You plan trips.\nPARAMETER temperature 0.1\n'
    )
    assert cli_main(["create", "trip-cli", "-f", str(modelfile)]) == 0
    digest = digest_of(tiny.read_bytes())
    err = capsys.readouterr().err.splitlines()
    assert err[:4] == [
        "gathering model components",
        f"copying file {digest} 100%",
        "parsing GGUF",
        f"using existing layer {digest}",
    ]
    assert err[-2:] == ["writing manifest", "success"]
    body = standin.requests("/api/create")[-1].body
    assert body["model"] == "trip-cli" and body["files"] == {tiny.name: digest} and body["name"] == ""
    assert body["parameters"] == {"temperature": 0.1} and body["system"] == "You plan trips."

    assert cli_main(["show", "trip-cli"]) == 0
    summary = capsys.readouterr().out
    assert re.search(r"^  Model\n    architecture +llama +\n", summary, re.M)
    assert re.search(r"^  Capabilities\n    completion +\n    tools +\n", summary, re.M)
    assert re.search(r"^    temperature +0\.1 +$", summary, re.M)
    assert cli_main(["show", "trip-cli", "--modelfile"]) == 0
    shown = capsys.readouterr().out
    assert "\nSYSTEM You plan trips.\nPARAMETER temperature 0.1\n" in shown
    assert cli_main(["show", "trip-cli", "--system"]) == 0
    assert capsys.readouterr().out == "You plan trips."


def test_cli_create_failures(
    standin: RunningStandin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", standin.url)
    (tmp_path / "bad.gguf").write_bytes(b"\x89PNG not weights")
    (tmp_path / "Modelfile").write_text("FROM ./bad.gguf\n")
    with pytest.raises(SystemExit) as failed:
        cli_main(["create", "bad", "-f", str(tmp_path / "Modelfile")])
    assert failed.value.code == 1
    assert capsys.readouterr().err.endswith("parsing GGUF\nError: supplied file was not in GGUF format\n")
    (tmp_path / "Modelfile").write_text("FROM ./tiny.gguf\nBOGUS x\n")
    with pytest.raises(SystemExit):
        cli_main(["create", "bad", "-f", str(tmp_path / "Modelfile")])
    assert capsys.readouterr().err.startswith('Error: (line 2): command must be one of "from"')
    # A missing Modelfile makes the 0.12 CLI read "FROM ." from the current directory.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.gguf").unlink()
    with pytest.raises(SystemExit):
        cli_main(["create", "bad", "-f", str(tmp_path / "missing")])
    assert capsys.readouterr().err == "gathering model components\nError: no Modelfile or safetensors files found\n"
    assert "bad:latest" not in [m.model for m in ollama.Client(standin.url).list().models]


def test_cli_import_in_a_real_process_survives_restart(tmp_path: Path) -> None:
    """What scripts/import-gguf.sh does in the container: `ollama create -f` then `ollama list`."""
    (tmp_path / "import").mkdir()
    (tmp_path / "import" / "model.gguf").write_bytes(EMPTY_GGUF)
    (tmp_path / "import" / "Modelfile").write_text(
        f"FROM {tmp_path / 'import' / 'model.gguf'}\nSYSTEM You plan trips.\nPARAMETER temperature 0.1\n"
    )
    ollama_bin = Path(__file__).parent / "bin" / "ollama"
    store = tmp_path / "models"

    def ollama_cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "OLLAMA_HOST": url, "PYTHONPATH": str(TESTS_DIR)}
        return subprocess.run(
            [sys.executable, str(ollama_bin), *args], env=env, capture_output=True, text=True, timeout=30
        )

    with run_process(["--store-dir", str(store)]) as url:
        created = ollama_cli(url, "create", "tiny-import:latest", "-f", str(tmp_path / "import" / "Modelfile"))
        assert created.returncode == 0, created.stderr
        assert created.stderr.splitlines()[-1] == "success"
        listed = ollama_cli(url, "list")
        assert listed.stdout.splitlines()[1].startswith("tiny-import:latest ")
    with run_process(["--store-dir", str(store)]) as url:
        assert ollama_cli(url, "list").stdout.splitlines()[1].startswith("tiny-import:latest ")
        shown = ollama_cli(url, "show", "tiny-import")
        assert shown.returncode == 0
        assert re.search(r"^    architecture +unknown +$", shown.stdout, re.M)  # an empty GGUF header
        assert re.search(r"^  System\n    You plan trips\. +$", shown.stdout, re.M)

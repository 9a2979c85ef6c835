"""Model names and the metadata the stand-in reports for each model.

Sizes, parameter counts, quantisations, context lengths and capabilities follow the
entries of the public Ollama library (ollama.com/library) as of autumn 2025.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"

# types/model/name.go: each part is limited to these characters and lengths.
_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}$")
_HOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,349}$")


@dataclass(frozen=True)
class ModelName:
    """A parsed model reference: [host/][namespace/]model[:tag] (Ollama's model.ParseName)."""

    host: str
    namespace: str
    model: str
    tag: str

    @classmethod
    def parse(cls, text: str) -> ModelName | None:
        """Parse like model.ParseName; None when IsValid() would be false."""
        text = text.strip()
        if not text or "://" in text:
            return None
        text = text.split("@", 1)[0]  # digests ("name@sha256:...") are accepted and ignored
        tag = DEFAULT_TAG
        last_slash = text.rfind("/")
        colon = text.rfind(":")
        if colon > last_slash:
            text, tag = text[:colon], text[colon + 1 :]
        parts = text.split("/")
        if len(parts) > 3 or any(not p for p in parts):
            return None
        host, namespace = DEFAULT_HOST, DEFAULT_NAMESPACE
        if len(parts) == 3:
            host, namespace, model = parts
        elif len(parts) == 2:
            namespace, model = parts
        else:
            (model,) = parts
        if not (_HOST.match(host) and _PART.match(namespace) and _PART.match(model) and _TAG.match(tag)):
            return None
        return cls(host, namespace, model, tag)

    @property
    def full(self) -> str:
        """name.String(): what capability errors print, e.g. registry.ollama.ai/library/phi3:latest."""
        return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"

    @property
    def short(self) -> str:
        """name.DisplayShortest(): what /api/tags and /api/ps show, e.g. phi3:latest."""
        if self.host.lower() == DEFAULT_HOST and self.namespace.lower() == DEFAULT_NAMESPACE:
            return f"{self.model}:{self.tag}"
        if self.host.lower() == DEFAULT_HOST:
            return f"{self.namespace}/{self.model}:{self.tag}"
        return self.full

    @property
    def key(self) -> str:
        """Case-insensitive identity (Ollama matches existing names ignoring case)."""
        return self.full.lower()


# Chat templates are stored as a real layer; tool support in Ollama is detected from the
# template mentioning .Tools, so tool-capable entries use a template that does.
_QWEN_TEMPLATE = (
    "{{- if .Messages }}\n{{- if or .System .Tools }}<|im_start|>system\n{{- if .System }}\n"
    "{{ .System }}\n{{- end }}\n{{- if .Tools }}\n\n# Tools\n\nYou may call one or more functions "
    "to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> "
    'XML tags:\n<tools>\n{{- range .Tools }}\n{"type": "function", "function": {{ .Function }}}\n'
    "{{- end }}\n</tools>\n{{- end }}<|im_end|>\n{{ end }}\n{{- range $i, $_ := .Messages }}\n"
    "<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n{{ end }}"
)
_LLAMA3_TEMPLATE = (
    "<|start_header_id|>system<|end_header_id|>\n\n{{ if .Tools }}You have access to the following "
    "functions.{{ range .Tools }}{{ . }}{{ end }}{{ end }}{{ .System }}<|eot_id|>\n{{- range .Messages }}"
    "<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>{{ end }}"
    "<|start_header_id|>assistant<|end_header_id|>\n\n"
)
_PHI4_TEMPLATE = (
    "{{- if or .System .Tools }}<|system|>{{ if .System }}{{ .System }}{{ end }}\n{{- if .Tools }}"
    "<|tool|>[{{- range .Tools }}{{ . }}{{ end }}]<|/tool|>{{ end }}<|end|>\n{{- end }}\n"
    "{{- range .Messages }}<|{{ .Role }}|>{{ .Content }}<|end|>{{ end }}<|assistant|>"
)
_PHI3_TEMPLATE = (
    "{{ if .System }}<|system|>\n{{ .System }}<|end|>\n{{ end }}{{ if .Prompt }}<|user|>\n"
    "{{ .Prompt }}<|end|>\n{{ end }}<|assistant|>\n{{ .Response }}<|end|>"
)
_LLAMA2_TEMPLATE = "[INST] <<SYS>>{{ .System }}<</SYS>>\n\n{{ .Prompt }} [/INST]\n"
_GEMMA_TEMPLATE = (
    "<start_of_turn>user\n{{ if .System }}{{ .System }} {{ end }}{{ .Prompt }}<end_of_turn>\n"
    "<start_of_turn>model\n{{ .Response }}<end_of_turn>\n"
)


@dataclass(frozen=True)
class ModelInfo:
    """What the stand-in knows about one model: the parts real Ollama reads from GGUF/config."""

    family: str
    parameter_size: str
    parameter_count: int
    quantization_level: str
    file_type: int  # GGUF general.file_type (2 = Q4_0, 15 = Q4_K_M)
    size: int  # bytes on disk, all layers + config, as /api/tags reports
    capabilities: tuple[str, ...]
    context_length: int
    embedding_length: int
    block_count: int
    head_count: int
    head_count_kv: int
    template: str
    params: dict[str, Any] = field(default_factory=dict)
    license: str = ""
    families: tuple[str, ...] = ()
    # Set for models made with /api/create (the catalog's own models leave them empty).
    system: str = ""
    licenses: tuple[str, ...] = ()  # one LICENSE command each; `license` is them joined by "\n"
    parent_model: str = ""  # the model layer's "from": a blob path or the base model's name
    gguf_kv: dict[str, Any] | None = None  # model_info read from an imported GGUF's header
    messages: tuple[dict[str, Any], ...] = ()
    created: bool = False

    @property
    def all_families(self) -> list[str]:
        return list(self.families or (self.family,))

    def model_info(self) -> dict[str, Any]:
        """The GGUF key/values /api/show returns under model_info (non-verbose: arrays emptied)."""
        if self.gguf_kv is not None:
            return dict(self.gguf_kv)
        arch = self.family
        tokenizer = "gpt2" if arch in {"qwen2", "llama", "phi3"} else "llama"
        return {
            "general.architecture": arch,
            "general.file_type": self.file_type,
            "general.parameter_count": self.parameter_count,
            "general.quantization_version": 2,
            f"{arch}.attention.head_count": self.head_count,
            f"{arch}.attention.head_count_kv": self.head_count_kv,
            f"{arch}.block_count": self.block_count,
            f"{arch}.context_length": self.context_length,
            f"{arch}.embedding_length": self.embedding_length,
            "tokenizer.ggml.model": tokenizer,
            "tokenizer.ggml.merges": [],
            "tokenizer.ggml.token_type": [],
            "tokenizer.ggml.tokens": [],
        }


_COMPLETION = ("completion",)
_TOOLS = ("completion", "tools")

DEFAULT_CATALOG: dict[str, ModelInfo] = {
    "qwen2.5:7b": ModelInfo(
        family="qwen2",
        parameter_size="7.6B",
        parameter_count=7_615_616_512,
        quantization_level="Q4_K_M",
        file_type=15,
        size=4_683_087_332,
        capabilities=_TOOLS,
        context_length=32768,
        embedding_length=3584,
        block_count=28,
        head_count=28,
        head_count_kv=4,
        template=_QWEN_TEMPLATE,
        license="Apache License\nVersion 2.0, January 2004",
    ),
    "qwen2.5:3b": ModelInfo(
        family="qwen2",
        parameter_size="3.1B",
        parameter_count=3_085_938_688,
        quantization_level="Q4_K_M",
        file_type=15,
        size=1_929_912_432,
        capabilities=_TOOLS,
        context_length=32768,
        embedding_length=2048,
        block_count=36,
        head_count=16,
        head_count_kv=2,
        template=_QWEN_TEMPLATE,
        license="Qwen RESEARCH LICENSE AGREEMENT",
    ),
    "phi4-mini:latest": ModelInfo(
        family="phi3",
        parameter_size="3.8B",
        parameter_count=3_836_021_856,
        quantization_level="Q4_K_M",
        file_type=15,
        size=2_491_876_774,
        capabilities=_TOOLS,
        context_length=131072,
        embedding_length=3072,
        block_count=32,
        head_count=24,
        head_count_kv=8,
        template=_PHI4_TEMPLATE,
        license="Microsoft.\nCopyright (c) Microsoft Corporation.\n\nMIT License",
    ),
    "llama3.2:3b": ModelInfo(
        family="llama",
        parameter_size="3.2B",
        parameter_count=3_212_749_888,
        quantization_level="Q4_K_M",
        file_type=15,
        size=2_019_393_189,
        capabilities=_TOOLS,
        context_length=131072,
        embedding_length=3072,
        block_count=28,
        head_count=24,
        head_count_kv=8,
        template=_LLAMA3_TEMPLATE,
        params={"stop": ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]},
        license="LLAMA 3.2 COMMUNITY LICENSE AGREEMENT",
    ),
    "phi3:latest": ModelInfo(
        family="phi3",
        parameter_size="3.8B",
        parameter_count=3_821_079_552,
        quantization_level="Q4_0",
        file_type=2,
        size=2_176_178_913,
        capabilities=_COMPLETION,
        context_length=131072,
        embedding_length=3072,
        block_count=32,
        head_count=32,
        head_count_kv=32,
        template=_PHI3_TEMPLATE,
        params={"stop": ["<|end|>", "<|user|>", "<|assistant|>"]},
        license="Microsoft.\nCopyright (c) Microsoft Corporation.\n\nMIT License",
    ),
    "codellama:7b": ModelInfo(
        family="llama",
        parameter_size="7B",
        parameter_count=6_738_546_688,
        quantization_level="Q4_0",
        file_type=2,
        size=3_825_910_662,
        capabilities=_COMPLETION,
        context_length=16384,
        embedding_length=4096,
        block_count=32,
        head_count=32,
        head_count_kv=32,
        template=_LLAMA2_TEMPLATE,
        params={"rope_frequency_base": 1000000, "stop": ["[INST]", "[/INST]", "<<SYS>>", "<</SYS>>"]},
        license="LLAMA 2 COMMUNITY LICENSE AGREEMENT",
    ),
    "gemma2:2b": ModelInfo(
        family="gemma2",
        parameter_size="2.6B",
        parameter_count=2_614_341_888,
        quantization_level="Q4_0",
        file_type=2,
        size=1_629_518_495,
        capabilities=_COMPLETION,
        context_length=8192,
        embedding_length=2304,
        block_count=26,
        head_count=8,
        head_count_kv=4,
        template=_GEMMA_TEMPLATE,
        params={"stop": ["<start_of_turn>", "<end_of_turn>"]},
        license="Gemma Terms of Use",
    ),
}

# Tags that point at the same weights in the public library.
ALIASES: dict[str, str] = {
    "qwen2.5:latest": "qwen2.5:7b",
    "phi4-mini:3.8b": "phi4-mini:latest",
    "llama3.2:latest": "llama3.2:3b",
    "phi3:3.8b": "phi3:latest",
    "phi3:mini": "phi3:latest",
    "codellama:latest": "codellama:7b",
}


def generic_info(name: ModelName) -> ModelInfo:
    """Metadata for a name the catalog does not know (tests invent names like "misbehave-badjson").

    Deterministic from the name so digests and sizes are stable across runs; tool-capable
    so the name can stand in for any tool-using model.
    """
    seed = int.from_bytes(hashlib.sha256(name.key.encode()).digest()[:4], "big")
    size = 1_500_000_000 + seed % 3_000_000_000
    return ModelInfo(
        family="llama",
        parameter_size="3.2B",
        parameter_count=3_212_749_888,
        quantization_level="Q4_K_M",
        file_type=15,
        size=size,
        capabilities=_TOOLS,
        context_length=131072,
        embedding_length=3072,
        block_count=28,
        head_count=24,
        head_count_kv=8,
        template=_LLAMA3_TEMPLATE,
        params={"stop": ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]},
    )


def catalog_info(name: ModelName, catalog: dict[str, ModelInfo]) -> ModelInfo | None:
    """Catalog entry for a library model name (following aliases), or None."""
    if name.host.lower() != DEFAULT_HOST or name.namespace.lower() != DEFAULT_NAMESPACE:
        return None
    short = f"{name.model}:{name.tag}".lower()
    short = ALIASES.get(short, short)
    for key, info in catalog.items():
        if key.lower() == short:
            return info
    return None

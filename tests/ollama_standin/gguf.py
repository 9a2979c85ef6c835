"""Just enough GGUF to import weights the way Ollama 0.12 does: header, key/values, tensor infos.

Mirrors fs/ggml (ggml.go DetectContentType/Decode, gguf.go containerGGUF.Decode/gguf.Decode,
type.go FileType) including the error texts Go produces, because `ollama create` streams them
back verbatim. Tensor data is never read; a "GGUF-shaped" file of a few bytes is enough.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass, field
from typing import Any, BinaryIO

# fs/ggml/ggml.go: magics as little-endian uint32 of the first four bytes.
FILE_MAGIC_GGML = 0x67676D6C
FILE_MAGIC_GGMF = 0x67676D66
FILE_MAGIC_GGJT = 0x67676A74
FILE_MAGIC_GGLA = 0x67676C61
FILE_MAGIC_GGUF_LE = 0x46554747  # b"GGUF"
FILE_MAGIC_GGUF_BE = 0x47475546  # b"FUGG"

# fs/ggml/type.go FileType.String(), indexed by general.file_type.
FILE_TYPES = (
    "F32", "F16", "Q4_0", "Q4_1", "MXFP4", "unknown", "unknown", "Q8_0", "Q5_0", "Q5_1",
    "Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K",
    "IQ2_XXS", "IQ2_XS", "Q2_K_S", "IQ3_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S", "IQ3_M",
    "IQ2_S", "IQ2_M", "IQ4_XS", "IQ1_M", "BF16",
)  # fmt: skip

# gguf.go value types.
T_UINT8, T_INT8, T_UINT16, T_INT16, T_UINT32, T_INT32, T_FLOAT32, T_BOOL = range(8)
T_STRING, T_ARRAY, T_UINT64, T_INT64, T_FLOAT64 = range(8, 13)
_SCALARS = {
    T_UINT8: "B",
    T_INT8: "b",
    T_UINT16: "H",
    T_INT16: "h",
    T_UINT32: "I",
    T_INT32: "i",
    T_FLOAT32: "f",
    T_BOOL: "?",
    T_UINT64: "Q",
    T_INT64: "q",
    T_FLOAT64: "d",
}

MAX_ARRAY_SIZE = 1024  # what Ollama collects when it only needs metadata (ggml.Decode(r, 1024))


class GGUFError(Exception):
    """A decode failure, worded like the Go error Ollama would return."""


@dataclass
class GGUFArray:
    """gguf.go `array`: the size is always known, values only for small arrays."""

    size: int
    values: list[Any] | None = None


@dataclass
class GGUFFile:
    version: int
    kv: dict[str, Any] = field(default_factory=dict)
    tensor_count: int = 0
    parameters: int = 0

    # --- fs/ggml.KV accessors ---------------------------------------------------------------

    @property
    def architecture(self) -> str:
        value = self.kv.get("general.architecture")
        return value if isinstance(value, str) and value else "unknown"

    @property
    def kind(self) -> str:
        value = self.kv.get("general.type")
        return value if isinstance(value, str) and value else "unknown"

    def arch_value(self, key: str) -> Any:
        """KV.Uint("block_count") and friends: unprefixed keys live under the architecture."""
        if not key.startswith(("general.", "tokenizer.")):
            key = f"{self.architecture}.{key}"
        return self.kv.get(key)

    def arch_int(self, key: str) -> int:
        value = self.arch_value(key)
        return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0

    @property
    def file_type(self) -> str:
        """KV.FileType().String(): 0 (F32) and absent both read as "unknown" (t > 0 check)."""
        value = self.kv.get("general.file_type")
        if isinstance(value, int) and not isinstance(value, bool) and 0 < value < len(FILE_TYPES):
            return FILE_TYPES[value]
        return "unknown"

    @property
    def chat_template(self) -> str:
        value = self.kv.get("tokenizer.chat_template")
        return value if isinstance(value, str) else ""


def detect_content_type(head: bytes) -> str:
    """server/model.go detectContentType: ggml magics first, then net/http sniffing."""
    if len(head) >= 4:
        magic = struct.unpack("<I", head[:4])[0]
        names = {
            FILE_MAGIC_GGML: "ggml",
            FILE_MAGIC_GGMF: "ggmf",
            FILE_MAGIC_GGJT: "ggjt",
            FILE_MAGIC_GGLA: "ggla",
            FILE_MAGIC_GGUF_LE: "gguf",
            FILE_MAGIC_GGUF_BE: "gguf",
        }
        if magic in names:
            return names[magic]
    # http.DetectContentType, reduced to what matters here: text or not.
    if not head or all(b in b"\t\n\x0c\r" or b >= 0x20 for b in head):
        return "text/plain; charset=utf-8"
    return "unknown"


def is_gguf_magic(head: bytes) -> bool:
    return len(head) >= 4 and struct.unpack("<I", head[:4])[0] in (FILE_MAGIC_GGUF_LE, FILE_MAGIC_GGUF_BE)


class _Reader:
    def __init__(self, stream: BinaryIO, order: str, version: int = 3) -> None:
        self.stream = stream
        self.order = order
        self.version = version
        try:
            here = stream.tell()
            self.end: int | None = stream.seek(0, io.SEEK_END)
            stream.seek(here)
        except (OSError, ValueError):
            self.end = None

    def exact(self, n: int) -> bytes:
        """io.ReadFull: nothing read is EOF, a short read is unexpected EOF."""
        if self.end is not None and n > self.end - self.stream.tell():
            # A corrupt length: fail like the short read it would be instead of allocating it.
            raise GGUFError("EOF" if self.stream.tell() >= self.end else "unexpected EOF")
        data = self.stream.read(n)
        if len(data) == n:
            return data
        raise GGUFError("EOF" if not data else "unexpected EOF")

    def scalar(self, kind: int) -> Any:
        fmt = _SCALARS[kind]
        return struct.unpack(self.order + fmt, self.exact(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        length = self.scalar(T_UINT64)
        data = self.exact(length)
        if self.version == 1:
            data = data[:-1]  # gguf v1 strings are null-terminated
        return data.decode("utf-8", errors="replace")

    def array(self, max_size: int) -> GGUFArray:
        kind = self.scalar(T_UINT32)
        size = self.scalar(T_UINT32 if self.version == 1 else T_UINT64)
        keep = max_size < 0 or size <= max_size
        values: list[Any] | None = [] if keep else None
        if self.end is not None and size > self.end - self.stream.tell():
            raise GGUFError("unexpected EOF")  # every element takes at least a byte
        for _ in range(size):
            if kind == T_STRING:
                item: Any = self.string()
            elif kind in _SCALARS:
                item = self.scalar(kind)
            else:
                raise GGUFError(f"invalid array type: {kind}")
            if values is not None:
                values.append(item)
        return GGUFArray(size, values)


def decode(stream: BinaryIO, max_array_size: int = MAX_ARRAY_SIZE) -> GGUFFile:
    """ggml.Decode for GGUF containers: magic, version, counts, key/values, tensor infos."""
    raw = stream.read(4)
    if len(raw) < 4:
        raise GGUFError("EOF" if not raw else "unexpected EOF")
    magic = struct.unpack("<I", raw)[0]
    if magic == FILE_MAGIC_GGUF_LE:
        order = "<"
    elif magic == FILE_MAGIC_GGUF_BE:
        order = ">"
    else:
        raise GGUFError("invalid file magic")
    reader = _Reader(stream, order)
    version = reader.scalar(T_UINT32)
    reader.version = version
    if version == 1:
        tensor_count, kv_count = reader.scalar(T_UINT32), reader.scalar(T_UINT32)
    else:
        tensor_count, kv_count = reader.scalar(T_UINT64), reader.scalar(T_UINT64)
    result = GGUFFile(version=version, tensor_count=tensor_count)
    for _ in range(kv_count):
        key = reader.string()
        kind = reader.scalar(T_UINT32)
        if kind == T_STRING:
            value: Any = reader.string()
        elif kind == T_ARRAY:
            value = reader.array(max_array_size)
        elif kind in _SCALARS:
            value = reader.scalar(kind)
        else:
            raise GGUFError(f"invalid type: {kind}")
        result.kv[key] = value
    for _ in range(tensor_count):
        try:
            reader.string()
        except GGUFError as exc:
            raise GGUFError(f"failed to read tensor name: {exc}") from None
        try:
            dims = reader.scalar(T_UINT32)
        except GGUFError as exc:
            raise GGUFError(f"failed to read tensor dimensions: {exc}") from None
        elements = 1
        for _ in range(dims):
            try:
                elements *= reader.scalar(T_UINT64)
            except GGUFError as exc:
                raise GGUFError(f"failed to read tensor shape: {exc}") from None
        for what in ("kind", "offset"):
            try:
                reader.scalar(T_UINT32 if what == "kind" else T_UINT64)
            except GGUFError as exc:
                raise GGUFError(f"failed to read tensor {what}: {exc}") from None
        result.parameters += elements
    # gguf.Decode patches the KV with the parameter count computed from the tensor shapes.
    result.kv["general.parameter_count"] = result.parameters
    return result


def decode_bytes(data: bytes, max_array_size: int = MAX_ARRAY_SIZE) -> GGUFFile:
    return decode(io.BytesIO(data), max_array_size)


def human_number(n: int) -> str:
    """format.HumanNumber (what Ollama stores as model_type / parameter_size)."""
    for limit, unit, decimals in ((1_000_000_000, "B", 1), (1_000_000, "M", 2)):
        if n >= limit:
            value = n / limit
            return f"{value:.0f}{unit}" if value == int(value) else f"{value:.{decimals}f}{unit}"
    if n >= 1000:
        return f"{n / 1000:.0f}K"
    return str(n)


# --- writing (tests and fixtures) -----------------------------------------------------------


def _pack_string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<Q", len(data)) + data


def _pack_value(value: Any) -> bytes:
    if isinstance(value, bool):
        return struct.pack("<I?", T_BOOL, value)
    if isinstance(value, int):
        return struct.pack("<II", T_UINT32, value) if 0 <= value < 2**32 else struct.pack("<Iq", T_INT64, value)
    if isinstance(value, float):
        return struct.pack("<If", T_FLOAT32, value)
    if isinstance(value, str):
        return struct.pack("<I", T_STRING) + _pack_string(value)
    if isinstance(value, (list, tuple)):
        if all(isinstance(v, str) for v in value):
            body = b"".join(_pack_string(v) for v in value)
            return struct.pack("<IIQ", T_ARRAY, T_STRING, len(value)) + body
        body = b"".join(struct.pack("<i", int(v)) for v in value)
        return struct.pack("<IIQ", T_ARRAY, T_INT32, len(value)) + body
    raise TypeError(f"cannot encode {type(value).__name__} in GGUF")


def build_gguf(kv: dict[str, Any] | None = None, tensors: list[tuple[str, tuple[int, ...]]] = ()) -> bytes:
    """A minimal GGUF v3 file: header, key/values and tensor infos (F32), no tensor data.

    build_gguf() is the empty header b"GGUF" + version 3 + zero tensors + zero key/values.
    """
    kv = kv or {}
    out = bytearray(b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kv)))
    for key, value in kv.items():
        out += _pack_string(key) + _pack_value(value)
    offset = 0
    for name, shape in tensors:
        out += _pack_string(name) + struct.pack("<I", len(shape))
        out += b"".join(struct.pack("<Q", d) for d in shape)
        out += struct.pack("<IQ", 0, offset)
        elements = 1
        for d in shape:
            elements *= d
        offset += elements * 4
    return bytes(out)

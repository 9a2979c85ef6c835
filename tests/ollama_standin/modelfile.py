"""Modelfiles as the `ollama` CLI of the 0.12 line reads them (parser/parser.go, api/types.go).

ParseFile is a port of Ollama's rune-by-rune state machine (so quoting, multi-line \"\"\" values,
comments and error texts match), CreateRequest turns the commands into an api.CreateRequest
the way `ollama create` does before it uploads anything.
"""

from __future__ import annotations

import glob
import hashlib
import os
import pwd
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_VALID_COMMANDS = (
    "from",
    "license",
    "template",
    "system",
    "adapter",
    "renderer",
    "parser",
    "parameter",
    "message",
    "requires",
)

ERR_MISSING_FROM = "no FROM line"
ERR_INVALID_MESSAGE_ROLE = 'message role must be one of "system", "user", or "assistant"'
ERR_INVALID_COMMAND = (
    'command must be one of "from", "license", "template", "system", "adapter", "renderer", '
    '"parser", "parameter", "message", or "requires"'
)
ERR_MODEL_NOT_FOUND = "no Modelfile or safetensors files found"

# parser.go deprecatedParameters: skipped with a warning on stdout.
DEPRECATED_PARAMETERS = (
    "penalize_newline",
    "low_vram",
    "f16_kv",
    "logits_all",
    "vocab_only",
    "use_mlock",
    "mirostat",
    "mirostat_tau",
    "mirostat_eta",
)

# api.Options + api.Runner of 0.12: the JSON names FormatParams accepts, by Go kind.
OPTION_KINDS: dict[str, str] = {
    "num_ctx": "int",
    "num_batch": "int",
    "num_gpu": "int",
    "main_gpu": "int",
    "use_mmap": "*bool",
    "num_thread": "int",
    "num_keep": "int",
    "seed": "int",
    "num_predict": "int",
    "top_k": "int",
    "top_p": "float32",
    "min_p": "float32",
    "typical_p": "float32",
    "repeat_last_n": "int",
    "temperature": "float32",
    "repeat_penalty": "float32",
    "presence_penalty": "float32",
    "frequency_penalty": "float32",
    "stop": "[]string",
}


class ModelfileError(Exception):
    """Anything `ollama create` would print as "Error: ..." before talking to the server."""


@dataclass
class Command:
    name: str
    args: str

    def __str__(self) -> str:
        """Command.String(): how `ollama show --modelfile` writes each line."""
        if self.name == "model":
            return f"FROM {self.args}"
        if self.name in ("license", "template", "system", "adapter", "renderer", "parser", "requires"):
            return f"{self.name.upper()} {quote(self.args)}"
        if self.name == "message":
            role, _, message = self.args.partition(": ")
            return f"MESSAGE {role} {quote(message)}"
        return f"PARAMETER {self.name} {quote(self.args)}"


@dataclass
class Modelfile:
    commands: list[Command] = field(default_factory=list)

    def __str__(self) -> str:
        return "".join(f"{command}\n" for command in self.commands)


def quote(text: str) -> str:
    if "\n" in text or text.startswith(" ") or text.endswith(" "):
        if '"' in text:
            return f'"""{text}"""'
        return f'"{text}"'
    return text


def unquote(text: str) -> tuple[str, bool]:
    if text.startswith('"""'):
        if len(text) >= 6 and text.endswith('"""'):
            return text[3:-3], True
        return "", False
    if text.startswith('"'):
        if len(text) >= 2 and text.endswith('"'):
            return text[1:-1], True
        return "", False
    return text, True


# --- ParseFile -------------------------------------------------------------------------------

_NIL, _NAME, _VALUE, _PARAMETER, _MESSAGE, _COMMENT = range(6)


class _UnexpectedEOF(Exception):
    pass


def _is_space(r: str) -> bool:
    return r in (" ", "\t")


def _is_newline(r: str) -> bool:
    return r in ("\r", "\n")


def _is_alpha(r: str) -> bool:
    return ("a" <= r <= "z") or ("A" <= r <= "Z")


def _is_print(r: str) -> bool:
    """strconv.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII space."""
    return r == " " or (r.isprintable() and not r.isspace())


def _next_state(r: str, state: int) -> tuple[int, str]:
    if state == _NIL:
        if r == "#":
            return _COMMENT, ""
        if _is_space(r) or _is_newline(r):
            return _NIL, ""
        return _NAME, r
    if state == _NAME:
        if _is_alpha(r):
            return _NAME, r
        if _is_space(r):
            return _VALUE, ""
        raise ValueError(ERR_INVALID_COMMAND)
    if state == _VALUE:
        if _is_newline(r) or _is_space(r):
            return _NIL, r
        return _VALUE, r
    if state == _PARAMETER:
        if _is_alpha(r) or (r.isdigit() and r.isascii()) or r == "_":
            return _PARAMETER, r
        if _is_space(r):
            return _VALUE, ""
        raise _UnexpectedEOF()
    if state == _MESSAGE:
        if _is_alpha(r):
            return _MESSAGE, r
        if _is_space(r):
            return _VALUE, ""
        raise _UnexpectedEOF()
    if state == _COMMENT:
        return (_NIL, "") if _is_newline(r) else (_COMMENT, "")
    raise ValueError("")


def parse(text: str) -> Modelfile:
    """parser.ParseFile. Raises ModelfileError with Ollama's message ("(line 3): ...")."""
    text = text.removeprefix("\ufeff")
    result = Modelfile()
    name, state, line, buf, role = "", _NIL, 1, [], ""
    for r in text:
        if _is_newline(r):
            line += 1
        try:
            nxt, r = _next_state(r, state)
        except _UnexpectedEOF:
            raise ModelfileError(f"unexpected EOF: {''.join(buf)}") from None
        except ValueError as exc:
            raise ModelfileError(f"(line {line}): {exc}") from None
        if nxt != state:
            current = "".join(buf)
            if state == _NAME:
                if current.lower() not in _VALID_COMMANDS:
                    raise ModelfileError(f"(line {line}): {ERR_INVALID_COMMAND}")
                lowered = current.lower()
                if lowered == "from":
                    name = "model"
                elif lowered == "parameter":
                    nxt = _PARAMETER
                elif lowered == "message":
                    nxt = _MESSAGE
                    name = lowered
                else:
                    name = lowered
            elif state == _PARAMETER:
                name = current
            elif state == _MESSAGE:
                if current not in ("system", "user", "assistant"):
                    raise ModelfileError(f"(line {line}): {ERR_INVALID_MESSAGE_ROLE}")
                role = current
            elif state == _VALUE:
                value, ok = unquote(current.strip())
                if not ok or _is_space(r):
                    buf.append(r)
                    continue
                if role:
                    value = f"{role}: {value}"
                    role = ""
                result.commands.append(Command(name, value))
            buf = []
            state = nxt
        if r and _is_print(r):
            buf.append(r)
    if state == _VALUE:
        value, ok = unquote("".join(buf).strip())
        if not ok:
            raise ModelfileError("unexpected EOF")
        if role:
            value = f"{role}: {value}"
        result.commands.append(Command(name, value))
    elif state not in (_COMMENT, _NIL):
        raise ModelfileError("unexpected EOF")
    if not any(c.name == "model" for c in result.commands):
        raise ModelfileError(ERR_MISSING_FROM)
    return result


# --- CreateRequest ---------------------------------------------------------------------------


def format_params(name: str, values: list[str]) -> dict[str, Any]:
    """api.FormatParams for one parameter, with its error texts."""
    kind = OPTION_KINDS.get(name)
    if kind is None:
        raise ModelfileError(f"unknown parameter '{name}'")
    shown = "[" + " ".join(values) + "]"  # Go's %s of a []string
    value = values[0]
    try:
        if kind == "int":
            return {name: _go_parse_int(value)}
        if kind == "float32":
            return {name: _float32(value)}
        if kind == "*bool":
            return {name: _go_parse_bool(value)}
    except (ValueError, OverflowError):
        label = {"int": "int", "float32": "float", "*bool": "bool"}[kind]
        raise ModelfileError(f"invalid {label} value {shown}") from None
    return {name: list(values)}


def _float32(text: str) -> float:
    """strconv.ParseFloat(s, 32) stored in a float32, as Go's JSON encoder then prints it."""
    if "_" in text or text.strip() != text:
        raise ValueError(text)
    value = struct.unpack("<f", struct.pack("<f", float(text)))[0]
    for digits in range(1, 10):
        shortest = float(f"{value:.{digits}g}")
        if struct.unpack("<f", struct.pack("<f", shortest))[0] == value:
            return shortest
    return value


def _go_parse_int(text: str) -> int:
    if not text or text.strip() != text or "_" in text:
        raise ValueError(text)
    return int(text, 10)


def _go_parse_bool(text: str) -> bool:
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(text)


def expand_path(path: str, relative_dir: str) -> str:
    """parser.expandPath: absolute as is, ~ and ~user expanded, anything else relative."""
    if os.path.isabs(path) or path.startswith(("\\", "/")):
        return os.path.abspath(path)
    if path.startswith("~"):
        if path == "~" or path.startswith("~/"):
            home = os.path.expanduser("~")
            rest = path[1:]
        else:
            user, _, tail = path[1:].partition("/")
            try:
                home = pwd.getpwnam(user).pw_dir
            except KeyError:
                raise ModelfileError(f"failed to find user '{user}': user: unknown user {user}") from None
            rest = "/" + tail if tail else ""
        return os.path.abspath(os.path.join(home, rest.lstrip("/")))
    return os.path.abspath(os.path.join(relative_dir, path))


def digest_for_file(path: str) -> str:
    sha = hashlib.sha256()
    with open(os.path.realpath(path), "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            sha.update(chunk)
    return "sha256:" + sha.hexdigest()


def _files_for_model(path: str) -> list[str]:
    """parser.filesForModel, minus the content-type checks: which files a FROM directory means."""
    patterns = (
        "model*.safetensors",
        "consolidated*.safetensors",
        "pytorch_model*.bin",
        "consolidated*.pth",
        "*.gguf",
        "*.bin",
    )
    files: list[str] = []
    for pattern in patterns:
        found = sorted(glob.glob(os.path.join(glob.escape(path), pattern)))
        if found:
            files = found
            break
    else:
        raise ModelfileError(ERR_MODEL_NOT_FOUND)
    files += sorted(glob.glob(os.path.join(glob.escape(path), "*.json")))
    files += sorted(glob.glob(os.path.join(glob.escape(path), "*", "*.json")))
    for tokenizer in ("tokenizer.model", os.path.join("*", "tokenizer.model")):
        found = sorted(glob.glob(os.path.join(glob.escape(path), tokenizer)))
        if found:
            files += found
            break
    return files


def file_digest_map(path: str) -> dict[str, str]:
    """parser.fileDigestMap: {absolute file path: digest}; FileNotFoundError if path is missing."""
    if os.path.isdir(path):
        files = [os.path.realpath(f) for f in _files_for_model(path)]
    elif os.path.exists(path):
        files = [path]
    else:
        raise FileNotFoundError(path)
    return {f: digest_for_file(f) for f in files}


@dataclass
class CreatePlan:
    """What CreateHandler in cmd/cmd.go sends: the request body and the local files behind it."""

    request: dict[str, Any]
    files: dict[str, str]  # local path -> digest, uploaded then renamed to their base names
    adapters: dict[str, str]
    warnings: list[str] = field(default_factory=list)


def create_request(modelfile: Modelfile, relative_dir: str) -> CreatePlan:
    """Modelfile.CreateRequest(relativeDir)."""
    request: dict[str, Any] = {}
    files: dict[str, str] = {}
    adapters: dict[str, str] = {}
    messages: list[dict[str, str]] = []
    licenses: list[str] = []
    params: dict[str, Any] = {}
    warnings: list[str] = []
    for command in modelfile.commands:
        if command.name == "model":
            path = expand_path(command.args, relative_dir)
            try:
                digests = file_digest_map(path)
            except FileNotFoundError:
                request["from"] = command.args  # not a file: a model name
                continue
            except OSError as exc:
                raise ModelfileError(str(exc)) from None
            files.update(digests)
        elif command.name == "adapter":
            path = expand_path(command.args, relative_dir)
            try:
                adapters = file_digest_map(path)
            except FileNotFoundError:
                raise ModelfileError(f"stat {path}: no such file or directory") from None
        elif command.name in ("template", "system", "renderer", "parser"):
            request[command.name] = command.args
        elif command.name == "license":
            licenses.append(command.args)
        elif command.name == "requires":
            version = command.args.removeprefix("v")
            parts = version.split(".")
            if not (1 <= len(parts) <= 3 and all(p.isdigit() for p in parts)):
                raise ModelfileError("requires must be a valid semver (e.g. 0.14.0)")
            request["requires"] = version
        elif command.name == "message":
            role, _, content = command.args.partition(": ")
            messages.append({"role": role, "content": content})
        else:
            if command.name in DEPRECATED_PARAMETERS:
                warnings.append(f"warning: parameter {command.name} is deprecated")
                continue
            for key, value in format_params(command.name, [command.args]).items():
                if isinstance(params.get(key), list):
                    params[key] = params[key] + value
                else:
                    params[key] = value
    if params:
        request["parameters"] = params
    if messages:
        request["messages"] = messages
    if licenses:
        request["license"] = licenses
    return CreatePlan(request, files, adapters, warnings)


def modelfile_path(flag: str | None) -> Path | None:
    """getModelfileName: the absolute Modelfile path, or None when it does not exist.

    In the 0.12 CLI a missing file (even one named with -f) silently becomes "FROM .".
    """
    path = Path(os.path.abspath(flag or "Modelfile"))
    return path if path.exists() else None

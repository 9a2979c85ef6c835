"""Byte-level details of how Ollama's Go server writes things, reproduced in Python.

Everything here mirrors a specific piece of Go behaviour; the docstrings name it so a
future reader can re-check the upstream source when Ollama changes.
"""

from __future__ import annotations

import json
import math
import re
import time
from datetime import UTC, datetime
from typing import Any

# Go's time.Duration is an int64 of nanoseconds.
GO_MAX_DURATION_NS = 2**63 - 1

_NS_PER_S = 1_000_000_000


def go_json(obj: Any) -> bytes:
    """Serialise like Go's encoding/json (what gin's c.JSON and Ollama's streamResponse use).

    Go writes compact JSON, keeps non-ASCII as UTF-8, and HTML-escapes <, > and & (plus
    U+2028/U+2029) as \\u003c-style escapes. Those characters can only occur inside JSON
    strings, so a textual replace after json.dumps is exact.
    """
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    text = (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )
    return text.encode("utf-8")


def go_time(ns: int | None = None, *, utc: bool = True) -> str:
    """Format an epoch-nanosecond timestamp like Go's time.Time.MarshalJSON (RFC3339Nano).

    RFC3339Nano drops trailing zeros of the fraction (and the dot when it is zero).
    Ollama sends `created_at` as time.Now().UTC() ("...Z"), while file mtimes such as
    `modified_at` are in local time with a numeric offset (Go prints "Z" only for UTC).
    """
    if ns is None:
        ns = time.time_ns()
    seconds, frac = divmod(ns, _NS_PER_S)
    if utc:
        dt = datetime.fromtimestamp(seconds, tz=UTC)
    else:
        dt = datetime.fromtimestamp(seconds).astimezone()
    base = dt.strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f".{frac:09d}".rstrip("0").rstrip(".")
    offset = dt.utcoffset()
    if offset is None or offset.total_seconds() == 0:
        zone = "Z"
    else:
        total_minutes = int(offset.total_seconds()) // 60
        sign = "+" if total_minutes >= 0 else "-"
        hours, minutes = divmod(abs(total_minutes), 60)
        zone = f"{sign}{hours:02d}:{minutes:02d}"
    return f"{base}{fraction}{zone}"


class DurationError(ValueError):
    """A keep_alive value Go's api.Duration.UnmarshalJSON would reject."""


_GO_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": _NS_PER_S,
    "m": 60 * _NS_PER_S,
    "h": 3600 * _NS_PER_S,
}
_GO_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_go_duration(text: str) -> int:
    """Parse a Go duration string ("5m", "1h30m", "-1s", "0") into nanoseconds.

    Mirrors time.ParseDuration, including its error texts, because an invalid
    keep_alive makes Ollama answer 400 with exactly that message.
    """
    original = text
    sign = 1
    if text[:1] in "+-":
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    if text == "0":
        return 0
    if not text:
        raise DurationError(f'time: invalid duration "{original}"')
    total = 0.0
    pos = 0
    while pos < len(text):
        match = _GO_DURATION_PART.match(text, pos)
        if match is None:
            number = re.match(r"\d+(?:\.\d*)?|\.\d+", text[pos:])
            if number is not None and pos + number.end() == len(text):
                raise DurationError(f'time: missing unit in duration "{original}"')
            if number is not None:
                unit = re.match(r"[^\d.]+", text[pos + number.end() :])
                unit_text = unit.group(0) if unit else ""
                raise DurationError(f'time: unknown unit "{unit_text}" in duration "{original}"')
            raise DurationError(f'time: invalid duration "{original}"')
        total += float(match.group(1)) * _GO_DURATION_UNITS[match.group(2)]
        pos = match.end()
    return sign * int(total)


def parse_keep_alive(value: Any, default_ns: int) -> int:
    """Interpret a request's keep_alive the way Ollama's api.Duration.UnmarshalJSON does.

    Numbers are seconds, strings are Go durations, and any negative value means "keep
    loaded forever", which Ollama stores as the maximum time.Duration.
    """
    if value is None:
        return default_ns
    if isinstance(value, bool):
        raise DurationError(f"Unsupported type: '{type(value).__name__}'")
    if isinstance(value, (int, float)):
        ns = int(value * _NS_PER_S)
    elif isinstance(value, str):
        ns = parse_go_duration(value)
    else:
        raise DurationError(f"Unsupported type: '{type(value).__name__}'")
    return GO_MAX_DURATION_NS if ns < 0 else ns


# --- CLI formatting (ollama/format package) ---------------------------------------------

_UNITS = ((1000**4, "TB"), (1000**3, "GB"), (1000**2, "MB"), (1000, "KB"))


def human_bytes(size: int) -> str:
    """format.HumanBytes as of Ollama 0.12.x: decimal units, no decimals from 10 upwards.

    (Ollama switched to 1024-based units only in late 2025, PR #13583.)
    """
    scaled = next(((size / limit, unit) for limit, unit in _UNITS if size >= limit), None)
    if scaled is None:
        return f"{size} B"
    value, unit = scaled
    if value >= 10:
        return f"{int(value)} {unit}"
    if value != math.trunc(value):
        return f"{value:.1f} {unit}"
    return f"{int(value)} {unit}"


def _human_duration(seconds_f: float) -> str:
    seconds = int(seconds_f)
    if seconds < 1:
        return "Less than a second"
    if seconds == 1:
        return "1 second"
    if seconds < 60:
        return f"{seconds} seconds"
    minutes = int(seconds_f / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(seconds_f / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"


def human_time(moment: datetime | None, zero_value: str, now: datetime | None = None) -> str:
    """format.HumanTime: "2 weeks ago", "4 minutes from now", "Forever" beyond 20 years."""
    if moment is None:
        return zero_value
    now = now or datetime.now(UTC)
    delta = (now - moment).total_seconds()
    if int(delta / 3600) // 24 // 365 < -20:
        return "Forever"
    if delta < 0:
        return _human_duration(-delta) + " from now"
    return _human_duration(delta) + " ago"


def parse_go_time(text: str) -> datetime:
    """Parse an RFC3339Nano timestamp (Python's fromisoformat stops at microseconds)."""
    match = re.match(r"^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", text)
    if match is None:
        return datetime.fromisoformat(text)
    base, frac, zone = match.groups()
    micro = (frac or "0")[:6].ljust(6, "0")
    zone = "+00:00" if zone == "Z" else zone
    return datetime.fromisoformat(f"{base}.{micro}{zone}")

"""Validation of tool arguments: every bad value becomes a ToolError that says what is accepted."""

from __future__ import annotations

import datetime as dt
import re

from fastmcp.exceptions import ToolError

from ..catalog import MONTHS, City, UnknownCityError, load_catalog

MAX_TEXT = 100
EARLIEST, LATEST = dt.date(1900, 1, 1), dt.date(2100, 12, 31)  # time zone rules outside are guesswork


def shown(value: object) -> str:
    """A value as an error message may repeat it: never more than a few dozen characters."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def text(value: object, field: str, example: str = "'Lisbon'") -> str:
    if not isinstance(value, str):
        raise ToolError(f"{field} must be a string, got {type(value).__name__}.")
    value = value.strip()
    if not value:
        raise ToolError(f"{field} is empty; give a value such as {example}.")
    if len(value) > MAX_TEXT:
        raise ToolError(f"{field} is {len(value)} characters long; at most {MAX_TEXT} are accepted.")
    return value


def city(value: object, field: str = "city") -> City:
    try:
        return load_catalog().find(text(value, field))
    except UnknownCityError as error:
        raise ToolError(str(error)) from None


def month(value: object, field: str = "month") -> int:
    """1-12, a month name ('May') or its abbreviation ('Sep')."""
    if isinstance(value, bool):
        raise ToolError(f"{field} must be 1-12 or a month name, got {value!r}.")
    if isinstance(value, str):
        raw = text(value, field, example="5 or 'May'")
        if re.fullmatch(r"[0-9]{1,2}", raw):  # ASCII digits only: "²" and "١٢" are not months
            value = int(raw)
        else:
            for number, name in enumerate(MONTHS, start=1):
                if raw.lower() in (name.lower(), name[:3].lower()) or (
                    len(raw) >= 3 and name.lower().startswith(raw.lower())
                ):
                    return number
            raise ToolError(f"{field}={shown(raw)} is not a month; use 1-12 or a name such as 'May'.")
    if not isinstance(value, int) or not 1 <= value <= 12:
        raise ToolError(f"{field}={shown(value)} is out of range; use 1-12 or a name such as 'May'.")
    return value


def date(value: object, field: str) -> dt.date:
    raw = text(value, field, example="2026-05-14")
    try:
        day = dt.date.fromisoformat(raw)
    except ValueError:
        raise ToolError(f"{field}={shown(raw)} is not a date; use YYYY-MM-DD, e.g. 2026-05-14.") from None
    if not EARLIEST <= day <= LATEST:
        raise ToolError(f"{field}={raw} is out of range; use a date from {EARLIEST.year} to {LATEST.year}.")
    return day


def amount(value: object, field: str = "amount") -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:
            value = float(text(value, field)) if isinstance(value, str) else None
        except ValueError:
            value = None
        if value is None:
            raise ToolError(f"{field} must be a number such as 150 or 99.5.")
    if not 0 <= value <= 1e12 or value != value:  # NaN is not equal to itself
        raise ToolError(f"{field}={shown(value)} is out of range; give a number from 0 to 1e12.")
    return float(value)

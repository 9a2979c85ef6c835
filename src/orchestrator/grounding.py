"""Which figures in an answer came from a tool result, and which came from nowhere.

A figure is a number with a unit a traveller acts on: a temperature, an amount of money, a
distance, millimetres of rain, hours (coordinates are listed too). It is grounded when a tool
result (or the traveller's own request) holds the same value, allowing for the rounding and the
unit changes models make (°C to °F, km to miles, a decimal comma). The turn's JSON record and
`main.py fitness` use this check.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

_NUMBER = r"-?\d[\d,]*(?:\.\d+)?"
_CODE = r"(?:[A-Z]{3})"
_FIGURE = re.compile(
    rf"(?P<pre>[€$£¥₹])\s?(?P<a>{_NUMBER})"
    rf"|(?P<b>{_NUMBER})\s?(?P<unit>°\s?[CF]\b|º\s?[CF]\b|°|degrees?(?:\s+(?:Celsius|Fahrenheit|C|F)\b)?"
    rf"|mm\b|millimet(?:re|er)s?\b|cm\b|km\b|kilomet(?:re|er)s?\b|miles?\b|mi\b|hours?\b|hrs?\b|h\b"
    rf"|{_CODE}\b|euros?\b|dollars?\b|pounds?\b|yen\b|kron(?:a|ur|or|er)\b|francs?\b|rupees?\b)",
)


def numbers(text: str) -> list[float]:
    """The figures in a text: "1,234.5" and "229.87", and also "229,87" (a decimal comma, as a model
    answering about euros may write it)."""
    found = []
    for n in re.findall(r"\d[\d,]*(?:\.\d+)?", text):
        n = n.rstrip(",")
        found.append(float(n.replace(",", "")))
        if re.fullmatch(r"\d+,\d{1,2}", n):
            found.append(float(n.replace(",", ".")))
    return found


@dataclass(frozen=True)
class Number:
    """A figure an answer must state, within a tolerance (models round and reformat numbers)."""

    value: float
    tolerance: float

    def found_in(self, text: str) -> bool:
        return any(abs(n - abs(self.value)) <= self.tolerance for n in numbers(text))


@dataclass(frozen=True)
class Figure:
    text: str  # as written: "22 °C", "€918.40"
    value: float
    kind: str  # temperature, money, distance, rain, hours

    @property
    def fahrenheit(self) -> bool:
        return self.kind == "temperature" and "F" in self.text.split()[-1][-1:] + self.text[-1:]

    @property
    def miles(self) -> bool:
        return self.kind == "distance" and bool(re.search(r"\bmi(?:les?)?\b", self.text))


def _kind(unit: str) -> str:
    lowered = unit.lower()
    if lowered.startswith(("mm", "millim", "cm")):  # before "mi": "millimeters" is rain, not miles
        return "rain"
    if lowered.startswith(("mile", "mi")):
        return "distance"
    if lowered.startswith(("hour", "hr")) or lowered == "h":
        return "hours"
    if lowered[:1] in "°º" or lowered.startswith("degree"):
        return "temperature"
    if lowered.startswith(("km", "kilom")):
        return "distance"
    return "money"


def _coordinate(match: re.Match[str], text: str, raw: str) -> bool:
    """A bare degree sign after a number with three or more decimals, or before N/S/E/W."""
    if match.group("unit").strip() not in ("°", "º"):
        return False
    return bool(re.search(r"\.\d{3,}$", raw) or re.match(r"\s?[NSEW]\b", text[match.end() :]))


def figures(text: str) -> list[Figure]:
    """Every figure with a unit in the text, in order."""
    found = []
    for match in _FIGURE.finditer(text):
        raw = match.group("a") or match.group("b")
        raw = raw.rstrip(",")
        if re.fullmatch(r"-?\d+,\d{1,2}", raw):  # a decimal comma
            value = float(raw.replace(",", "."))
        else:
            value = float(raw.replace(",", ""))
        kind = "money" if match.group("pre") else _kind(match.group("unit"))
        if kind == "temperature" and _coordinate(match, text, raw):
            kind = "coordinate"  # 38.7251° or 9.14° W: a place, not the weather
        found.append(Figure(match.group(0).strip(), value, kind))
    return found


def _leaves(result: Any, skip: frozenset[str] = frozenset()) -> Iterable[Any]:
    """The scalar values inside a tool result (dicts and lists walked; keys in `skip` left out)."""
    if isinstance(result, dict):
        for key, value in result.items():
            if key not in skip:
                yield from _leaves(value, skip)
    elif isinstance(result, list):
        for value in result:
            yield from _leaves(value, skip)
    else:
        yield result


# A result's citation ("1991-2020 WMO normals", "currencyconverter 0.18.23") and its dates hold no
# figure a traveller acts on: "$2000" is not grounded by the climate's "1991-2020".
_NOT_FIGURES = frozenset({"source"})
ISO_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")


def _values(result: Any) -> Iterable[float]:
    """Every number in a tool result: its numeric fields, and numbers written inside its strings."""
    for leaf in _leaves(result, _NOT_FIGURES):
        if isinstance(leaf, bool):
            continue
        if isinstance(leaf, int | float):
            yield float(leaf)
        elif isinstance(leaf, str):
            yield from numbers(ISO_DATE.sub(" ", leaf))


def _matches(figure: Figure, value: float) -> bool:
    """Whether `value` is the figure as written, allowing for units and rounding."""
    candidates = [value]
    if figure.fahrenheit:
        candidates = [value * 9 / 5 + 32]
    elif figure.miles:
        candidates = [value / 1.609344]
    for target in candidates:
        tolerance = 1.5 if figure.fahrenheit else max(0.51, 0.01 * abs(target))
        if figure.kind == "money":
            tolerance = max(1.0, 0.01 * abs(target))
        if abs(abs(figure.value) - abs(target)) <= tolerance:
            return True
    return False


def _any(figure: Figure, values: Iterable[float]) -> bool:
    return any(_matches(figure, value) for value in values)


PREFERRED = {
    "temperature": ("get_climate",),
    "rain": ("get_climate",),
    "money": ("convert_currency",),
    "distance": ("travel_distance",),
    "hours": ("travel_distance", "time_difference"),
}


def check(text: str, results: Iterable[tuple[str, Any]], request: str = "") -> dict[str, list[dict[str, Any]]]:
    """{"grounded": [...], "ungrounded": [...]} for the figures in `text`.

    `results` are (tool name, result) pairs; a figure the traveller wrote in the request counts as
    grounded too (source "request").
    """
    sources = [(name, list(_values(result))) for name, result in results]
    asked = numbers(request)
    grounded, ungrounded = [], []
    for figure in figures(text):
        # The tool that reports this kind of figure is asked first (14 °C is the climate's low even
        # when a destination's record holds a 14 somewhere too), then the traveller's own words. Only a
        # figure no tool reports (a coordinate) is looked for in the other results: "$5" is no amount a
        # time difference of 5 h grounds.
        preferred = PREFERRED.get(figure.kind, ())
        source = next((name for name, values in sources if name in preferred and _any(figure, values)), None)
        if source is None and _any(figure, asked):
            source = "request"
        if source is None and not preferred:
            source = next((name for name, values in sources if _any(figure, values)), None)
        entry = {"figure": figure.text, "value": figure.value, "kind": figure.kind}
        if source is None:
            ungrounded.append(entry)
        else:
            grounded.append({**entry, "source": source})
    return {"grounded": grounded, "ungrounded": ungrounded}


def facts_used(text: str, results: Iterable[tuple[str, Any]], request: str = "") -> int:
    """How many distinct facts from the tool results the text states: short strings the results
    hold ("Portugal", "EUR", "Belém Tower") that the request does not, and figures they ground."""
    results = list(results)
    lowered, asked = text.casefold(), request.casefold()
    named = {
        value.casefold()
        for _, result in results
        for value in _leaves(result)
        if isinstance(value, str)
        if 3 <= len(value) <= 60 and value.casefold() not in asked and not value.replace(".", "").isdigit()
    }
    used = {value for value in named if re.search(rf"(?<!\w){re.escape(value)}(?!\w)", lowered)}
    grounded = {g["figure"] for g in check(text, results)["grounded"]}
    return len(used) + len(grounded)


# "On 2026-01-15, Reykjavik is 5 h ahead of New York." (the time_difference tool's summary)
_TOOL_DIRECTION = re.compile(r"^On [\d-]+, (?P<b>.+?) is (?P<n>\d+(?:\.\d+)?) h (?P<dir>ahead of|behind) (?P<a>.+)\.$")
PLACE = r"[A-Z][\w'’.-]*(?:[ -](?:[A-Z][\w'’.-]*|de|da|do|del|la|le|am|upon))*"
# "New York City is 5 hours ahead of Reykjavik", "Lisbon is 1 hour behind Paris"
_CLAIMED_DIRECTION = re.compile(
    rf"(?P<x>{PLACE}) (?:is|are|runs|will be) (?P<n>\d+(?:\.\d+)?) ?(?:hours?|hrs?|h)\b(?: (?:of time|later|earlier))?"
    rf" (?P<dir>ahead of|behind) (?:the time in )?(?P<y>{PLACE})"
)


def same_place(written: str, known: str) -> bool:
    """'New York City' and 'New York', 'Reykjavik' and 'Reykjavík': one place, as a model may write it."""
    a, b = _plain(written), _plain(known)
    return bool(a and b) and (a in b or b in a)


def _plain(name: str) -> str:
    decomposed = unicodedata.normalize("NFKD", name.casefold())
    return re.sub(r"\s+", " ", "".join(c for c in decomposed if c.isalnum() or c.isspace())).strip()


def correct_time_directions(text: str, results: Iterable[tuple[str, Any]]) -> tuple[str, list[str]]:
    """The text with every "X is N hours ahead of/behind Y" that turns round what time_difference
    returned put the right way round, and the corrected phrases. Small models keep the figure and
    lose the direction (Qwen2.5-Coder-1.5B wrote "New York City is 5 hours ahead of Reykjavik")."""
    known = []  # (place ahead, place behind, hours)
    for name, result in results:
        summary = result.get("summary") if name == "time_difference" and isinstance(result, dict) else None
        match = _TOOL_DIRECTION.match(summary or "")
        if match:
            ahead, behind = (match["b"], match["a"]) if match["dir"] == "ahead of" else (match["a"], match["b"])
            known.append((ahead, behind, float(match["n"])))
    corrected = []

    def fix(claim: re.Match[str]) -> str:
        x, y, hours = claim["x"], claim["y"], float(claim["n"])
        says_x_ahead = claim["dir"] == "ahead of"
        for ahead, behind, n in known:
            if abs(n - hours) > 0.01:
                continue
            if same_place(x, ahead) and same_place(y, behind):
                x_ahead = True
            elif same_place(x, behind) and same_place(y, ahead):
                x_ahead = False
            else:
                continue
            if x_ahead != says_x_ahead:
                right = claim.group(0).replace(claim["dir"], "ahead of" if x_ahead else "behind", 1)
                corrected.append(right)
                return right
        return claim.group(0)

    return _CLAIMED_DIRECTION.sub(fix, text), corrected

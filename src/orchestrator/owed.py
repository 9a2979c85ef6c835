"""Calls an agent still owes in a turn, found from the traveller's request and its results so far.

A small model skips calls its instructions ask for, or makes them before it knows their arguments:
Qwen2.5-Coder-1.5B converted a Reykjavik budget to EUR (the example in the tool's description) before
get_destination had said ISK, and for Kyoto converted nothing. A rule here names the call the agent
still owes and the arguments the request and the results settle. The guard (guarded.py) makes the
call itself when they settle every required argument, and otherwise asks the model for the rest with
structured output, the settled ones fixed.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .grounding import ISO_DATE, PLACE, same_place
from .tool_server import ToolCall


@dataclass(frozen=True)
class Owed:
    name: str
    known: dict[str, Any] = field(default_factory=dict)  # arguments the request and earlier results settle
    reason: str = ""  # why the call is owed, for the notice ("" for a required call)


Owes = Callable[[str, Sequence[ToolCall]], list[Owed]]  # (request, the agent's successful calls) -> owed
# What an agent sees of the earlier agents' tool results (AgentSpec.earlier_results)
EarlierResults = Literal["raw", "sheet", "both"]


@dataclass(frozen=True)
class Budget:
    text: str  # as the traveller wrote it: "2000 AUD", "£800"
    amount: float
    currency: str | None  # ISO 4217 code; None when the symbol names several ("$")


_NUMBER = r"\d[\d,]*(?:\.\d+)?"
_SYMBOLS = {"€": "EUR", "£": "GBP", "$": None, "¥": None}
_WORDS = {"euro": "EUR", "euros": "EUR", "pound": "GBP", "pounds": "GBP", "yen": "JPY"}
_BUDGET = re.compile(
    rf"(?P<symbol>[€£$¥])\s?(?P<a>{_NUMBER})|(?P<b>{_NUMBER})\s?(?:(?P<code>[A-Z]{{3}})\b|(?P<word>{'|'.join(_WORDS)})\b)",
    re.IGNORECASE,
)
_MONTHS = "january february march april may june july august september october november december".split()
_NOT_PLACES = frozenset(_MONTHS + "monday tuesday wednesday thursday friday saturday sunday today tomorrow".split())
_ORIGIN = re.compile(rf"\bfrom\s+(?P<place>{PLACE})")


def budget(request: str) -> Budget | None:
    """The first amount of money in the request ("with 2000 AUD", "a £800 budget"), if any."""
    for match in _BUDGET.finditer(request):
        code = match["code"]
        if code is not None and not code.isupper():
            continue  # "3 day" is no currency; codes are written in capitals
        amount = float((match["a"] or match["b"]).replace(",", ""))
        if match["symbol"]:
            currency = _SYMBOLS[match["symbol"]]
        else:
            currency = code or _WORDS[match["word"].lower()]
        return Budget(match.group(0).strip(), amount, currency)
    return None


def origin(request: str) -> str | None:
    """Where the traveller starts from ("flying from New York with ..."), if the request says."""
    for match in _ORIGIN.finditer(request):
        place = match["place"]
        if place.casefold() not in _NOT_PLACES:
            return place
    return None


def travel_date(request: str, today: dt.date | None = None) -> str | None:
    """The day the time difference is taken on: the request's first date, else the 15th of the month
    it names (this year, or next year once that month is past); None when it names neither. Summer
    time moves the difference (New York to Reykjavik is 5 h in January, 4 h in May)."""
    if match := ISO_DATE.search(request):
        return match.group(0)
    today = today or dt.date.today()
    # "in May", "May 3", "in may": a month; "I may fly" is not
    named = re.findall(rf"\b(?:in|during|early|mid|late)\s+({'|'.join(_MONTHS)})\b", request, re.IGNORECASE)
    named += [m.casefold() for m in re.findall(r"\b([A-Z][a-z]+)\b", request) if m.casefold() in _MONTHS]
    month = _MONTHS.index(named[0].casefold()) + 1 if named else None
    if month is None:
        return None
    year = today.year if month >= today.month else today.year + 1
    return dt.date(year, month, 15).isoformat()


def researcher(request: str, calls: Sequence[ToolCall]) -> list[Owed]:
    """After get_destination: the budget converted to the destination's currency, and the time
    difference from where the traveller starts, when the request gives them."""
    start = origin(request)
    # the latest place looked up that is not where the traveller starts (a model looks that up too)
    destination = next((c.result for c in reversed(calls) if c.name == "get_destination" and isinstance(c.result, dict)
                        and not (start and same_place(start, str(c.result.get("city") or "")))), None)  # fmt: skip
    if destination is None:
        return []  # get_destination is required: the guard asks for that first
    city, code = str(destination.get("city") or ""), str(destination.get("currency_code") or "").upper()
    owed = []
    money = budget(request)
    converted = any(c.name == "convert_currency" and str(c.arguments.get("to_currency", "")).upper() == code
                    for c in calls)  # fmt: skip
    if money and code and money.currency != code and not converted:
        known: dict[str, Any] = {"amount": money.amount, "to_currency": code}
        if money.currency:
            known["from_currency"] = money.currency
        owed.append(Owed("convert_currency", known, f"the budget, {money.text}, in {city}'s currency, {code}"))
    if start and city and not same_place(start, city) and not any(c.name == "time_difference" for c in calls):
        known = {"from_city": start, "to_city": city}
        if day := travel_date(request):
            known["date"] = day
        owed.append(Owed("time_difference", known, f"the time difference from {start} to {city}"))
    return owed


def nothing(request: str, calls: Sequence[ToolCall]) -> list[Owed]:
    return []

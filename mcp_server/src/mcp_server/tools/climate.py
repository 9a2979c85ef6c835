"""Climate normals for a city and a month or a date range. Normals, never a forecast: the stack is offline."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastmcp.exceptions import ToolError
from pydantic import BaseModel, Field, StrictInt, StrictStr

from ..catalog import MONTHS, MonthClimate, load_catalog
from ..telemetry import annotate
from . import inputs
from .destinations import CityName

NOT_A_FORECAST = (
    "These are climate normals (long-term monthly averages), not a weather forecast: "
    "this server runs offline and has no live weather."
)
MAX_RANGE_DAYS = 366


class MonthNormals(BaseModel):
    month: int = Field(description="1-12")
    month_name: str
    high_c: float = Field(description="Mean daily maximum, °C")
    low_c: float = Field(description="Mean daily minimum, °C")
    precip_mm: float = Field(description="Mean monthly precipitation, mm")
    rainy_days: float = Field(description="Mean days with at least 1 mm of precipitation")
    conditions: str = Field(description="Plain-language summary of the month")
    pack: list[str] = Field(description="What to pack for these conditions")


class ClimateReport(BaseModel):
    city: str
    country: str
    kind: str = Field("climate_normals", description="Always 'climate_normals'")
    months: list[MonthNormals]
    summary: str = Field(description="Plain-language summary over the requested period")
    rain_likely: bool = Field(description="True when any month has 8+ rainy days or 80+ mm")
    heat_likely: bool = Field(description="True when any month's mean high is 30 °C or more")
    cold_likely: bool = Field(description="True when any month's mean low is 5 °C or less")
    note: str = NOT_A_FORECAST
    source: str


def _warmth(high: float, low: float) -> str:
    mean = (high + low) / 2
    for limit, word in ((30, "very hot"), (24, "hot"), (18, "warm"), (12, "mild"), (5, "cool"), (-3, "cold")):
        if mean >= limit:
            return word
    return "freezing"


def _wetness(normals: MonthClimate) -> str:
    if normals.rainy_days >= 15 or normals.precip_mm >= 200:
        return "very wet"
    if normals.rainy_days >= 10 or normals.precip_mm >= 100:
        return "wet"
    if normals.rainy_days >= 5 or normals.precip_mm >= 40:
        return "some rain"
    return "mostly dry"


def _is_rainy(n: MonthClimate) -> bool:
    return n.rainy_days >= 8 or n.precip_mm >= 80


def _packing(n: MonthClimate) -> list[str]:
    items: list[str] = []
    if _is_rainy(n):
        items.append("umbrella or rain jacket")
    if n.high_c >= 30:
        items += ["sun hat and sunscreen", "light breathable clothes", "refillable water bottle"]
    elif n.high_c >= 24:
        items.append("sunscreen")
    if n.low_c <= -5:
        items += ["insulated winter coat", "hat, gloves and scarf"]
    elif n.low_c <= 5:
        items.append("warm coat")
    elif n.low_c <= 12:
        items.append("a warm layer for the evenings")
    if n.high_c - n.low_c >= 12:
        items.append("layers: days and nights differ by over 12 °C")
    return items or ["light layers"]


def _month(number: int, n: MonthClimate) -> MonthNormals:
    conditions = (
        f"{_warmth(n.high_c, n.low_c).capitalize()} and {_wetness(n)}: highs around {n.high_c:.0f} °C, "
        f"lows around {n.low_c:.0f} °C, about {n.rainy_days:.0f} rainy days ({n.precip_mm:.0f} mm)."
    )
    return MonthNormals(
        month=number, month_name=MONTHS[number - 1], high_c=n.high_c, low_c=n.low_c,
        precip_mm=n.precip_mm, rainy_days=n.rainy_days, conditions=conditions, pack=_packing(n),
    )  # fmt: skip


def _span(values: list[float]) -> str:
    low, high = round(min(values)), round(max(values))
    return f"{low}" if low == high else f"{low} to {high}"


def _months_between(start: dt.date, end: dt.date) -> list[int]:
    months, year, month = [], start.year, start.month
    while (year, month) <= (end.year, end.month):
        months.append(month)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months[:12]


def get_climate(
    city: CityName,
    # Strict: a JSON true must not become January.
    month: Annotated[StrictInt | StrictStr | None, Field(description="Month as 1-12 or a name ('May')")] = None,
    start_date: Annotated[str | None, Field(description="First travel day, YYYY-MM-DD")] = None,
    end_date: Annotated[str | None, Field(description="Last travel day, YYYY-MM-DD")] = None,
) -> ClimateReport:
    """Climate normals for a city: mean high and low temperature, precipitation, rainy days and a
    plain-language summary with packing advice, for one month or every month a date range spans.
    These are long-term averages, not a forecast."""
    place = inputs.city(city)
    # `is not None`, not truthiness: an empty string is a mistake to report, not "not given".
    if month is not None and (start_date is not None or end_date is not None):
        raise ToolError("Give either month, or start_date and end_date, not both.")
    if month is not None:
        numbers = [inputs.month(month)]
    elif start_date is not None:
        start = inputs.date(start_date, "start_date")
        end = inputs.date(end_date, "end_date") if end_date is not None else start
        if end < start:
            raise ToolError(f"end_date {end} is before start_date {start}.")
        if (end - start).days > MAX_RANGE_DAYS:
            raise ToolError(f"The date range spans {(end - start).days} days; at most {MAX_RANGE_DAYS} are accepted.")
        numbers = _months_between(start, end)
    elif end_date is not None:
        raise ToolError("end_date needs a start_date (YYYY-MM-DD).")
    else:
        raise ToolError("Give a month (1-12 or a name such as 'May'), or start_date and end_date (YYYY-MM-DD).")
    annotate(city=place.name, month=numbers[0], months=len(numbers))
    normals = [place.climate[n - 1] for n in numbers]
    months = [_month(n, c) for n, c in zip(numbers, normals, strict=True)]
    if len(months) == 1:
        period = f"{months[0].month_name} in {place.name}"
    else:
        period = f"{months[0].month_name} to {months[-1].month_name} in {place.name}"
    highs = [n.high_c for n in normals]
    lows = [n.low_c for n in normals]
    rainy = sum(n.rainy_days for n in normals) / len(normals)
    summary = (
        f"{period}: {_warmth(max(highs), min(lows))}, highs {_span(highs)} °C and lows {_span(lows)} °C, "
        f"about {rainy:.0f} rainy days a month. Climate normals, not a forecast."
    )
    return ClimateReport(
        city=place.name,
        country=place.country,
        months=months,
        summary=summary,
        rain_likely=any(_is_rainy(n) for n in normals),
        heat_likely=any(n.high_c >= 30 for n in normals),
        cold_likely=any(n.low_c <= 5 for n in normals),
        source=load_catalog().sources.get("climate", "curated climate normals"),
    )

"""Planning helpers: distance and travel time, local time difference, currency conversion."""

from __future__ import annotations

import datetime as dt
import math
from functools import cache
from importlib.metadata import version
from typing import Annotated
from zoneinfo import ZoneInfo

from fastmcp.exceptions import ToolError
from pydantic import BaseModel, BeforeValidator, Field

from ..telemetry import annotate
from . import inputs
from .destinations import CityName

EARTH_RADIUS_KM = 6371.0
# Rough door-to-door assumptions, stated in every answer so nobody mistakes them for a timetable.
GROUND_KMH, GROUND_DETOUR = 80.0, 1.25
FLIGHT_KMH, FLIGHT_OVERHEAD_H = 780.0, 2.5
FLY_ABOVE_KM = 600.0


class TravelEstimate(BaseModel):
    from_city: str
    to_city: str
    distance_km: float = Field(description="Great-circle distance")
    distance_miles: float
    mode: str = Field(description="'ground' (train, bus or car) or 'flight'")
    travel_hours: float = Field(description="Rough door-to-door time")
    assumptions: str


class TimeDifference(BaseModel):
    from_city: str
    to_city: str
    date: str = Field(description="Date the offsets apply to (daylight saving changes them)")
    from_utc_offset_hours: float
    to_utc_offset_hours: float
    difference_hours: float = Field(description="to_city's clock minus from_city's clock")
    summary: str


class Conversion(BaseModel):
    amount: float
    from_currency: str
    to_currency: str
    converted: float
    rate: float = Field(description="Units of to_currency per unit of from_currency")
    rate_date: str = Field(description="Date of the reference rate used (YYYY-MM-DD)")
    source: str


def _haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(a))


def travel_distance(from_city: CityName, to_city: CityName) -> TravelEstimate:
    """Great-circle distance between two cities and a rough travel time (ground under 600 km,
    otherwise a flight including airport time)."""
    a, b = inputs.city(from_city, "from_city"), inputs.city(to_city, "to_city")
    km = _haversine_km(a.latitude, a.longitude, b.latitude, b.longitude)
    annotate(from_city=a.name, to_city=b.name, distance_km=round(km))
    if km <= FLY_ABOVE_KM:
        mode, hours = "ground", km * GROUND_DETOUR / GROUND_KMH
    else:
        mode, hours = "flight", FLIGHT_OVERHEAD_H + km / FLIGHT_KMH
    return TravelEstimate(
        from_city=a.label,
        to_city=b.label,
        distance_km=round(km, 1),
        distance_miles=round(km / 1.609344, 1),
        mode=mode,
        travel_hours=round(hours, 1),
        assumptions=f"Rough estimate: ground at {GROUND_KMH:.0f} km/h over {GROUND_DETOUR}x the straight line; "
        f"flights at {FLIGHT_KMH:.0f} km/h plus {FLIGHT_OVERHEAD_H} h at airports; connections add more.",
    )


def _offset_hours(zone: str, day: dt.date) -> float:
    noon = dt.datetime.combine(day, dt.time(12), tzinfo=ZoneInfo(zone))
    return noon.utcoffset().total_seconds() / 3600  # type: ignore[union-attr]


def time_difference(
    from_city: CityName,
    to_city: CityName,
    date: Annotated[str | None, Field(description="YYYY-MM-DD; defaults to today")] = None,
) -> TimeDifference:
    """Local time difference between two cities on a date (daylight saving time included)."""
    a, b = inputs.city(from_city, "from_city"), inputs.city(to_city, "to_city")
    day = inputs.date(date, "date") if date is not None else dt.date.today()
    off_a, off_b = _offset_hours(a.timezone, day), _offset_hours(b.timezone, day)
    diff = off_b - off_a
    annotate(from_city=a.name, to_city=b.name, difference_hours=diff)
    if diff == 0:
        summary = f"{b.name} and {a.name} keep the same time on {day}."
    else:
        summary = f"On {day}, {b.name} is {abs(diff):g} h {'ahead of' if diff > 0 else 'behind'} {a.name}."
    return TimeDifference(
        from_city=a.label, to_city=b.label, date=day.isoformat(), from_utc_offset_hours=off_a,
        to_utc_offset_hours=off_b, difference_hours=diff, summary=summary,
    )  # fmt: skip


@cache
def _converter():  # loading the ECB history takes a moment: do it once
    from currency_converter import CurrencyConverter

    return CurrencyConverter()


def rates_date() -> dt.date:
    """The newest date for which the shipped table has a euro/dollar rate."""
    return _converter().bounds["USD"].last_date


def _currency(value: object, field: str) -> str:
    code = inputs.text(value, field, example="'EUR'").upper()
    known = _converter().currencies
    if code not in known:
        # Pre-euro and other retired codes stay in the table for history; don't offer them.
        offered = sorted(c for c in known if _converter().bounds[c].last_date >= rates_date())
        raise ToolError(
            f"No offline rate for {code!r}. The shipped ECB table (rates of {rates_date()}) covers: "
            f"{', '.join(offered)}."
        )
    return code


def _not_a_boolean(value: object) -> object:
    # Pydantic would take `true` as 1.0; a boolean is a model's mistake, said as month's is.
    if isinstance(value, bool):
        raise ValueError(f"amount must be a number such as 150 or 99.5, got {str(value).lower()}")
    return value


def convert_currency(
    amount: Annotated[float, BeforeValidator(_not_a_boolean), Field(description="Amount in from_currency")],
    from_currency: Annotated[str, Field(description="ISO 4217 code of the amount, e.g. USD for a budget in dollars")],
    to_currency: Annotated[
        str, Field(description="ISO 4217 code wanted; for a trip, the currency_code get_destination gave")
    ],
) -> Conversion:
    """Convert an amount between currencies with the offline European Central Bank reference
    rates shipped with the server. The result states the date of the rates."""
    value = inputs.amount(amount)
    source, target = _currency(from_currency, "from_currency"), _currency(to_currency, "to_currency")
    when = rates_date()
    annotate(from_currency=source, to_currency=target, rate_date=when.isoformat())
    try:
        converted = _converter().convert(value, source, target, date=when)
    except Exception as error:  # currency_converter raises RateNotFoundError for retired currencies
        raise ToolError(f"No {source}->{target} rate for {when}: {error}") from None
    rate = _converter().convert(1, source, target, date=when)
    return Conversion(
        amount=value, from_currency=source, to_currency=target, converted=round(converted, 2),
        rate=round(rate, 6), rate_date=when.isoformat(),
        source=f"European Central Bank euro reference rates, shipped with currencyconverter "
        f"{version('currencyconverter')}",
    )  # fmt: skip

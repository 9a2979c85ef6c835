"""The facts the tools returned this turn, as a short sheet for the Planner.

The Planner writes the plan from the team's answers and the raw tool results. A small model loses
figures in a page of JSON, and takes a list of candidate cities for places to go (Qwen2.5-Coder-1.5B
sent a Kyoto traveller on to Osaka and Sapporo from list_destinations). The sheet gives each fact
once, in a line, with the tool's own figures, and names the trip's destinations.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

HEAD = "Facts the tools returned (use these figures as they are)"


def _destination(r: dict[str, Any]) -> list[str]:
    within = ", ".join(str(p) for p in (r.get("region"), r.get("country")) if p)
    where = f"{r['city']} ({within})" if within else str(r["city"])  # the name alone first: tools take it
    languages = ", ".join(r.get("languages") or []) or "unknown"
    lines = [f"{where}: languages {languages}; currency {r['currency_name']} ({r['currency_code']}); "
             f"time zone {r['timezone']}."]  # fmt: skip
    places = [p.get("name") for p in r.get("points_of_interest") or [] if isinstance(p, dict) and p.get("name")]
    if places:
        lines.append(f"Points of interest in {r.get('city')}: {', '.join(places)}.")
    return lines


def _climate(r: dict[str, Any]) -> list[str]:
    lines = []
    for m in r.get("months") or []:
        pack = "; ".join(m.get("pack") or [])
        lines.append(f"Climate normals (not a forecast) for {r.get('city')} in {m.get('month_name')}: highs "
                     f"{m.get('high_c'):g} °C, lows {m.get('low_c'):g} °C, {m.get('precip_mm'):g} mm of rain on about "
                     f"{m.get('rainy_days'):g} days." + (f" Pack: {pack}." if pack else ""))  # fmt: skip
    return lines


def _conversion(r: dict[str, Any]) -> list[str]:
    return [f"Budget: {r['amount']:,g} {r['from_currency']} is about {r['converted']:,.2f} {r['to_currency']} "
            f"(rates of {r.get('rate_date', 'unknown date')})."]  # fmt: skip


def _time(r: dict[str, Any]) -> list[str]:
    return [f"Time difference: {r['summary']}"] if r.get("summary") else []


def _distance(r: dict[str, Any]) -> list[str]:
    return [f"Travel: {r['from_city']} to {r['to_city']} is {r['distance_km']:,g} km ({r['distance_miles']:,g} "
            f"miles), about {r['travel_hours']:g} h by {r['mode']}."]  # fmt: skip


_LINES = {
    "get_destination": _destination,
    "get_climate": _climate,
    "convert_currency": _conversion,
    "time_difference": _time,
    "travel_distance": _distance,
}


def sheet(results: Iterable[tuple[str, Any]]) -> str:
    """One line a fact, in the order the tools answered; "" when there is none. list_destinations is
    left out: it lists candidates, not the places of this trip."""
    results = list(results)
    lines: list[str] = []
    for name, result in results:
        if name not in _LINES or not isinstance(result, dict):
            continue
        try:
            new = _LINES[name](result)
        except (KeyError, TypeError, ValueError):  # a result of another shape: the raw result is still there
            continue
        lines += [line for line in new if line not in lines]
    cities = [str(r.get("city")) for n, r in results if n == "get_destination" and isinstance(r, dict)]
    if not lines:
        return ""
    where = f"The trip is to {' and '.join(dict.fromkeys(cities))}, and nowhere else.\n" if cities else ""
    return f"{HEAD}:\n{where}" + "\n".join(f"- {line}" for line in lines)

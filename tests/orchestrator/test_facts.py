"""The Planner's sheet of the facts the tools returned (facts.py), and its handoff."""

from __future__ import annotations

from agent_framework import Content, Message

from orchestrator import facts, guarded

KYOTO = {"city": "Kyoto", "region": "Kyoto Prefecture", "country": "Japan", "languages": ["Japanese"],
         "currency_code": "JPY", "currency_name": "Yen", "timezone": "Asia/Tokyo",
         "points_of_interest": [{"name": "Fushimi Inari Taisha"}, {"name": "Gion"}]}  # fmt: skip
CLIMATE = {"city": "Kyoto", "months": [{"month_name": "November", "high_c": 17.0, "low_c": 8.0, "precip_mm": 75.0,
                                        "rainy_days": 7.0, "pack": ["a warm layer for the evenings"]}]}  # fmt: skip
CONVERSION = {"amount": 2000.0, "from_currency": "AUD", "to_currency": "JPY", "converted": 220925.55,
              "rate_date": "2026-10-30"}  # fmt: skip


def test_the_sheet_gives_each_fact_once_with_the_tools_figures():
    results = [
        ("get_destination", KYOTO),
        ("list_destinations", {"destinations": [{"city": "Osaka"}, {"city": "Sapporo"}]}),
        ("convert_currency", CONVERSION),
        ("time_difference", {"summary": "On 2026-12-06, Kyoto is 2 h behind Sydney."}),
        ("get_climate", CLIMATE),
        ("get_destination", KYOTO),  # asked twice: said once
    ]
    assert facts.sheet(results).splitlines() == [
        "Facts the tools returned (use these figures as they are):",
        "The trip is to Kyoto, and nowhere else.",
        "- Kyoto (Kyoto Prefecture, Japan): languages Japanese; currency Yen (JPY); time zone Asia/Tokyo.",
        "- Points of interest in Kyoto: Fushimi Inari Taisha, Gion.",
        "- Budget: 2,000 AUD is about 220,925.55 JPY (rates of 2026-10-30).",
        "- Time difference: On 2026-12-06, Kyoto is 2 h behind Sydney.",
        "- Climate normals (not a forecast) for Kyoto in November: highs 17 °C, lows 8 °C, 75 mm of rain on about "
        "7 days. Pack: a warm layer for the evenings.",
    ]


def test_a_result_of_another_shape_is_left_to_the_raw_results():
    assert facts.sheet([("convert_currency", {"converted": "n/a"}), ("get_climate", "Unknown city")]) == ""
    assert facts.sheet([]) == ""


def test_the_planners_handoff_has_the_sheet_and_no_list_of_candidate_cities():
    listing = [
        Message("assistant", [Content.from_function_call(call_id="1", name="list_destinations", arguments={}),
                              Content.from_function_call(call_id="2", name="get_destination", arguments={})]),
        Message("tool", [Content.from_function_result(call_id="1", result="Osaka, Sapporo"),
                         Content.from_function_result(call_id="2", result="Kyoto")]),
    ]  # fmt: skip
    kept = guarded._without_listings(listing)
    assert [[c.call_id for c in m.contents] for m in kept] == [["2"], ["2"]]
    handoff = guarded.handoff_message("Planner", "write the plan", [("Researcher", "Kyoto, Japan.")], "Facts: x")
    assert [c.text for c in handoff.contents] == [
        "Your turn in the travel team, Planner: write the plan\n\nWhat the team found before you:\n",
        "\nResearcher:\nKyoto, Japan.\n",
        "\nFacts: x\n",
    ]

"""The calls the request shows an agent still owes (owed.py): what is read from the request, and when
a call counts as made."""

from __future__ import annotations

import datetime as dt

import pytest

from orchestrator import owed
from orchestrator.tool_server import ToolCall

KYOTO = {"city": "Kyoto", "country": "Japan", "currency_code": "JPY"}


@pytest.mark.parametrize(
    ("request_", "amount", "currency"),
    [
        ("4 days in Kyoto in November, flying from Sydney with 2000 AUD", 2000, "AUD"),
        ("a week in Rome, budget £1,250.50", 1250.5, "GBP"),
        ("Paris with 300 euros", 300, "EUR"),
        ("Rome with $1,500", 1500, None),  # "$" is the dollar of several countries: the model is asked
        ("5 days in Tokyo, 90000 JPY", 90000, "JPY"),
    ],
)
def test_a_budget_is_read_from_the_request(request_, amount, currency):
    budget = owed.budget(request_)
    assert budget is not None and (budget.amount, budget.currency) == (amount, currency)


@pytest.mark.parametrize("request_", ["3 days in Oslo in May", "3 day trip to Oslo", "Oslo for 2 people, 4 nights"])
def test_no_budget_is_read_where_there_is_none(request_):
    assert owed.budget(request_) is None


@pytest.mark.parametrize(
    ("request_", "place"),
    [
        ("2 days in Reykjavik, flying from New York with 1500 USD", "New York"),
        ("Lisbon in May, I fly from London", "London"),
        ("a week in Rome from May 3 to May 10", None),
        ("a week in Rome from Monday", None),
        ("Paris, from the Hague", None),  # no capital: no call that would fail on "Hague"
        ("Paris, from The Hague", "The Hague"),
        ("3 days in Oslo", None),
    ],
)
def test_where_the_traveller_starts_is_read_from_the_request(request_, place):
    assert owed.origin(request_) == place


def test_the_researcher_owes_the_budget_in_the_destinations_currency_and_the_time_difference():
    request = "4 days in Kyoto in November, flying from Sydney with 2000 AUD"
    assert owed.researcher(request, []) == []  # get_destination comes first (it is required)
    found = [ToolCall("Researcher", "get_destination", {"city": "Kyoto"}, result=KYOTO)]
    assert owed.researcher(request, found) == [
        owed.Owed("convert_currency", {"amount": 2000, "to_currency": "JPY", "from_currency": "AUD"},
                  "the budget, 2000 AUD, in Kyoto's currency, JPY"),
        owed.Owed("time_difference", {"from_city": "Sydney", "to_city": "Kyoto", "date": owed.travel_date(request)},
                  "the time difference from Sydney to Kyoto"),
    ]  # fmt: skip
    # A conversion to another currency (EUR, made before the model knew the destination's) does not count.
    conversion = {"amount": 2000, "from_currency": "AUD"}
    to_euros = ToolCall("Researcher", "convert_currency", {**conversion, "to_currency": "EUR"})
    assert [o.name for o in owed.researcher(request, [*found, to_euros])] == ["convert_currency", "time_difference"]
    to_yen = ToolCall("Researcher", "convert_currency", {**conversion, "to_currency": "jpy"})
    difference = ToolCall("Researcher", "time_difference", {"from_city": "Sydney", "to_city": "Kyoto"})
    assert owed.researcher(request, [*found, to_yen, difference]) == []


def test_nothing_is_owed_that_the_request_does_not_ask_for():
    found = [ToolCall("Researcher", "get_destination", {"city": "Kyoto"}, result=KYOTO)]
    assert owed.researcher("4 days in Kyoto in November", found) == []
    assert owed.researcher("Kyoto with 90000 JPY, from Kyoto station", found) == []  # same currency, same place


def test_the_time_difference_is_taken_in_the_travel_month():
    december = dt.date(2026, 12, 6)
    assert owed.travel_date("Kyoto in November", december) == "2027-11-15"  # November is past: next year's
    assert owed.travel_date("Reykjavik in december", december) == "2026-12-15"
    assert owed.travel_date("Rome from 2027-05-03 to 2027-05-10", december) == "2027-05-03"
    assert owed.travel_date("3 days in Oslo", december) is None
    assert owed.travel_date("3 days in Oslo, I may fly from Bergen", december) is None


def test_the_place_the_traveller_starts_from_is_not_the_destination():
    request = "4 days in Kyoto in November, flying from Sydney with 2000 AUD"
    sydney = {"city": "Sydney", "country": "Australia", "currency_code": "AUD"}
    found = [ToolCall("Researcher", "get_destination", {"city": "Kyoto"}, result=KYOTO),
             ToolCall("Researcher", "get_destination", {"city": "Sydney"}, result=sydney)]  # fmt: skip
    (conversion, _) = owed.researcher(request, found)
    assert conversion.known["to_currency"] == "JPY"

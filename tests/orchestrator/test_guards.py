"""The pipeline's checks on what a model wrote: text tool calls, answers, context fitting, grounding."""

from __future__ import annotations

import pytest
from agent_framework import Content, Message

from orchestrator import grounding, guarded
from orchestrator.agents import RESEARCHER
from orchestrator.answers import ANSWER_NOW, CUT, ECHO, EMPTY, REPETITIVE, TOOL_SYNTAX, VAGUE, check_answer
from orchestrator.context_budget import TRIMMED_RESULT, ContextMeter, ContextOverflow, fit
from orchestrator.text_calls import TextCall, find_calls, looks_like_call_start, only_calls, strip_calls

TOOLS = frozenset({"get_destination", "convert_currency", "time_difference"})
LISBON = TextCall("get_destination", {"city": "Lisbon"})


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "get_destination", "arguments": {"city": "Lisbon"}}',
        'I will look it up.\n```json\n{"name": "get_destination", "arguments": {"city": "Lisbon"}}\n```',
        '<tool_call>\n{"name": "get_destination", "arguments": {"city": "Lisbon"}}\n</tool_call>',
        '[TOOL_CALLS][{"name": "get_destination", "arguments": {"city": "Lisbon"}}]',
        '[TOOL_CALLS]get_destination[ARGS]{"city": "Lisbon"}',
        '[get_destination(city="Lisbon")]',
        'functools[{"name": "get_destination", "arguments": "{\\"city\\": \\"Lisbon\\"}"}]',
        '{"type": "function", "function": {"name": "get_destination", "parameters": {"city": "Lisbon"}}}',
        '{"name": "get_destination", "city": "Lisbon"}',
    ],
)
def test_every_written_form_of_a_call_is_recovered(text):
    assert find_calls(text, TOOLS) == [LISBON]
    assert only_calls(text, TOOLS) or strip_calls(text, TOOLS) == "I will look it up."


def test_calls_one_a_line_are_recovered_in_order_and_once():
    text = "\n".join(
        [
            '{"name": "get_destination", "arguments": {"city": "Lisbon"}}',
            '{"name": "time_difference", "arguments": {"from_city": "London", "to_city": "Lisbon"}}',
            '{"name": "get_destination", "arguments": {"city": "Lisbon"}}',
        ]
    )
    assert [c.name for c in find_calls(text, TOOLS)] == ["get_destination", "time_difference"]


def test_text_naming_no_tool_of_the_agent_stays_text():
    prose = 'Lisbon is lovely in May. Prices look like {"coffee": 1.2}. You could call get_destination(city="X").'
    assert find_calls(prose, TOOLS) == []
    assert not only_calls(prose, TOOLS)
    other = '{"name": "get_climate", "arguments": {"city": "Lisbon", "month": 5}}'
    assert find_calls(other, TOOLS) == []
    assert only_calls(other, TOOLS)  # still no answer: call syntax for a tool this agent lacks


def test_a_reply_that_starts_like_a_call_is_held_back():
    assert looks_like_call_start('  {"name"')
    assert looks_like_call_start("```json")
    assert looks_like_call_start("<tool_call>")
    assert not looks_like_call_start("Lisbon, Portugal")


def test_answers_are_checked_before_they_are_handed_on():
    assert check_answer("", "stop", TOOLS, 2048).kind == EMPTY
    assert check_answer("   \n", "stop", TOOLS, 2048).kind == EMPTY
    calls = '{"name": "get_destination", "arguments": {"city": "Lisbon"}}\n' * 5
    assert check_answer(calls, "stop", TOOLS, 2048).kind == TOOL_SYNTAX
    assert check_answer("Lisbon in May is warm and " * 5, "length", TOOLS, 2048).kind == CUT
    looping = "Day 1: visit the castle and walk by the river.\n" * 8
    assert check_answer(looping, "stop", TOOLS, 2048).kind == REPETITIVE
    plan = "\n".join(f"Day {d} (Lisbon): morning at {p}; afternoon at the river; evening in Alfama." for d, p in
                     enumerate(["Belem Tower", "the castle", "LX Factory", "Sintra"], start=1))  # fmt: skip
    assert check_answer(plan, "stop", TOOLS, 2048) is None
    # An itinerary that says the same packing line each day is not a loop.
    days = "\n".join(f"## Day {d}\n**Morning:**\n- Visit {p}.\n- **Pack:** Light layers, a hat and sunglasses.\n"
                     f"**Evening:**\n- Dinner in Alfama with fado." for d, p in
                     enumerate(["Belem Tower", "the castle", "LX Factory"], start=1))  # fmt: skip
    assert check_answer(days, "stop", TOOLS, 2048) is None
    assert (
        check_answer("I have already provided the facts about Lisbon.", "stop", TOOLS, 2048, vague=True).kind == VAGUE
    )
    invented = check_answer(plan + " Highs of 41 °C.", "stop", TOOLS, 2048, ungrounded=["41 °C"])
    assert invented.kind == "figures no tool returned" and "41 °C" in invented.instruction


def _result_message(call_id: str, text: str) -> Message:
    return Message("tool", [Content.from_function_result(call_id=call_id, result=text)])


def _conversation(earlier_answer: str, result: str) -> list[Message]:
    return [
        Message("user", ["3 days in Lisbon in May"]),
        Message("assistant", [Content.from_function_call(call_id="1", name=LISBON.name, arguments=LISBON.arguments)]),
        _result_message("1", result),
        Message("assistant", [earlier_answer]),
        Message("user", ["please continue."]),
    ]  # fmt: skip


def test_a_conversation_that_fits_is_sent_as_it_is():
    meter = ContextMeter(num_ctx=8192, model_ctx=32768, max_output=2048)
    messages = _conversation("Lisbon, Portugal.", '{"city": "Lisbon"}')
    assert fit(messages, {}, meter) == messages
    assert meter.window == 8192 and meter.trims == []


def test_earlier_tool_results_then_answers_are_trimmed_to_fit():
    meter = ContextMeter(num_ctx=8192, model_ctx=2048, max_output=2048)  # the model's own limit wins
    assert meter.window == 2048 and meter.prompt_budget == 1536
    messages = _conversation("Lisbon facts. " * 300, "x" * 3000)
    sent = fit(messages, {}, meter)
    assert sent is not messages and len(sent) == len(messages)
    assert sent[2].contents[0].result == TRIMMED_RESULT
    assert messages[2].contents[0].result == "x" * 3000  # the framework's own copy is untouched
    assert sent[0].text == "3 days in Lisbon in May"
    assert meter.last_estimate <= meter.prompt_budget and meter.trims


def test_a_request_that_cannot_fit_is_an_overflow():
    meter = ContextMeter(num_ctx=512, model_ctx=None, max_output=128)
    with pytest.raises(ContextOverflow):
        fit([Message("user", ["Lisbon " * 2000])], {}, meter)


def test_the_real_token_count_teaches_the_ratio():
    meter = ContextMeter(num_ctx=8192, model_ctx=None, max_output=512)
    meter.learn(chars=4000, prompt_tokens=2000)
    assert meter.chars_per_token == 2.0
    assert meter.filled(8190) and not meter.filled(4000)


def test_figures_from_tools_are_grounded_and_others_are_not():
    plan = ("Highs around 22 °C (72°F), 35 mm of rain. 800 GBP is about 918.40 EUR. Porto is 313 km "
            "(194 miles) away, 3.5 hours by train. A dinner costs €45.")  # fmt: skip
    results = [
        ("get_climate", {"months": [{"high_c": 22.1, "low_c": 14, "precip_mm": 35}]}),
        ("convert_currency", {"amount": 800, "converted": 918.4}),
        ("travel_distance", {"distance_km": 313, "travel_hours": 3.5}),
    ]
    checked = grounding.check(plan, results, request="3 days in Lisbon with 800 GBP")
    grounded = {g["figure"]: g["source"] for g in checked["grounded"]}
    assert grounded == {"22 °C": "get_climate", "72°F": "get_climate", "35 mm": "get_climate",
                        "800 GBP": "convert_currency", "918.40 EUR": "convert_currency", "313 km": "travel_distance",
                        "194 miles": "travel_distance", "3.5 hours": "travel_distance"}  # fmt: skip
    assert [u["figure"] for u in checked["ungrounded"]] == ["€45"]


def test_millimetres_written_out_are_rain_not_miles():
    # Qwen2.5-Coder-1.5B's Weather agent wrote "89 millimeters"; read as miles it failed the turn
    results = [("get_climate", {"months": [{"precip_mm": 89.0}]}), ("travel_distance", {"distance_km": 313})]
    checked = grounding.check("89 millimeters, 89 millimetres, 89 mm; 194 miles, 194 mi", results)
    assert [(g["figure"], g["kind"]) for g in checked["grounded"]] == [
        ("89 millimeters", "rain"), ("89 millimetres", "rain"), ("89 mm", "rain"), ("194 miles", "distance"),
        ("194 mi", "distance")]  # fmt: skip
    assert checked["ungrounded"] == []


def test_a_decimal_comma_counts_as_the_same_figure():
    checked = grounding.check("about 918,40 EUR", [("convert_currency", {"converted": 918.4})])
    assert checked["grounded"] and not checked["ungrounded"]


def test_an_answer_that_says_its_instructions_back_is_no_answer():
    # What Qwen2.5-Coder-0.5B answered when told to stop writing JSON (seen here).
    echo = "The last reply was tool-call syntax, not an answer. " + ANSWER_NOW
    assert check_answer(echo, "stop", TOOLS, 2048).kind == ECHO
    parroted = "You are the Researcher in a travel-planning team. Find the facts about each destination."
    assert check_answer(parroted, "stop", TOOLS, 2048, given=[RESEARCHER.instructions]).kind == ECHO
    brief = "Lisbon, Portugal (Lisbon District, Europe). Currency: Euro (EUR). Time zone: Europe/Lisbon."
    assert check_answer(brief, "stop", TOOLS, 2048, given=[RESEARCHER.instructions]) is None


def test_an_answer_is_measured_by_the_facts_it_takes_from_its_tool_results():
    result = [("get_destination", {"city": "Lisbon", "country": "Portugal", "currency_code": "EUR",
                                    "points_of_interest": [{"name": "Belém Tower"}], "latitude": 38.7})]  # fmt: skip
    request = "3 days in Lisbon in May"
    assert grounding.facts_used("I have already provided the facts about Lisbon.", result, request) == 0
    assert grounding.facts_used("Lisbon, Portugal.", result, request) == 1
    assert grounding.facts_used("Lisbon is in Portugal; pay in EUR and see the Belém Tower.", result, request) == 3
    # coordinates are listed, not taken for temperatures
    assert [f.kind for f in grounding.figures("at 38.7251°, -9.1498° W; highs 23 °C")] == [
        "coordinate", "coordinate", "temperature"]  # fmt: skip


def test_a_sentence_is_left_out_only_for_the_figure_itself():
    from orchestrator.answers import without_figures

    text = "Walk 12 km along the river. The coast is 2 km away. Lunch costs $50."
    assert without_figures(text, ["2 km", "$5"]) == "Walk 12 km along the river. Lunch costs $50."


def test_a_handoff_too_long_for_the_context_keeps_every_teammate():
    from orchestrator.guarded import handoff_message

    handoff = handoff_message("Planner", "write the plan.", [("Researcher", "R-FACTS " + "r" * 3000),
                                                             ("Weather", "W-CLIMATE " + "w" * 3000)])  # fmt: skip
    messages = [Message("user", ["3 days in Lisbon in May"]), handoff]
    meter = ContextMeter(num_ctx=1024, model_ctx=None, max_output=256)
    fitted = fit(messages, {}, meter)
    assert "R-FACTS" in fitted[1].text and "W-CLIMATE" in fitted[1].text and fitted[1].text.startswith("Your turn")
    assert "earlier agents' answers shortened" in meter.trims


def test_the_pipelines_own_lines_are_not_the_travellers_request():
    from orchestrator.answers import CUT_OFF
    from orchestrator.context_budget import AFTER_TOOLS, is_request

    assert is_request(Message("user", ["3 days in Lisbon"]))
    for line in (ANSWER_NOW, AFTER_TOOLS, "please continue.", CUT_OFF.format(words=60),
                 "Before answering, you must call get_climate: ..."):  # fmt: skip
        assert not is_request(Message("user", [line])), line


TIME = [("time_difference", {"summary": "On 2027-01-15, Reykjavik is 5 h ahead of New York.", "difference_hours": 5})]


@pytest.mark.parametrize(
    ("text", "fixed"),
    [
        # Qwen2.5-Coder-1.5B's words, December 6
        (
            "3. **Time Difference**: New York City is 5 hours ahead of Reykjavik.",
            "3. **Time Difference**: New York City is 5 hours behind Reykjavik.",
        ),
        (
            "Reykjavík is 5 hours behind New York, so call home early.",
            "Reykjavík is 5 hours ahead of New York, so call home early.",
        ),
        ("Reykjavik is 5 hours ahead of New York.", None),  # right already
        ("New York is 5 hours behind Reykjavik.", None),
        ("New York is 4 hours ahead of Reykjavik.", None),  # another figure: not this check's business
        ("Lisbon is 5 hours ahead of Paris.", None),  # places the tool did not compare
    ],
)
def test_a_time_difference_the_wrong_way_round_is_turned(text, fixed):
    corrected_text, corrected = grounding.correct_time_directions(text, TIME)
    assert corrected_text == (fixed or text)
    assert bool(corrected) == (fixed is not None)


def test_a_citation_or_a_date_grounds_no_figure():
    # CI, Qwen2.5-Coder-1.5B on Kyoto: "$2000" (the traveller's 2000 AUD) was put down to the climate
    # table's "1991-2020" source, within the 1% an amount may be rounded by.
    results = [
        ("get_climate", {"high_c": 17, "source": "mostly 1991-2020 WMO normals"}),
        ("convert_currency", {"amount": 2000, "converted": 220925.55, "rate_date": "2026-10-30"}),
    ]
    checked = grounding.check("A budget of $2000 AUD, 17 °C, €30 a dinner, $2100 left, ¥220,926.", results,
                              request="4 days in Kyoto with 2000 AUD")  # fmt: skip
    grounded = {g["figure"]: g["source"] for g in checked["grounded"]}
    assert grounded == {"$2000": "convert_currency", "17 °C": "get_climate", "¥220,926": "convert_currency"}
    assert [u["figure"] for u in checked["ungrounded"]] == ["€30", "$2100"]
    without_conversion = grounding.check("A budget of $2000 AUD.", results[:1], request="with 2000 AUD")
    assert [g["source"] for g in without_conversion["grounded"]] == ["request"]


def test_a_figure_is_grounded_only_by_the_tool_that_reports_its_kind():
    results = [("get_destination", {"population": 1463723, "latitude": 35.0211}),
               ("time_difference", {"difference_hours": 5})]  # fmt: skip
    checked = grounding.check("35.02° N; 35.1° N; 1,463,723 km; $5", results)
    # a coordinate is reported by no tool of its own: any result grounds it, to the whole number
    assert [(g["figure"], g["source"]) for g in checked["grounded"]] == [("35.02°", "get_destination"),
                                                                         ("35.1°", "get_destination")]  # fmt: skip
    assert [u["figure"] for u in checked["ungrounded"]] == ["1,463,723 km", "$5"]


def test_arguments_the_request_settles_are_fixed_in_the_schema_the_model_fills():
    schema = {"type": "object", "required": ["amount", "from_currency", "to_currency"],
              "properties": {"amount": {"type": "number"}, "from_currency": {"type": "string"},
                             "to_currency": {"type": "string"}}}  # fmt: skip
    fixed = guarded._fixed(schema, {"amount": 1500.0, "to_currency": "ISK"})
    assert fixed["properties"]["to_currency"] == {"type": "string", "enum": ["ISK"]}
    assert fixed["properties"]["amount"] == {"type": "number", "enum": [1500.0]}
    assert fixed["properties"]["from_currency"] == {"type": "string"} and fixed["required"] == schema["required"]
    assert schema["properties"]["to_currency"] == {"type": "string"}  # the tool's own schema is left as it was

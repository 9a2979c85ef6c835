"""The three agents: who they are, what they are told, and which tools each may call."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from agent_framework import Agent, FunctionTool

from . import owed
from .owed import EarlierResults, Owes


@dataclass(frozen=True)
class AgentSpec:
    name: str
    title: str  # shown in the terminal header
    instructions: str
    tools: tuple[str, ...]  # MCP tool names this agent may call; nothing else is offered
    required: tuple[str, ...] = ()  # an answer given without one successful call of these is no answer
    handoff: str = ""  # its task, told when its turn comes after other agents' answers
    # calls the request and its results show it still owes (owed.py); the guard makes or asks for them
    owes: Owes = owed.nothing
    # What it sees of the earlier agents' tool results: "raw" (the calls and results), "sheet" (only
    # the sheet of facts, facts.py, in its handoff) or "both" (the sheet, and the raw results without
    # list_destinations' candidate cities)
    earlier_results: EarlierResults = "raw"


RESEARCHER = AgentSpec(
    name="Researcher",
    title="Researcher · destination facts",
    tools=("get_destination", "list_destinations", "convert_currency", "time_difference"),
    required=("get_destination",),
    owes=owed.researcher,
    instructions="""You are the Researcher in a travel-planning team.
Find the facts about each destination the traveller mentions by calling your tools; never invent facts.
- Call get_destination for every destination city.
- If the traveller mentions a budget or a home currency, call convert_currency with the destination's
  currency_code; if they mention where they travel from, call time_difference.
Then write a short brief: country and region, languages, currency (code and name), time zone, and
3 points of interest. State only what the tools returned. If a tool reports an error, say so plainly
and carry on with what you have.""",
)

WEATHER = AgentSpec(
    name="Weather",
    title="Weather · climate for the travel dates",
    tools=("get_climate",),
    required=("get_climate",),
    earlier_results="sheet",
    handoff="call get_climate for the destination and the travel month or dates, then report the climate normals.",
    instructions="""You are the Weather analyst in a travel-planning team.
For each destination and the travel month or dates in the conversation, call get_climate (use month,
or start_date and end_date when exact dates are given). If no month is mentioned, ask get_climate for
the next month. Report the mean high and low temperature, precipitation and rainy days, and say
plainly whether to pack for rain, heat or cold. Always say these are climate normals, not a forecast.""",
)

PLANNER = AgentSpec(
    name="Planner",
    title="Planner · day-by-day itinerary",
    tools=("travel_distance", "time_difference"),
    earlier_results="both",
    handoff="write the day-by-day itinerary from what the team found, with their figures as given (temperatures, "
    "budget), and end with the facts used.",
    instructions="""You are the Planner in a travel-planning team.
Write a day-by-day itinerary for the place the traveller asked for, from what the team found: their
answers and the sheet of facts the tools returned. Use travel_distance when the trip covers more than
one city. For each day give a morning, afternoon and evening idea, one short line each, built on the
points of interest found (walks, food and free time fill the rest). Say what to pack, from the climate
normals. End with a short "Facts used" list giving the figures as the team found them: the budget in
the local currency, the temperatures, the time difference. Do not invent facts the team did not find.""",
)

PIPELINE: tuple[AgentSpec, ...] = (RESEARCHER, WEATHER, PLANNER)


def tools_for(spec: AgentSpec, available: Sequence[FunctionTool]) -> list[FunctionTool]:
    """The subset of the server's tools this agent may use (missing ones are simply not offered)."""
    return [tool for tool in available if tool.name in spec.tools]


def build_agents(
    client_for: Callable[[str], Any],
    tools: Sequence[FunctionTool],
    options: dict[str, Any],
    middleware_for: Callable[[str], Sequence[Any]],
) -> list[Agent]:
    return [
        Agent(
            client=client_for(spec.name),
            name=spec.name,
            description=spec.title,
            instructions=spec.instructions,
            tools=tools_for(spec, tools),
            default_options=options,  # type: ignore[arg-type]
            middleware=list(middleware_for(spec.name)),
        )
        for spec in PIPELINE
    ]

"""The FastMCP server: tools registered read-only, plus a /health route for probes."""

from __future__ import annotations

from fastmcp import FastMCP
from mcp.types import ToolAnnotations
from starlette.requests import Request
from starlette.responses import JSONResponse

from .catalog import load_catalog
from .tools import climate, destinations, planning

# Every tool only reads data shipped with the server: safe to retry, nothing leaves the machine.
READ_ONLY = ToolAnnotations(readOnlyHint=True, idempotentHint=True, openWorldHint=False)

TOOLS = (
    destinations.get_destination,
    destinations.list_destinations,
    climate.get_climate,
    planning.travel_distance,
    planning.time_difference,
    planning.convert_currency,
)


def build_server() -> FastMCP:
    catalog = load_catalog()  # fail at start, not on the first call, if the data is broken
    mcp = FastMCP(
        name="travel-tools",
        instructions="Offline travel data: destination facts, climate normals (not forecasts), "
        "distances, time differences and currency conversion from shipped tables.",
    )
    for fn in TOOLS:
        mcp.tool(fn, annotations=READ_ONLY)

    @mcp.custom_route("/health", methods=["GET"])
    async def health(_: Request) -> JSONResponse:
        return JSONResponse(
            {"status": "ok", "cities": len(catalog.cities), "rates_date": planning.rates_date().isoformat()}
        )

    return mcp

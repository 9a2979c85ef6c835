"""The tool server as a real process over streamable HTTP, reached by clients we did not write."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from service_processes import ROOT, mcp_server

INSPECTOR = "@modelcontextprotocol/inspector@0.15.0"  # the last release that runs on Node 20


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with mcp_server(tmp_path_factory.mktemp("mcp")) as service:
        yield service


def test_health_route_reports_the_data_it_serves(server):
    health = httpx.get(server.url.replace("/mcp", "/health")).json()
    assert health["status"] == "ok"
    assert health["cities"] >= 100
    assert health["rates_date"].startswith("20")


async def test_official_sdk_client_lists_and_calls_tools(server):
    async with streamable_http_client(server.url) as (read, write, *_), ClientSession(read, write) as session:
        await session.initialize()
        names = {tool.name for tool in (await session.list_tools()).tools}
        assert {"get_destination", "get_climate", "convert_currency"} <= names
        result = await session.call_tool("get_climate", {"city": "Cape Town", "month": 7})
        assert not result.is_error
        assert result.structured_content["months"][0]["month_name"] == "July"
        bad = await session.call_tool("get_climate", {"city": "Cape Twn", "month": 7})
        assert bad.is_error
        assert "Cape Town" in bad.content[0].text


def _initialize(url: str, host: str) -> httpx.Response:
    body = {
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "host-test", "version": "1"}},
    }  # fmt: skip
    return httpx.post(
        url,
        json=body,
        headers={"Host": host, "Accept": "application/json, text/event-stream"},
    )


@pytest.mark.parametrize(
    "host", ["mcp-server:8090", "mcp-server.travel.svc:8090", "mcp-server.travel.svc.cluster.local"]
)
def test_service_names_are_accepted(server, host):
    assert _initialize(server.url, host).status_code == 200


def test_other_host_headers_are_refused(server):
    # DNS-rebinding protection stays on: only the service names and localhost are answered.
    assert _initialize(server.url, "attacker.example.com").status_code == 421
    assert _initialize(server.url, "10.1.2.3:8090").status_code == 421
    # `*` in mcp-server.*.svc is one label (a namespace), not any run of labels
    assert _initialize(server.url, "mcp-server.attacker.svc").status_code == 200  # one label: a namespace
    assert _initialize(server.url, "mcp-server.evil.attacker.svc").status_code == 421
    assert _initialize(server.url, "mcp-server.x.svc.attacker.example").status_code == 421
    assert _initialize(server.url, "mcp-server.a.b.svc.cluster.local").status_code == 421


def test_health_answers_probes_that_address_the_pod_by_ip(server):
    health = httpx.get(server.url.replace("/mcp", "/health"), headers={"Host": "10.1.2.3:8090"})
    assert health.status_code == 200


def _npx() -> str | None:
    return shutil.which("npx")


def test_mcp_inspector_cli_sees_and_calls_the_tools(server, tmp_path):
    if _npx() is None:
        if os.environ.get("CI"):
            pytest.fail("npx is required in CI for the MCP Inspector test")
        pytest.skip("npx not installed")
    cache = ROOT / ".cache" / "npm"
    base = [_npx(), "--yes", "--cache", str(cache), INSPECTOR, "--cli", server.url, "--transport", "http"]
    env = {**os.environ, "npm_config_update_notifier": "false"}
    listed = subprocess.run([*base, "--method", "tools/list"], capture_output=True, text=True, timeout=300, env=env)
    assert listed.returncode == 0, listed.stderr
    names = {tool["name"] for tool in json.loads(listed.stdout)["tools"]}
    assert "get_destination" in names and "get_climate" in names
    called = subprocess.run(
        [*base, "--method", "tools/call", "--tool-name", "get_destination", "--tool-arg", "city=Reykjavik"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert called.returncode == 0, called.stderr
    payload = json.loads(called.stdout)
    assert payload["structuredContent"]["currency_code"] == "ISK"


def test_bad_setting_stops_with_one_line_and_exit_code_2(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "mcp_server"],
        capture_output=True, text=True, cwd=tmp_path, timeout=60,
        env={**os.environ, "MCP_PORT": "eighty"},
    )  # fmt: skip
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        "mcp-server: invalid setting MCP_PORT='eighty': "
        "Input should be a valid integer, unable to parse string as an integer"
    ]


def test_shipped_geo_data_matches_the_curated_cities():
    curated = json.loads((Path(ROOT) / "mcp_server/src/mcp_server/data/curated_cities.json").read_text())
    geo = json.loads((Path(ROOT) / "mcp_server/src/mcp_server/data/geo.json").read_text())["cities"]
    assert {str(c["geonameid"]) for c in curated["cities"]} == set(geo)

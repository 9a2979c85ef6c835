"""The operator commands' tests share one real tool server."""

from __future__ import annotations

import pytest
from service_processes import mcp_server


@pytest.fixture(scope="session")
def tools(tmp_path_factory):
    with mcp_server(tmp_path_factory.mktemp("mcp")) as service:
        yield service

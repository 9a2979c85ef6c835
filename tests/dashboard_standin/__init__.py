"""A test double for the Aspire dashboard (mcr.microsoft.com/dotnet/aspire-dashboard).

It takes OTLP over gRPC and HTTP where the dashboard does, with the dashboard's configuration
names and API-key check, and records what arrives so tests can read it back from
GET /api/telemetry. See README.md; `testing.run_process` runs it for pytest.
"""

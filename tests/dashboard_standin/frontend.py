"""The browser side: token login, a tiny traces page, and a JSON API for tests.

Browser-token login works like the dashboard's (ValidateTokenMiddleware + cookie auth):
GET /login?t=TOKEN with the right token sets the `.Aspire.Dashboard.Auth` cookie and redirects to
`returnUrl` or `/`; a wrong token redirects back to /login without it; any page without the cookie
redirects to /login?returnUrl=<path>. The real UI is a Blazor app; this one is one plain HTML page.

Not in the dashboard, for tests only: GET /api/telemetry (everything recorded, as JSON),
DELETE /api/telemetry (forget it all) and GET /health.
"""

from __future__ import annotations

import hmac
import html
import secrets
from datetime import UTC, datetime
from urllib.parse import quote, urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from .config import FrontendAuthMode, Settings
from .store import TelemetryStore

AUTH_COOKIE = ".Aspire.Dashboard.Auth"
COOKIE_MAX_AGE = 3 * 24 * 3600  # the dashboard's cookie lifetime (ExpireTimeSpan = 3 days)


class BrowserAuth:
    """Who may see the UI: everyone (Unsecured), or holders of the token or of the cookie it buys."""

    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.frontend_auth_mode is FrontendAuthMode.BROWSER_TOKEN
        self._token = (settings.browser_token or "").encode()
        # The dashboard's cookie is an encrypted ticket; a random per-process value is as unforgeable.
        self.cookie_value = secrets.token_urlsafe(32)

    def token_ok(self, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self._token, (token or "").encode())

    def signed_in(self, request: Request) -> bool:
        if not self.enabled:
            return True
        cookie = request.cookies.get(AUTH_COOKIE)
        return cookie is not None and hmac.compare_digest(cookie, self.cookie_value)

    def api_allowed(self, request: Request) -> bool:
        """The test API also takes ?t=TOKEN so a test needs no cookie jar."""
        return self.signed_in(request) or (self.enabled and self.token_ok(request.query_params.get("t")))


def _local_path(url: str | None) -> str:
    # Only same-site paths, so /login?returnUrl= cannot send a browser elsewhere.
    return url if url and url.startswith("/") and not url.startswith("//") else "/"


def _time(unix_nano: int) -> str:
    return datetime.fromtimestamp(unix_nano / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


LOGIN_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{app} dashboard - login</title></head>
<body><h1>{app} dashboard</h1>
<form method="get" action="/login">{hidden}
<label for="t">Token</label> <input id="t" name="t" type="password" autofocus> <button type="submit">Log in</button>
</form>
<p>The token is in the dashboard's log: "Login to the dashboard at .../login?t=...".</p></body></html>
"""


def create_frontend_app(settings: Settings, store: TelemetryStore) -> Starlette:
    auth = BrowserAuth(settings)
    app_name = html.escape(settings.application_name)

    async def login(request: Request) -> Response:
        if not auth.enabled:
            return RedirectResponse("/", status_code=302)
        query = dict(request.query_params)
        if "t" in query:
            token = query.pop("t")
            if auth.token_ok(token):
                response = RedirectResponse(_local_path(query.get("returnUrl")), status_code=302)
                response.set_cookie(
                    AUTH_COOKIE, auth.cookie_value, max_age=COOKIE_MAX_AGE, path="/", httponly=True, samesite="lax"
                )
                return response
            # Like the dashboard: drop the bad token from the URL and show the login page again.
            return RedirectResponse("/login" + (f"?{urlencode(query)}" if query else ""), status_code=302)
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in query.items()
        )
        return HTMLResponse(LOGIN_PAGE.format(app=app_name, hidden=hidden))

    async def home(request: Request) -> Response:
        if not auth.signed_in(request):
            return RedirectResponse(f"/login?returnUrl={quote(request.url.path, safe='')}", status_code=302)
        rows = "\n".join(
            "<tr><td><code>{id}</code></td><td>{name}</td><td>{services}</td><td>{count}</td><td>{start}</td>"
            "<td>{status}</td></tr>".format(
                id=html.escape(trace["trace_id"] or ""),
                name=html.escape(trace["name"]),
                services=html.escape(", ".join(trace["services"])),
                count=trace["span_count"],
                start=_time(trace["start_time_unix_nano"]),
                status="error" if trace["error"] else "ok",
            )
            for trace in reversed(store.trace_summaries())  # newest first, as the dashboard lists them
        )
        body = (
            f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{app_name} dashboard - traces</title>"
            f"</head><body><h1>Traces</h1><table><thead><tr><th>Trace id</th><th>Name</th><th>Resources</th>"
            f"<th>Spans</th><th>Start</th><th>Status</th></tr></thead><tbody>\n{rows}\n</tbody></table></body></html>"
        )
        return HTMLResponse(body)

    async def telemetry(request: Request) -> Response:
        if not auth.api_allowed(request):
            return JSONResponse({"error": "log in first: a browser-token cookie or ?t=TOKEN"}, status_code=401)
        if request.method == "DELETE":
            store.clear()
            return Response(status_code=204)
        return JSONResponse(store.snapshot())

    async def health(request: Request) -> Response:
        return PlainTextResponse("Healthy")

    return Starlette(
        routes=[
            Route("/", home, methods=["GET"]),
            Route("/login", login, methods=["GET"]),
            Route("/api/telemetry", telemetry, methods=["GET", "DELETE"]),
            Route("/health", health, methods=["GET"]),
        ]
    )

"""ASGI middleware: each answered request counted in the metrics and logged as one line, by route template.

The route template (`/api/v1/scans/{jid}`) is known only after routing; the account only after the route's
dependency checked it (web.api_user and web.page_session write it into the scope under WHO).
"""

from __future__ import annotations

import time

from .logs import event
from .metrics import UNMATCHED, Metrics

WHO = "audit.who"  # scope key: (account id, role) of whoever the route authenticated


def route_of(scope) -> str:
    """The template of the route that answered, never the raw path (it may hold a person id or a code)."""
    route = scope.get("route")
    return getattr(route, "path", None) or UNMATCHED


def remember(scope, uid: str, role: str) -> None:
    """Record who a request was authenticated as, for its log line."""
    scope[WHO] = (uid, role)


class Observe:
    """Times every HTTP request, then counts it (metrics) and logs it (`request` event)."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = 500  # until the answer starts: an error nothing caught

        async def watched(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watched)
        finally:
            seconds = time.perf_counter() - start
            route, method = route_of(scope), scope.get("method", "")
            self.metrics.request(method, route, status, seconds)
            uid, role = scope.get(WHO, (None, None))
            event("request", method=method, route=route, status=status, ms=round(seconds * 1000, 1),
                  account=uid, role=role)

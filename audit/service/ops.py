"""What an operator's tools ask: liveness (/healthz), readiness (/readyz) and Prometheus metrics (/metrics)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from . import auth
from .metrics import may_read
from .observe import remember
from .web import service

router = APIRouter(tags=["operations"])
PATHS = ("/healthz", "/readyz", "/metrics")  # answered in JSON (errors too), like the API


@router.get("/healthz")
async def healthz() -> dict:
    """Liveness: the process answers (200 {"status": "ok"}); nothing else is checked. No authentication."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Readiness: 200 when the store opens and reads, the models are loaded and the scan workers run; else 503
    with the check that failed. No authentication; the answer names no path, person or account."""
    checks = await run_in_threadpool(service(request).readiness)
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ready" if ready else "not ready", "checks": checks},
                        status_code=200 if ready else 503)


@router.get("/metrics")
def metrics(request: Request) -> Response:
    """Prometheus metrics. Who may read them is `serve --metrics`: admin (an admin's Bearer token, the default),
    loopback (also any client on this machine), or off."""
    svc = service(request)
    user = auth.bearer(svc.accounts, request.headers.get("authorization"))
    if user is not None:
        remember(request.scope, user.id, user.role)
    client = request.client.host if request.client else None
    if not may_read(svc.cfg.metrics, user.role if user else None, client):
        if svc.cfg.metrics == "off":
            raise HTTPException(404, "not found")
        if user is None:
            raise HTTPException(401, "authentication required: Authorization: Bearer TOKEN",
                                headers={"WWW-Authenticate": "Bearer"})
        raise HTTPException(403, "not allowed for this account")
    body, content_type = svc.metrics.render()
    return Response(body, media_type=content_type)

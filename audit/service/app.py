"""The web application: the REST API, the pages, security headers and error pages."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from ..errors import AuditError
from . import api, auth, continuous, ops, pages
from .observe import Observe
from .state import Service, ServiceConfig
from .uploads import BodyLimit, NoFiles, TooLarge
from .web import STATIC, PageAuth, error_words, render, service, status_of

log = logging.getLogger("audit.service")
CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; "
       "base-uri 'none'")
HEADERS = [
    (b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"), (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"), (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"), (b"cache-control", b"no-store"),
]


class SecurityHeaders:
    """ASGI middleware: a strict CSP (unless the route set its own) and the usual hardening headers, on every
    answer: an error nothing else caught becomes a plain 500 here, so it carries them too (Starlette's own 500
    is made outside every middleware, without them)."""

    def __init__(self, app, secure: bool = False):
        self.app = app
        self.extra = [(b"strict-transport-security", b"max-age=31536000")] if secure else []

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def send_with_headers(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                names = {k.lower() for k, _ in message.get("headers", [])}
                headers = list(message.get("headers", []))
                headers += [(k, v) for k, v in HEADERS + self.extra if k not in names]
                if b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", CSP.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            log.exception("unhandled error answering %s %s", scope.get("method"), scope.get("path", "")[:200])
            if started:
                raise
            body = b'{"detail": "internal error; the operator can find it in the server log"}'
            await send_with_headers({"type": "http.response.start", "status": 500, "headers": [
                (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
            await send_with_headers({"type": "http.response.body", "body": body})


def create_app(cfg: ServiceConfig) -> FastAPI:
    """The app over one store; scans start when the server starts."""
    svc = Service(cfg)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        svc.start()
        yield
        svc.stop()

    app = FastAPI(title="likeness-audit", summary="Actor portal and auditor API", docs_url=None, redoc_url=None,
                  lifespan=lifespan)
    app.state.service = svc
    app.include_router(api.router)
    app.include_router(pages.router)
    app.include_router(ops.router)
    app.include_router(continuous.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(BodyLimit, limit=cfg.max_upload)
    app.add_middleware(SecurityHeaders, secure=cfg.secure_cookies)
    app.add_middleware(Observe, metrics=svc.metrics)  # outermost: times and counts every answer, 500s included

    @app.get("/docs", include_in_schema=False)
    def docs(request: Request):
        """The OpenAPI description as a plain page (no third-party script)."""
        return render(request, "docs.html", spec=app.openapi())

    @app.exception_handler(PageAuth)
    async def page_login(request: Request, exc: PageAuth):
        return pages.login_form(request, 401, "Please log in.")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        if request.url.path.startswith("/api/") or request.url.path in ops.PATHS:
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        if exc.status_code == 401:
            return pages.login_form(request, 401, "Please log in.")
        return render(request, "error.html", status=exc.status_code, message=str(exc.detail))

    @app.exception_handler(AuditError)
    @app.exception_handler(TooLarge)
    @app.exception_handler(NoFiles)
    async def library_error(request: Request, exc: Exception):
        """A library (or upload) error a route let through: one status for both doors, worded for the web."""
        return _error(request, exc)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError):
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": _plain(exc.errors())}, status_code=422)
        return render(request, "error.html", status=422, message="The form was incomplete or malformed.")

    return app


def _error(request: Request, exc: Exception):
    """The API's JSON (with the error's fields unless they name a server path) or the error page."""
    status, words = status_of(exc), error_words(request, exc)
    if request.url.path.startswith("/api/"):
        body = {"detail": words}
        if isinstance(exc, AuditError) and status < 500 and status != 404:
            fields = exc.fields()
            if str(service(request).cfg.home) in repr(fields):  # no server path leaves the server
                fields = {k: v for k, v in fields.items() if k in ("error", "code", "hint")}
            body.update(fields, detail=words)
        return JSONResponse(body, status_code=status)
    if isinstance(exc, NoFiles):
        words = "Choose one or more files to upload."
    session = service(request).sessions.read(request.cookies.get(auth.SESSION_COOKIE))
    return render(request, "error.html", session, status=status, message=words)


def _plain(errors) -> list[dict]:
    """Validation errors without the echoed input (it may be large or binary)."""
    return [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in errors]

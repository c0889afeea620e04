"""What every route shares: the service object, who is asking, templates, and the errors routes raise."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from fastapi import HTTPException, Request
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from .accounts import User
from . import auth
from .state import Service

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))  # autoescape on for .html
STATIC = Path(__file__).parent / "static"


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") if ts else ""


TEMPLATES.env.filters["when"] = _when


class PageAuth(Exception):
    """A page asked for without a live session (answered 401 with the login form)."""


def service(request: Request) -> Service:
    """The Service of this app."""
    return request.app.state.service


def api_user(request: Request) -> User:
    """The account behind the Bearer token, or 401."""
    user = auth.bearer(service(request).accounts, request.headers.get("authorization"))
    if user is None:
        raise HTTPException(401, "authentication required: Authorization: Bearer TOKEN",
                            headers={"WWW-Authenticate": "Bearer"})
    return user


def page_session(request: Request) -> auth.Session:
    """The browser session, or the 401 login page."""
    session = service(request).sessions.read(request.cookies.get(auth.SESSION_COOKIE))
    if session is None:
        raise PageAuth()
    return session


def require(user: User, action: str, *, owner: str | None = None, person: str | None = None,
            hide: bool = True) -> None:
    """Raise unless user may do action; a resource the user may not see is 404 (hide), a role not allowed 403."""
    if not auth.allowed(user, action, owner=owner, person=person):
        raise HTTPException(404, "not found") if hide else HTTPException(403, "not allowed for this account")


def check_csrf(request: Request, session: auth.Session, sent: str | None) -> None:
    """Every form post carries the session's CSRF token."""
    if not auth.csrf_ok(session, sent):
        raise HTTPException(403, "missing or wrong CSRF token; reload the page and try again")


async def read_form(request: Request):
    """The multipart form, with the configured file limit; too many files is 413 like every other upload limit."""
    limit = service(request).cfg.max_files
    try:
        return await request.form(max_files=limit, max_fields=20)
    except StarletteHTTPException as exc:  # the multipart parser's own limit
        if "too many files" in str(exc.detail).lower():
            raise HTTPException(413, f"too many files (limit {limit})") from exc
        raise


def render(request: Request, name: str, session: auth.Session | None = None, status: int = 200, **context):
    """A server-rendered page (Jinja2, autoescaped)."""
    context.update(request=request, me=session.user if session else None, csrf=session.csrf if session else "")
    return TEMPLATES.TemplateResponse(request, name, context, status_code=status)

"""What the API and the pages share: the service, who is asking, the owner rule, uploads, reports, error statuses.

Each door (api.py: JSON, pages.py: HTML) only translates: a route checks who asks, calls a helper here or in
actions.py, and shapes the answer; library errors are turned into statuses once (status_of), by app.py's handlers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from fastapi import HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import AuditError, StoreError, UnknownPerson
from . import actions, auth, limits, uploads
from .accounts import Job, User
from .observe import remember
from .state import Service
from .uploads import NoFiles, TooLarge
from ..report.filters import num
from .words import file_error, use_words, web_words

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))  # autoescape on for .html
STATIC = Path(__file__).parent / "static"
# The evidence report is a self-contained page with data: pictures; sandboxed so nothing in it runs.
REPORT_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; sandbox"


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if ts else ""


TEMPLATES.env.filters.update(when=_when, num=num, file_error=file_error, use_words=use_words)  # num: as the report


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
    remember(request.scope, user.id, user.role)
    return user


def page_session(request: Request) -> auth.Session:
    """The browser session, or the 401 login page."""
    session = service(request).sessions.read(request.cookies.get(auth.SESSION_COOKIE))
    if session is None:
        raise PageAuth()
    remember(request.scope, session.user.id, session.user.role)
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


# Errors -> statuses: one mapping for both doors (app.py registers the handlers that use it).
def status_of(exc: Exception) -> int:
    """The HTTP status of an error a route let through."""
    if isinstance(exc, TooLarge):
        return 413
    if isinstance(exc, NoFiles):
        return 422
    if isinstance(exc, UnknownPerson):
        return 404
    if isinstance(exc, StoreError):
        return 500  # the server's store, not the request, is at fault
    return 400


def error_words(request: Request, exc: Exception, modality: str = "face") -> str:
    """An error as the web says it: no command-line flags, no server paths."""
    if isinstance(exc, UnknownPerson):
        return "not found"  # whether a person exists is itself private
    if isinstance(exc, StoreError):
        return "the server's store could not complete this request; please tell the operator"
    if isinstance(exc, AuditError):
        return web_words(exc, modality, hide=(str(service(request).cfg.home),))
    return str(exc)


# Scans: one lookup and owner rule, one listing, one report and picture answer.
def jobs_for(request: Request, user: User) -> list[Job]:
    """The scans an account may list: its own (an admin: everyone's)."""
    require(user, "scan.create", hide=False)
    return service(request).accounts.jobs(owner=None if user.role == "admin" else user.id)


def job_for(request: Request, user: User, jid: str) -> Job:
    """A scan the user may read (its owner, or an admin); anyone else, and an unknown id, get the same 404."""
    job = service(request).accounts.job(jid) if jid.isalnum() else None
    require(user, "scan.read", owner=job.owner if job else None)
    if job is None:
        raise HTTPException(404, "not found")
    return job


def report_file(request: Request, job: Job) -> FileResponse:
    """A finished scan's HTML report, sandboxed; 409 while the scan is not done."""
    path = actions.report(service(request), job.id)
    if path is None:
        raise HTTPException(409, f"scan is {job.status}; the report comes when it is done")
    page = actions.reviewed_report(service(request), job.id)  # each card then says its review
    if page is not None:
        return HTMLResponse(page, headers={"Content-Security-Policy": REPORT_CSP})
    return FileResponse(path, media_type="text/html", headers={"Content-Security-Policy": REPORT_CSP})


def findings_json(request: Request, job: Job, reviews: bool = False) -> JSONResponse:
    """A finished scan's findings in the CLI's JSON format (both doors), with the review columns when asked; 409
    while the scan is not done."""
    rows = actions.findings(service(request), job.id)
    if rows is None:
        raise HTTPException(409, f"scan is {job.status}; findings come when it is done")
    return JSONResponse(actions.with_review_columns(service(request), job.id, rows) if reviews else rows)


def picture_file(request: Request, jid: str, n: int) -> FileResponse:
    """The evidence picture of finding n of a scan (its face crop or waveform), or 404."""
    path = actions.picture(service(request), jid, n) if jid.isalnum() else None
    if path is None:
        raise HTTPException(404, "no picture for this finding")
    return FileResponse(path)


# Uploads: one form reader and filter for enrolment and scans, whichever door they come through.
async def upload_form(request: Request, session: auth.Session | None = None):
    """(form, files) of a multipart upload; a page's form must carry the session's CSRF token; NoFiles if none."""
    form = await read_form(request)
    if session is not None:
        check_csrf(request, session, form.get("csrf"))
    return form, uploads.files_of(form)


async def enroll_upload(request: Request, user: User, pid: str, modality: str,
                        session: auth.Session | None = None) -> dict:
    """Enroll uploaded files for pid: one row per file, enrolled or refused and why (actions.enroll)."""
    require(user, "person.enroll", person=pid)  # before the body is read
    auth.check_id(pid, "person id")
    _, files = await upload_form(request, session)
    return await run_in_threadpool(actions.enroll, service(request), pid, modality, files, by=user.id)


async def scan_upload(request: Request, user: User, session: auth.Session | None = None) -> str:
    """Queue a scan of uploaded files (form field `use`: the intended use); returns the job id."""
    require(user, "scan.create", hide=False)
    form, files = await upload_form(request, session)
    use = limits.check(form.get("use") if isinstance(form.get("use"), str) else None, limits.WORD_MAX, ("body", "use"))
    return await run_in_threadpool(service(request).submit_upload, user.id, files, use or None)

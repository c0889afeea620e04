"""Routes of continuous audit: each account's webhook and its delivery log; the folders the server watches.

API under /api/v1 (Bearer) and pages (session + CSRF) side by side: both call the helpers below, which call the
library (audit.notify) and the service's folder watchers (folders.py).
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel, Field

from .. import notify
from ..errors import AuditError
from . import auth, limits
from .accounts import User
from .logs import event
from .web import api_user, check_csrf, page_session, render, require, service

router = APIRouter()
Caller = Annotated[User, Depends(api_user)]
Sess = Annotated[auth.Session, Depends(page_session)]
URL_MAX = 2000


class WebhookBody(BaseModel):
    """The URL findings are POSTed to."""

    url: str = Field(max_length=URL_MAX)


class WatchBody(BaseModel):
    """A folder to watch, inside a scan root; its scans belong to `owner` (default: the admin asking)."""

    path: str = Field(max_length=limits.PATH_MAX)
    owner: str | None = Field(None, max_length=limits.ID_MAX)
    use: str | None = Field(None, max_length=limits.WORD_MAX)


# Webhooks: one per account. What it hears of: an auditor's (admin's) own scans, an actor's findings naming them.
def _hooks(request: Request, create: bool = False) -> notify.Hooks | None:
    svc = service(request)
    home = svc.cfg.home
    if not (create or (home / notify.NOTIFY_FILE).exists()):
        return None
    return notify.Hooks(home, svc.gate.run(lambda s: s.cipher))  # an encrypted store's secrets are sealed


def hook_view(request: Request, user: User) -> dict:
    """The account's webhook (never its secret) and its delivery log, newest first."""
    hooks = _hooks(request)
    if hooks is None:
        return {"url": None, "created": None, "deliveries": []}
    try:
        hook = hooks.hook(user.id)
        return {"url": hook.url if hook else None, "created": hook.created if hook else None,
                "deliveries": [{"id": d.id, "status": d.status, "attempts": d.attempts,
                                "last_status": d.last_status, "last_error": d.last_error, "created": d.created,
                                "updated": d.updated, "summary": d.payload} for d in hooks.log(user.id)]}
    finally:
        hooks.close()


def register(request: Request, user: User, url: str) -> dict:
    """Set the account's webhook; the new signing secret is in the answer, and only there."""
    if not service(request).cfg.webhook_allow_private:
        try:
            notify.check_public(notify.check_url(url))  # no probing of the server's own network (notify/guard.py)
        except AuditError as exc:
            event("webhook.refused", level=logging.WARNING, account=user.id, role=user.role, code=exc.code)
            raise
    hooks = _hooks(request, create=True)
    try:
        hook = hooks.register(user.id, user.role, url, person=user.person)
    finally:
        hooks.close()
    event("webhook.set", account=user.id, role=user.role)
    return {"url": hook.url, "secret": hook.secret, "created": hook.created}


def unregister(request: Request, user: User) -> bool:
    """Delete the account's webhook and its delivery log."""
    hooks = _hooks(request)
    if hooks is None:
        return False
    try:
        gone = hooks.drop(user.id)
    finally:
        hooks.close()
    if gone:
        event("webhook.deleted", account=user.id, role=user.role)
    return gone


@router.get("/api/v1/webhook", tags=["notifications"])
def get_webhook(request: Request, user: Caller) -> dict:
    """This account's webhook URL (null when none) and its delivery log: status, attempts, last error."""
    return hook_view(request, user)


@router.put("/api/v1/webhook", tags=["notifications"])
def put_webhook(request: Request, body: WebhookBody, user: Caller) -> dict:
    """Register (or replace) this account's webhook; returns the signing secret, shown only now."""
    return register(request, user, body.url)


@router.delete("/api/v1/webhook", tags=["notifications"])
def delete_webhook(request: Request, user: Caller) -> dict:
    """Delete this account's webhook and its delivery log."""
    if not unregister(request, user):
        raise HTTPException(404, "no webhook")
    return {"deleted": True}


@router.get("/account/webhook", include_in_schema=False)
def webhook_page(request: Request, session: Sess):
    return render(request, "webhook.html", session, hook=hook_view(request, session.user))


@router.post("/account/webhook", include_in_schema=False)
def webhook_set(request: Request, session: Sess, url: Annotated[str, limits.form(URL_MAX)],
                csrf: Annotated[str, limits.form(limits.CODE_MAX)] = ""):
    check_csrf(request, session, csrf)
    try:
        made = register(request, session.user, url)
    except AuditError as exc:
        return render(request, "webhook.html", session, status=400, error=str(exc),
                      hook=hook_view(request, session.user))
    return render(request, "webhook.html", session, secret=made["secret"], hook=hook_view(request, session.user))


@router.post("/account/webhook/delete", include_in_schema=False)
def webhook_delete(request: Request, session: Sess, csrf: Annotated[str, limits.form(limits.CODE_MAX)] = ""):
    check_csrf(request, session, csrf)
    unregister(request, session.user)
    return RedirectResponse("/account/webhook", status_code=303)


# Watched folders (admin): each new file becomes a scan in the scan list, owned by the chosen account.
@router.get("/api/v1/watches", tags=["watches"])
def list_watches(request: Request, user: Caller) -> list[dict]:
    """The folders the server watches (admin): folder relative to its root, owner, error if it is unwatchable."""
    require(user, "admin", hide=False)
    return service(request).folders.view()


@router.post("/api/v1/watches", tags=["watches"])
def add_watch(request: Request, body: WatchBody, user: Caller) -> JSONResponse:
    """Watch a folder inside one of the server's scan roots (admin); new files there are scanned as they arrive."""
    require(user, "admin", hide=False)
    row = service(request).folders.add(body.path, body.owner or user.id, body.use or None)
    return JSONResponse(next(w for w in service(request).folders.view() if w["id"] == row["id"]), status_code=201)


@router.delete("/api/v1/watches/{wid}", tags=["watches"])
def delete_watch(request: Request, wid: limits.JobId, user: Caller) -> dict:
    """Stop watching a folder (admin); the scans it made stay."""
    require(user, "admin", hide=False)
    if not service(request).folders.remove(wid):
        raise HTTPException(404, "not found")
    return {"deleted": wid}


@router.get("/admin/watches", include_in_schema=False)
def watches_page(request: Request, session: Sess):
    require(session.user, "admin", hide=False)
    svc = service(request)
    return render(request, "watches.html", session, watches=svc.folders.view(), roots=[r.name for r in
                  svc.cfg.scan_roots], owners=[u.id for u in svc.accounts.users() if u.role in ("admin", "auditor")])


@router.post("/admin/watches", include_in_schema=False)
def watches_add(request: Request, session: Sess, path: Annotated[str, limits.form(limits.PATH_MAX)],
                csrf: Annotated[str, limits.form(limits.CODE_MAX)] = "",
                owner: Annotated[str, limits.form(limits.ID_MAX)] = "",
                use: Annotated[str, limits.form(limits.WORD_MAX)] = ""):
    require(session.user, "admin", hide=False)
    check_csrf(request, session, csrf)
    svc = service(request)
    try:
        svc.folders.add(path, owner.strip() or session.user.id, use.strip() or None)
    except AuditError as exc:
        return render(request, "watches.html", session, status=400, error=str(exc), watches=svc.folders.view(),
                      roots=[r.name for r in svc.cfg.scan_roots],
                      owners=[u.id for u in svc.accounts.users() if u.role in ("admin", "auditor")])
    return RedirectResponse("/admin/watches", status_code=303)


@router.post("/admin/watches/{wid}/delete", include_in_schema=False)
def watches_delete(request: Request, session: Sess, wid: limits.JobId,
                   csrf: Annotated[str, limits.form(limits.CODE_MAX)] = ""):
    require(session.user, "admin", hide=False)
    check_csrf(request, session, csrf)
    service(request).folders.remove(wid)
    return RedirectResponse("/admin/watches", status_code=303)

"""Server-rendered pages (no JavaScript needed): login, actor portal, auditor scans, admin invitations."""

from __future__ import annotations

import json
import logging
import secrets
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from ..errors import AuditError
from . import actions, auth, limits
from .logs import event
from .web import (
    check_csrf,
    enroll_upload,
    findings_json,
    job_for,
    jobs_for,
    page_session,
    picture_file,
    render,
    report_file,
    require,
    scan_upload,
    service,
)

router = APIRouter(include_in_schema=False)
Sess = Annotated[auth.Session, Depends(page_session)]
LOGIN_COOKIE = "la_login"  # double-submit token for the login and register forms (no session yet)
HOME = {"actor": "/me", "auditor": "/scans", "admin": "/admin"}


def login_form(request: Request, status: int = 200, error: str | None = None, **context) -> Response:
    """The login page (also the body of every 401 page)."""
    nonce = secrets.token_urlsafe(24)
    page = render(request, context.pop("template", "login.html"), status=status, error=error, login_csrf=nonce,
                  **context)
    page.set_cookie(LOGIN_COOKIE, nonce, httponly=True, samesite="strict", secure=service(request).cfg.secure_cookies)
    return page


def _login_csrf_ok(request: Request, sent: str) -> bool:
    cookie = request.cookies.get(LOGIN_COOKIE)
    return bool(cookie and sent) and secrets.compare_digest(cookie, sent)


def _signed_in(request: Request, user, resp: Response) -> Response:
    """resp, with a fresh session cookie for user."""
    svc = service(request)
    resp.set_cookie(auth.SESSION_COOKIE, svc.sessions.start(user), max_age=svc.sessions.max_age, httponly=True,
                    samesite="strict", secure=svc.cfg.secure_cookies)
    resp.delete_cookie(LOGIN_COOKIE)
    return resp


@router.get("/")
def home(session: Sess):
    return RedirectResponse(HOME[session.user.role], status_code=303)


@router.get("/login")
def login_page(request: Request):
    return login_form(request)


@router.post("/login")
def login(request: Request, user: Annotated[str, limits.form(limits.ID_MAX)],
          password: Annotated[str, limits.form(limits.PASSWORD_MAX)],
          login_csrf: Annotated[str, limits.form(limits.CODE_MAX)] = ""):
    svc = service(request)
    if not _login_csrf_ok(request, login_csrf):
        return login_form(request, 403, "The form expired; please try again.")
    keys = (user.lower()[:64], request.client.host if request.client else "?")
    if any(limit.blocked(key) for limit, key in zip(svc.logins, keys)):
        event("login.blocked", level=logging.WARNING, account=_known(svc, user))
        return login_form(request, 429, "Too many failed attempts; wait a few minutes.")
    account = auth.login(svc.accounts, user, password)
    if account is None:
        for limit, key in zip(svc.logins, keys):
            limit.fail(key)
        event("login.failed", level=logging.WARNING, account=_known(svc, user))
        return login_form(request, 401, "Wrong account or password.")
    event("login.ok", account=account.id, role=account.role)
    return _signed_in(request, account, RedirectResponse(HOME[account.role], status_code=303))


def _known(svc, uid: str) -> str | None:
    """The account id a failed login named, only if it exists: what is typed there may be a password."""
    return uid if auth.ID_RE.fullmatch(uid or "") and svc.accounts.user(uid) else None


@router.post("/logout")
def logout(request: Request, session: Sess, csrf: Annotated[str, limits.form(limits.CODE_MAX)] = ""):
    check_csrf(request, session, csrf)
    service(request).sessions.end(session)
    resp = RedirectResponse("/login", status_code=303)
    resp.delete_cookie(auth.SESSION_COOKIE)
    return resp


@router.get("/register/{code}", name="register_page")
def register_page(request: Request, code: limits.Code):
    invite = service(request).accounts.invite(auth.digest(code))
    if invite is None:
        return render(request, "error.html", status=404, message="This invitation is unknown, used or expired.")
    return login_form(request, template="register.html", invite=invite, code=code)


@router.post("/register/{code}")
def register(request: Request, code: limits.Code, user: Annotated[str, limits.form(limits.ID_MAX)],
             password: Annotated[str, limits.form(limits.PASSWORD_MAX)],
             login_csrf: Annotated[str, limits.form(limits.CODE_MAX)] = ""):
    svc = service(request)
    invite = svc.accounts.invite(auth.digest(code))
    if invite is None:
        return render(request, "error.html", status=404, message="This invitation is unknown, used or expired.")
    if not _login_csrf_ok(request, login_csrf):
        return login_form(request, 403, "The form expired; please try again.", template="register.html",
                          invite=invite, code=code)
    try:
        account, token = auth.redeem(svc.accounts, code, user, password)
    except AuditError as exc:
        return login_form(request, 400, str(exc), template="register.html", invite=invite, code=code)
    # The API token is shown once, here, with a link onwards.
    page = render(request, "registered.html", account=account, token=token, next=HOME[account.role])
    return _signed_in(request, account, page)


# Actor pages
def _actor(session: auth.Session) -> str:
    if session.user.role != "actor":
        raise HTTPException(403, "these pages are for actor accounts")
    return session.user.person


@router.get("/me")
def me(request: Request, session: Sess):
    pid = _actor(session)
    svc = service(request)
    new = actions.mark_new([f for _, f in actions.found(svc, pid)], svc.accounts.last_visit(session.user.id))
    saved = request.query_params.get("saved") == "consent"
    return render(request, "me.html", session, person=actions.person_view(svc, pid), pid=pid, saved=saved, new=new)


@router.post("/me/faces")
async def me_faces(request: Request, session: Sess):
    return await _enroll(request, session, "face")


@router.post("/me/voices")
async def me_voices(request: Request, session: Sess):
    return await _enroll(request, session, "voice")


async def _enroll(request: Request, session: auth.Session, modality: str):
    pid = _actor(session)
    result = await enroll_upload(request, session.user, pid, modality, session)
    person = actions.person_view(service(request), pid)
    return render(request, "enrolled.html", session, result=result, modality=modality, person=person)


@router.post("/me/consent")
def me_consent(request: Request, session: Sess, scope: Annotated[str, limits.form(limits.SCOPES_TEXT_MAX)],
               decision: Annotated[str, limits.form(limits.WORD_MAX)],
               csrf: Annotated[str, limits.form(limits.CODE_MAX)] = "",
               until: Annotated[str, limits.form(limits.DATE_MAX)] = "",
               note: Annotated[str, limits.form(limits.NOTE_MAX)] = ""):
    pid = _actor(session)
    check_csrf(request, session, csrf)
    scopes = [s for s in scope.replace(",", " ").split() if s]
    kwargs = {"allow": scopes} if decision == "allow" else {"deny": scopes} if decision == "deny" else {"forget": scopes}
    actions.consent(service(request), pid, until=until if decision == "allow" else None, note=note,
                    by=session.user.id, **kwargs)
    return RedirectResponse("/me?saved=consent#consent", status_code=303)  # the page then says it was saved


@router.get("/me/found")
def me_found(request: Request, session: Sess):
    pid = _actor(session)
    svc = service(request)
    found, decided = actions.found_view(svc, pid), {}
    for jid in {x["scan"] for x in found}:  # the actor sees their own answers, never the auditor's notes
        decided[jid] = actions.reviews(svc, jid)
    answers = {(x["scan"], x["finding"]["n"]): decided[x["scan"]].get(x["finding"]["n"], {}).get("answers", {})
               .get(pid) for x in found}
    new = actions.mark_new([x["finding"] for x in found], svc.accounts.last_visit(session.user.id))
    svc.accounts.visited(session.user.id, time.time())  # the next visit's "new" starts from now
    return render(request, "found.html", session, pid=pid, found=found, answers=answers, new=new)


@router.post("/me/found/{jid}/{n}/answer")
def me_found_answer(request: Request, session: Sess, jid: limits.JobId, n: int,
                    answer: Annotated[str, limits.form(limits.WORD_MAX)],
                    csrf: Annotated[str, limits.form(limits.CODE_MAX)] = "",
                    note: Annotated[str, limits.form(limits.REVIEW_NOTE_MAX)] = ""):
    pid = _actor(session)
    if not (jid.isalnum() and service(request).accounts.names_person(jid, n, pid)):
        raise HTTPException(404, "not found")
    check_csrf(request, session, csrf)
    if actions.answer(service(request), jid, n, pid, answer, note, session.user.id) is None:
        raise HTTPException(404, "not found")
    return RedirectResponse(f"/me/found#f-{jid}-{n}", status_code=303)


@router.get("/me/found/{jid}/{n}")
def me_found_picture(request: Request, session: Sess, jid: limits.JobId, n: int):
    pid = _actor(session)
    if not (jid.isalnum() and service(request).accounts.names_person(jid, n, pid)):
        raise HTTPException(404, "not found")
    return picture_file(request, jid, n)


@router.get("/me/reference")
def me_reference(request: Request, session: Sess):
    jpeg = actions.reference(service(request), _actor(session))
    if not jpeg:
        raise HTTPException(404, "no reference crop")
    return Response(jpeg, media_type="image/jpeg")


@router.get("/me/export")
def me_export(request: Request, session: Sess):
    pid = _actor(session)
    if actions.person_view(service(request), pid) is None:
        raise HTTPException(404, "nothing is stored about you yet")
    data = actions.export(service(request), pid, {"id": session.user.id, "role": session.user.role})
    return Response(json.dumps(data, indent=1), media_type="application/json",
                    headers={"Content-Disposition": f'attachment; filename="likeness-{pid}.json"'})


@router.get("/me/withdraw")
def me_withdraw_page(request: Request, session: Sess):
    pid = _actor(session)
    return render(request, "withdraw.html", session, pid=pid, person=actions.person_view(service(request), pid))


@router.post("/me/withdraw")
def me_withdraw(request: Request, session: Sess, csrf: Annotated[str, limits.form(limits.CODE_MAX)] = "",
                confirm: Annotated[str, limits.form(limits.ID_MAX)] = ""):
    pid = _actor(session)
    check_csrf(request, session, csrf)
    if confirm != pid:
        return render(request, "withdraw.html", session, pid=pid, status=400,
                      person=actions.person_view(service(request), pid), error=f"Type {pid} to confirm.")
    if actions.person_view(service(request), pid) is None:
        return render(request, "withdrawn.html", session, pid=pid, vectors=0)
    return render(request, "withdrawn.html", session, pid=pid, vectors=actions.remove(service(request), pid,
                                                                                    by=session.user.id))


# Auditor pages
@router.get("/scans")
def scans(request: Request, session: Sess):
    return render(request, "scans.html", session, jobs=jobs_for(request, session.user))


@router.post("/scans")
async def scans_post(request: Request, session: Sess):
    jid = await scan_upload(request, session.user, session)
    return RedirectResponse(f"/scans/{jid}", status_code=303)


@router.get("/scans/{jid}")
def scan_page(request: Request, session: Sess, jid: limits.JobId):
    job = job_for(request, session.user, jid)
    rows = actions.findings(service(request), job.id) if job.status == "done" else None
    names = {i["path"]: i["name"] for i in job.inputs}
    decided = actions.reviews(service(request), job.id) if rows else {}
    return render(request, "scan.html", session, job=job, rows=rows, names=names, reviews=decided)


@router.post("/scans/{jid}/findings/{n}/review")
def scan_review(request: Request, session: Sess, jid: limits.JobId, n: int,
                state: Annotated[str, limits.form(limits.WORD_MAX)],
                csrf: Annotated[str, limits.form(limits.CODE_MAX)] = "",
                note: Annotated[str, limits.form(limits.REVIEW_NOTE_MAX)] = ""):
    job = job_for(request, session.user, jid)
    require(session.user, "scan.review", owner=job.owner)
    check_csrf(request, session, csrf)
    if actions.review(service(request), job.id, n, state, note, session.user.id) is None:
        raise HTTPException(404, "no such finding")
    return RedirectResponse(f"/scans/{job.id}#f{n}", status_code=303)


@router.get("/reviews")
def reviews_page(request: Request, session: Sess):
    require(session.user, "reviews.summary", hide=False)
    return render(request, "reviews.html", session, people=actions.review_summary(service(request)))


@router.get("/scans/{jid}/report")
def scan_report(request: Request, session: Sess, jid: limits.JobId):
    return report_file(request, job_for(request, session.user, jid))


@router.get("/scans/{jid}/findings.json")
def scan_findings(request: Request, session: Sess, jid: limits.JobId, reviews: bool = False):
    """The findings as JSON for a signed-in browser (the API wants a token; this is the same answer)."""
    return findings_json(request, job_for(request, session.user, jid), reviews)


@router.get("/scans/{jid}/picture/{n}")
def scan_picture(request: Request, session: Sess, jid: limits.JobId, n: int):
    return picture_file(request, job_for(request, session.user, jid).id, n)


@router.get("/people")
def people(request: Request, session: Sess):
    require(session.user, "people.list", hide=False)
    return render(request, "people.html", session, people=actions.people_view(service(request)))


# Admin pages
@router.get("/admin")
def admin(request: Request, session: Sess):
    require(session.user, "admin", hide=False)
    return render(request, "admin.html", session, users=service(request).accounts.users())


@router.post("/admin/invites")
def admin_invite(request: Request, session: Sess, role: Annotated[str, limits.form(limits.WORD_MAX)],
                 csrf: Annotated[str, limits.form(limits.CODE_MAX)] = "",
                 person: Annotated[str, limits.form(limits.ID_MAX)] = "", hours: Annotated[float, Form()] = 72.0):
    require(session.user, "admin", hide=False)
    check_csrf(request, session, csrf)
    svc = service(request)
    code = auth.new_invite(svc.accounts, session.user, role, person.strip() or None, min(max(hours, 0.1), 720))
    return render(request, "admin.html", session, users=svc.accounts.users(),
                  invite_url=str(request.url_for("register_page", code=code)), invite_role=role, invite_person=person)


# Account lifecycle: delete, a new password, a new API token; the secrets are shown once, on the answer.
def _admin_post(request: Request, session: auth.Session, csrf: str) -> None:
    require(session.user, "admin", hide=False)
    check_csrf(request, session, csrf)


def _accounts_page(request: Request, session: auth.Session, status: int = 200, **context):
    return render(request, "admin.html", session, status=status, users=service(request).accounts.users(), **context)


@router.post("/admin/users/{uid}/delete")
def admin_delete_user(request: Request, session: Sess, uid: limits.AccountId,
                      csrf: Annotated[str, limits.form(limits.CODE_MAX)] = ""):
    _admin_post(request, session, csrf)
    try:
        auth.delete_account(service(request).accounts, uid, by=session.user.id)
    except AuditError as exc:
        return _accounts_page(request, session, 400, error=str(exc))
    if uid == session.user.id:  # the admin deleted their own account: the session went with it
        return RedirectResponse("/login", status_code=303)
    return _accounts_page(request, session, done=f"Account {uid} deleted; its sessions and token no longer work.")


@router.post("/admin/users/{uid}/password")
def admin_reset_password(request: Request, session: Sess, uid: limits.AccountId,
                         csrf: Annotated[str, limits.form(limits.CODE_MAX)] = ""):
    _admin_post(request, session, csrf)
    try:
        password = auth.reset_password(service(request).accounts, uid, by=session.user.id)
    except AuditError as exc:
        return _accounts_page(request, session, 400, error=str(exc))
    if uid == session.user.id:
        return RedirectResponse("/login", status_code=303)  # their own sessions ended too; the CLI shows it
    return _accounts_page(request, session, done=f"New one-time password for {uid} (shown only now):",
                          secret=password)


@router.post("/admin/users/{uid}/token")
def admin_rotate_token(request: Request, session: Sess, uid: limits.AccountId,
                       csrf: Annotated[str, limits.form(limits.CODE_MAX)] = ""):
    _admin_post(request, session, csrf)
    try:
        token = auth.rotate_token(service(request).accounts, uid, by=session.user.id)
    except AuditError as exc:
        return _accounts_page(request, session, 400, error=str(exc))
    return _accounts_page(request, session, done=f"New API token for {uid} (shown only now; the old one is "
                          "refused):", secret=token)

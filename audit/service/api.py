"""REST API under /api/v1: Bearer tokens, JSON in and out. Routes only; the library does the work."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, Field, ValidationError

from . import actions, auth
from .accounts import User
from .limits import (
    DATE_MAX,
    ID_MAX,
    NOTE_MAX,
    PATH_MAX,
    PATHS_MAX,
    REVIEW_NOTE_MAX,
    SCOPES_MAX,
    WORD_MAX,
    JobId,
    PersonId,
)
from .web import (
    api_user,
    enroll_upload,
    findings_json,
    job_for,
    jobs_for,
    picture_file,
    report_file,
    require,
    scan_upload,
    service,
)

router = APIRouter(prefix="/api/v1")
Caller = Annotated[User, Depends(api_user)]


Word = Annotated[str, Field(max_length=WORD_MAX)]
Scopes = Annotated[list[Word], Field(default_factory=list, max_length=SCOPES_MAX)]


class ConsentBody(BaseModel):
    """Consent decisions for one person."""

    allow: Scopes
    deny: Scopes
    until: str | None = Field(None, max_length=DATE_MAX)
    note: str | None = Field(None, max_length=NOTE_MAX)
    forget: Scopes


class InviteBody(BaseModel):
    """An invitation to open an account."""

    role: Word
    person: str | None = Field(None, max_length=ID_MAX)
    hours: float = Field(72.0, gt=0, le=24 * 30)


class ReviewBody(BaseModel):
    """A reviewer's decision on a finding: open, confirmed, dismissed or escalated, and why."""

    state: str = Field(max_length=WORD_MAX)
    note: str | None = Field(None, max_length=REVIEW_NOTE_MAX)


class AnswerBody(BaseModel):
    """The named person's answer to a finding: "me" (this is me) or "not-me"."""

    answer: str = Field(max_length=WORD_MAX)
    note: str | None = Field(None, max_length=REVIEW_NOTE_MAX)


class PathsBody(BaseModel):
    """A scan of paths inside the server's scan roots."""

    paths: list[Annotated[str, Field(max_length=PATH_MAX)]] = Field(max_length=PATHS_MAX)
    use: str | None = Field(None, max_length=WORD_MAX)


@router.get("/health", tags=["service"])
async def health() -> dict:
    """Liveness: 200 {"status": "ok"}; no authentication."""
    return {"status": "ok"}


@router.get("/me", tags=["service"])
def me(user: Caller) -> dict:
    """The calling account."""
    return {"id": user.id, "role": user.role, "person": user.person}


@router.post("/scans", status_code=202, tags=["scans"], openapi_extra={"requestBody": {"content": {
    "multipart/form-data": {"schema": {"type": "object", "properties": {
        "files": {"type": "array", "items": {"type": "string", "format": "binary"}}, "use": {"type": "string"}}}},
    "application/json": {"schema": {"type": "object", "properties": {
        "paths": {"type": "array", "items": {"type": "string"}}, "use": {"type": "string"}}}}}}})
async def create_scan(request: Request, user: Caller) -> dict:
    """Queue a scan of uploaded media (multipart `files`) or of paths inside the server's scan roots (JSON)."""
    if not request.headers.get("content-type", "").startswith("application/json"):
        return {"id": await scan_upload(request, user)}
    require(user, "scan.create", hide=False)
    try:
        body = PathsBody.model_validate_json(await request.body())
    except ValidationError as exc:  # malformed, too deep or too long: 422, never a 500
        raise RequestValidationError(exc.errors(include_input=False)) from None
    return {"id": await run_in_threadpool(service(request).submit_paths, user.id, body.paths, body.use)}

@router.get("/scans", tags=["scans"])
def list_scans(request: Request, user: Caller) -> list[dict]:
    """Scans this account submitted (an admin sees all)."""
    return [actions.job_view(j) for j in jobs_for(request, user)]


@router.get("/scans/{jid}", tags=["scans"])
def get_scan(request: Request, jid: JobId, user: Caller) -> dict:
    """Status, progress and summary of a scan."""
    return actions.job_view(job_for(request, user, jid))


@router.get("/scans/{jid}/findings", tags=["scans"])
def get_findings(request: Request, jid: JobId, user: Caller, reviews: bool = False) -> list[dict]:
    """The findings of a finished scan, in the CLI's JSON format; ?reviews=true adds the review columns (finding_id,
    review_state, reviewer, review_note, reviewed, person_answers), as `review --out` writes them."""
    return findings_json(request, job_for(request, user, jid), reviews)


@router.get("/scans/{jid}/report", tags=["scans"], response_class=FileResponse)
def get_report(request: Request, jid: JobId, user: Caller):
    """The HTML evidence report of a finished scan."""
    return report_file(request, job_for(request, user, jid))


@router.get("/scans/{jid}/findings/{n}/picture", tags=["scans"], response_class=FileResponse)
def get_picture(request: Request, jid: JobId, n: int, user: Caller):
    """The face crop (or waveform) of finding n, cut from the scanned file."""
    return picture_file(request, job_for(request, user, jid).id, n)


@router.get("/scans/{jid}/reviews", tags=["reviews"])
def get_reviews(request: Request, jid: JobId, user: Caller) -> dict[int, dict]:
    """Finding number -> its review: state, reviewer, note, time, and the named people's answers."""
    return actions.reviews(service(request), job_for(request, user, jid).id)


@router.put("/scans/{jid}/findings/{n}/review", tags=["reviews"])
def put_review(request: Request, jid: JobId, n: int, body: ReviewBody, user: Caller) -> dict:
    """Set finding n's review state (open, confirmed, dismissed, escalated) with a note: the scan's auditor or an
    admin. Logged."""
    job = job_for(request, user, jid)
    require(user, "scan.review", owner=job.owner)
    decision = actions.review(service(request), job.id, n, body.state, body.note, user.id)
    if decision is None:
        raise HTTPException(404, "no such finding")
    return decision


@router.put("/me/found/{jid}/{n}", tags=["reviews"])
def put_answer(request: Request, jid: JobId, n: int, body: AnswerBody, user: Caller) -> dict:
    """An actor's own answer to a finding that names them: "me" (this is me) or "not-me"; logged."""
    if user.role != "actor":
        raise HTTPException(403, "only the person a finding names can answer it")
    pid = user.person
    named = jid.isalnum() and service(request).accounts.names_person(jid, n, pid)
    decision = actions.answer(service(request), jid, n, pid, body.answer, body.note, user.id) if named else None
    if decision is None:
        raise HTTPException(404, "not found")
    return decision


@router.get("/reviews/summary", tags=["reviews"])
def get_review_summary(request: Request, user: Caller) -> list[dict]:
    """Per person: findings they answered "not me" against "me", with the score ranges (auditors, admins)."""
    require(user, "reviews.summary", hide=False)
    return actions.review_summary(service(request))


@router.get("/people", tags=["people"])
def list_people(request: Request, user: Caller) -> list[dict]:
    """Registered people: ids, names, sample counts, consent; never vectors or crops."""
    require(user, "people.list", hide=False)
    return actions.people_view(service(request))


def _person(request: Request, user: User, pid: str, action: str, must_exist: bool = True) -> str:
    require(user, action, person=pid)
    if must_exist and actions.person_view(service(request), pid) is None:
        raise HTTPException(404, "not found")
    return pid


@router.get("/people/{pid}", tags=["people"])
def get_person(request: Request, pid: PersonId, user: Caller) -> dict:
    """One person (admin, or the actor tied to them); anyone else gets 404."""
    require(user, "person.read", person=pid)
    view = actions.person_view(service(request), pid)
    if view is None:
        raise HTTPException(404, "not found")
    return view


@router.get("/people/{pid}/reference", tags=["people"], response_class=FileResponse)
def get_reference(request: Request, pid: PersonId, user: Caller):
    """The person's enrolled reference crop (admin, or the actor tied to them)."""
    _person(request, user, pid, "person.read")
    jpeg = actions.reference(service(request), pid)
    if not jpeg:
        raise HTTPException(404, "no reference crop")
    return Response(jpeg, media_type="image/jpeg")


@router.get("/people/{pid}/export", tags=["people"])
def export_person(request: Request, pid: PersonId, user: Caller) -> dict:
    """Everything stored about the person, vectors included (admin, or the actor tied to them)."""
    _person(request, user, pid, "person.read")
    return actions.export(service(request), pid, {"id": user.id, "role": user.role})


UPLOAD_DOC = {"requestBody": {"content": {"multipart/form-data": {"schema": {"type": "object", "properties": {
    "files": {"type": "array", "items": {"type": "string", "format": "binary"}}}}}}}}


@router.post("/people/{pid}/faces", tags=["people"], openapi_extra=UPLOAD_DOC)
async def enroll_faces(request: Request, pid: PersonId, user: Caller) -> dict:
    """Enroll face photos (or short videos): per-file accepted or refused and why."""
    return await enroll_upload(request, user, pid, "face")


@router.post("/people/{pid}/voices", tags=["people"], openapi_extra=UPLOAD_DOC)
async def enroll_voices(request: Request, pid: PersonId, user: Caller) -> dict:
    """Enroll voice recordings (about 10 s of speech or more in total)."""
    return await enroll_upload(request, user, pid, "voice")


@router.put("/people/{pid}/consent", tags=["people"])
def put_consent(request: Request, pid: PersonId, body: ConsentBody, user: Caller) -> dict:
    """Record consent decisions: allow, deny (scopes), until (inclusive date), note, forget."""
    _person(request, user, pid, "person.consent")
    return actions.consent(service(request), pid, body.allow, body.deny, body.until, body.note, body.forget,
                           by=user.id)


@router.delete("/people/{pid}", tags=["people"])
def delete_person(request: Request, pid: PersonId, user: Caller) -> dict:
    """Withdraw: verified deletion of every sample, vector and crop of the person."""
    _person(request, user, pid, "person.remove")
    return {"person": pid, "vectors_removed": actions.remove(service(request), pid, by=user.id)}


@router.post("/invites", tags=["service"])
def create_invite(request: Request, body: InviteBody, user: Caller) -> JSONResponse:
    """A single-use, expiring link to open an account (admin)."""
    require(user, "admin", hide=False)
    code = auth.new_invite(service(request).accounts, user, body.role, body.person, body.hours)
    return JSONResponse({"url": str(request.url_for("register_page", code=code))}, status_code=201)

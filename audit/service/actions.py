"""Calls into the library shared by the REST API and the pages; translation only, the library decides."""

from __future__ import annotations

import base64
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .. import notify
from ..enroll import enroll_faces, enroll_voices
from ..errors import AuditError, UnknownPerson
from ..findings import finding_id
from ..store.archive import Archive
from ..store.review import answer as answer_finding
from ..store.review import as_dict, decisions, of_findings, summary, with_reviews
from ..store.review import review as review_finding
from . import forget, jobs
from .accounts import Job
from .state import Service
from .words import web_words


def _view(store, person) -> dict:
    """A person as JSON, each consent record with its status today."""
    out = asdict(person)
    for scope, record in out["consent"].items():
        record["status"] = store.consent_status(person.id, scope)
    return out


def person_view(svc: Service, pid: str) -> dict | None:
    """A registered person: id, name, created, sample counts, consent (never vectors); None if unknown."""
    try:
        return svc.gate.run(lambda s: _view(s, s.person(pid)))
    except UnknownPerson:
        return None


def people_view(svc: Service) -> list[dict]:
    """Everyone registered (ids, names, counts, consent)."""
    return svc.gate.run(lambda s: [_view(s, p) for p in s.people()])


def enroll(svc: Service, pid: str, modality: str, files: list, name: str | None = None, by: str | None = None) -> dict:
    """Enroll uploaded photos or recordings; one row per file: enrolled, already enrolled, or refused and why."""
    with svc.uploaded(files) as saved:
        shown = {str(s.path): s.name for s in saved}
        hide = (str(saved[0].path.parent),) if saved else ()
        paths = [str(s.path) for s in saved]
        try:
            if modality == "face":
                result = svc.gate.run_as(by, lambda s: enroll_faces(s, pid, paths, name=name))
            else:
                result = svc.gate.run_as(by, lambda s: enroll_voices(s, pid, paths, name=name))
        except AuditError as exc:  # nothing enrolled: every file refused, each with its reason where one is named
            overall = web_words(exc, modality, hide)
            reasons = {p.path: web_words(p, modality, hide) for p in exc.problems}
            return {"person": pid, "added": 0, "already": 0, "error": overall, "files": [
                {"name": n, "status": "refused", "reason": reasons.get(p) or overall} for p, n in shown.items()]}
    notes = {a.path: ("already" if a.detail == "already enrolled" else "accepted", a.detail) for a in result.accepted}
    notes.update({s.path: ("refused", web_words(s.error or AuditError(s.reason), modality, hide))
                  for s in result.skipped})
    rows = [{"name": n, "status": notes.get(p, ("refused", "not read"))[0], "reason": notes.get(p, ("", ""))[1]}
            for p, n in shown.items()]
    out = {"person": pid, "added": result.added, "already": result.already, "files": rows}
    if result.added:
        out["found_before"] = retro_match(svc, pid, by)
    return out


def _where(f: dict) -> tuple:
    """Where a finding is: the file's content, modality, box and time (the same face found twice is one)."""
    return f.get("sha256"), f.get("modality"), tuple(f.get("bbox") or ()), f.get("start")


def retro_match(svc: Service, pid: str, by: str | None) -> dict | None:
    """The new templates searched against the embedding archive of earlier scans; what is found is kept as a
    finished job naming the person, so their "Where I was found" shows it at once. None: nothing found."""
    import secrets

    from ..report.record import write_record
    from ..scan.rematch import announce, found_before

    record = svc.gate.run(lambda s: found_before(s, pid))
    if record is not None:  # what the portal already shows (an earlier scan or retro-match) is not repeated
        shown = {_where(f) for _, f in found(svc, pid)}
        kept = [i for i, f in enumerate(record.findings) if _where(f) not in shown]
        record.findings = [record.findings[i] for i in kept]
        record.pictures = [record.pictures[i] for i in kept]
    if record is None or not record.findings:
        return None
    jid = secrets.token_hex(8)
    folder = svc.accounts.job_dir(jid)
    record.run.update(scan=jid, submitted_by=by)
    cipher = svc.gate.run(lambda s: s.cipher)
    write_record(record, folder / jobs.FINDINGS, cipher)
    record.references = {}  # as a scan's report: faces from the audited media only
    write_record(record, folder / jobs.REPORT)
    named = jobs.save_crops(record, folder / jobs.CROPS)
    summary = {"files": record.run["files_scanned"], "findings": len(record.findings), "rematch": True}
    svc.accounts.add_finished_job(jid, by or "system", summary, named,
                                  f"retro-match of {pid} against the embedding archive at enrolment")
    announce(svc.cfg.home, record, scan=jid, owner=by, deliver=True)
    return {"scan": jid, "findings": len(record.findings)}


def consent(svc: Service, pid: str, allow=(), deny=(), until=None, note=None, forget=(), by: str | None = None) -> dict:
    """Record consent decisions (by: the web account, for the audit log); returns the person's consent table."""
    return svc.gate.run_as(by, lambda s: s.consent(pid, allow=list(allow), deny=list(deny), until=until or None,
                                            note=note or None, forget=list(forget)))


def remove(svc: Service, pid: str, by: str | None = None) -> int:
    """Verified deletion of every sample, vector and crop of a person, then of what the service's scans kept about
    them (findings, crops, reports: forget.py, which the store's erasure runs); returns the vectors removed."""
    return svc.gate.run_as(by, lambda s: s.remove(pid))


def reference(svc: Service, pid: str) -> bytes | None:
    """The person's enrolled reference crop (JPEG)."""
    return svc.gate.run(lambda s: s.reference(pid))


def export(svc: Service, pid: str, account: dict) -> dict:
    """Everything stored about a person: record, consent, samples with their vectors, log entries, findings."""
    def collect(s):
        samples = []
        for modality, model in s.models():
            ids, vecs, owners = s.vectors(modality, model)
            for vid, vec, owner in zip(np.asarray(ids).tolist(), vecs, owners):
                if owner == pid:
                    samples.append({"id": vid, "modality": modality, "model": model,
                                    "vector": [round(float(x), 6) for x in vec]})
        crop = s.reference(pid)
        log = [_own_entry(e, pid, s.sealer.pseudonym(pid)) for e in s.log.about(person=pid)]
        # decisions on findings naming them: states and times, and their own answers with their notes (not the
        # reviewers' notes or names, nor the other people a composite names)
        reviews = [{"scan": d.scan, "finding": d.finding, "state": d.state, "time": d.time,
                    "answered_by_you": d.who == pid, "note": d.note if d.who == pid else None}
                   for d in decisions(s) if d.who == pid or (not d.who and pid in d.people)]
        archived = Archive(s.home, s.cipher).about(pid)  # archive rows the scans attributed to them
        return {"person": _view(s, s.person(pid)), "samples": samples, "log": log, "reviews": reviews,
                "archive": archived,
                "reference_jpeg_base64": base64.b64encode(crop).decode() if crop else None}

    data = svc.gate.run(collect)
    data["account"] = account
    data["found_in"] = [{"scan": j, "finding": f} for j, f in found(svc, pid)]
    data["webhook_deliveries"] = notify.about(svc.cfg.home, pid, svc.gate.run(lambda s: s.cipher))
    return data


def _own_entry(entry: dict, pid: str, pseudonym: str | None) -> dict:
    """A log entry in a person's export: others it lists (a bulk enrolment's people) as "another registered person"."""
    details = entry.get("details")
    if not isinstance(details, dict) or not isinstance(details.get("people"), list):
        return entry
    own = {pid, pseudonym}
    people = [p if p in own else forget.ANOTHER for p in details["people"]]
    return {**entry, "details": {**details, "people": people}}


def found(svc: Service, pid: str) -> list[tuple[str, dict]]:
    """(scan id, finding) of every finished scan finding that names the person, as that person may see it."""
    out, cache, finished = [], {}, {}
    for jid, n in svc.accounts.found(pid):
        if jid not in cache:
            cache[jid] = findings(svc, jid) or []
            job = svc.accounts.job(jid)
            finished[jid] = job.finished if job else None
        if n < len(cache[jid]) and forget.names(cache[jid][n], pid):
            out.append((jid, dict(forget.for_actor(cache[jid][n], pid), n=n, found_at=finished[jid])))
    return out


def found_view(svc: Service, pid: str) -> list[dict]:
    """Where the person was found, for their page: each finding with its scan's use, date and the file's name."""
    out = []
    for jid, f in found(svc, pid):
        job = svc.accounts.job(jid)
        shown = {i["path"]: i["name"] for i in job.inputs} if job else {}
        out.append({"scan": jid, "finding": f, "use": job.use if job else None,
                    "when": (job.finished or job.created) if job else None,
                    "file": shown.get(f.get("path")) or Path(str(f.get("path") or "")).name or "not recorded"})
    return out


def mark_new(rows: list[dict], since: float | None) -> int:
    """Flag the findings (as found() gives them) found after `since` (the account's last visit; None: never
    visited, all new); returns how many are new."""
    for row in rows:
        row["new"] = since is None or (row.get("found_at") or 0) > since
    return sum(row["new"] for row in rows)


def findings(svc: Service, jid: str) -> list[dict] | None:
    """A finished scan's findings in the CLI's JSON format."""
    path = svc.accounts.job_dir(jid) / jobs.FINDINGS
    return json.loads(path.read_text()) if path.is_file() else None


def job_view(job: Job) -> dict:
    """A scan's status, progress and summary."""
    return {"id": job.id, "owner": job.owner, "status": job.status, "use": job.use,
            "created": job.created, "started": job.started, "finished": job.finished, "attempts": job.attempts,
            "progress": {"files_done": job.done_files, "files_total": job.total_files},
            "summary": job.summary, "error": job.error if job.status == "failed" else None,
            "note": job.error if job.status != "failed" else None,  # e.g. resumed after a restart
            "inputs": [{"file": Path(i["path"]).name, "name": i["name"]} for i in job.inputs],
            "watch": next((i["watch"] for i in job.inputs if i.get("watch")), None)}  # from a watched folder


def picture(svc: Service, jid: str, n: int) -> Path | None:
    """The saved evidence picture of finding n of a scan."""
    return jobs.crop_path(svc.accounts.job_dir(jid), n)


def report(svc: Service, jid: str) -> Path | None:
    """A finished scan's HTML evidence report."""
    path = svc.accounts.job_dir(jid) / jobs.REPORT
    return path if path.is_file() else None


def reviewed_report(svc: Service, jid: str) -> str | None:
    """The report rendered again with the review decisions on the scan's findings; None while there are none."""
    from ..report import read_record
    from ..report.html import render_record

    path = svc.accounts.job_dir(jid) / jobs.FINDINGS

    def render(s):
        if not path.is_file() or not decisions(s, jid):
            return None
        return render_record(with_reviews(read_record(path, s.cipher), s))

    return svc.gate.run(render)


# Review decisions (store/review.py): an auditor's state on a finding of their scan, the named person's own answer.
def review(svc: Service, jid: str, n: int, state: str, note: str | None, by: str) -> dict | None:
    """Set finding n of a scan to a review state (open, confirmed, dismissed, escalated); None: no such finding."""
    row = _finding(svc, jid, n)
    if row is None:
        return None
    return svc.gate.run_as(by, lambda s: as_dict(review_finding(s, row, state, by, note or None, scan=jid)))


def answer(svc: Service, jid: str, n: int, pid: str, said: str, note: str | None, by: str) -> dict | None:
    """The named person's answer to finding n of a scan ("me" or "not-me"); None: no such finding names them."""
    row = _finding(svc, jid, n)
    if row is None or not forget.names(row, pid):
        return None
    out = svc.gate.run_as(by, lambda s: as_dict(answer_finding(s, row, pid, said, by, note or None, scan=jid)))
    out["people"] = [pid]  # a composite's other people are not the actor's to see (forget.for_actor)
    return out


def reviews(svc: Service, jid: str) -> dict[int, dict]:
    """Finding number -> what was decided on it (state, reviewer, note, time, answers) for a finished scan."""
    rows = findings(svc, jid) or []
    decided = svc.gate.run(lambda s: of_findings(s, rows, jid))
    return {n: decided.get(finding_id(r)) or {"state": "open", "answers": {}}
            for n, r in enumerate(rows) if r.get("kind") in ("match", "composite")}


def with_review_columns(svc: Service, jid: str, rows: list[dict]) -> list[dict]:
    """A scan's findings with their review columns (report/reviews.py), as a reviewed export carries them."""
    from ..report.reviews import with_columns

    return with_columns(rows, svc.gate.run(lambda s: of_findings(s, rows, jid)))


def review_summary(svc: Service) -> list[dict]:
    """Per person: findings they answered "not me" and "me", with the score ranges."""
    return svc.gate.run(lambda s: [as_dict(p) for p in summary(s)])


def _finding(svc: Service, jid: str, n: int) -> dict | None:
    rows = findings(svc, jid)
    return rows[n] if rows is not None and 0 <= n < len(rows) else None

"""What the service's own files hold about a person, erased when the person withdraws; what actors see of others.

The store erases its own copies (`Store.remove`); the scans the service ran keep findings, face crops and reports in
their job folders and `service.sqlite`. `forget_person` redacts those: every door that removes a person (the web
pages, the API, the CLI's `remove`) calls it after the store's erasure. It needs only the store folder (and the
store's cipher when the store is encrypted), so the CLI can call it without running the service.
"""

from __future__ import annotations

import os
from pathlib import Path

from .accounts import ACCOUNTS_FILE, CROPS, FINDINGS, JOBS_DIR, REPORT, Accounts

WITHDRAWN = "a withdrawn person"
ANOTHER = "another registered person"


def names(row: dict, pid: str) -> bool:
    """Whether a finding names the person (as the match, or as a composite's contributor)."""
    return row.get("person") == pid or any(
        isinstance(c, dict) and c.get("person") == pid for c in row.get("contributors") or [])


def redact(record, gone: set[str]) -> list[int]:
    """Redact, in an evidence record, every finding that names one of `gone`; returns the findings changed.

    The row stays (its position numbers the job's crops and the people found), but no longer says who, and its
    face crop goes: the crop is the withdrawn person's likeness.
    """
    changed = []
    for n, row in enumerate(record.findings):
        if not any(names(row, p) for p in gone):
            continue
        if row.get("person") in gone:
            row.update(person=None, name=WITHDRAWN, consent=None)
        for c in row.get("contributors") or []:
            if isinstance(c, dict) and c.get("person") in gone:
                c.update(person=None, name=WITHDRAWN, consent=None)
        record.pictures[n] = None
        changed.append(n)
    for p in gone:
        record.references.pop(p, None)
    return changed


def forget_person(home: str | os.PathLike, pid: str, cipher=None) -> int:
    """Redact the person from every scan the service kept (findings, report, crops, the people-found table);
    returns the scans changed. Nothing to do when the store never ran the service."""
    home = Path(home)
    if not (home / ACCOUNTS_FILE).exists():
        return 0
    accounts = Accounts(home)
    try:
        jobs = sorted({jid for jid, _ in accounts.found(pid, done_only=False)})
        for jid in jobs:
            redact_job(home / JOBS_DIR / jid, {pid}, cipher)
        accounts.forget_person(pid)
    finally:
        accounts.close()
    return len(jobs)


def redact_job(folder: Path, gone: set[str], cipher=None) -> None:
    """Redact `gone` from one job folder: its findings (with their sealed pictures), report and saved crops."""
    from ..report import read_record, write_record

    findings = folder / FINDINGS
    if not findings.is_file():
        return
    record = read_record(findings, cipher)
    changed = redact(record, gone)
    write_record(record, findings, cipher)
    write_record(record, folder / REPORT)
    for n in changed:
        for suffix in (".jpg", ".png"):
            (folder / CROPS / f"{n}{suffix}").unlink(missing_ok=True)


def for_actor(row: dict, pid: str) -> dict:
    """A finding as the actor it names may see it: other people only as "another registered person" (no id, name or
    consent decision), the file by its name only, never a server path."""
    row = dict(row)
    path = str(row.get("path") or "")
    row["path"] = os.path.basename(path) if os.path.isabs(path) else path
    others = False
    contributors = []
    for c in row.get("contributors") or []:
        if isinstance(c, dict) and c.get("person") != pid:
            others = True
            c = {k: v for k, v in c.items() if k not in ("person", "name", "consent")} | {"person": None,
                                                                                           "name": ANOTHER}
        contributors.append(c)
    if row.get("contributors") is not None:
        row["contributors"] = contributors
    if others:  # a composite's consent is the worst of its contributors': the actor's own only
        own = [c for c in row.get("contributors") or [] if isinstance(c, dict) and c.get("person") == pid]
        row["consent"] = own[0].get("consent") if own else None
    return row

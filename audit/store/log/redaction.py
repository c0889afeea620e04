"""Redaction: after `remove`, the audit log keeps no personal data about the person, only a keyed pseudonym.

Retention rule (docs/privacy.md, "Privacy after withdrawal"): the removal entry and the fact that earlier events happened stay
(a regulator may ask when a template was held and deleted); what identifies the person goes. In every earlier entry
about them the id becomes the pseudonym (seals.Sealer.pseudonym), and consent notes and enrolment file hashes are
dropped; in scan entries their id becomes the pseudonym and the hash of the file they were found in is dropped.
The remove entry records, for each entry it redacted, the hash of the redacted details, so the chain still
verifies (auditlog.py) and the redaction itself is tamper-evident.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .auditlog import details_hash, erasures

if TYPE_CHECKING:
    from ..registry import Registry
    from .auditlog import AuditLog
    from .seals import Sealer

# Free text, enrolment file hashes and a reviewed finding's id (a hash of the file and the person): personal data,
# not needed after removal.
DROPPED = ("note", "sources_sha256", "finding")


def redact(details: dict, pid: str, pseudonym: str, by: int) -> dict | None:
    """The details of one entry with the person erased, or None when the entry does not mention them."""
    if not isinstance(details, dict):
        return None
    out = dict(details)
    changed = False
    if out.get("person") == pid:
        out["person"] = pseudonym
        for key in DROPPED:
            out.pop(key, None)
        changed = True
    people = out.get("people")
    if isinstance(people, dict) and pid in people:
        out["people"] = dict(sorted({(pseudonym if k == pid else k): v for k, v in people.items()}.items()))
        changed = True
    elif isinstance(people, list) and pid in people:  # a bulk enrolment's batch (store.add_people)
        out["people"] = [pseudonym if p == pid else p for p in people]
        for key in DROPPED:  # a review decision on a finding naming several people: its note may be about them
            out.pop(key, None)
        changed = True
    matched = out.get("matched")
    if isinstance(matched, list) and any(isinstance(m, list) and len(m) > 1 and m[1] == pid for m in matched):
        out["matched"] = [[None, pseudonym, *m[2:]] if isinstance(m, list) and len(m) > 1 and m[1] == pid else m
                          for m in matched]
        changed = True
    if not changed:
        return None
    out["redacted_by"] = by
    return out


def removed_people(details: dict, registry: Registry, sealer: Sealer) -> dict:
    """An entry (a scan's) being written now, with everyone it names who is no longer registered (removed while
    the scan ran) pseudonymised as redact() leaves them, so no removed person's id or file hash is ever written."""
    people = details.get("people") if isinstance(details, dict) else None
    gone = [p for p in (people or {})
            if registry.db.execute("SELECT 1 FROM people WHERE id=?", (p,)).fetchone() is None]
    for pid in gone:
        details = redact(details, pid, sealer.pseudonym(pid), 0) or details
        details.pop("redacted_by", None)
    return details


def plan(log: AuditLog, pid: str, pseudonym: str, by: int) -> dict[int, dict]:
    """seq -> redacted details, for every entry in the log about this person (call under the writer lock)."""
    out = {}
    for e in log.entries():
        if "details_sha256" not in e or details_hash(e.get("details")) != e["details_sha256"]:
            continue  # entries from before details hashes (cannot be redacted), or already redacted
        new = redact(e.get("details"), pid, pseudonym, by)
        if new is not None:
            out[e["seq"]] = new
    return out


def apply(log: AuditLog, sealer: Sealer) -> int:
    """Redact what the log's remove entries promise but the file still holds (a removal killed before its
    rewrite, or one whose rewrite this call makes); returns the entries rewritten. Call under the writer lock."""
    entries = log.entries()
    head = log.head()
    if head is not None and (not entries or entries[-1].get("seq") != head.get("seq")):
        entries.append(head)  # the remove entry may be staged and not yet in the file
    promised = erasures(entries)
    if not promised:
        return 0
    pseudonym_of = {}  # redacted seq -> the pseudonym of the person its remove entry erased
    for e in entries:
        if e.get("event") == "remove":
            for seq in e["details"].get("erased") or {}:
                pseudonym_of[int(seq)] = (e["details"].get("person"), e["seq"])
    changes = {}
    for e in entries:
        seq = e.get("seq")
        if seq not in promised or details_hash(e.get("details")) == promised[seq]:
            continue
        pseudonym, by = pseudonym_of[seq]
        pid = _identify(e.get("details"), pseudonym, sealer)
        new = redact(e["details"], pid, pseudonym, by) if pid else None
        if new is not None and details_hash(new) == promised[seq]:
            changes[seq] = new
    if changes:
        log.rewrite(changes)
    return len(changes)


def _identify(details: dict, pseudonym: str, sealer: Sealer) -> str | None:
    """The person id in an entry's details whose pseudonym is this one."""
    if not isinstance(details, dict):
        return None
    candidates = [details.get("person"), *(details.get("people") or {})]
    candidates += [m[1] for m in details.get("matched") or [] if isinstance(m, list) and len(m) > 1]
    for pid in candidates:
        if isinstance(pid, str) and sealer.pseudonym(pid) == pseudonym:
            return pid
    return None

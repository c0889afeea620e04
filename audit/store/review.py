"""Review decisions: a person's verdict on a finding, kept in the registry beside what it is about.

A finding is a lead until someone has looked at it. A reviewer (an operator at the CLI, an auditor or admin on the
web) sets its state: open, confirmed, dismissed or escalated, with a note. The person a finding names may answer
too: "me" (this is me) or "not-me". Decisions are keyed by the finding's stable id (findings.finding_id) within a
scan: the service's scan id, or "" for findings files reviewed at the command line.

Each row is MAC'd with the store's sealer (seals.py) so `verify`, and every read, catch a decision edited behind the
store's back; each decision is one audit log entry, written in the same transaction. Rows name everyone the finding
names, so `remove` deletes them with the person (erasure.py).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import InputError, StoreError, UnknownPerson
from ..evidence import Evidence
from ..findings import Finding, finding_id
from .log import seals
from .naming import check_id

if TYPE_CHECKING:
    from .registry import Registry

Store = Any  # a store.Store (not imported: the store imports this module's neighbours)

STATES = ("open", "confirmed", "dismissed", "escalated")  # a reviewer's decision
ANSWERS = ("me", "not-me")  # the named person's own answer
REVIEWER = ""  # the `who` of a reviewer's decision; a person's answer has their id there
NOTE_MAX, REVIEWER_MAX = 2000, 100

TABLE = """
CREATE TABLE IF NOT EXISTS reviews (
    scan TEXT NOT NULL,  -- the service's scan id; '' for findings files reviewed at the command line
    finding TEXT NOT NULL,  -- findings.finding_id
    who TEXT NOT NULL,  -- '' for the reviewer's decision; the person's id for their own answer
    state TEXT NOT NULL,  -- STATES, or ANSWERS for a person's answer
    people TEXT NOT NULL,  -- JSON list of everyone the finding names (erasure finds the rows by it)
    similarity REAL,
    reviewer TEXT NOT NULL,
    note TEXT,
    time TEXT NOT NULL,
    mac TEXT NOT NULL,
    PRIMARY KEY (scan, finding, who)
)"""
COLS = "scan, finding, who, state, people, similarity, reviewer, note, time, mac"


@dataclass
class Decision:
    """One decision on one finding: a reviewer's state, or the named person's answer (who = their id)."""

    scan: str
    finding: str
    who: str
    state: str
    people: list[str]
    similarity: float | None
    reviewer: str
    note: str | None
    time: str


@dataclass
class PersonSummary:
    """How often the people a person's findings named answered "not me" against "me", with the scores of each."""

    person: str
    not_me: int = 0
    me: int = 0
    not_me_scores: list[float] = field(default_factory=list)
    me_scores: list[float] = field(default_factory=list)

    @property
    def not_me_range(self) -> tuple[float, float] | None:
        """(lowest, highest) score of the findings the person said were not them."""
        return (min(self.not_me_scores), max(self.not_me_scores)) if self.not_me_scores else None


def _exists(db: sqlite3.Connection) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='reviews'").fetchone() is not None


def _mac(sealer: seals.Sealer, d: Decision) -> str:
    return sealer.mac(b"review", d.scan, d.finding, d.who, d.state, json.dumps(d.people), repr(d.similarity),
                      d.reviewer, d.note or "", d.time)


def named(row: dict[str, Any]) -> list[str]:
    """Everyone a finding names: its person and a composite's contributors."""
    people = [row.get("person")] + [c.get("person") for c in row.get("contributors") or [] if isinstance(c, dict)]
    return list(dict.fromkeys(p for p in people if isinstance(p, str) and p))


def _decision(row: dict | Finding, state: str, reviewer: str, note: str | None, scan: str, who: str) -> Decision:
    """A checked decision on a finding row (not yet stored)."""
    from .registry import now

    row = row.to_dict() if isinstance(row, Finding) else row
    if row.get("kind") not in ("match", "composite"):
        raise InputError(f"only a match or a composite can be reviewed, not a finding of kind '{row.get('kind')}'",
                         code="not-reviewable")
    allowed = ANSWERS if who else STATES
    if state not in allowed:
        raise InputError(f"unknown state '{state}'; use one of {', '.join(allowed)}", code="bad-state")
    reviewer = (reviewer or "").strip()
    if not reviewer or len(reviewer) > REVIEWER_MAX or any(ord(c) < 32 for c in reviewer):
        raise InputError(f"give who decides (--reviewer): 1-{REVIEWER_MAX} characters, no control characters",
                         code="bad-reviewer")
    note = (note or "").strip() or None
    if note is not None and (len(note) > NOTE_MAX or any(ord(c) < 32 and c not in "\n\t" for c in note)):
        raise InputError(f"a note is at most {NOTE_MAX} characters, without control characters", code="bad-note")
    people = named(row)
    if not people:
        raise InputError("this finding names no registered person (one withdrawn since is no longer named): "
                         "there is nothing to decide", code="names-no-one")
    if who and who not in people:
        raise InputError(f"this finding does not name {who}: only the people it names can answer it",
                         code="not-named")
    sim = row.get("similarity")
    return Decision(str(scan or ""), finding_id(row), who, state, people,
                    float(sim) if isinstance(sim, (int, float)) else None, reviewer, note, now())


def _save(registry: Registry, d: Decision) -> None:
    """Store a decision (inside the transaction that logs it); every person it names must still be registered, so
    a removed person's id never comes back through a late decision."""
    for pid in d.people:
        if registry.db.execute("SELECT 1 FROM people WHERE id=?", (pid,)).fetchone() is None:
            raise UnknownPerson(f"no person '{pid}' is registered (removed since the scan?): no decision is kept "
                                "about a finding that names them")
    registry.db.execute(TABLE)
    registry.db.execute(f"INSERT OR REPLACE INTO reviews ({COLS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                        (d.scan, d.finding, d.who, d.state, json.dumps(d.people), d.similarity, d.reviewer, d.note,
                         d.time, _mac(registry.sealer, d)))


def _record(store: Store, d: Decision) -> Decision:
    details = {"scan": d.scan or None, "finding": d.finding, "state": d.state, "people": d.people,
               "reviewer": d.reviewer, "note": d.note}
    if d.who:
        details["person"] = d.who  # the person answering: redacted (and the note dropped) at their removal
    store.log_event("review" if not d.who else "answer", details, change=lambda registry: _save(registry, d))
    return d


def review(store: Store, row: dict | Finding, state: str, reviewer: str, note: str | None = None,
           scan: str = "") -> Decision:
    """Set a finding's review state (open, confirmed, dismissed, escalated) with who decided and why; logged.

    :param row: the finding (a row of a findings file, or a Finding)
    :param scan: the service's scan id; "" for a findings file reviewed outside the service
    """
    return _record(store, _decision(row, state, reviewer, note, scan, REVIEWER))


def answer(store: Store, row: dict | Finding, person: str, said: str, by: str, note: str | None = None,
           scan: str = "") -> Decision:
    """Record the named person's own answer to a finding: "me" (this is me) or "not-me"; logged.

    :param by: who recorded it (the person's web account, or the operator who was told)
    """
    check_id(person)
    return _record(store, _decision(row, said, by, note, scan, person))


def _rows(registry: Registry, where: str = "", args: tuple = ()) -> list[Decision]:
    """Decisions, each checked against its MAC: an altered one stops the read (StoreError), as an altered sample
    stops a scan."""
    if not _exists(registry.db):
        return []
    sealer, out, bad = seals.current(registry), [], []
    for r in registry.db.execute(f"SELECT {COLS} FROM reviews {where} ORDER BY scan, finding, who", args):
        d = Decision(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5], r[6], r[7], r[8])
        (out if sealer.key is not None and seals.same(r[9], _mac(sealer, d)) else bad).append(d)
    if bad:
        raise StoreError(f"{len(bad)} review decision(s) fail their integrity check (finding {bad[0].finding}): "
                         "the registry was altered. Run `likeness-audit verify`")
    return out


def decisions(store: Store, scan: str | None = None) -> list[Decision]:
    """Every stored decision (of one scan, when given), reviewers' and people's, checked."""
    return _rows(store.registry, *(("WHERE scan=?", (scan,)) if scan is not None else ()))


def of_findings(store: Store, rows: list[dict], scan: str = "") -> dict[str, dict[str, Any]]:
    """finding id -> what was decided about it: state, reviewer, note, time, and answers (person -> answer)."""
    wanted = {finding_id(r) for r in rows}
    out: dict[str, dict[str, Any]] = {}
    for d in decisions(store, scan or ""):
        if d.finding not in wanted:
            continue
        entry = out.setdefault(d.finding, {"state": "open", "reviewer": None, "note": None, "time": None,
                                           "answers": {}})
        if d.who:
            entry["answers"][d.who] = d.state
        else:
            entry.update(state=d.state, reviewer=d.reviewer, note=d.note, time=d.time)
    return out


def with_reviews(evidence: Evidence, store: Store) -> Evidence:
    """The record with the store's decisions on its findings attached (reports and exports then show them)."""
    evidence.reviews = of_findings(store, evidence.findings, str(evidence.run.get("scan") or ""))
    return evidence


def summary(store: Store) -> list[PersonSummary]:
    """Per person, how many findings naming them they answered "not me" and "me", with the scores: where many
    "not me" answers sit above the threshold, the threshold is too loose for that person."""
    people: dict[str, PersonSummary] = {}
    for d in decisions(store):
        if not d.who:
            continue
        s = people.setdefault(d.who, PersonSummary(d.who))
        if d.state == "not-me":
            s.not_me += 1
            s.not_me_scores += [d.similarity] if d.similarity is not None else []
        else:
            s.me += 1
            s.me_scores += [d.similarity] if d.similarity is not None else []
    return sorted(people.values(), key=lambda s: (-s.not_me, s.person))


def as_dict(d: Decision | PersonSummary) -> dict[str, Any]:
    """A decision or summary as JSON-ready data."""
    out = asdict(d)
    if isinstance(d, PersonSummary):
        out["not_me_range"] = d.not_me_range
    return out


# The store's own operations: erasure, verify, re-keying.
def erase(registry: Registry, pid: str) -> int:
    """Delete every decision naming or answered by the person (inside `remove`'s transaction); returns how many."""
    if not _exists(registry.db):
        return 0
    return registry.db.execute(
        "DELETE FROM reviews WHERE who=? OR EXISTS (SELECT 1 FROM json_each(reviews.people) WHERE value=?)",
        (pid, pid)).rowcount


def problems(registry: Registry) -> list[str]:
    """What `verify` reports of the decisions: rows that fail their MAC."""
    try:
        _rows(registry)
    except StoreError as exc:
        return [str(exc)]
    return []


def reseal(registry: Registry) -> int:
    """MAC every decision again with the registry's sealer (at `encrypt`, which changes the MAC key)."""
    if not _exists(registry.db):
        return 0
    rows = registry.db.execute(f"SELECT {COLS} FROM reviews").fetchall()
    for r in rows:
        d = Decision(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5], r[6], r[7], r[8])
        registry.db.execute("UPDATE reviews SET mac=? WHERE scan=? AND finding=? AND who=?",
                            (_mac(registry.sealer, d), d.scan, d.finding, d.who))
    return len(rows)

"""Review decisions in outputs: the columns a reviewed findings table carries, and the words a report card shows.

A record's decisions (Evidence.reviews: finding id -> state, reviewer, note, time, answers) travel as columns of
every table format, so a reviewed export read back (`report`, `bundle`) still has them without the store."""

from __future__ import annotations

from typing import Any

from ..findings import finding_id

COLUMNS = ("finding_id", "review_state", "reviewer", "review_note", "reviewed", "person_answers")
ANSWER_WORDS = {"me": "this is me", "not-me": "not me"}


def reviewable(row: dict[str, Any]) -> bool:
    """Matches and composites are reviewed; error and status rows are not."""
    return row.get("kind") in ("match", "composite")


def columns(row: dict[str, Any], reviews: dict[str, dict]) -> dict[str, Any]:
    """The review columns of one row ('open' for a finding no one has decided on yet)."""
    if not reviewable(row):
        return dict.fromkeys(COLUMNS)
    fid = finding_id(row)
    d = reviews.get(fid) or {}
    answers = ",".join(f"{p}={a}" for p, a in sorted((d.get("answers") or {}).items())) or None
    return {"finding_id": fid, "review_state": d.get("state") or "open", "reviewer": d.get("reviewer"),
            "review_note": d.get("note"), "reviewed": d.get("time"), "person_answers": answers}


def with_columns(rows: list[dict[str, Any]], reviews: dict[str, dict] | None) -> list[dict[str, Any]]:
    """Rows with their review columns (unchanged when the record carries no decisions)."""
    if reviews is None:
        return rows
    return [{**r, **columns(r, reviews)} for r in rows]


def lift(rows: list[dict[str, Any]]) -> dict[str, dict] | None:
    """Take the review columns out of rows read back (in place): the decisions they carry, or None without them."""
    if not any("review_state" in r for r in rows):
        return None
    out = {}
    for r in rows:
        cols = {k: r.pop(k, None) for k in COLUMNS}
        if cols["review_state"] is None or not reviewable(r):
            continue
        answers = dict(a.split("=", 1) for a in (cols["person_answers"] or "").split(",") if "=" in a)
        out[finding_id(r)] = {"state": cols["review_state"], "reviewer": cols["reviewer"],
                              "note": cols["review_note"], "time": cols["reviewed"], "answers": answers}
    return out


def words(review: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a report card says of a finding's review: state, by whom, when, the note, the people's answers."""
    if review is None:
        return None
    answers = "; ".join(f"{p}: {ANSWER_WORDS.get(a, a)}" for p, a in sorted((review.get("answers") or {}).items()))
    return {"state": review.get("state") or "open", "reviewer": review.get("reviewer"), "time": review.get("time"),
            "note": review.get("note"), "answers": answers}

"""review: decide on saved findings (confirmed, dismissed, escalated, open), list them with their state, export them
with their decisions, and summarise the named people's own "not me" answers."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..report.tables import tsv
from .base import Context, Fail, cli, guarded

STATES = ("open", "confirmed", "dismissed", "escalated")


def _pick(rows: list[dict], wanted: str) -> dict:
    """The finding whose id is wanted (or starts with it, when only one does)."""
    from ..findings import finding_id
    from ..report.reviews import reviewable

    hits = [r for r in rows if reviewable(r) and finding_id(r).startswith(wanted.lower())]
    if len(hits) == 1 and len(wanted) >= 6:
        return hits[0]
    if not hits:
        raise Fail(f"no match or composite finding has the id {wanted} (`likeness-audit review FINDINGS` lists them)")
    raise Fail(f"the id {wanted} is {'too short' if len(wanted) < 6 else 'ambiguous'}: give at least 6 of its 16 "
               f"characters, enough to name one finding")


def _summary(store, as_json: bool) -> None:
    from ..store.review import as_dict, summary

    people = summary(store)
    if as_json:
        click.echo(json.dumps([as_dict(s) for s in people], indent=1))
        return
    if not people:
        click.echo("no one has answered a finding yet", err=True)
        return
    click.echo(tsv("person", "not_me", "me", "not_me_scores", "me_scores"))
    for s in people:
        def span(scores):
            return f"{min(scores):.3f}-{max(scores):.3f}" if scores else None
        click.echo(tsv(s.person, s.not_me, s.me, span(s.not_me_scores), span(s.me_scores)))


@cli.command()
@click.argument("findings", nargs=-1, type=click.Path(exists=True, dir_okay=False))
@click.option("--finding", "wanted", metavar="ID", help="The finding to decide on, or to list alone (its id, or "
              "the first 6 or more of its characters).")
@click.option("--state", type=click.Choice(STATES), help="Record this decision on --finding.")
@click.option("--note", help="Why (kept with the decision and in the audit log).")
@click.option("--reviewer", envvar="AUDIT_REVIEWER", help="Who decides (else $AUDIT_REVIEWER, else user@host).")
@click.option("--out", type=click.Path(dir_okay=False), help="Write the findings with their decisions: .csv, .json, "
              ".jsonl, .parquet (review columns) or .html (each card says its review).")
@click.option("--summary", "as_summary", is_flag=True, help="Per person: findings they answered \"not me\" and "
              "\"this is me\", with the scores of each (where a threshold is too loose for someone).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@guarded
def review(obj: Context, findings: tuple[str, ...], wanted: str | None, state: str | None, note: str | None,
           reviewer: str | None, out: str | None, as_summary: bool, as_json: bool) -> None:
    """Review saved findings: list them with their review state, or record a decision on one (--state).

    Decisions are kept in the store (by each finding's stable id, so a rescan of the same file shows them again)
    and written to the audit log. Exit 2 for an unknown id or a missing store.

    \b
    Example:
      likeness-audit review findings.parquet
      likeness-audit review findings.parquet --finding 3fa4c2 --state confirmed --note "ad, campaign 12" --reviewer kim
      likeness-audit review findings.parquet --out reviewed.html
      likeness-audit review --summary
    """
    from ..findings import finding_id
    from ..report.record import output_format, read_records, write_record
    from ..report.reviews import reviewable
    from ..store import review as decide

    store = obj.store(create=False)
    if as_summary:
        return _summary(store, as_json)
    if not findings:
        raise Fail("give the findings file(s) to review (or --summary)")
    if state and not wanted:
        raise Fail("--state needs --finding ID (`likeness-audit review FINDINGS` lists the ids)")
    if note and not state:
        raise Fail("--note goes with --state")
    if out:
        output_format(out)
    evidence = read_records([Path(f) for f in findings], store.cipher)
    scan = str(evidence.run.get("scan") or "")
    rows = [_pick(evidence.findings, wanted)] if wanted else [r for r in evidence.findings if reviewable(r)]
    if state:
        from ..store.log.auditlog import actor

        d = decide.review(store, rows[0], state, reviewer or actor(), note, scan)
        click.echo(f"{d.finding}: {d.state} by {d.reviewer} at {d.time}", err=True)
    decided = decide.of_findings(store, evidence.findings, scan)
    if out:
        evidence.reviews = decided
        write_record(evidence, out, store.cipher)
        click.echo(f"wrote {out}: {len(evidence.findings)} findings, {len(decided)} with decisions", err=True)
    if state or out:
        return
    listed = []
    for r in rows:
        d = decided.get(finding_id(r)) or {}
        who = "+".join(str(c.get("person")) for c in r.get("contributors") or []) if r.get("kind") == "composite" \
            else r.get("person")
        listed.append({"finding": finding_id(r), "state": d.get("state", "open"), "kind": r.get("kind"),
                       "person": who, "similarity": r.get("similarity"), "path": r.get("path"),
                       "reviewer": d.get("reviewer"), "time": d.get("time"), "note": d.get("note"),
                       "answers": d.get("answers") or {}})
    if as_json:
        click.echo(json.dumps(listed, indent=1, ensure_ascii=False))
        return
    click.echo(tsv("finding", "state", "kind", "person", "similarity", "path", "reviewer", "note", "answers"))
    for x in listed:
        answers = ",".join(f"{p}={a}" for p, a in sorted(x["answers"].items())) or None
        click.echo(tsv(x["finding"], x["state"], x["kind"], x["person"], f"{x['similarity']:.3f}" if x["similarity"] is not None else None, x["path"],
                       x["reviewer"], x["note"], answers))

"""rematch: people searched against the embedding archive of earlier scans; archive prune."""

from __future__ import annotations

import json
from datetime import date

import click

from ..report.record import output_format, write_record
from ..report.tables import tsv_field
from .base import Fail, cli, guarded


def _day(ctx, param, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"'{value}' is not a date (YYYY-MM-DD)") from None


@cli.command()
@click.option("--person", "people", multiple=True, help="Search this person (repeatable; default: everyone).")
@click.option("--since", callback=_day, metavar="DATE", help="Only scans archived on or after DATE (YYYY-MM-DD).")
@click.option("--out", type=click.Path(dir_okay=False), help="Write the findings and their evidence "
                                                             "(.csv, .json, .jsonl, .parquet, .html).")
@click.option("--json", "as_json", is_flag=True, help="Print findings as JSON Lines on stdout.")
@click.option("--threshold", type=click.FloatRange(-1, 1), help="Face match threshold (default: as a scan's).")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Search in this process, or as a Ray Data job over the archive's partitions.")
@click.option("--address", help="Ray cluster address for --engine ray (else $RAY_ADDRESS, else a local Ray).")
@click.option("--voice-model", type=click.Choice(["ge2e", "campplus", "fused"]), default="fused", show_default=True,
              help="Voice encoder whose archived segments are searched (as scan --voice-model).")
@click.option("--notify", is_flag=True, help="Queue the findings for the webhooks (docs/continuous.md).")
@click.pass_obj
@guarded
def rematch(obj, people: tuple[str, ...], since: date | None, out: str | None, as_json: bool,
            threshold: float | None, engine: str, address: str | None, voice_model: str, notify: bool) -> None:
    """Search enrolled people against every face and voice archived by earlier scans, without reading any media.

    Findings the archived scan did not make (the person was not enrolled yet) say "found": "before enrolment".
    A damaged archive partition stops it (exit 2, naming the file): nothing is searched around it.

    \b
    Example:
      likeness-audit rematch --person alice --out alice-before.json
      likeness-audit rematch --since 2026-01-01 --engine ray --address ray://head:10001
    """
    from ..scan.rematch import rematch as run

    if address and engine != "ray":
        raise Fail("--address needs --engine ray")
    if out:
        output_format(out)  # an unknown format is refused before any work
    store = obj.store(create=False)
    record, summary = run(store, people or None, since, engine=engine, address=address, threshold=threshold,
                          voice_model=voice_model)
    if not summary.partitions:  # nothing was searched: never a clean answer (docs/continuous.md)
        when = f" archived on or after {since.isoformat()}" if since else ""
        raise Fail(f"the archive holds no scans{when} to search: nothing was searched "
                   "(scans made since archiving began are archived; see docs/continuous.md)")
    if out:
        write_record(record, out, store.cipher)
    if notify:
        from ..scan.rematch import announce

        announce(store.home, record)
    if as_json:
        for row in record.findings:
            click.echo(json.dumps(row, default=str))
    elif not out:
        for row in record.findings:
            when = (row.get("extra") or {}).get("found")
            click.echo("\t".join(tsv_field(str(v)) for v in (row["path"], row["person"], row["similarity"], when)))
    click.echo(f"{summary.findings} finding(s), {summary.before_enrolment} before enrolment, in {summary.files} "
               f"archived file(s) ({summary.rows} faces, {summary.segments} voice segments, in {summary.partitions} "
               "partition(s))",
               err=True)


@cli.group()
def archive() -> None:
    """The embedding archive of earlier scans (docs/continuous.md)."""


@archive.command("prune")
@click.option("--days", type=click.IntRange(1), help="Keep this many days (default: $AUDIT_ARCHIVE_DAYS, else 365).")
@click.pass_obj
@guarded
def archive_prune(obj, days: int | None) -> None:
    """Delete archive partitions older than the retention.

    \b
    Example:
      likeness-audit archive prune --days 90
    """
    from ..store.archive import Archive

    store = obj.store(create=False)
    gone = Archive(store.home, store.cipher).prune(days)
    for rel in gone:
        click.echo(f"deleted {rel}")
    click.echo(f"{len(gone)} partition(s) deleted", err=True)

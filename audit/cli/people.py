"""people, remove, verify: what the store holds, withdrawal, and integrity."""

from __future__ import annotations

import json
from dataclasses import asdict

import click

from ..report.tables import tsv, tsv_field
from .base import Context, Fail, cli, guarded


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@guarded
def people(obj: Context, as_json: bool) -> None:
    """List registered people.

    \b
    Example:
      likeness-audit people --json
    """
    everyone = obj.store(create=False).people()
    if as_json:
        click.echo(json.dumps([asdict(p) for p in everyone], indent=1))
        return
    if not everyone:
        click.echo("no one is registered", err=True)
        return
    click.echo(tsv("id", "name", "samples"))
    for p in everyone:
        counts = ", ".join(f"{n} {m}" for m, n in sorted(p.samples.items())) or "no samples"
        click.echo(tsv(p.id, p.name, counts))


@cli.command()
@click.argument("person")
@click.pass_obj
@guarded
def remove(obj: Context, person: str) -> None:
    """Delete PERSON: every sample, vector, reference crop and consent record.

    \b
    Example:
      likeness-audit remove alice
    """
    store = obj.store(create=False)
    n = store.remove(person)  # also the web service's findings and crops of the person (store/inventory.py)
    click.echo(f"{tsv_field(person)}: removed with {n} vectors")


@cli.command()
@click.option("--repair", is_flag=True, help="Rebuild the indexes from the registry.")
@click.pass_obj
@guarded
def verify(obj: Context, repair: bool) -> None:
    """Check that the registry and the index files agree.

    \b
    Example:
      likeness-audit verify || likeness-audit verify --repair
    """
    report = obj.store(create=False).verify(repair=repair)
    for line in report.repaired:
        click.echo(f"rebuilt {line}")
    for p in report.problems:
        click.echo(f"problem: {p}", err=True)
    if not report.ok:
        raise Fail(f"{len(report.problems)} problem(s) found; `likeness-audit verify --repair` rebuilds the indexes")
    click.echo(f"ok: {report.people} people, vectors {report.vectors or 'none'}, "
               f"audit log {report.log_entries} entries intact")

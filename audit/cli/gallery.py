"""import / export / compact: templates in and out of the store, and index upkeep for large galleries."""

from __future__ import annotations

import click

from .base import Context, cli, guarded


@cli.command("export")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--modality", type=click.Choice(["face", "voice"]), help="Only this modality (default: all).")
@click.pass_obj
@guarded
def export_cmd(obj: Context, path: str, modality: str | None) -> None:
    """Write every enrolled template to a Parquet file (person, name, modality, model, vector), mode 600.

    \b
    Example:
      likeness-audit export templates.parquet --modality face
    """
    rows = obj.store(create=False).export_templates(path, modality)
    click.echo(f"{rows} templates written to {path}")


@cli.command("import")
@click.argument("path", type=click.Path(dir_okay=False))
@click.pass_obj
@guarded
def import_cmd(obj: Context, path: str) -> None:
    """Enroll the templates of a Parquet file made with this store's models (checked whole before writing).

    \b
    Example:
      likeness-audit import templates.parquet
    """
    added, already = obj.store().import_templates(path)
    click.echo(f"{added} templates imported, {already} already enrolled")


@cli.command("compact")
@click.pass_obj
@guarded
def compact_cmd(obj: Context) -> None:
    """Fold recent enrolments into each index's base now (writes do it by themselves when needed).

    \b
    Example:
      likeness-audit compact
    """
    for line in obj.store(create=False).compact():
        click.echo(line)

"""enroll face / enroll voice: register a person's likeness."""

from __future__ import annotations

import click

from ..report.tables import tsv_field
from .base import Context, cli, guarded


@cli.group()
def enroll() -> None:
    """Register a person's likeness (embeddings only; media is never stored)."""


@enroll.command("face")
@click.argument("person")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--name", help="Display name (default: PERSON).")
@click.option("--pick", type=click.Choice(["largest"]), help="With several faces in a photo, take the largest.")
@click.option("--no-reference", is_flag=True, help="Do not keep a small aligned crop for reports.")
@click.option("--force", is_flag=True, help="Keep photos that do not look like PERSON's others, or look more like "
                                            "someone else enrolled.")
@click.pass_obj
@guarded
def enroll_face(obj: Context, person: str, paths: tuple[str, ...], name: str | None, pick: str | None,
                no_reference: bool, force: bool) -> None:
    """Enroll PERSON from photos (files or folders).

    PERSON is an id of 1-64 letters, digits, '.', '_' or '-' (not starting with '-'). A photo whose face does not
    match PERSON's other photos (below the match threshold), or matches someone else better, or that is already
    enrolled for someone else, is refused with the scores unless --force.

    \b
    Example:
      likeness-audit enroll face alice alice1.jpg alice2.jpg --name "Alice A."
    """
    result = obj.store().enroll_face(person, paths, name=name, pick=pick, reference=not no_reference, force=force)
    for s in result.skipped:
        click.echo(f"skipped {tsv_field(s.path)}: {tsv_field(s.reason)}", err=True)
    click.echo(f"{person}: {result.added} face samples added, {result.already} already enrolled, "
               f"{len(result.skipped)} skipped")


@enroll.command("voice")
@click.argument("person")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--name", help="Display name (default: PERSON).")
@click.option("--force", is_flag=True, help="Keep recordings that sound more like someone else enrolled.")
@click.option("--model", type=click.Choice(["ge2e", "campplus"]), default="ge2e", show_default=True,
              help="Voice encoder; each has its own index, and scans choose one with --voice-model.")
@click.pass_obj
@guarded
def enroll_voice(obj: Context, person: str, paths: tuple[str, ...], name: str | None, force: bool, model: str) -> None:
    """Enroll PERSON's voice from recordings (audio files, or video with an audio track; ~10 s of speech or more).

    \b
    Example:
      likeness-audit enroll voice alice interview.flac reading.mp3
    """
    result = obj.store().enroll_voice(person, paths, name=name, force=force, model=model)
    for s in result.skipped:
        click.echo(f"skipped {tsv_field(s.path)}: {tsv_field(s.reason)}", err=True)
    click.echo(f"{person}: {result.added} voice samples added, {result.already} already enrolled, "
               f"{len(result.skipped)} skipped")

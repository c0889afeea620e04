"""enroll face / enroll voice: register a person's likeness."""

from __future__ import annotations

import click

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
@click.pass_obj
@guarded
def enroll_face(obj: Context, person: str, paths: tuple[str, ...], name: str | None, pick: str | None,
                no_reference: bool) -> None:
    """Enroll PERSON from photos (files or folders).

    \b
    Example:
      likeness-audit enroll face alice alice1.jpg alice2.jpg --name "Alice A."
    """
    result = obj.store().enroll_face(person, paths, name=name, pick=pick, reference=not no_reference)
    for s in result.skipped:
        click.echo(f"skipped {s.path}: {s.reason}", err=True)
    click.echo(f"{person}: {result.added} face samples added, {result.already} already enrolled, "
               f"{len(result.skipped)} skipped")


@enroll.command("voice")
@click.argument("person")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--name", help="Display name (default: PERSON).")
@click.option("--model", type=click.Choice(["ge2e", "campplus"]), default="ge2e", show_default=True,
              help="Voice encoder; each has its own index, and scans choose one with --voice-model.")
@click.pass_obj
@guarded
def enroll_voice(obj: Context, person: str, paths: tuple[str, ...], name: str | None, model: str) -> None:
    """Enroll PERSON's voice from recordings (audio files, or video with an audio track; ~10 s of speech or more).

    \b
    Example:
      likeness-audit enroll voice alice interview.flac reading.mp3
    """
    result = obj.store().enroll_voice(person, paths, name=name, model=model)
    for s in result.skipped:
        click.echo(f"skipped {s.path}: {s.reason}", err=True)
    click.echo(f"{person}: {result.added} voice samples added, {result.already} already enrolled, "
               f"{len(result.skipped)} skipped")

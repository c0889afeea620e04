"""Commands about people's rights and the store's protection: consent, audit log, encryption keys."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

import click

from . import Context, Fail, cli, guarded

# A starting vocabulary; scopes are free words, and '*' stands for every use without a record of its own.
STARTER_SCOPES = ("research", "training", "avatar", "advertising", "voice-clone", "commercial", "film", "news")
SCOPE_RE = re.compile(r"^(\*|[a-z0-9][a-z0-9._-]{0,63})$")


def _scopes(values: tuple[str, ...]) -> list[str]:
    """Scopes from repeated and comma-separated options, lower-cased and checked."""
    out = []
    for value in values:
        for scope in value.split(","):
            scope = scope.strip().lower()
            if not SCOPE_RE.match(scope):
                raise Fail(f"'{scope}' is not a scope: use a word of letters, digits, '.', '_' or '-' (or '*')")
            out.append(scope)
    return out


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
    allow_s, deny_s, forget_s = _scopes(allow), _scopes(deny), _scopes(forget)
    clash = (set(allow_s) & set(deny_s)) | (set(forget_s) & (set(allow_s) | set(deny_s)))
    if clash:
        raise Fail(f"scope given twice with different meanings: {', '.join(sorted(clash))}")
    if until is not None:
        if not allow_s:
            raise Fail("--until applies to --allow scopes; give at least one")
        try:
            until = date.fromisoformat(until).isoformat()
        except ValueError:
            raise Fail(f"--until {until!r} is not a date (YYYY-MM-DD)") from None
    store = obj.store()
    if allow_s or deny_s or forget_s or note is not None:
        for scope in sorted(set(allow_s + deny_s) - set(STARTER_SCOPES) - {"*"}):
            click.echo(f"note: '{scope}' is not a starter scope (fine if intended)", err=True)
        store.set_consent(person, allow_s, deny_s, until, note, forget_s)
    p = store.registry.person(person)
    records = {
        scope: {**rec, "status": store.registry.consent_status(person, scope)} for scope, rec in p.consent.items()
    }
    if as_json:
        click.echo(json.dumps({"person": person, "consent": records}, indent=1))
        return
    if not records:
        click.echo(f"{person}: no consent recorded (every use is unknown)")
    for scope, rec in records.items():
        click.echo(f"{scope}\t{rec['status']}\t{rec['until'] or '-'}\t{rec['note'] or ''}".rstrip("\t"))


@cli.command("log")
@click.option("--person", help="Only entries about this person.")
@click.option("--event", type=click.Choice(["enroll", "remove", "consent", "scan", "encrypt"]), help="Only this event.")
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
    for e in obj.store().log.entries():
        if (event and e.get("event") != event) or (person and e.get("details", {}).get("person") != person):
            continue
        if as_json:
            click.echo(json.dumps(e, sort_keys=True))
            continue
        d = e.get("details", {})
        what = d.get("person") or ", ".join(f"{k}={v}" for k, v in d.items() if k in ("files", "findings", "use"))
        click.echo(f"{e.get('seq')}\t{e.get('time')}\t{e.get('event')}\t{e.get('actor')}\t{what}")


@cli.command()
@click.option("--out", type=click.Path(dir_okay=False), help="Write the key to this file (mode 600) instead of stdout.")
@click.pass_obj
@guarded
def keygen(obj: Context, out: str | None) -> None:
    """Make a random encryption key (base64) for AUDIT_KEY or --key-file; keep it away from the store.

    \b
    Example:
      likeness-audit keygen --out ~/.config/likeness-audit.key
      likeness-audit --key-file ~/.config/likeness-audit.key enroll face alice alice.jpg
    """
    import os

    from ..store.crypto import KeyProblem, new_key

    key = new_key()
    if out is None:
        click.echo(key)
        return
    path = Path(out).expanduser()
    if path.resolve().is_relative_to(obj.home.resolve()):
        raise KeyProblem(f"{path} is inside the store folder {obj.home}; keep the key apart from the data")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    click.echo(f"wrote a new key to {path}")


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
    from ..store.crypto import KeyProblem, load_key
    from ..store.store import Store

    key = load_key(obj.key_file, obj.home)
    if key is None:
        raise KeyProblem("no key given: use --key-file, $AUDIT_KEY or $AUDIT_KEY_FILE "
                         "(`likeness-audit keygen` makes one)")
    n = Store(obj.home, key=None).encrypt(key)
    click.echo(f"encrypted {n} vectors, the reference crops and the indexes of {obj.home}")

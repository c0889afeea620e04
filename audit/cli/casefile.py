"""Case files: `bundle` packs saved findings as a signed zip, `verify-bundle` checks one without the store."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import click

from .base import Context, cli, guarded


@cli.command()
@click.argument("findings", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The case file to write (.zip).")
@click.option("--sign", "sign", type=click.Path(exists=True, dir_okay=False),
              help="Sign the manifest with this Ed25519 private key (from `keygen --signing`).")
@click.option("--reviews", is_flag=True, help="Add the review decisions kept in the store (then the store is read).")
@click.pass_obj
@guarded
def bundle(obj: Context, findings: tuple[str, ...], out: str, sign: str | None, reviews: bool) -> None:
    """Pack saved findings as a case file: findings, evidence pictures, run metadata, file hashes, versions,
    the HTML page, and a manifest of every member's SHA-256, signed with --sign.

    Made from what the scan saved (as `report` is): the media are not read, nor the store unless --reviews asks
    for its review decisions (a reviewed export, `review FINDINGS --out FILE`, carries its own).

    \b
    Example:
      likeness-audit keygen --signing --out union.key
      likeness-audit bundle findings.parquet --out case.zip --sign union.key
      likeness-audit verify-bundle case.zip --key union.key.pub
    """
    from ..casefile import make_bundle
    from ..report import read_records
    from ..store.crypto import Cipher, load_key

    key = load_key(obj.key_file)
    evidence = read_records([Path(name) for name in findings], Cipher(key) if key is not None else None)
    if reviews:
        from ..store.review import with_reviews

        with_reviews(evidence, obj.store(create=False))
    manifest = make_bundle(evidence, out, key=sign)
    signed = f"signed by {manifest['signing_key']}" if manifest["signing_key"] else "not signed"
    decided = f", {manifest['reviews']} review decisions" if manifest.get("reviews") is not None else ""
    click.echo(f"wrote {out}: {len(evidence.findings)} findings{decided}, {len(manifest['members'])} members, "
               f"{signed} ({evidence.status()})")
    for part in evidence.missing:
        click.echo(f"warning: the record has no {part}; the case file lacks it too", err=True)


@cli.command("verify-bundle")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--key", "key", type=click.Path(exists=True, dir_okay=False),
              help="The signer's public key (KEYFILE.pub); without it only the member hashes are checked.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (the exit code is the same).")
@click.pass_obj
@guarded
def verify_bundle_cmd(obj: Context, path: str, key: str | None, as_json: bool) -> None:
    """Check a case file without the store: every member against the manifest, and the signature with --key.

    Exit 0 when intact, 1 when not (each problem is named), 2 for a usage error.

    \b
    Example:
      likeness-audit verify-bundle case.zip --key union.key.pub
    """
    from ..casefile import verify_bundle

    report = verify_bundle(path, key)
    if as_json:
        click.echo(json.dumps({**asdict(report), "intact": report.intact}, indent=1))
        sys.exit(0 if report.intact else 1)
    if not report.intact:
        for problem in report.problems:
            click.echo(f"problem: {problem}")
        click.echo(f"{path}: NOT intact ({len(report.problems)} problem(s))")
        sys.exit(1)
    if report.signature_checked:
        how = f"signature valid ({report.signing_key})"
    elif report.signed:
        how = "signed, but the signature was not checked (give --key)"
    else:
        how = "not signed: anyone could have rebuilt it (only the member hashes were checked)"
    reviews = f", {report.reviews} review decision(s)" if report.reviews is not None else ""
    click.echo(f"{path}: intact, {report.members} members, {report.findings} findings{reviews}; {how}")
    if report.status:
        click.echo(f"scan: {report.status}")

"""Check a case file on a machine without the store: the archive's shape, every member's SHA-256 and size against
the manifest, and the manifest's Ed25519 signature; each problem named. Reads are bounded (a zip bomb is refused)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from . import layout as L
from .keys import fingerprint, load_public_key

_EOCD = b"PK\x05\x06"
_TAIL = (L.MANIFEST, L.SIGNATURE)


@dataclass
class BundleReport:
    """What verify_bundle found: intact when problems is empty."""

    path: str
    problems: list[str] = field(default_factory=list)
    signed: bool = False  # the bundle carries a signature
    signature_checked: bool = False  # ... and it was verified with the key given
    signing_key: str | None = None  # the fingerprint the manifest names
    members: int = 0
    findings: int | None = None
    reviews: int | None = None  # review decisions attached (None: the bundle carries no review file)
    status: str | None = None  # the scan's own status line ("complete: 3 of 3 files scanned")

    @property
    def intact(self) -> bool:
        """No problem found."""
        return not self.problems


def verify_bundle(path: str | Path, public_key: Ed25519PublicKey | str | Path | None = None) -> BundleReport:
    """Check the case file at path; with public_key (a key or its .pub file) its signature too. Never raises for
    a damaged or hostile archive: each problem is a line of the report."""
    if public_key is not None and not isinstance(public_key, Ed25519PublicKey):
        public_key = load_public_key(public_key)
    report = BundleReport(str(path))
    try:
        with zipfile.ZipFile(path) as zf:
            _check(zf, Path(path), public_key, report)
    except zipfile.BadZipFile as exc:
        report.problems.append(f"not a readable zip archive (corrupt or truncated): {exc}")
    except OSError as exc:
        report.problems.append(f"cannot read the archive: {exc.strerror or exc}")
    return report


def _check(zf: zipfile.ZipFile, path: Path, key: Ed25519PublicKey | None, report: BundleReport) -> None:
    """Every check, in the order a reader would want them named."""
    problems = report.problems
    infos = zf.infolist()
    if len(infos) > L.MAX_MEMBERS:
        problems.append(f"{len(infos)} members, more than the {L.MAX_MEMBERS} a case file may hold")
        return
    seen: set[str] = set()
    for info in infos:
        # a folder entry (as `zip -r` adds) is safe when its name is; it is reported below as an extra member
        if why := L.unsafe(info.filename[:-1] if info.is_dir() else info.filename):
            problems.append(f"unsafe member name {info.filename!r}: {why}")
        if info.filename in seen:
            problems.append(f"duplicate member {info.filename!r}")
        seen.add(info.filename)
    if problems:
        return  # names are not trusted: nothing more is read
    by_name = {i.filename: i for i in infos}
    manifest_info = by_name.get(L.MANIFEST)
    if manifest_info is None:
        problems.append(f"no {L.MANIFEST}: not a case file, or its manifest was removed")
        return
    text = _read(zf, manifest_info, L.MAX_MANIFEST, problems)
    if text is None:
        return
    try:
        manifest = json.loads(text)
        entries = _entries(manifest)
    except (ValueError, TypeError, KeyError) as exc:
        problems.append(f"{L.MANIFEST} is not a case file manifest: {exc}")
        return
    report.signing_key = manifest.get("signing_key") if isinstance(manifest.get("signing_key"), str) else None
    report.findings = manifest.get("findings") if isinstance(manifest.get("findings"), int) else None
    report.reviews = manifest.get("reviews") if isinstance(manifest.get("reviews"), int) else None
    report.status = manifest.get("status") if isinstance(manifest.get("status"), str) else None
    report.members = len(entries)
    _check_signature(zf, by_name.get(L.SIGNATURE), text, key, report)
    _check_shape(zf, path, infos, entries, text, problems)
    _check_members(zf, by_name, entries, problems)


def _entries(manifest: Any) -> list[dict[str, Any]]:
    """The manifest's member list, checked for shape (ValueError naming what is wrong)."""
    if not isinstance(manifest, dict) or manifest.get("format") != L.FORMAT:
        raise ValueError("it does not name the case file format")
    if manifest.get("version") != L.VERSION:
        raise ValueError(f"version {manifest.get('version')!r}, this tool reads version {L.VERSION}")
    entries = manifest["members"]
    if not isinstance(entries, list) or len(entries) > L.MAX_MEMBERS:
        raise ValueError("'members' is not a list of members")
    total, names = 0, set()
    for e in entries:
        if not (isinstance(e, dict) and isinstance(e.get("name"), str) and isinstance(e.get("sha256"), str)
                and isinstance(e.get("size"), int) and not isinstance(e.get("size"), bool) and e["size"] >= 0):
            raise ValueError(f"a member entry without name, size and sha256: {str(e)[:80]!r}")
        if why := L.unsafe(e["name"]):
            raise ValueError(f"it lists an unsafe name {e['name']!r} ({why})")
        if e["name"] in names or e["name"] in _TAIL:
            raise ValueError(f"it lists {e['name']!r} twice or lists itself")
        if e["size"] > L.MAX_MEMBER:
            raise ValueError(f"{e['name']!r} is larger than the {L.MAX_MEMBER} bytes a member may be")
        names.add(e["name"])
        total += e["size"]
    if total > L.MAX_TOTAL:
        raise ValueError(f"its members add up to {total} bytes, more than the {L.MAX_TOTAL} allowed")
    return entries


def _check_signature(zf: zipfile.ZipFile, sig_info: zipfile.ZipInfo | None, text: bytes,
                     key: Ed25519PublicKey | None, report: BundleReport) -> None:
    """The manifest's signature against the key given (or, without a key, only whether there is one)."""
    problems = report.problems
    report.signed = sig_info is not None
    if sig_info is None:
        if key is not None:
            problems.append(f"the bundle is not signed (no {L.SIGNATURE}), but a key was given")
        elif report.signing_key:
            problems.append(f"the manifest names signing key {report.signing_key}, but {L.SIGNATURE} is missing")
        return
    if key is None:
        return
    raw = _read(zf, sig_info, 1024, problems)
    if raw is None:
        return
    given = fingerprint(key)
    if report.signing_key != given:
        problems.append(f"wrong key: the bundle was signed with {report.signing_key}, the key given is {given}")
        return
    try:
        key.verify(base64.b64decode(raw.strip(), validate=True), text)
    except (InvalidSignature, binascii.Error, ValueError):
        problems.append(f"bad signature: {L.SIGNATURE} does not sign this {L.MANIFEST} with the key given "
                        "(the manifest was changed after signing, or the signature was)")
        return
    report.signature_checked = True


def _check_shape(zf: zipfile.ZipFile, path: Path, infos: list[zipfile.ZipInfo], entries: list[dict[str, Any]],
                 text: bytes, problems: list[str]) -> None:
    """The archive as written: the comment naming this manifest, the member order and compression, nothing before
    or after the archive. Unzipping and zipping again (or appending to it) changes these."""
    rezipped = []
    if zf.comment != (L.COMMENT_PREFIX + hashlib.sha256(text).hexdigest()).encode():
        rezipped.append("its comment does not name this manifest")
    listed = [e["name"] for e in entries]
    order = [i.filename for i in infos if i.filename not in _TAIL]
    known = [n for n in order if n in set(listed)]
    if known != [n for n in listed if n in set(order)]:
        rezipped.append("the members are not in the manifest's order")
    methods = {"deflate": zipfile.ZIP_DEFLATED, "stored": zipfile.ZIP_STORED}
    by_name = {i.filename: i for i in infos}
    if any(e["name"] in by_name and methods.get(e.get("compression")) != by_name[e["name"]].compress_type
           for e in entries):
        rezipped.append("members are compressed differently from the manifest")
    if infos and infos[0].header_offset != 0:
        rezipped.append("bytes come before the first member")
    try:
        with open(path, "rb") as f:
            f.seek(-(22 + len(zf.comment)), 2)
            if f.read(4) != _EOCD:
                rezipped.append("bytes follow the end of the archive")
    except OSError:
        rezipped.append("its end cannot be read")
    if rezipped:
        problems.append("the archive was re-zipped or rewritten: " + "; ".join(rezipped))


def _check_members(zf: zipfile.ZipFile, by_name: dict[str, zipfile.ZipInfo], entries: list[dict[str, Any]],
                   problems: list[str]) -> None:
    """Every member the manifest lists, by SHA-256 and size; members it does not list."""
    listed = {e["name"] for e in entries}
    for name in by_name:
        if name not in listed and name not in _TAIL:
            problems.append(f"extra member {name!r}: not in the manifest")
    for e in entries:
        info = by_name.get(e["name"])
        if info is None:
            problems.append(f"missing member {e['name']!r}")
            continue
        digest, size, error = _hash(zf, info, e["size"])
        if error:
            problems.append(f"member {e['name']!r} is corrupt: {error}")
        elif size != e["size"] or digest != e["sha256"]:
            problems.append(f"member {e['name']!r} was replaced or changed: {size} bytes, sha256 {digest[:16]}..., "
                            f"the manifest says {e['size']} bytes, sha256 {e['sha256'][:16]}...")


def _hash(zf: zipfile.ZipFile, info: zipfile.ZipInfo, expected: int) -> tuple[str, int, str | None]:
    """SHA-256 and size of a member, read in chunks and never past what the manifest says plus one byte."""
    h, size = hashlib.sha256(), 0
    try:
        with zf.open(info) as f:
            while size <= expected:
                chunk = f.read(min(L.CHUNK, expected + 1 - size))
                if not chunk:
                    break
                h.update(chunk)
                size += len(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError) as exc:
        return "", size, str(exc) or type(exc).__name__
    return h.hexdigest(), size, None


def _read(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int, problems: list[str]) -> bytes | None:
    """A small member's bytes, at most limit; None (and the problem named) when it cannot be had."""
    try:
        with zf.open(info) as f:
            data = f.read(limit + 1)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError) as exc:
        problems.append(f"member {info.filename!r} is corrupt: {exc}")
        return None
    if len(data) > limit:
        problems.append(f"member {info.filename!r} is larger than the {limit} bytes allowed")
        return None
    return data

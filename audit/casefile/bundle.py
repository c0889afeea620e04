"""Pack an evidence record as a case file: findings, pictures, run metadata, file hashes, versions, the HTML page,
and a manifest of every member's SHA-256 and size, signed with Ed25519. It never opens media or the store."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
import zipfile
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ..evidence import Evidence
from . import layout as L
from .keys import fingerprint, load_private_key


def make_bundle(evidence: Evidence, out: str | Path, key: Ed25519PrivateKey | str | Path | None = None) -> dict:
    """Write evidence as a case file (a zip) at out, signed when key (a private key or its file) is given; the
    manifest back."""
    if key is not None and not isinstance(key, Ed25519PrivateKey):
        key = load_private_key(key)
    members = _members(evidence)
    manifest: dict[str, Any] = {
        "format": L.FORMAT, "version": L.VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "tool": f"likeness-audit {version('likeness-audit')}",
        "findings": len(evidence.findings), "status": evidence.status(),
        "reviews": len(evidence.reviews) if evidence.reviews is not None else None,
        "signing_key": fingerprint(key.public_key()) if key is not None else None,
        "members": [{"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                     "compression": "deflate" if deflate else "stored"} for name, data, deflate in members]}
    text = (json.dumps(manifest, indent=1, ensure_ascii=False) + "\n").encode()
    members.append((L.MANIFEST, text, True))
    if key is not None:
        members.append((L.SIGNATURE, base64.b64encode(key.sign(text)) + b"\n", False))
    _write_zip(Path(out), members, (L.COMMENT_PREFIX + hashlib.sha256(text).hexdigest()).encode())
    return manifest


def _members(evidence: Evidence) -> list[tuple[str, bytes, bool]]:
    """(name, bytes, compress) of every member but the manifest, in archive order."""
    from ..report.html import render_record
    from ..report.reviews import with_columns

    rows, pictures = [], []
    for n, (row, pic) in enumerate(zip(with_columns(evidence.findings, evidence.reviews), evidence.pictures), 1):
        files = {}
        for kind in ("crop", "scene", "waveform"):
            data = getattr(pic, kind, None) if pic else None
            if data:
                files[kind] = L.picture_name(kind, n, data)
                pictures.append((files[kind], data, False))  # JPEG and PNG are compressed already
        rows.append({**row, "evidence_files": files})
    refs, ref_files = {}, []
    for n, (person, ref) in enumerate(sorted(evidence.references.items()), 1):
        name = f"references/{n:03d}{L.extension(ref.crop)}"  # person ids are not file names: numbered instead
        refs[person] = {"file": name, "sample": ref.sample}
        ref_files.append((name, ref.crop, False))
    run = evidence.run
    versions = {"tool": run.get("version"), "bundled_by": version("likeness-audit"), "models": run.get("models"),
                "indexes": run.get("indexes"), "gallery": run.get("gallery")}
    hashes = sorted({(str(r.get("path") or ""), r["sha256"]) for r in evidence.findings if r.get("sha256")})
    return [(L.FINDINGS, _json(rows), True),
            (L.RUN, _json({**run, "missing": evidence.missing}), True),
            (L.VERSIONS, _json(versions), True),
            (L.FILES, _json([{"path": p, "sha256": h} for p, h in hashes]), True),
            (L.REFERENCES, _json(refs), True),
            (L.PAGE, render_record(evidence).encode("utf-8", "replace"), True),
            *([(L.REVIEWS, _json(evidence.reviews), True)] if evidence.reviews is not None else []),
            *pictures, *ref_files]


def _json(value: Any) -> bytes:
    """Readable, stable JSON (numpy and other odd values as text)."""
    return (json.dumps(value, indent=1, ensure_ascii=False, sort_keys=True, default=str) + "\n").encode()


def _write_zip(out: Path, members: list[tuple[str, bytes, bool]], comment: bytes) -> None:
    """The archive, written to a temp file and renamed into place so a reader never sees half of it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=out.name + ".", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            with zipfile.ZipFile(f, "w") as zf:
                for name, data, deflate in members:
                    info = zipfile.ZipInfo(name, L.DATE_TIME)
                    info.compress_type = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
                    info.external_attr = 0o644 << 16
                    zf.writestr(info, data)
                zf.comment = comment
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

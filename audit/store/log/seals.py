"""Tamper evidence beyond the hash chain: a MAC per sample row, a MAC on the log head, pseudonyms for the removed.

Each sample row is bound by a MAC over its id, person, modality, model, source hash and vector bytes, so a vector
moved to another person (or swapped with another sample's) no longer verifies, in plaintext stores too. The
registry's copy of the audit log head (its length and last hash) is MAC'd the same way, so a log rewritten with
recomputed hashes cannot be matched by editing the head row alone.

Keys: with an encryption key, the MAC key is derived from it (crypto.Cipher.mac_key) and no one without the key can
forge a row or the head. A plaintext store uses its per-store secret (kept in the registry): that still catches
edits made with ordinary tools, but not a forger who reads the secret; encryption is what makes forging need a key.

Pseudonyms: after `remove`, the audit log names the person by HMAC(per-store secret, id) only. The same id always
gives the same pseudonym in one store (so `log --person ID` still finds the removal), other stores give others, and
the id cannot be read back from it (only tested against a guess, by someone holding the registry).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import TYPE_CHECKING

from ...errors import StoreError

if TYPE_CHECKING:
    from ..registry import Registry

HEAD_KEY = "audit_head"  # meta key: the audit log head (auditlog.py), kept in the registry
SECRET = "store_secret"  # meta key: 32 random bytes, hex
HEAD_MAC = "audit_head_mac"  # meta key: MAC of the audit log head kept in the registry
INDEX_SEALS = "index_seals"  # meta key: set once every index manifest carries a seal; from then on one must


class Sealer:
    """MACs and pseudonyms of one store."""

    def __init__(self, secret: bytes | None, mac_key: bytes | None = None):
        self.secret = secret
        self.key = mac_key or secret  # None: a store from before seals, not written to since

    @staticmethod
    def new_secret() -> str:
        """A fresh per-store secret (hex)."""
        return os.urandom(32).hex()

    def _mac(self, *parts: bytes | str) -> str:
        if self.key is None:
            raise ValueError("no MAC key: the store has no secret yet")
        msg = b"\x00".join(p if isinstance(p, bytes) else str(p).encode() for p in parts)
        return hmac.new(self.key, msg, hashlib.sha256).hexdigest()

    def row(self, vid: int, person: str, modality: str, model: str, source_sha256: str, vector: bytes) -> str:
        """The MAC binding one sample's vector to its row."""
        return self._mac(b"sample", str(vid), person, modality, model, source_sha256, vector)

    def mac(self, kind: bytes, *parts: bytes | str) -> str:
        """The MAC of another kind of row (kind names it: a review decision's b"review"), by the same key."""
        return self._mac(kind, *parts)

    def head(self, head_json: str) -> str:
        """The MAC of the log head the registry keeps."""
        return self._mac(b"head", head_json)

    def manifest(self, manifest_json: str) -> str:
        """The MAC of an index manifest: its segment checksums, so index contents are bound to the store's key."""
        return self._mac(b"index", manifest_json)

    def pseudonym(self, pid: str) -> str | None:
        """The keyed pseudonym of a person id, or None when the store has no secret yet."""
        if self.secret is None:
            return None
        return "p-" + hmac.new(self.secret, b"person\x00" + pid.encode(), hashlib.sha256).hexdigest()[:20]


def sealer_of(registry: Registry, cipher) -> Sealer:
    """A store's sealer: MACs keyed by the encryption key when there is one, else by the per-store secret."""
    secret = registry.meta(SECRET)
    return Sealer(bytes.fromhex(secret) if secret else None, cipher.mac_key if cipher is not None else None)


def current(registry: Registry) -> Sealer:
    """The registry's sealer, or, when it has no key yet, one read afresh: another process may have given the
    store its secret since this one opened it (what it then wrote carries seals this one must be able to check)."""
    sealer = getattr(registry, "sealer", None)
    if sealer is not None and sealer.key is not None:
        return sealer
    return sealer_of(registry, registry.cipher)


def ensure_secret(registry: Registry, sealer: Sealer) -> bool:
    """Give a store its secret at its first write (under the writer lock), sealing the rows and log head it holds
    from before seals; True when the store's sealer must be rebuilt (also when another process made the secret)."""
    if registry.meta(SECRET) is not None:
        return sealer.secret is None
    with registry.transaction():
        registry.set_meta(SECRET, Sealer.new_secret())
        registry.sealer = sealer = sealer_of(registry, registry.cipher)
        seal_rows(registry, only_missing=True)
        head = registry.meta(HEAD_KEY)
        if head is not None:
            registry.set_meta(HEAD_MAC, sealer.head(head))
    return True


def same(a: str | None, b: str | None) -> bool:
    """Constant-time comparison of two MACs."""
    return a is not None and b is not None and hmac.compare_digest(a, b)


def check_rows(registry: Registry, modality: str, model: str) -> list[str]:
    """Samples of one modality and model whose vector no longer matches its row's MAC (or that have none)."""
    rows = registry.db.execute(ROWS + " WHERE s.modality=? AND s.model=? ORDER BY s.id", (modality, model)).fetchall()
    unsealed = sum(r[-1] is None for r in rows)
    bad = _bad(registry, [r for r in rows if r[-1] is not None])
    out = []
    if bad:
        out.append(f"{len(bad)} {modality} vector(s) do not match their registry rows (altered, swapped or moved): "
                   + "; ".join(bad[:5]) + (" ..." if len(bad) > 5 else ""))
    if unsealed:
        out.append(f"{unsealed} {modality} sample(s) have no seal (their seal was deleted): they cannot be trusted; "
                   "remove and enroll the person again")
    return out


def check_ids(registry: Registry, ids) -> list[str]:
    """The samples among ids whose row (vector, person, modality, model, source) does not match its MAC, or has
    none: what a scan checks before a result becomes a finding."""
    wanted = sorted({int(i) for i in ids})
    bad = []
    for k in range(0, len(wanted), 500):  # SQLite limits the parameters of one statement
        chunk = wanted[k:k + 500]
        bad += _bad(registry, registry.db.execute(
            ROWS + f" WHERE s.id IN ({','.join('?' * len(chunk))})", chunk).fetchall())
    return bad


def check_people(registry: Registry, modality: str, model: str, centroids: dict) -> list[str]:
    """People whose samples fail their seals, or whose centroid as the caller holds it (person -> vector) is not
    the mean of those samples (a centroid row moved to another person): checked before a voice finding names them."""
    import numpy as np

    bad = []
    for pid, vec in centroids.items():
        ids = [r[0] for r in registry.db.execute(
            "SELECT id FROM samples WHERE person=? AND modality=? AND model=?", (pid, modality, model))]
        bad += check_ids(registry, ids)
        mean = registry._centroid_of(pid, modality, model)
        if mean is None or not np.allclose(mean[0], vec, atol=1e-4):
            bad.append(f"the {modality} centroid held for {pid} is not the mean of their samples")
    return bad


ROWS = ("SELECT s.id, s.person, s.modality, s.model, s.source_sha256, s.vector, seals.mac FROM samples s "
        "LEFT JOIN seals ON seals.sample = s.id")


def _bad(registry: Registry, rows: list[tuple]) -> list[str]:
    """The rows (as ROWS selects them) whose vector does not decrypt or does not match the row's MAC."""
    bad, sealer = [], current(registry)
    for vid, pid, modality, model, source, blob, mac in rows:
        try:
            vec = registry._unseal(blob, f"sample|{pid}|{modality}|{model}", f"sample {vid}")
        except StoreError as exc:
            bad.append(f"sample {vid}: {exc}")
            continue
        if sealer.key is None or not same(mac, sealer.row(vid, pid, modality, model, source, bytes(vec))):
            bad.append(f"sample {vid} of {pid} ({modality})")
    return bad


def seal_rows(registry: Registry, only_missing: bool = False) -> int:
    """(Re)compute the MAC of every sample row, or of those without one (inside a transaction); returns how many.

    Only at a store's first write after an upgrade (its rows predate seals) and at `encrypt` (a new MAC key):
    never as a repair, which would bless an altered row.
    """
    rows = registry.db.execute(
        "SELECT s.id, s.person, s.modality, s.model, s.source_sha256, s.vector FROM samples s"
        + (" WHERE NOT EXISTS (SELECT 1 FROM seals WHERE seals.sample = s.id)" if only_missing else "")).fetchall()
    for vid, pid, modality, model, source, blob in rows:
        vec = registry._unseal(blob, f"sample|{pid}|{modality}|{model}", f"sample {vid}")
        registry.db.execute("INSERT OR REPLACE INTO seals VALUES (?, ?)",
                            (vid, registry.sealer.row(vid, pid, modality, model, source, bytes(vec))))
    return len(rows)

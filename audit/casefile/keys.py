"""Ed25519 signing keys for case files: a private key file (mode 600, PKCS#8 PEM) and KEYFILE.pub beside it."""

from __future__ import annotations

import hashlib
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from ..errors import AuditError
from ..store.files import atomic_write

MAX_KEY_FILE = 64 * 1024  # a PEM key is a few hundred bytes; anything far larger is not one


class SigningKeyError(AuditError):
    """A signing key file is missing, unreadable or not an Ed25519 key of the right kind."""


def public_path(private: str | Path) -> Path:
    """Where the public half of a private key file is written: KEYFILE.pub."""
    private = Path(private)
    return private.with_name(private.name + ".pub")


def new_signing_key(out: str | Path) -> tuple[Path, Path]:
    """Make an Ed25519 pair: the private key at out (mode 600, never overwritten) and out.pub; both paths back."""
    out = Path(out)
    pub = public_path(out)
    for path in (out, pub):
        if path.exists():
            raise SigningKeyError(f"{path} already exists; not overwriting a key", code="exists", path=str(path))
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    atomic_write(out, private_pem)  # 0600
    atomic_write(pub, public_pem(key.public_key()), 0o644)
    return out, pub


def public_pem(key: Ed25519PublicKey) -> bytes:
    """A public key as SubjectPublicKeyInfo PEM."""
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def fingerprint(key: Ed25519PublicKey) -> str:
    """'ed25519:' and the SHA-256 of the raw 32-byte public key, in hex: what a manifest names its signer by."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    """The Ed25519 private key in a file made by new_signing_key (SigningKeyError saying why when it is not one)."""
    data = _read(path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        hint = " (that is the public half; sign with the private key file)" if b"PUBLIC KEY" in data else ""
        raise SigningKeyError(f"{path} is not an unencrypted PEM private key{hint}", code="bad-key",
                              path=str(path)) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path} is not an Ed25519 key", code="bad-key", path=str(path))
    return key


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    """The Ed25519 public key in a .pub file (SigningKeyError saying why when it is not one)."""
    data = _read(path)
    if b"PRIVATE KEY" in data:  # never let a private key travel as the verifier's key
        raise SigningKeyError(f"{path} is a private key; verify with the public half ({public_path(path).name})",
                              code="bad-key", path=str(path))
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise SigningKeyError(f"{path} is not a PEM public key", code="bad-key", path=str(path)) from exc
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"{path} is not an Ed25519 public key", code="bad-key", path=str(path))
    return key


def _read(path: str | Path) -> bytes:
    """A key file's bytes, bounded."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_KEY_FILE + 1)
    except OSError as exc:
        raise SigningKeyError(f"cannot read key file {path}: {exc.strerror}", code="no-key", path=str(path)) from exc
    if len(data) > MAX_KEY_FILE:
        raise SigningKeyError(f"{path} is too large to be a key file", code="bad-key", path=str(path))
    return data

"""Encryption at rest of biometric templates (sample vectors, reference crops, index files) with AES-256-GCM.

The key (32 bytes, as base64 or hex) comes from ``$AUDIT_KEY`` or a key file (``--key-file`` or
``$AUDIT_KEY_FILE``) and is never written to the store: a key file inside the store folder is refused. The store
keeps only a key check value (a value derived from the key by HKDF, which says nothing about the key) so that a
missing or wrong key is a clear error instead of garbage. Each blob is ``LAE1 || 12-byte random nonce ||
ciphertext+tag`` with associated data naming what it is (person, modality, model or index file), so a blob
moved to another person or file fails to decrypt.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from pathlib import Path

from ..errors import KeyProblem

KEY_ENV = "AUDIT_KEY"
KEY_FILE_ENV = "AUDIT_KEY_FILE"
META_KEY = "encryption"
MAGIC = b"LAE1"
NONCE_BYTES = 12
ALGORITHM = "AES-256-GCM"


class _FromEnv:
    def __repr__(self) -> str:
        return "FROM_ENV"


FROM_ENV = _FromEnv()  # Store(key=FROM_ENV): take the key from $AUDIT_KEY / $AUDIT_KEY_FILE


def new_key() -> str:
    """A fresh random key, base64 (what ``likeness-audit keygen`` prints)."""
    return base64.b64encode(os.urandom(32)).decode()


def write_key_file(path: str | os.PathLike, home: str | os.PathLike) -> Path:
    """Write a new key to a file of mode 600 (never overwriting one), outside the store folder `home`."""
    path = Path(path).expanduser()
    if path.resolve().is_relative_to(Path(home).resolve()):
        raise KeyProblem(f"{path} is inside the store folder {home}; keep the key apart from the data")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(new_key() + "\n")
    return path


def parse_key(text: str | bytes) -> bytes:
    """32 key bytes from 64 hex digits or base64 (standard or URL-safe)."""
    raw = text.decode("ascii", "replace") if isinstance(text, bytes) else text
    raw = raw.strip()
    if len(raw) == 64:
        try:
            return bytes.fromhex(raw)
        except ValueError:
            pass
    try:
        key = base64.b64decode(raw.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise KeyProblem("the key must be 32 random bytes given as base64 or 64 hex digits "
                         "(`likeness-audit keygen` makes one)")
    return key


def load_key(key_file: str | os.PathLike | None = None, home: str | os.PathLike | None = None) -> bytes | None:
    """The key from key_file, else $AUDIT_KEY, else $AUDIT_KEY_FILE; None when none is set.

    A key file inside the store folder (``home``) is refused: a key stored beside the data protects nothing.
    """
    if key_file is None and os.environ.get(KEY_ENV):
        return parse_key(os.environ[KEY_ENV])
    key_file = key_file or os.environ.get(KEY_FILE_ENV)
    if not key_file:
        return None
    path = Path(key_file).expanduser()
    if home is not None and path.resolve().is_relative_to(Path(home).resolve()):
        raise KeyProblem(f"the key file {path} is inside the store folder {home}; keep the key apart from the data")
    try:
        with open(path, "rb") as f:
            check_key_file(path, os.fstat(f.fileno()))  # the file itself (a symlinked secret mount is fine)
            return parse_key(f.read())
    except OSError as exc:
        raise KeyProblem(f"cannot read key file {path}: {exc.strerror or exc}") from exc


def check_key_file(path: Path, st: os.stat_result) -> None:
    """KeyProblem when a key file is open to group/other or owned by another user (as ssh treats private keys)."""
    if st.st_mode & 0o077:
        raise KeyProblem(f"the key file {path} is readable or writable by group or others (mode "
                         f"{st.st_mode & 0o777:o}); `chmod 600 {path}` makes it private")
    if st.st_uid not in (os.geteuid(), 0):
        raise KeyProblem(f"the key file {path} belongs to another user (uid {st.st_uid})")


def sealed(blob: bytes) -> bool:
    """Whether a stored blob is encrypted."""
    return bytes(blob[:4]) == MAGIC


class Cipher:
    """AES-256-GCM with a key derived (HKDF-SHA256) from the user's key; a second derivation gives the check value."""

    def __init__(self, key: bytes):
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if len(key) != 32:
            raise KeyProblem("the key must be 32 bytes")
        self._aead = AESGCM(_derive(key, b"likeness-audit template encryption v1"))
        self.check_value = _derive(key, b"likeness-audit key check v1")[:16].hex()
        self.mac_key = _derive(key, b"likeness-audit row and log MACs v1")  # binds rows and the log head (seals.py)

    def seal(self, data: bytes, aad: bytes) -> bytes:
        """Encrypt and authenticate data; aad names what it is."""
        nonce = os.urandom(NONCE_BYTES)
        return MAGIC + nonce + self._aead.encrypt(nonce, bytes(data), aad)

    def open(self, blob: bytes, aad: bytes, what: str) -> bytes:
        """Decrypt a sealed blob, or KeyProblem when the key is wrong or the blob was altered or moved."""
        from cryptography.exceptions import InvalidTag

        blob = bytes(blob)
        if not sealed(blob):
            raise KeyProblem(f"{what} is not encrypted although the store is")
        nonce, body = blob[4:4 + NONCE_BYTES], blob[4 + NONCE_BYTES:]
        try:
            return self._aead.decrypt(nonce, body, aad)
        except InvalidTag as exc:
            raise KeyProblem(f"cannot decrypt {what}: wrong key, or the data was altered") from exc

    def marker(self) -> str:
        """What the registry keeps to recognise the key (never the key)."""
        return json.dumps({"algorithm": ALGORITHM, "key_check": self.check_value})


def check_marker(marker: str | None, cipher: Cipher | None, where: str) -> None:
    """Raise KeyProblem when an encrypted store has no key or another key."""
    if marker is None:
        return
    if cipher is None:
        raise KeyProblem(f"the store {where} is encrypted: give its key with $AUDIT_KEY, $AUDIT_KEY_FILE or --key-file")
    if json.loads(marker).get("key_check") != cipher.check_value:
        raise KeyProblem(f"wrong key for the encrypted store {where} (the key check value differs)")


def _derive(key: bytes, info: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(key)

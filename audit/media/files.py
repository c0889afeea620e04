"""Find media files, name them printably, hash them and read them safely."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

from .. import config
from ..errors import MediaError


def kind_of(path: str | os.PathLike) -> str | None:
    """'image', 'video', 'audio' or None, from the file extension."""
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext in config.IMAGE_EXTS:
        return "image"
    if ext in config.VIDEO_EXTS:
        return "video"
    if ext in config.AUDIO_EXTS:
        return "audio"
    return None


def display_path(path: str | os.PathLike) -> str:
    """A printable path: undecodable bytes of non-UTF-8 names become \\xNN escapes."""
    text = os.fspath(path)
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def walk(paths: Iterable[str | os.PathLike], kinds: frozenset[str] = frozenset({"image", "video", "audio"})) -> Iterator[Path]:
    """Yield media files under the given files and folders, recursively, in a stable order.

    A path given explicitly is yielded even when its extension is unknown, so the scan reports it.
    Symlinked folders are not followed (loops); unreadable folders are skipped by os.walk's onerror.
    """
    for given in paths:
        p = Path(given)
        if not p.is_dir():
            yield p
            continue
        for root, dirs, files in os.walk(p, onerror=None):
            dirs.sort()
            for name in sorted(files):
                if kind_of(name) in kinds:
                    yield Path(root) / name


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file, read in 1 MiB chunks (raises OSError)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _regular(path: Path) -> os.stat_result:
    """stat() of a regular file; reading a FIFO would block forever and a device never end."""
    st = path.stat()
    if not stat.S_ISREG(st.st_mode):
        raise MediaError("not a regular file (a FIFO, device or socket)")
    return st


def hash_file(path: Path) -> str:
    """SHA-256 of a media file, as a MediaError when it cannot be read."""
    try:
        _regular(path)
        return sha256_file(path)
    except OSError as exc:
        raise MediaError(f"cannot read file: {exc.strerror or exc}") from exc


def read_bytes(path: Path, limit: int = config.MAX_IMAGE_BYTES) -> bytes:
    """Read a whole file, refusing empty and oversized ones."""
    try:
        size = _regular(path).st_size
        if size == 0:
            raise MediaError("empty file (0 bytes)")
        if size > limit:
            raise MediaError(f"file too large ({size} bytes; limit {limit})")
        return path.read_bytes()
    except OSError as exc:
        raise MediaError(f"cannot read file: {exc.strerror or exc}") from exc

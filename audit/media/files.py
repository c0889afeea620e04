"""Find media files, name them printably, hash them and read them safely."""

from __future__ import annotations

import fnmatch
import hashlib
import os
import stat
from collections import Counter
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


def sniff(head: bytes) -> tuple[str | None, str | None]:
    """(kind, format) from a file's first bytes (magic numbers), or (None, None) when they name no media we read."""
    box = head[4:8]
    if head[:3] == b"\xff\xd8\xff":
        return "image", "jpeg"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "image", "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "video", "gif"  # GIF goes the video way (frames); a still GIF is one frame
    if head[:4] == b"RIFF" and head[8:12] in (b"WEBP", b"WAVE", b"AVI "):
        return {b"WEBP": ("image", "webp"), b"WAVE": ("audio", "wav"), b"AVI ": ("video", "avi")}[head[8:12]]
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "image", "tiff"
    if head[:2] == b"BM" and len(head) >= 26 and head[6:10] == b"\x00\x00\x00\x00":
        return "image", "bmp"
    if box == b"ftyp":
        brand = head[8:12]
        if brand in (b"M4A ", b"M4B ", b"F4A "):
            return "audio", "m4a"
        if brand in (b"heic", b"heix", b"mif1", b"msf1", b"avif", b"avis"):
            return None, "heif"  # HEIF/AVIF stills: no decoder here
        return "video", "mp4"
    if box in (b"moov", b"mdat", b"wide", b"free", b"skip"):
        return "video", "mov"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "video", "matroska"
    if head[:4] == b"fLaC":
        return "audio", "flac"
    if head[:4] == b"OggS":
        return "audio", "ogg"
    if head[:3] == b"ID3":
        return "audio", "mp3"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0:
        return "audio", "aac"  # ADTS frame sync
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06:
        return "audio", "mp3"  # MPEG audio frame sync, layer I-III
    return None, None


def read_head(path: str | os.PathLike, size: int = 32) -> bytes:
    """The first bytes of a regular file (raises OSError, MediaError for FIFOs and devices)."""
    _regular(Path(path))
    with open(path, "rb") as f:
        return f.read(size)


def content_kind(path: str | os.PathLike) -> tuple[str | None, str | None]:
    """(kind, format) by content; (None, None) when unreadable or not media we read."""
    try:
        return sniff(read_head(path))
    except (OSError, MediaError):
        return None, None


def kind_by_content(path: str | os.PathLike) -> str | None:
    """The file's kind by its content, else by its extension (so a damaged .jpg still gets its error row)."""
    return content_kind(path)[0] or kind_of(path)


def matches(path: str, patterns: Iterable[str]) -> bool:
    """Whether a glob matches the file name or the whole path ('*.jpg', 'drafts/*', '*/old/*')."""
    name = os.path.basename(path)
    return any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(path, p) for p in patterns)


def walk(paths: Iterable[str | os.PathLike], kinds: frozenset[str] = frozenset({"image", "video", "audio"}),
         include: Iterable[str] = (), exclude: Iterable[str] = (),
         skipped: Counter | None = None) -> Iterator[Path]:
    """Yield media files under the given files and folders, recursively, in a stable order.

    Files in folders are typed by content (magic bytes), not by name; files whose content is no media of `kinds`
    and whose extension is none either are counted in `skipped` by reason. A path given explicitly is yielded
    whatever it holds, so the scan reports it. Symlinked folders are not followed (loops); unreadable folders
    are skipped by os.walk's onerror.
    """
    include, exclude = list(include), list(exclude)
    skipped = Counter() if skipped is None else skipped

    def wanted(path: Path) -> bool:
        text = os.fspath(path)
        if include and not matches(text, include):
            skipped["not matched by --include"] += 1
            return False
        if exclude and matches(text, exclude):
            skipped["excluded by --exclude"] += 1
            return False
        return True

    for given in paths:
        p = Path(given)
        if not p.is_dir():
            if wanted(p):
                yield p
            continue
        for root, dirs, files in os.walk(p, onerror=None):
            dirs.sort()
            for name in sorted(files):
                path = Path(root) / name
                if not wanted(path):
                    continue
                kind, fmt = content_kind(path)
                if kind in kinds or (kind is None and kind_of(name) in kinds):
                    yield path
                elif kind is not None:
                    skipped[f"{kind} (not scanned here)"] += 1
                elif fmt is not None:
                    skipped[f"unsupported format ({fmt})"] += 1
                else:
                    skipped["not media (by content)"] += 1


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

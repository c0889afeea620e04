"""Find media files and decode still images (OpenCV); video and audio live in video.py and audio.py."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from . import config
from .errors import MediaError

VIDEO_EXTS = frozenset({".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".gif"})
AUDIO_EXTS = frozenset({".mp3", ".flac", ".wav", ".ogg", ".oga", ".opus", ".m4a", ".aac"})


def kind_of(path: str | os.PathLike) -> str | None:
    """'image', 'video', 'audio' or None, from the file extension."""
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext in config.IMAGE_EXTS:
        return "image"
    if ext in VIDEO_EXTS:
        return "video"
    if ext in AUDIO_EXTS:
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


def decode_image(data: bytes, max_pixels: int = config.MAX_IMAGE_PIXELS) -> np.ndarray:
    """Decode image bytes to a BGR uint8 array (EXIF rotation applied), guarding against decompression bombs."""
    import io

    import cv2
    from PIL import Image, UnidentifiedImageError

    # Pillow reads only the header here: a cheap size check before OpenCV allocates the pixels.
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
    except UnidentifiedImageError as exc:
        raise MediaError("not a readable image (unknown format, or the header is corrupt)") from exc
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise MediaError(f"not a readable image: {exc}") from exc
    if w <= 0 or h <= 0:
        raise MediaError(f"image has no pixels ({w}x{h})")
    if w * h > max_pixels:
        raise MediaError(f"image too large ({w}x{h} = {w * h} pixels; limit {max_pixels})")
    truncated = _truncation(data)
    if truncated:
        raise MediaError(truncated)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise MediaError("image data is corrupt or truncated (OpenCV could not decode it)")
    return image


def load_image(path: Path) -> np.ndarray:
    """Read and decode an image file (works for any file name, since bytes go through imdecode)."""
    return decode_image(read_bytes(path))


def _truncation(data: bytes) -> str | None:
    """Say so when a JPEG or PNG lacks its end marker: OpenCV would return a grey-filled partial image."""
    if data[:2] == b"\xff\xd8" and b"\xff\xd9" not in data[-4096:]:
        return "truncated JPEG (no end-of-image marker)"
    if data[:8] == b"\x89PNG\r\n\x1a\n" and b"IEND" not in data[-64:]:
        return "truncated PNG (no IEND chunk)"
    return None


def open_container(path: str | os.PathLike):
    """Open an audio/video file with PyAV for reading, turning every failure into MediaError."""
    import av

    p = Path(path)
    if not p.exists():
        raise MediaError("no such file")
    if not p.is_file():
        raise MediaError("not a regular file")
    if p.stat().st_size == 0:
        raise MediaError("empty file (0 bytes)")
    try:
        return av.open(str(p), mode="r")
    except (av.error.FFmpegError, OSError, UnicodeError) as e:
        raise MediaError(f"cannot open as media: {av_reason(e)}") from e


def av_reason(e: Exception) -> str:
    """FFmpeg's own reason without errno and file name (PyAV puts both in str(e))."""
    return getattr(e, "strerror", None) or str(e)

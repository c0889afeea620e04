"""One media file as scan and enroll both see it: its kind, printable name, SHA-256, and an image's bytes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ..errors import MediaError
from .files import content_kind, display_path, hash_file, kind_of, read_bytes


@dataclass
class Source:
    """A typed, hashed file; `data` holds an image's bytes (read once for the hash and the decoding)."""

    path: Path
    shown: str
    kind: str  # "image" | "video" | "audio"
    sha256: str
    data: bytes | None = None


def open_source(path: str | Path, sha256: str | None = None) -> Source:
    """Type, hash and (for images) read one file; MediaError says why it cannot be used.

    :param sha256: the file's hash when the caller has just taken it (saves reading a large video twice)
    """
    path = Path(path)
    if path.is_dir():
        raise MediaError("is a folder")
    kind, fmt = content_kind(path)  # by content; by extension only when the content names nothing
    kind = kind or (None if fmt else kind_of(path))
    if kind == "image" and (fmt == "webp" or (fmt is None and path.suffix.lower() == ".webp")):
        from .animated import is_animated

        if is_animated(path):  # animated WebP is decoded frame by frame, like video
            kind = "video"
    if kind == "image":
        data = read_bytes(path)
        return Source(path, display_path(path), kind, hashlib.sha256(data).hexdigest(), data)
    if kind in ("video", "audio"):
        return Source(path, display_path(path), kind, sha256 or hash_file(path))
    raise MediaError(f"unsupported file type '{fmt or path.suffix or '(none)'}'")

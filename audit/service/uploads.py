"""Uploads are hostile input: bounded request bodies, files streamed to private temp files, typed by content."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .. import config

CHUNK = 1 << 20
_PLAIN_EXT = re.compile(r"\.[a-z0-9]{1,10}")  # a client's extension kept as it is: nothing else

# (offset, magic bytes, extension); the scanner and enrolment pick decoders by extension, so the content decides it.
_MAGIC = [
    (0, b"\xff\xd8\xff", ".jpg"), (0, b"\x89PNG\r\n\x1a\n", ".png"), (0, b"GIF87a", ".gif"), (0, b"GIF89a", ".gif"),
    (0, b"II*\x00", ".tif"), (0, b"MM\x00*", ".tif"), (0, b"BM", ".bmp"), (0, b"fLaC", ".flac"), (0, b"OggS", ".ogg"),
    (0, b"ID3", ".mp3"), (0, b"\xff\xfb", ".mp3"), (0, b"\xff\xf3", ".mp3"), (0, b"\xff\xf2", ".mp3"),
    (0, b"\xff\xf1", ".aac"), (0, b"\xff\xf9", ".aac"),
]


def sniff(head: bytes) -> str | None:
    """The media extension the first bytes of a file show, or None."""
    if head[:4] == b"RIFF" and len(head) >= 12:
        return {b"WEBP": ".webp", b"WAVE": ".wav", b"AVI ": ".avi"}.get(head[8:12])
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        return ".m4a" if brand.startswith(b"M4A") else ".mov" if brand == b"qt  " else ".mp4"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return ".webm" if b"webm" in head[:64] else ".mkv"
    for offset, magic, ext in _MAGIC:
        if head[offset:offset + len(magic)] == magic:
            return ext
    return None


def shown_name(client_name: str | None) -> str:
    """The client's file name for display only (last part, bounded); never used as a path."""
    name = PurePosixPath((client_name or "").replace("\\", "/")).name
    return (name or "upload")[:200]


@dataclass
class Saved:
    """One uploaded file: where the server put it, and the name the client gave it (for display)."""

    path: Path
    name: str


class TooLarge(Exception):
    """An upload beyond the configured limits (answered 413)."""


class NoFiles(Exception):
    """A form that carried no file (answered 422)."""


def files_of(form) -> list:
    """The files of a multipart form's `files` field, or NoFiles: file parts with a name only (a browser's empty
    file input sends a nameless, empty part), the same filter for every upload route."""
    files = [f for f in form.getlist("files") if hasattr(f, "file") and f.filename]
    if not files:
        raise NoFiles("no files: send one or more multipart `files`")
    return files


def save(uploads: list, folder: Path, max_file: int, max_files: int) -> list[Saved]:
    """Stream uploads (Starlette UploadFile) into folder as 001.jpg, 002.flac, ...: mode 600, named by the server.

    The extension comes from the content; unknown content keeps the client's extension when it is plain (letters
    and digits, so a media extension lets the decoder report the mismatch as the CLI would, and anything else is
    reported as the unsupported type it is: '.csv', not a made-up name), else none.
    """
    if len(uploads) > max_files:
        raise TooLarge(f"too many files ({len(uploads)}; limit {max_files})")
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    out = []
    for i, up in enumerate(uploads, 1):
        name = shown_name(up.filename)
        tmp = folder / f"{i:03d}.part"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        size, head = 0, b""
        with os.fdopen(fd, "wb") as f:
            while chunk := up.file.read(CHUNK):
                size += len(chunk)
                if size > max_file:
                    f.close()
                    tmp.unlink()
                    raise TooLarge(f"{name}: file too large (over {max_file} bytes)")
                if len(head) < 64:
                    head += chunk[:64]
                f.write(chunk)
        client_ext = os.path.splitext(name)[1].lower()
        ext = sniff(head) or (client_ext if _PLAIN_EXT.fullmatch(client_ext) else "")
        path = tmp.rename(folder / f"{i:03d}{ext}")
        out.append(Saved(path, name))
    return out


class BodyLimit:
    """ASGI middleware: refuse request bodies over a limit, by Content-Length and while they stream in."""

    def __init__(self, app, limit: int = config.SERVICE_MAX_UPLOAD_BYTES):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await _too_large(send, self.limit)
        seen, over = 0, False

        async def counted():
            nonlocal seen, over
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    over = True
                    raise TooLarge(f"request body over {self.limit} bytes")
            return message

        async def guarded(message):
            if not over:  # once over the limit, whatever the app answers (a parse error) gives way to the 413
                await send(message)

        try:
            await self.app(scope, counted, guarded)
        except TooLarge:
            pass
        if over:
            await _too_large(send, self.limit)


async def _too_large(send, limit: int) -> None:
    body = f'{{"detail": "request body over the limit of {limit} bytes"}}'.encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})

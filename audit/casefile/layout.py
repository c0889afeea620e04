"""What a case file holds and how its members are named: shared by the writer and the verifier."""

from __future__ import annotations

import re

FORMAT = "likeness-audit case file"
VERSION = 1
MANIFEST, SIGNATURE = "manifest.json", "manifest.sig"
FINDINGS, RUN, VERSIONS, FILES, REFERENCES, PAGE = (
    "findings.json", "run.json", "versions.json", "files.json", "references.json", "report.html")
REVIEWS = "reviews.json"  # review decisions (finding id -> state, reviewer, note, time, answers), when attached
COMMENT_PREFIX = "likeness-audit case file; manifest sha256 "
# Zip timestamps are fixed so the same record always packs to the same bytes; the manifest says when it was made.
DATE_TIME = (1980, 1, 1, 0, 0, 0)

# Bounds on what the verifier reads: a hostile archive must not exhaust memory or time.
MAX_MEMBERS = 200_000
MAX_MANIFEST = 64 * 1024 * 1024
MAX_MEMBER = 1024 * 1024 * 1024
MAX_TOTAL = 8 * 1024 * 1024 * 1024
CHUNK = 1024 * 1024

_SAFE = re.compile(r"[A-Za-z0-9._-]+")


def unsafe(name: str) -> str | None:
    """Why a member name is not safe to extract (absolute, '..', a backslash, odd characters), or None."""
    if not name or name.startswith("/") or "\\" in name or "\x00" in name:
        return "an absolute or malformed path"
    parts = name.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return "a path with '..', '.' or an empty part"
    if not all(_SAFE.fullmatch(p) for p in parts):
        return "characters outside A-Z a-z 0-9 . _ -"
    return None


def picture_name(kind: str, n: int, data: bytes) -> str:
    """pictures/0001-crop.jpg: a finding's picture, named by its row number and what it holds."""
    return f"pictures/{n:04d}-{kind}{extension(data)}"


def extension(data: bytes) -> str:
    """The file extension a picture's bytes call for."""
    if data[:3] == b"\xff\xd8\xff":
        return ".jpg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return ".png"
    return ".bin"

"""Person ids and display names: what the store accepts, for the CLI, the API and the web service alike."""

from __future__ import annotations

import re
import unicodedata

from ..errors import InputError

# Safe in file names, URLs, shell words and log lines; no leading '-' so an id is never taken for an option.
ID_RE = re.compile(r"[A-Za-z0-9._][A-Za-z0-9._-]{0,63}")
MAX_NAME = 200
# Bidirectional overrides and isolates reorder what a terminal shows; other format characters (ZWNJ) are real names.
BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def check_id(pid: str) -> str:
    """The id itself, or InputError: letters, digits, '.', '_' or '-', 1-64 characters, not starting with '-'."""
    if not isinstance(pid, str) or not ID_RE.fullmatch(pid):
        raise InputError(f"{pid!r} is not a valid person id: use 1-64 letters, digits, '.', '_' or '-', "
                         "not starting with '-'", code="bad-person-id")
    return pid


def check_name(name: str | None) -> str | None:
    """The display name, or InputError when it holds control characters (a newline would forge output lines)."""
    if name is None:
        return None
    if not name.strip():
        raise InputError("a display name cannot be empty")
    if len(name) > MAX_NAME:
        raise InputError(f"a display name is at most {MAX_NAME} characters")
    bad = [c for c in name if unicodedata.category(c) in ("Cc", "Zl", "Zp") or c in BIDI]
    if bad:
        raise InputError(f"a display name cannot hold control characters (found {ascii(''.join(bad))})")
    return name

"""Consent scopes: the words a use is named by, checked once for the CLI, the API and the service."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date

from .errors import AuditError

STARTER_SCOPES = ("research", "training", "avatar", "advertising", "voice-clone", "commercial", "film", "news")
SCOPE_RE = re.compile(r"^(\*|[a-z0-9][a-z0-9._-]{0,63})$")
STATUSES = ("allowed", "denied", "expired", "unknown")
NOTE_MAX = 2000  # characters of a consent note: a contract reference, not a document (each one is logged)
SCOPES_MAX = 64  # scopes named in one change


def scopes(values: Iterable[str]) -> list[str]:
    """Scopes from a list (items may be comma-separated), lower-cased, checked, without repeats."""
    out: list[str] = []
    for value in values:
        for scope in value.split(","):
            scope = scope.strip().lower()
            if not SCOPE_RE.match(scope):
                raise AuditError(f"'{scope}' is not a scope: use a word of letters, digits, '.', '_' or '-' (or '*')")
            if scope not in out:
                out.append(scope)
    if len(out) > SCOPES_MAX:
        raise AuditError(f"{len(out)} scopes in one change; at most {SCOPES_MAX}", code="too-many-scopes")
    return out


def check_note(note: str | None) -> str | None:
    """A consent note, refused beyond NOTE_MAX characters (the CLI, the API and the pages share the rule)."""
    if note is not None and len(note) > NOTE_MAX:
        raise AuditError(f"consent note of {len(note)} characters; at most {NOTE_MAX}", code="note-too-long")
    return note


def check_change(allow: list[str], deny: list[str], forget: list[str], until: str | None) -> str | None:
    """Refuse contradictory changes; returns `until` as YYYY-MM-DD."""
    clash = (set(allow) & set(deny)) | (set(forget) & (set(allow) | set(deny)))
    if clash:
        raise AuditError(f"scope given twice with different meanings: {', '.join(sorted(clash))}")
    if until is None:
        return None
    if not allow:
        raise AuditError("until applies to allowed scopes; give at least one")
    try:
        return date.fromisoformat(str(until)).isoformat()
    except ValueError:
        raise AuditError(f"until {until!r} is not a date (YYYY-MM-DD)") from None

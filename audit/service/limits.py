"""Length limits on every text the service takes (422 beyond them): one place, used by the API's and the pages'
parameters and bodies, so no field is unbounded."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Path
from fastapi.exceptions import RequestValidationError

from .. import consent

NOTE_MAX = consent.NOTE_MAX  # consent notes: the library's own rule
SCOPES_MAX = consent.SCOPES_MAX
ID_MAX = 64  # account and person ids (store/naming.py's rule)
JOB_MAX = 32  # scan ids are 16 hex digits
CODE_MAX = 128  # invitation codes, CSRF tokens
PASSWORD_MAX = 1024  # argon2 takes any length; a megabyte of password is only a way to spend our CPU
WORD_MAX = 64  # a scope, a use, a role, a decision
SCOPES_TEXT_MAX = SCOPES_MAX * (WORD_MAX + 1)  # a form's space- or comma-separated scopes
DATE_MAX = 32
REVIEW_NOTE_MAX = 2000  # a review decision's note (store/review.py NOTE_MAX)
PATH_MAX = 4096  # one path of a path-mode scan
PATHS_MAX = 1000  # paths in one path-mode scan

PersonId = Annotated[str, Path(max_length=ID_MAX)]
AccountId = Annotated[str, Path(max_length=ID_MAX)]
JobId = Annotated[str, Path(max_length=JOB_MAX)]
Code = Annotated[str, Path(max_length=CODE_MAX)]


def form(limit: int):
    """A form field of at most `limit` characters (its default, if any, is given with `=`)."""
    return Form(max_length=limit)


def check(value: str | None, limit: int, where: tuple) -> str | None:
    """value, or a 422 like FastAPI's own when it is longer than limit (for fields read by hand)."""
    if value is not None and len(value) > limit:
        raise RequestValidationError([{"loc": where, "msg": f"at most {limit} characters",
                                       "type": "string_too_long"}])
    return value

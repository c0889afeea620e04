"""Exceptions raised by the library; the CLI turns them into messages and exit codes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class AuditError(Exception):
    """Base class for every error likeness-audit raises on purpose.

    The message is the library's plain statement; the fields say what went wrong so that each door (CLI, web
    pages, API) words it for its own reader instead of parsing the text:
    code (a stable slug, e.g. "no-face"), path (the file), person, scores (numbers behind the decision),
    hint (a stable slug for the advice, e.g. "pick-largest", that each door turns into its own words),
    problems (the per-file errors behind an error about a whole batch).
    """

    def __init__(self, message: str = "", *, code: str | None = None, path: str | None = None,
                 person: str | None = None, scores: dict[str, float] | None = None, hint: str | None = None,
                 problems: list[AuditError] | None = None):
        super().__init__(message)
        self.code, self.path, self.person, self.hint = code, path, person, hint
        self.scores: dict[str, float] = dict(scores or {})
        self.problems: list[AuditError] = list(problems or [])

    def __str__(self) -> str:
        return self.worded()

    @property
    def message(self) -> str:
        """The library's plain statement (no advice for any one door), each problem's included."""
        return self.worded()

    def worded(self, say: Callable[[AuditError], str] | None = None) -> str:
        """The statement with each problem listed as "path: reason", the reasons worded by say (default: ours).

        A door passes its own say (the CLI adds its advice for each hint) instead of parsing this text.
        """
        head = str(self.args[0]) if self.args else ""
        if not self.problems:
            return head
        say = say or AuditError.worded
        listed = "; ".join(f"{p.path}: {say(p)}" if p.path else say(p) for p in self.problems)
        return f"{head} ({listed})"

    def fields(self) -> dict[str, Any]:
        """The error as plain data (for the API's JSON error bodies)."""
        out: dict[str, Any] = {"error": type(self).__name__, "message": self.message}
        for key in ("code", "path", "person", "hint"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.scores:
            out["scores"] = self.scores
        if self.problems:
            out["problems"] = [p.fields() for p in self.problems]
        return out


class ModelError(AuditError):
    """A model file is missing, unreadable or of the wrong kind."""


class MediaError(AuditError):
    """A media file cannot be decoded."""


class EnrollError(AuditError):
    """Nothing usable was found to enroll."""


class StoreError(AuditError):
    """The registry or an index is missing, inconsistent or damaged."""


class UnknownPerson(AuditError):
    """No person with that id is registered."""


class KeyProblem(StoreError):
    """The encryption key is missing, wrong, malformed or kept unsafely."""


class CalibrationError(AuditError):
    """The gallery (or cohort) is too small or too uniform to calibrate from."""


class TemplateError(StoreError):
    """A template file that cannot be imported as it is (the message names the row)."""


class InputError(AuditError):
    """A value given (a person id, a name, a path, an option) is not acceptable."""


class MissingPath(InputError):
    """A path given to scan does not exist."""


class NothingToScan(InputError):
    """No scannable media was found under the paths given."""


class NothingEnrolled(AuditError):
    """No one is enrolled for any modality the scan would search: it could only ever come back clean."""


class ErasureIncomplete(StoreError):
    """A removal is committed but its bytes could not be erased yet (another process holds the registry open)."""

"""Exceptions raised by the library; the CLI turns them into messages and exit codes."""


class AuditError(Exception):
    """Base class for every error likeness-audit raises on purpose."""


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

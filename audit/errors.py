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

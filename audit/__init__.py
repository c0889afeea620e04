"""likeness-audit: find registered people's faces and voices in generated media."""

from .errors import AuditError, EnrollError, MediaError, ModelError, StoreError, UnknownPerson
from .findings import Finding

__all__ = ["AuditError", "EnrollError", "Finding", "MediaError", "ModelError", "StoreError", "UnknownPerson"]

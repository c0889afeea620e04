"""Enrolment, a library function beside audit.scan: a person's photos, videos or recordings -> checked samples
-> the store (enroll.py); many people from a CSV manifest (bulk.py)."""

from .bulk import ManifestResult, enroll_manifest, read_manifest
from .enroll import VOICE_AGREEMENT, EnrollResult, Skipped, enroll_faces, enroll_voices

__all__ = ["VOICE_AGREEMENT", "EnrollResult", "ManifestResult", "Skipped", "enroll_faces", "enroll_manifest",
           "enroll_voices", "read_manifest"]

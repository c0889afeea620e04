"""likeness-audit: find registered people's faces and voices in generated media.

    import audit
    store = audit.open_store("indexes")
    audit.enroll_faces(store, "alice", ["photos/alice/"], name="Alice A.")
    run = audit.scan(store, ["generated/"], use="advertising")
    findings = list(run)
    audit.write_findings(findings, "findings.parquet")

Nothing heavy happens at import: models load on first use.
"""

from .enroll import EnrollResult, Skipped, enroll_faces, enroll_manifest, enroll_voices
from .errors import AuditError, EnrollError, MediaError, ModelError, StoreError, UnknownPerson
from .findings import Finding
from .report import findings_frame, read_findings, write_findings
from .scan import ScanOptions, ScanRun, ScanSummary, scan
from .store import Store, VerifyReport, open_store

__all__ = [
    "AuditError", "EnrollError", "EnrollResult", "Finding", "MediaError", "ModelError", "ScanOptions", "ScanRun",
    "ScanSummary", "Skipped", "Store", "StoreError", "UnknownPerson", "VerifyReport", "enroll_faces", "enroll_manifest",
    "enroll_voices", "findings_frame", "open_store", "read_findings", "scan", "write_findings",
]

"""likeness-audit: find registered people's faces and voices in generated media.

    import audit
    store = audit.open_store("indexes")
    audit.enroll_faces(store, "alice", ["photos/alice/"], name="Alice A.")
    run = audit.scan(store, ["generated/"], use="advertising")
    findings = list(run)
    audit.write_record(run.record(), "findings.parquet")   # findings, pictures, the run's own metadata
    evidence = audit.read_record("findings.parquet")        # ... and back, for `report` on any machine

Nothing heavy happens at import: models load on first use.
"""

from .enroll import EnrollResult, Skipped, enroll_faces, enroll_manifest, enroll_voices
from .errors import AuditError, EnrollError, MediaError, ModelError, StoreError, UnknownPerson
from .evidence import Evidence
from .findings import Finding, finding_id
from .report import findings_frame, read_findings, read_record, write_findings, write_record
from .scan import ScanOptions, ScanRun, ScanSummary, scan
from .scan.rematch import RematchSummary, rematch
from .store import Store, VerifyReport, inventory, open_store
from .store.review import Decision, PersonSummary, with_reviews
from .store.review import answer as answer_finding
from .store.review import decisions as review_decisions
from .store.review import review as review_finding
from .store.review import summary as review_summary

__all__ = [
    "AuditError", "Decision", "EnrollError", "EnrollResult", "Evidence", "Finding", "MediaError", "ModelError",
    "PersonSummary", "RematchSummary", "ScanOptions", "ScanRun", "ScanSummary", "Skipped", "Store", "StoreError",
    "UnknownPerson", "VerifyReport", "answer_finding", "enroll_faces", "enroll_manifest", "enroll_voices",
    "finding_id", "findings_frame", "open_store", "read_findings", "read_record", "rematch", "review_decisions",
    "review_finding",
    "review_summary", "scan", "with_reviews", "write_findings", "write_record",
]


def _forget_in_service(home, pid: str, cipher) -> None:
    """Every removal, from any door or the library, also redacts the person from the web service's job folders and
    database (store/inventory.py names them); imported only when called."""
    from .service.forget import forget_person

    forget_person(home, pid, cipher)


def _forget_in_notifications(home, pid: str, cipher) -> None:
    """Every removal also deletes the webhook deliveries naming the person (store/inventory.py names the file)."""
    from .notify import erase

    erase(home, pid, cipher)


inventory.ERASERS.append(_forget_in_service)
inventory.ERASERS.append(_forget_in_notifications)

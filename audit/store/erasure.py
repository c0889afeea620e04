"""`remove`: delete a person from the registry and every index, redact them from the audit log (log/redaction.py),
and wipe the bytes, waiting a bounded time for readers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import config
from . import archive_voice, faults, inventory, review, scancache, upkeep
from .archive import Archive, ArchiveDamaged
from ..errors import ErasureIncomplete, UnknownPerson
from .log.auditlog import details_hash
from .log.redaction import apply, plan
from .upkeep import UNFINISHED

ERASURES = "erasures"  # meta key: removals so far; a running scan's cache drops what it holds when it moves

if TYPE_CHECKING:
    from pathlib import Path

    from .log.auditlog import AuditLog
    from .registry import Registry


def delete(home: Path, registry: Registry, log: AuditLog, pid: str) -> list[int]:
    """Remove a person (under the writer lock): the committed delete, the log's redaction, the index updates,
    then the bytes wiped (waiting a bounded time for readers; the removal stays marked unfinished if they hold on)."""
    pseudonym = log.sealer.pseudonym(pid)
    with registry.transaction():
        purged = registry.vectors_of_person(pid)  # an IVF base checks its list centroids against them
        removed = registry.delete_person(pid)  # (table, modality, model) -> ids, samples and centroids
        decisions = review.erase(registry, pid)  # review decisions naming them, and their own answers
        ids = [i for (table, _, _), got in removed.items() if table == "samples" for i in got]
        seq = (log.head() or {"seq": 0})["seq"] + 1
        redacted = plan(log, pid, pseudonym, seq)
        log.stage("remove", {"person": pseudonym, "vectors": len(ids), "decisions": decisions,
                                  "erased": {str(k): details_hash(v) for k, v in redacted.items()}})
        registry.set_meta(UNFINISHED, "remove")
        registry.set_meta(ERASURES, str(int(registry.meta(ERASURES) or 0) + 1))
        faults.point("store.remove:before-commit")
    faults.point("store.remove:committed")
    log.flush()
    faults.point("store.remove:before-redact")
    apply(log, log.sealer)
    # purge: the removed vectors leave every segment file now (a base holding them is rewritten without them).
    upkeep.apply_changes(home, registry, {key: [[], [], got] for key, got in removed.items()}, purge=True, purged=purged)
    scancache.erase(home)  # cached analyses may hold the person's exact vector (a scanned enrolment photo)
    faults.point("store.remove:before-vacuum")
    # Compact the file so deleted pages do not linger (secure_delete zeroes them as well), and empty
    # the WAL, whose older frames still hold the pages as they were before the delete.
    registry.db.execute("VACUUM")
    if upkeep.wipe_wal(registry, upkeep.ERASE_WAIT_S):
        upkeep.finished(registry)
    return ids


def remove(home: Path, registry: Registry, log: AuditLog, pid: str) -> int:
    """`remove` (under the writer lock): delete, or finish the erasure of a person removed before."""
    try:
        registry.person(pid)
    except UnknownPerson:
        if not log.about(person=pid, event="remove"):
            raise
        ids = []  # removed before: only the erasure may be left to finish
        faces, voices = {}, None  # their templates are gone: the archive rows attributed to them are erased
        if registry.meta(UNFINISHED) == "remove":
            upkeep.finish(home, registry, log, upkeep.ERASE_WAIT_S)
    else:
        faces = {mo: registry.person_vectors(pid, "face", mo) for m, mo in registry.models() if m == "face"}
        voices = archive_voice.voice_judge(registry, pid)  # read before their centroids are deleted
        ids = delete(home, registry, log, pid)
    inventory.erase(home, pid, registry.cipher)  # the places other layers own (the web service's findings), also on a retry
    # last: a damaged partition stops it with ErasureIncomplete
    erase_archive(home, registry, pid, faces, voices.matches if voices else None)
    if registry.meta(UNFINISHED) == "remove":
        raise ErasureIncomplete(
            f"the removal of {pid} is committed but not yet erased: another process holds the registry open (a "
            f"long read), so the deleted rows are still on disk; run `likeness-audit remove {pid}` again once it "
            "has finished (`likeness-audit verify` lists this until then)")
    return len(ids)


def erase_archive(home: Path, registry: Registry, pid: str, faces: dict, voices=None) -> int:
    """The embedding archive's rows about the person: those the scans attributed to them, every archived face
    that matches their templates at the lower of the default and the calibrated face thresholds, and every voice
    segment voices(model, vectors) finds theirs (archive_voice.py)."""
    thresholds = [config.DEFAULT_FACE_THRESHOLD]
    thresholds += [c.threshold for mo in faces if (c := registry.calibration("face", mo)) is not None]
    try:
        return Archive(home, registry.cipher).erase(pid, faces, min(thresholds), voices)
    except ArchiveDamaged as exc:
        raise ErasureIncomplete(f"the removal of {pid} is committed, but {exc}: it could not be checked for the "
                                "person. Restore or delete that file, then run `likeness-audit remove` "
                                "again") from exc


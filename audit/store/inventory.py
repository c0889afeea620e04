"""Every place under a store folder that can hold a person's data or findings about them, and how each is erased,
exported and verified: the one map that `remove`, export, `verify` and retention go by.

A file under the store folder that no place names is reported by `verify`: whatever the project writes there must
be added here first, so that erasure reaches it.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Place:
    """One kind of file or folder in a store, with what it may hold about a person."""

    name: str
    patterns: tuple[str, ...]  # globs relative to the store folder ("jobs/*" matches anything below jobs/)
    holds: str  # what personal data it can hold
    erased: str  # how a removal reaches it
    exported: str  # what a person's export takes from it
    verified: str  # what verify checks of it


PLACES = (
    Place("registry", ("registry.sqlite", "registry.sqlite-wal", "registry.sqlite-shm"),
          "people, display names, enrolled vectors (voices: also band-limited templates, enroll/narrowband.py), "
          "source file hashes, consent and notes, reference crops, "
          "review decisions on findings naming them and their own answers, with notes (review.py)",
          "rows deleted with secure_delete (decisions naming the person too), the file vacuumed, the WAL emptied "
          "(erasure.py)", "the person's samples (no vectors), consent and reference crop",
          "row seals (MACs) of samples and review decisions, centroids against samples, the log head"),
    Place("indexes", ("face-*.json", "face-*.faiss", "voice-*.json", "voice-*.faiss", "face-*.tmp", "voice-*.tmp"),
          "vectors (and PQ codes) of every enrolled sample and centroid",
          "segments rewritten without the person's vectors; superseded files deleted (upkeep.apply_changes, purge)",
          "nothing (derived from the registry)", "sealed manifests, checksums, contents against the registry"),
    Place("audit log", ("audit.log", "audit.log.*.tmp", "audit.log.*.redact"),
          "ids, consent notes, file hashes of enrolments and of scans that named a person",
          "redacted to a keyed pseudonym at removal, and at write time for a person removed meanwhile "
          "(log/redaction.py)", "the entries about the person", "the hash chain and its MAC'd head"),
    Place("scan cache", ("scan-cache.sqlite", "scan-cache.sqlite-wal", "scan-cache.sqlite-shm"),
          "face and voice embeddings of every scanned file (enrolment photos scanned too); the resume journal",
          "the analyses emptied at every removal, pages zeroed (scancache.erase); a running scan drops its own",
          "nothing (a cache)", "sealed blobs are opened only with the store's key"),
    Place("embedding archive", ("archive", "archive/*"),
          "every face (embedding, box, evidence crop) and voice segment (embedding) of every scanned file, "
          "attributed or not, with the file's hash and name and the people the scan named (docs/continuous.md)",
          "rows the scans attributed to the person, faces matching their templates and voice segments a scan would "
          "give them (archive_voice.py) are cut out, each partition rewritten (archive.erase); the rest is pruned "
          "after $AUDIT_ARCHIVE_DAYS days",
          "the rows attributed to the person (where, when, which scan; no embeddings)",
          "every partition read whole: page checksums, or the seal of an encrypted store"),
    Place("service database", ("service.sqlite", "service.sqlite-wal", "service.sqlite-shm"),
          "web accounts, sessions, invitations, scan jobs and who was found in which",
          "the service's erasure hook (ERASERS) forgets who was found", "the findings naming the person",
          "nothing yet"),
    Place("job folders", ("jobs", "jobs/*"),
          "a scan job's uploads (until scanned), findings, evidence sidecar, report and crops",
          "the service's erasure hook (ERASERS) redacts findings and deletes crops naming the person",
          "the findings naming the person", "nothing yet"),
    Place("notifications", ("notify.sqlite", "notify.sqlite-wal", "notify.sqlite-shm"),
          "webhooks (URL, signing secret; an actor's names their person) and the delivery log: each finding's "
          "summary (person ids, scan, file name, score) with status, attempts and last error; secrets and summaries "
          "sealed with the store's key in an encrypted store",
          "the notifications eraser (ERASERS) deletes every delivery naming the person and an actor's hook for "
          "them, pages zeroed and the file vacuumed (store/webhooks.py)",
          "the deliveries naming the person (their summaries, status and times; never the hook's URL or secret)",
          "opens, has its tables, integrity_check (verify.side_file_problems)"),
    Place("watch state", ("watch.sqlite", "watch.sqlite-wal", "watch.sqlite-shm"),
          "paths, sizes, times and SHA-256 of the files watched folders had scanned (no person ids)",
          "nothing to erase: it names files, not people; the findings are in the scans' outputs",
          "nothing", "opens, has its table, integrity_check (verify.side_file_problems)"),
    Place("upload temp", ("tmp", "tmp/*"), "uploaded media while an enrolment or a scan upload is handled",
          "deleted when the request ends, and stale folders at the server's start", "nothing", "nothing"),
    Place("lock", (".lock",), "nothing (an empty file the writer lock is taken on)", "-", "-", "-"),
)

# Erasers for places that other layers own (the web service's database and job folders): each is called with the
# store folder, the removed person's id and the store's cipher (None when plaintext) after the store's own erasure,
# also when a removal is retried. Registered by those layers (audit/__init__.py registers the service's).
ERASERS: list[Callable[[Path, str, object], None]] = []


def place_of(home: Path, path: Path) -> Place | None:
    """The place a file or folder under the store folder belongs to, or None when the inventory does not know it."""
    rel = path.relative_to(home).as_posix()
    for place in PLACES:
        if any(fnmatch.fnmatchcase(rel, p) or (p.endswith("/*") and rel.startswith(p[:-1])) for p in place.patterns):
            return place
    return None


def unknown(home: Path) -> list[str]:
    """Files and folders under the store folder that no place names (verify reports them)."""
    out = []
    for path in sorted(home.rglob("*")):
        if place_of(home, path) is None and (path.parent == home or place_of(home, path.parent) is not None):
            out.append(path.relative_to(home).as_posix())
    return out


def erase(home: Path, pid: str, cipher=None) -> None:
    """Run the erasers other layers registered (after the store's own erasure of the person)."""
    for eraser in ERASERS:
        eraser(home, pid, cipher)

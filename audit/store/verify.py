"""`verify`: every disagreement between registry, indexes, centroids and audit log, found without changing anything
(a repair is upkeep.repair); the result is a VerifyReport."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import StoreError
from . import inventory, review, watchstate, webhooks
from .archive import Archive
from .index import contents
from .log import seals
from .upkeep import TABLES, UNFINISHED, load_checked, segments, source, temp_files

if TYPE_CHECKING:
    from .log.auditlog import AuditLog
    from .registry import Registry


@dataclass
class VerifyReport:
    """What `verify` found: problems (empty when consistent), what a repair rebuilt, and what the store holds."""

    problems: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    people: int = 0
    vectors: dict[str, int] = field(default_factory=dict)  # "modality:model" -> count
    log_entries: int = 0

    @property
    def ok(self) -> bool:
        """True when registry, indexes and audit log agree."""
        return not self.problems


# SQLite files beside the registry that other parts keep, and the tables each must have.
SIDE_FILES = {webhooks.NOTIFY_FILE: ("hooks", "deliveries"), watchstate.WATCH_FILE: ("files",)}


def side_file_problems(home: Path) -> list[str]:
    """The notification and watch databases: each that exists opens, has its tables and passes integrity_check.
    Opened read-only: verify changes nothing."""
    found = []
    for name, tables in SIDE_FILES.items():
        path = home / name
        if not path.exists():
            continue
        try:
            db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=10)
            try:
                check = [r[0] for r in db.execute("PRAGMA integrity_check").fetchall()]
                have = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            finally:
                db.close()
        except sqlite3.Error as exc:
            found.append(f"{name} is damaged or not a SQLite database ({exc}); move it aside (its webhooks or "
                         "watch records are lost) and register them again")
            continue
        if check != ["ok"]:
            found.append(f"{name} is damaged (integrity_check: {'; '.join(check[:3])}); move it aside and "
                         "register its webhooks or watches again")
        missing = [t for t in tables if t not in have]
        if missing:
            found.append(f"{name} lacks its table(s) {', '.join(missing)}: not a likeness-audit {name}")
    return found


def problems(home: Path, registry: Registry, log: AuditLog) -> list[str]:
    """Every disagreement between registry, indexes, centroids and audit log (call under the shared lock).

    Reads every segment and every id: at a million vectors this takes a while, as a full check must.
    """
    found, known = [], set()
    for modality, model in registry.models():
        found += seals.check_rows(registry, modality, model)
        for table in TABLES:
            try:
                seg = segments(home, registry, table, modality, model)
                seg.read_manifest()
                known |= seg.files()
                seg = load_checked(home, registry, table, modality, model, full=True)
            except StoreError as exc:
                found.append(str(exc))
                continue
            found += contents.file_problems(seg)
            have, reg = seg.ids(), registry.ids(table, modality, model)
            if len(have) != len(reg) or set(have.tolist()) != set(reg.tolist()):
                found.append(f"index {seg.manifest_path.name} is out of step with the registry (index "
                             f"{len(have)} vectors, registry {len(reg)}); run `likeness-audit verify --repair`")
            found += contents.problems(seg, source(registry, table, modality, model))
        try:
            stale = registry.stale_centroids(modality, model)
        except StoreError as exc:  # a sample that does not decrypt: seals.check_rows names it
            found.append(f"{modality} centroids could not be checked against the samples ({exc})")
            stale = []
        if stale:
            found.append(f"{modality} centroids of {len(stale)} people differ from their samples "
                         f"({', '.join(stale[:3])}); run `likeness-audit verify --repair`")
    for path in sorted(home.iterdir()):
        if path.suffix in (".faiss", ".json") and path.name not in known:
            found.append(f"index file {path.name} is not named by any index of the registry (left by an "
                         "interrupted write, or of removed vectors); the next write removes it")
    if registry.meta(UNFINISHED) == "remove":
        found.append("a removal is committed but not yet erased: its deleted rows may still be on disk (a reader "
                     "held the registry open, or the removal was interrupted); `likeness-audit remove ID` again, "
                     "or `likeness-audit verify --repair`, finishes it")
    elif registry.meta(UNFINISHED):
        found.append(f"an interrupted {registry.meta(UNFINISHED)} was not finished; the next write, or "
                     "`likeness-audit verify --repair`, finishes it")
    found += review.problems(registry)
    found += log.check().problems()
    found += side_file_problems(home)
    found += Archive(home, registry.cipher).problems()
    found += [f"leftover temp file {p.name} from an interrupted write" for p in temp_files(home)]
    found += [f"{name} is in the store folder but not in its inventory of personal data (audit/store/inventory.py): "
              "erasure would not reach it; move it out, or delete it" for name in inventory.unknown(home)]
    return found


def summary(report: VerifyReport, registry: Registry, log: AuditLog) -> VerifyReport:
    """Fill in what the store holds: people, vectors per modality and model, audit log entries."""
    report.people = len(registry.names())
    report.vectors = {f"{m}:{mo[:8]}": n for (m, mo), n in registry.counts().items()}
    report.log_entries = log.check().entries
    return report

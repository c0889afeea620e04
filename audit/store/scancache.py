"""The scan cache: what scanning a file gave (opaque blobs keyed by file SHA-256 + model + settings), and the
journal of scans that were stopped, so `scan --resume` can skip what was done.

The blobs hold biometric vectors: they are sealed with the store's key when the store is encrypted, and the file
is private (0600), like the store's indexes. Nothing here is pickled; callers give and get bytes.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from .crypto import Cipher, sealed

CACHE_FILE = "scan-cache.sqlite"
COMMIT_EVERY = 32  # puts per transaction: one commit per file would cost more than a small file's scan

SCHEMA = """
CREATE TABLE IF NOT EXISTS analysis (key TEXT PRIMARY KEY, blob BLOB NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS runs (run TEXT PRIMARY KEY, state TEXT NOT NULL, started REAL NOT NULL);
CREATE TABLE IF NOT EXISTS done (run TEXT NOT NULL, path BLOB NOT NULL, size INTEGER NOT NULL,
                                 mtime_ns INTEGER NOT NULL, sha256 TEXT, PRIMARY KEY (run, path));
"""


class ScanCache:
    """Cached analyses and the resume journal, in one private SQLite file beside the registry."""

    def __init__(self, home: Path, cipher: Cipher | None):
        path = home / CACHE_FILE
        fresh = not path.exists()
        if fresh:  # create it private before SQLite writes anything into it
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        self.cipher = cipher
        self._db = sqlite3.connect(path, timeout=30, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)
        self._pending = 0

    def get(self, key: str) -> bytes | None:
        """The blob stored under key, or None (also when it cannot be opened with this store's key)."""
        row = self._db.execute("SELECT blob FROM analysis WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        if self.cipher is None:
            return None if sealed(row[0]) else bytes(row[0])  # sealed by a key this store no longer has
        try:
            return self.cipher.open(row[0], key.encode(), "a cached analysis")
        except Exception:  # wrong key or altered: the file is analysed again, nothing is trusted
            return None

    def put(self, key: str, blob: bytes) -> None:
        """Store a blob (sealed when the store is encrypted)."""
        data = self.cipher.seal(blob, key.encode()) if self.cipher is not None else blob
        self._db.execute("INSERT OR REPLACE INTO analysis VALUES (?, ?, ?)", (key, data, time.time()))
        self._tick()

    # resume journal
    def start_run(self, run: str, resume: bool) -> dict[bytes, tuple[int, int, str | None]]:
        """Begin (or, with resume, continue) a run; returns path (bytes) -> (size, mtime_ns, sha256) of files done."""
        row = self._db.execute("SELECT state FROM runs WHERE run = ?", (run,)).fetchone()
        done = {}
        if resume and row is not None:
            done = {bytes(p): (s, m, h) for p, s, m, h in
                    self._db.execute("SELECT path, size, mtime_ns, sha256 FROM done WHERE run = ?", (run,))}
        else:
            self._db.execute("DELETE FROM done WHERE run = ?", (run,))
        self._db.execute("INSERT OR REPLACE INTO runs VALUES (?, 'running', ?)", (run, time.time()))
        self._db.commit()
        return done

    def resumable(self, run: str) -> bool:
        """Whether a run with this key was started and did not finish."""
        row = self._db.execute("SELECT state FROM runs WHERE run = ?", (run,)).fetchone()
        return row is not None and row[0] == "running"

    def mark_done(self, run: str, path: bytes, size: int, mtime_ns: int, sha256: str | None) -> None:
        """Note a file (its path as bytes: names need not be UTF-8) as scanned in this run."""
        self._db.execute("INSERT OR REPLACE INTO done VALUES (?, ?, ?, ?, ?)", (run, path, size, mtime_ns, sha256))
        self._tick()

    def finish_run(self, run: str) -> None:
        """A run that ended normally is not resumable; its journal is dropped."""
        self._db.execute("DELETE FROM done WHERE run = ?", (run,))
        self._db.execute("UPDATE runs SET state = 'finished' WHERE run = ?", (run,))
        self.flush()

    def flush(self) -> None:
        """Commit what is pending."""
        self._db.commit()
        self._pending = 0

    def close(self) -> None:
        self.flush()
        self._db.close()

    def _tick(self) -> None:
        self._pending += 1
        if self._pending >= COMMIT_EVERY:
            self.flush()

"""The scan cache: what scanning a file gave (opaque blobs keyed by file SHA-256 + model + settings), and the
journal of scans that were stopped, so `scan --resume` can skip what was done.

The blobs hold biometric vectors: they are sealed with the store's key when the store is encrypted, and the file
is private (0600), like the store's indexes. Nothing here is pickled; callers give and get bytes.

Erasure: every removal empties the cached analyses (erase(); they may hold the removed person's exact vector, of an
enrolment photo that was scanned) and zeroes their pages. A scan that was running meanwhile notices at its next
commit that the store's erasure count moved (`generation`) and drops what it had not committed, and caches nothing
more: what it committed before is gone with the erase, which takes the cache's write lock after it.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
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

    def __init__(self, home: Path, cipher: Cipher | None, generation: Callable[[], str | None] = lambda: None):
        path = home / CACHE_FILE
        fresh = not path.exists()
        if fresh:  # create it private before SQLite writes anything into it
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        self.cipher = cipher
        # Autocommit, writes buffered and flushed in one short transaction: the write lock is never held between
        # files, so a removal's erase() waits milliseconds, not for a long video to finish.
        self._db = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA secure_delete=ON")  # deleted analyses are zeroed, not left in free pages
        self._db.executescript(SCHEMA)
        self._pending: list[tuple[str, tuple]] = []
        self.generation, self._born = generation, generation()
        self.erased = False  # a removal happened while this cache was open: it caches nothing more

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
        """Store a blob (sealed when the store is encrypted); nothing once a removal happened since opening."""
        if self.erased:
            return
        data = self.cipher.seal(blob, key.encode()) if self.cipher is not None else blob
        self._write("INSERT OR REPLACE INTO analysis VALUES (?, ?, ?)", (key, data, time.time()))

    # resume journal
    def start_run(self, run: str, resume: bool) -> dict[bytes, tuple[int, int, str | None]]:
        """Begin (or, with resume, continue) a run; returns path (bytes) -> (size, mtime_ns, sha256) of files done."""
        row = self._db.execute("SELECT state FROM runs WHERE run = ?", (run,)).fetchone()
        done = {}
        if resume and row is not None:
            done = {bytes(p): (s, m, h) for p, s, m, h in
                    self._db.execute("SELECT path, size, mtime_ns, sha256 FROM done WHERE run = ?", (run,))}
        else:
            self._write("DELETE FROM done WHERE run = ?", (run,))
        self._write("INSERT OR REPLACE INTO runs VALUES (?, 'running', ?)", (run, time.time()))
        self.flush()
        return done

    def resumable(self, run: str) -> bool:
        """Whether a run with this key was started and did not finish."""
        row = self._db.execute("SELECT state FROM runs WHERE run = ?", (run,)).fetchone()
        return row is not None and row[0] == "running"

    def mark_done(self, run: str, path: bytes, size: int, mtime_ns: int, sha256: str | None) -> None:
        """Note a file (its path as bytes: names need not be UTF-8) as scanned in this run."""
        self._write("INSERT OR REPLACE INTO done VALUES (?, ?, ?, ?, ?)", (run, path, size, mtime_ns, sha256))

    def finish_run(self, run: str) -> None:
        """A run that ended normally is not resumable; its journal is dropped."""
        self._write("DELETE FROM done WHERE run = ?", (run,))
        self._write("UPDATE runs SET state = 'finished' WHERE run = ?", (run,))
        self.flush()

    def flush(self) -> None:
        """Write what is pending in one transaction, unless a removal happened since this cache was opened: then
        the analyses not yet written are dropped (they may hold the removed person's vectors) and no more are kept.
        The check is made inside the transaction, so a removal's erase() comes either before it (and is seen) or
        after it (and deletes what it wrote)."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            if not self.erased and self.generation() != self._born:
                self.erased = True
            for sql, args in pending:
                if not (self.erased and sql.startswith("INSERT OR REPLACE INTO analysis")):
                    self._db.execute(sql, args)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.flush()
        self._db.close()

    def _write(self, sql: str, args: tuple) -> None:
        self._pending.append((sql, args))
        if len(self._pending) >= COMMIT_EVERY:
            self.flush()


def erase(home: Path) -> None:
    """Empty the cached analyses of a store (every removal does): pages zeroed, the file compacted, the WAL emptied.
    The resume journal (paths, sizes and content hashes of files scanned, no vectors) is kept."""
    path = home / CACHE_FILE
    if not path.exists():
        return
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        db.execute("PRAGMA secure_delete=ON")
        db.execute("BEGIN IMMEDIATE")  # after any running scan's pending commit
        db.execute("DELETE FROM analysis")
        db.execute("COMMIT")
        db.execute("VACUUM")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()

"""What watched folders have had scanned: watch.sqlite in the store folder, keyed by path, size, mtime and SHA-256.

A watcher that restarts skips every file whose path, size and mtime are as recorded (not even read), and a file
touched but unchanged (same SHA-256) too. Each watch keeps its own rows (its scope: the CLI's, or one service
watch), so two watches of one folder do not hide files from each other.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

from ..errors import StoreError

WATCH_FILE = "watch.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    scope TEXT NOT NULL,
    path BLOB NOT NULL,        -- os.fsencode of the path: any name the file system allows
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT,
    scanned REAL NOT NULL,
    PRIMARY KEY (scope, path)
);
"""


class WatchState:
    """One watch's record of scanned files."""

    def __init__(self, home: str | os.PathLike, scope: str):
        path = Path(home) / WATCH_FILE
        fresh = not path.exists()
        self.scope = scope
        try:
            self.db = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
            if fresh:
                os.chmod(path, 0o600)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path} is not a readable SQLite database: {exc}") from exc
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the connection."""
        self.db.close()

    def get(self, path: str | os.PathLike) -> tuple[int, int, str | None] | None:
        """(size, mtime_ns, sha256) recorded for a path, or None."""
        with self._lock:
            row = self.db.execute("SELECT size, mtime_ns, sha256 FROM files WHERE scope=? AND path=?",
                                  (self.scope, os.fsencode(path))).fetchone()
        return tuple(row) if row else None

    def done(self, path: str | os.PathLike, st: os.stat_result) -> bool:
        """Whether the file, as stat() finds it now, was scanned already (same path, size and mtime)."""
        row = self.get(path)
        return row is not None and row[:2] == (st.st_size, st.st_mtime_ns)

    def mark(self, path: str | os.PathLike, st: os.stat_result, sha256: str | None) -> None:
        """Record a file as scanned (or as nothing to scan) as it was when read."""
        with self._lock:
            self.db.execute("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?)",
                            (self.scope, os.fsencode(path), st.st_size, st.st_mtime_ns, sha256, time.time()))

    def forget(self, path: str | os.PathLike | None = None) -> None:
        """Drop a path's record (None: every record of this scope, e.g. a service watch removed)."""
        with self._lock:
            if path is None:
                self.db.execute("DELETE FROM files WHERE scope=?", (self.scope,))
            else:
                self.db.execute("DELETE FROM files WHERE scope=? AND path=?", (self.scope, os.fsencode(path)))

    def count(self) -> int:
        """Files recorded for this scope."""
        with self._lock:
            return self.db.execute("SELECT count(*) FROM files WHERE scope=?", (self.scope,)).fetchone()[0]

"""Service accounts, sessions, invites and scan jobs: a private SQLite file in the store folder, beside the registry.

The web service's own data, so it lives with the service: the store knows nothing of it. Only hashes of passwords,
API tokens, session ids and invite codes are kept; hashing policy lives in audit/service/auth.py. Open it with
Accounts(store.home) once the store is open (the store checks that the folder is private and ours).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import StoreError

ACCOUNTS_FILE = "service.sqlite"
JOBS_DIR = "jobs"
# A job's folder: uploads while it runs (INPUT), then its findings (sealed pictures beside), report and crops.
INPUT, FINDINGS, REPORT, CROPS = "input", "findings.json", "report.html", "crops"
ROLES = ("admin", "auditor", "actor")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    person TEXT,              -- actors: the registered person the account speaks for
    password TEXT NOT NULL,   -- argon2 hash
    token TEXT UNIQUE,        -- SHA-256 of the API token
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,      -- SHA-256 of the session id in the cookie
    user TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf TEXT NOT NULL,
    expires REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS invites (
    code TEXT PRIMARY KEY,    -- SHA-256 of the invite code in the link
    role TEXT NOT NULL,
    person TEXT,
    created_by TEXT NOT NULL,
    expires REAL NOT NULL,
    used_by TEXT
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    status TEXT NOT NULL,     -- queued, running, done, failed
    use TEXT,
    inputs TEXT NOT NULL,     -- JSON: [{"path": scanned path, "name": name shown}]
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    done_files INTEGER NOT NULL DEFAULT 0,
    total_files INTEGER NOT NULL DEFAULT 0,
    summary TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS jobs_owner ON jobs(owner, created);
CREATE TABLE IF NOT EXISTS found (  -- findings that name a person (match or composite contributor)
    job TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    n INTEGER NOT NULL,       -- position in the job's findings
    person TEXT NOT NULL,
    PRIMARY KEY (job, n, person)
);
CREATE INDEX IF NOT EXISTS found_person ON found(person);
CREATE TABLE IF NOT EXISTS watches (  -- folders the server watches (admin-configured, inside a scan root)
    id TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    root TEXT NOT NULL,
    owner TEXT NOT NULL,      -- the account its scans belong to
    use TEXT,
    created REAL NOT NULL,
    error TEXT                -- why it cannot be watched right now (removed, unreadable)
);
CREATE TABLE IF NOT EXISTS visits (account TEXT PRIMARY KEY, seen REAL NOT NULL);  -- portal: "new since"
"""


@dataclass
class User:
    """A service account."""

    id: str
    role: str
    person: str | None
    password: str
    created: float


@dataclass
class Invite:
    """A single-use invitation to open an account."""

    role: str
    person: str | None
    created_by: str
    expires: float
    used_by: str | None


@dataclass
class Job:
    """A scan submitted to the service."""

    id: str
    owner: str
    status: str
    use: str | None
    inputs: list[dict]
    created: float
    started: float | None = None
    finished: float | None = None
    attempts: int = 0
    done_files: int = 0
    total_files: int = 0
    summary: dict | None = None
    error: str | None = None


class Accounts:
    """The service's own tables; safe to share between threads (one connection, one lock)."""

    def __init__(self, home: Path):
        self.home = Path(home)
        path = self.home / ACCOUNTS_FILE
        fresh = not path.exists()
        try:
            self.db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
            if fresh:
                os.chmod(path, 0o600)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.execute("PRAGMA secure_delete=ON")
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path} is not a readable SQLite database: {exc}") from exc
        self._lock = threading.RLock()

    def close(self) -> None:
        """Close the connection."""
        self.db.close()

    def _run(self, sql: str, args: tuple = ()) -> sqlite3.Cursor:
        with self._lock:
            return self.db.execute(sql, args)

    def _one(self, sql: str, args: tuple = ()):
        with self._lock:
            return self.db.execute(sql, args).fetchone()

    def _all(self, sql: str, args: tuple = ()) -> list:
        with self._lock:
            return self.db.execute(sql, args).fetchall()

    # settings
    def meta(self, key: str) -> str | None:
        """A stored setting."""
        row = self._one("SELECT value FROM meta WHERE key=?", (key,))
        return row[0] if row else None

    def meta_default(self, key: str, value: str) -> str:
        """A stored setting, set to value first if missing (e.g. the cookie signing secret)."""
        self._run("INSERT OR IGNORE INTO meta VALUES (?, ?)", (key, value))
        return self.meta(key)

    # users
    def add_user(self, uid: str, role: str, person: str | None, password: str, token: str | None) -> User:
        """Create an account (password: a hash; token: a hash); StoreError if the id is taken."""
        if role not in ROLES:
            raise StoreError(f"unknown role '{role}'; use one of {', '.join(ROLES)}")
        try:
            self._run("INSERT INTO users VALUES (?, ?, ?, ?, ?, ?)", (uid, role, person, password, token, time.time()))
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"account '{uid}' already exists") from exc
        return self.user(uid)

    def user(self, uid: str) -> User | None:
        """An account by id."""
        row = self._one("SELECT id, role, person, password, created FROM users WHERE id=?", (uid,))
        return User(*row) if row else None

    def user_by_token(self, token_hash: str) -> User | None:
        """The account holding an API token (by its hash)."""
        row = self._one("SELECT id, role, person, password, created FROM users WHERE token=?", (token_hash,))
        return User(*row) if row else None

    def users(self) -> list[User]:
        """Every account."""
        return [User(*r) for r in self._all("SELECT id, role, person, password, created FROM users ORDER BY id")]

    def set_password(self, uid: str, password: str) -> None:
        """Replace an account's password hash (e.g. argon2 parameters changed)."""
        self._run("UPDATE users SET password=? WHERE id=?", (password, uid))

    def set_token(self, uid: str, token: str) -> None:
        """Replace an account's API token hash: the old token is refused from the next request."""
        self._run("UPDATE users SET token=? WHERE id=?", (token, uid))

    def delete_user(self, uid: str) -> None:
        """Delete an account; its sessions go with it (the scans it submitted stay, for the admin)."""
        with self._lock:
            if self.db.execute("DELETE FROM users WHERE id=?", (uid,)).rowcount == 0:
                raise StoreError(f"no account '{uid}'")
            self.db.execute("DELETE FROM sessions WHERE user=?", (uid,))  # even with foreign keys off
            self.db.execute("DELETE FROM visits WHERE account=?", (uid,))
            # The account's row (person id, password hash) is zeroed in the WAL (secure_delete); fold the WAL in so
            # the database file's old page goes too.
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def end_sessions(self, uid: str) -> None:
        """Log an account out everywhere."""
        self._run("DELETE FROM sessions WHERE user=?", (uid,))

    # sessions
    def add_session(self, sid_hash: str, uid: str, csrf: str, expires: float) -> None:
        """Record a login session."""
        with self._lock:
            self.db.execute("DELETE FROM sessions WHERE expires < ?", (time.time(),))
            self.db.execute("INSERT INTO sessions VALUES (?, ?, ?, ?)", (sid_hash, uid, csrf, expires))

    def session(self, sid_hash: str) -> tuple[str, str] | None:
        """(user id, CSRF token) of a live session."""
        row = self._one("SELECT user, csrf FROM sessions WHERE id=? AND expires >= ?", (sid_hash, time.time()))
        return (row[0], row[1]) if row else None

    def end_session(self, sid_hash: str) -> None:
        """Log out."""
        self._run("DELETE FROM sessions WHERE id=?", (sid_hash,))

    # invites
    def add_invite(self, code_hash: str, role: str, person: str | None, created_by: str, expires: float) -> None:
        """Record an invitation."""
        if role not in ROLES:
            raise StoreError(f"unknown role '{role}'; use one of {', '.join(ROLES)}")
        self._run("INSERT INTO invites VALUES (?, ?, ?, ?, ?, NULL)", (code_hash, role, person, created_by, expires))

    def invite(self, code_hash: str) -> Invite | None:
        """An unused, unexpired invitation."""
        row = self._one("SELECT role, person, created_by, expires, used_by FROM invites "
                        "WHERE code=? AND used_by IS NULL AND expires >= ?", (code_hash, time.time()))
        return Invite(*row) if row else None

    def redeem_invite(self, code_hash: str, uid: str, password: str, token: str | None) -> User:
        """Create the invited account and spend the invitation, in one transaction."""
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                row = self.db.execute("SELECT role, person FROM invites WHERE code=? AND used_by IS NULL AND "
                                      "expires >= ?", (code_hash, time.time())).fetchone()
                if row is None:
                    raise StoreError("this invitation is unknown, used or expired")
                if self.db.execute("SELECT 1 FROM users WHERE id=?", (uid,)).fetchone():
                    raise StoreError(f"account '{uid}' already exists")
                self.db.execute("INSERT INTO users VALUES (?, ?, ?, ?, ?, ?)",
                                (uid, row[0], row[1], password, token, time.time()))
                self.db.execute("UPDATE invites SET used_by=? WHERE code=?", (uid, code_hash))
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        return self.user(uid)

    # scan jobs
    def job_dir(self, jid: str) -> Path:
        """The job's private folder (uploads while it runs; findings, report and crops after)."""
        if not jid.isalnum():
            raise StoreError(f"bad job id '{jid}'")
        root = self.home / JOBS_DIR
        root.mkdir(mode=0o700, exist_ok=True)
        path = root / jid
        path.mkdir(mode=0o700, exist_ok=True)
        return path

    def add_job(self, jid: str, owner: str, use: str | None, inputs: list[dict]) -> Job:
        """Queue a scan."""
        self._run("INSERT INTO jobs (id, owner, status, use, inputs, created, total_files) VALUES "
                  "(?, ?, 'queued', ?, ?, ?, ?)", (jid, owner, use, json.dumps(inputs), time.time(), len(inputs)))
        return self.job(jid)

    def job(self, jid: str) -> Job | None:
        """A scan job by id."""
        row = self._one(f"SELECT {_JOB_COLS} FROM jobs WHERE id=?", (jid,))
        return _job(row) if row else None

    def jobs(self, owner: str | None = None, status: tuple[str, ...] = ()) -> list[Job]:
        """Jobs, newest first: one owner's, or everyone's; optionally only some statuses."""
        sql, args = f"SELECT {_JOB_COLS} FROM jobs WHERE 1", []
        if owner is not None:
            sql, args = sql + " AND owner=?", args + [owner]
        if status:
            sql += f" AND status IN ({','.join('?' * len(status))})"
            args += list(status)
        return [_job(r) for r in self._all(sql + " ORDER BY created DESC, id", tuple(args))]

    def job_counts(self) -> dict[str, int]:
        """How many jobs have each status (queued, running, done, failed)."""
        return dict(self._all("SELECT status, COUNT(*) FROM jobs GROUP BY status"))

    def claim_job(self) -> Job | None:
        """The oldest queued job, marked running (one more attempt); None when the queue is empty."""
        with self._lock:
            row = self.db.execute("SELECT id FROM jobs WHERE status='queued' ORDER BY created, id LIMIT 1").fetchone()
            if row is None:
                return None
            self.db.execute("UPDATE jobs SET status='running', started=?, attempts=attempts+1, done_files=0 "
                            "WHERE id=?", (time.time(), row[0]))
            return self.job(row[0])

    def job_progress(self, jid: str, done_files: int) -> None:
        """Files scanned so far."""
        self._run("UPDATE jobs SET done_files=? WHERE id=?", (done_files, jid))

    def requeue_job(self, jid: str, note: str) -> None:
        """Put an interrupted job back in the queue."""
        self._run("UPDATE jobs SET status='queued', error=? WHERE id=?", (note, jid))

    def finish_job(self, jid: str, summary: dict, found: list[tuple[int, str]]) -> None:
        """Mark a job done with its summary and the people its findings name, in one transaction."""
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self.db.execute("DELETE FROM found WHERE job=?", (jid,))
                self.db.executemany("INSERT OR IGNORE INTO found VALUES (?, ?, ?)", [(jid, n, p) for n, p in found])
                self.db.execute("UPDATE jobs SET status='done', finished=?, summary=?, "
                                "done_files=total_files WHERE id=?", (time.time(), json.dumps(summary), jid))
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def add_finished_job(self, jid: str, owner: str, summary: dict, found: list[tuple[int, str]],
                         note: str) -> None:
        """Record a job that ran elsewhere (a retro-match at enrolment) as done, with the people it names."""
        with self._lock:
            self.db.execute("INSERT INTO jobs (id, owner, status, inputs, created, started, error) VALUES "
                            "(?, ?, 'running', '[]', ?, ?, ?)", (jid, owner, time.time(), time.time(), note))
        self.finish_job(jid, summary, found)

    def fail_job(self, jid: str, error: str) -> None:
        """Mark a job failed, with the reason."""
        self._run("UPDATE jobs SET status='failed', finished=?, error=? WHERE id=?", (time.time(), error, jid))

    def found(self, person: str, done_only: bool = True) -> list[tuple[str, int]]:
        """(job, finding number) of every finished finding that names a person, newest job first."""
        done = " AND j.status='done'" if done_only else ""
        return [(r[0], r[1]) for r in self._all(
            f"SELECT f.job, f.n FROM found f JOIN jobs j ON j.id=f.job WHERE f.person=?{done} "
            "ORDER BY j.created DESC, f.n", (person,))]

    def forget_person(self, person: str) -> None:
        """Drop the person from the people-found table, and the freed pages from the write-ahead log."""
        with self._lock:
            self.db.execute("DELETE FROM found WHERE person=?", (person,))
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def names_person(self, jid: str, n: int, person: str) -> bool:
        """Whether finding n of a job names the person."""
        return self._one("SELECT 1 FROM found WHERE job=? AND n=? AND person=?", (jid, n, person)) is not None


    # watched folders
    def add_watch(self, wid: str, path: str, root: str, owner: str, use: str | None) -> None:
        """Record a watched folder."""
        self._run("INSERT INTO watches VALUES (?, ?, ?, ?, ?, ?, NULL)", (wid, path, root, owner, use, time.time()))

    def watches(self) -> list[dict]:
        """Every watched folder, oldest first."""
        cols = ("id", "path", "root", "owner", "use", "created", "error")
        return [dict(zip(cols, r)) for r in self._all(f"SELECT {', '.join(cols)} FROM watches ORDER BY created")]

    def drop_watch(self, wid: str) -> bool:
        """Stop recording a watched folder; whether there was one."""
        return self._run("DELETE FROM watches WHERE id=?", (wid,)).rowcount > 0

    def watch_error(self, wid: str, error: str | None) -> None:
        """Why the folder cannot be watched (None: it can again)."""
        self._run("UPDATE watches SET error=? WHERE id=?", (error, wid))

    # the portal's last visit
    def last_visit(self, uid: str) -> float | None:
        """When the account last looked at where it was found."""
        row = self._one("SELECT seen FROM visits WHERE account=?", (uid,))
        return row[0] if row else None

    def visited(self, uid: str, when: float) -> None:
        """Record a visit."""
        self._run("INSERT OR REPLACE INTO visits VALUES (?, ?)", (uid, when))


_JOB_COLS = ("id, owner, status, use, inputs, created, started, finished, attempts, done_files, total_files, "
             "summary, error")


def _job(row: tuple) -> Job:
    job = Job(*row)
    job.inputs = json.loads(job.inputs)
    job.summary = json.loads(job.summary) if job.summary else None
    return job

"""Webhooks and their delivery log: notify.sqlite in the store folder.

A hook belongs to one account (a web account, or "@cli" for `watch --webhook`) and hears of the findings relevant
to it: an auditor's (or admin's) of the scans it owns, an actor's of the findings that name their person. Each
delivery row keeps the summary it sends (never media), its status, attempts and last error, so the account can
read its own log. Deliveries name the people they are about, so a removal erases them (erase_person).
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import InputError, StoreError

NOTIFY_FILE = "notify.sqlite"
CLI_ACCOUNT = "@cli"  # the hook of `watch --webhook` (no web account; '@' is not allowed in account ids)
ROLES = ("admin", "auditor", "actor")
LOG_KEEP = 1000  # deliveries kept per account (older sent or failed ones are deleted as new ones come)

SCHEMA = """
CREATE TABLE IF NOT EXISTS hooks (
    account TEXT PRIMARY KEY,  -- one hook per account
    role TEXT NOT NULL,
    person TEXT,               -- actors: the person whose findings it hears of
    url TEXT NOT NULL,
    secret TEXT NOT NULL,      -- the HMAC key; shown to the account once
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    people TEXT NOT NULL,      -- JSON list of the person ids the summary names (erasure finds rows by it)
    payload TEXT NOT NULL,     -- the finding's summary (JSON), without the send time
    status TEXT NOT NULL,      -- pending, delivered, failed (attempts used up)
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try REAL NOT NULL,
    claimed REAL NOT NULL DEFAULT 0,  -- a dispatcher holds the row until then
    last_status INTEGER,
    last_error TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries(status, next_try);
CREATE INDEX IF NOT EXISTS deliveries_account ON deliveries(account, created);
"""


@dataclass
class Hook:
    """A registered webhook."""

    account: str
    role: str
    person: str | None
    url: str
    secret: str
    created: float


@dataclass
class Delivery:
    """One finding's summary on its way to one hook, and how its sending went."""

    id: str
    account: str
    payload: dict
    status: str
    attempts: int
    next_try: float
    last_status: int | None
    last_error: str | None
    created: float
    updated: float


def check_url(url: str) -> str:
    """An http(s) URL with a host; InputError otherwise (no other scheme is ever fetched)."""
    parts = urlsplit(url.strip()) if isinstance(url, str) else None
    if not parts or parts.scheme not in ("http", "https") or not parts.hostname or len(url) > 2000:
        raise InputError(f"a webhook needs an http:// or https:// URL with a host, not '{str(url)[:200]}'",
                         code="bad-webhook-url")
    return url.strip()


def new_secret() -> str:
    """A fresh signing secret."""
    return "whsec_" + secrets.token_urlsafe(32)


class Hooks:
    """The hooks and delivery log of one store folder; one connection, safe to share between threads."""

    def __init__(self, home: str | os.PathLike):
        self.path = Path(home) / NOTIFY_FILE
        fresh = not self.path.exists()
        try:
            self.db = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
            if fresh:
                os.chmod(self.path, 0o600)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA secure_delete=ON")  # erased rows are zeroed, not left in free pages
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path} is not a readable SQLite database: {exc}") from exc
        self._lock = threading.RLock()

    def close(self) -> None:
        """Close the connection."""
        self.db.close()

    def _all(self, sql: str, args: tuple = ()) -> list:
        with self._lock:
            return self.db.execute(sql, args).fetchall()

    # hooks
    def register(self, account: str, role: str, url: str, person: str | None = None,
                 secret: str | None = None) -> Hook:
        """Set the account's hook (replacing any); a new secret unless one is given. Returns it, secret included."""
        if role not in ROLES:
            raise InputError(f"unknown role '{role}'; use one of {', '.join(ROLES)}")
        if role == "actor" and not person:
            raise InputError("an actor's webhook needs the person it speaks for")
        hook = Hook(account, role, person if role == "actor" else None, check_url(url), secret or new_secret(),
                    time.time())
        with self._lock:
            self.db.execute("INSERT OR REPLACE INTO hooks VALUES (?, ?, ?, ?, ?, ?)",
                            (hook.account, hook.role, hook.person, hook.url, hook.secret, hook.created))
        return hook

    def hook(self, account: str) -> Hook | None:
        """The account's hook."""
        rows = self._all("SELECT account, role, person, url, secret, created FROM hooks WHERE account=?", (account,))
        return Hook(*rows[0]) if rows else None

    def hooks(self) -> list[Hook]:
        """Every hook."""
        return [Hook(*r) for r in self._all("SELECT account, role, person, url, secret, created FROM hooks")]

    def drop(self, account: str) -> bool:
        """Delete the account's hook and its delivery log; whether it had one."""
        with self._lock:
            gone = self.db.execute("DELETE FROM hooks WHERE account=?", (account,)).rowcount
            self.db.execute("DELETE FROM deliveries WHERE account=?", (account,))
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return bool(gone)

    # deliveries
    def queue(self, rows: list[tuple[str, list[str], dict]]) -> list[str]:
        """Queue (account, people named, payload) rows in one transaction; returns their ids."""
        now, ids = time.time(), []
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                for account, people, payload in rows:
                    did = secrets.token_hex(8)
                    self.db.execute("INSERT INTO deliveries (id, account, people, payload, status, next_try, created,"
                                    " updated) VALUES (?, ?, ?, ?, 'pending', ?, ?, ?)",
                                    (did, account, json.dumps(sorted(set(people))), json.dumps(payload), now, now,
                                     now))
                    ids.append(did)
                for account in {r[0] for r in rows}:  # the log keeps an account's latest LOG_KEEP deliveries
                    self.db.execute("DELETE FROM deliveries WHERE account=? AND status!='pending' AND id NOT IN "
                                    "(SELECT id FROM deliveries WHERE account=? ORDER BY created DESC LIMIT ?)",
                                    (account, account, LOG_KEEP))
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        return ids

    def claim(self, limit: int, hold: float) -> list[tuple[Delivery, Hook]]:
        """Due pending deliveries, held for `hold` seconds so another process does not send them too."""
        now = time.time()
        with self._lock:
            # Most polls find nothing: a plain read first, so an idle dispatcher never takes the write lock.
            if not self.db.execute("SELECT 1 FROM deliveries WHERE status='pending' AND next_try<=? AND claimed<=? "
                                   "LIMIT 1", (now, now)).fetchone():
                return []
            self.db.execute("BEGIN IMMEDIATE")
            try:
                rows = self.db.execute(
                    f"SELECT {_COLS} FROM deliveries WHERE status='pending' AND next_try<=? AND claimed<=? "
                    "ORDER BY next_try LIMIT ?", (now, now, limit)).fetchall()
                for r in rows:
                    self.db.execute("UPDATE deliveries SET claimed=? WHERE id=?", (now + hold, r[0]))
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        out = []
        for r in rows:
            d = _delivery(r)
            hook = self.hook(d.account)
            if hook is None:  # the hook went meanwhile: nothing to send to
                self.finish(d.id, "failed", None, "the webhook was deleted")
                continue
            out.append((d, hook))
        return out

    def finish(self, did: str, status: str, code: int | None, error: str | None, next_try: float | None = None) -> None:
        """Record an attempt: delivered, failed for good, or pending again from next_try."""
        with self._lock:
            self.db.execute("UPDATE deliveries SET status=?, attempts=attempts+1, last_status=?, last_error=?, "
                            "next_try=COALESCE(?, next_try), claimed=0, updated=? WHERE id=?",
                            (status, code, error, next_try, time.time(), did))

    def log(self, account: str, limit: int = 200) -> list[Delivery]:
        """The account's deliveries, newest first."""
        return [_delivery(r) for r in self._all(
            f"SELECT {_COLS} FROM deliveries WHERE account=? ORDER BY created DESC, id LIMIT ?", (account, limit))]

    def delivery(self, did: str) -> Delivery | None:
        """One delivery by id."""
        rows = self._all(f"SELECT {_COLS} FROM deliveries WHERE id=?", (did,))
        return _delivery(rows[0]) if rows else None

    def pending(self) -> int:
        """Deliveries not yet delivered nor given up."""
        return self._all("SELECT count(*) FROM deliveries WHERE status='pending'")[0][0]

    def due(self) -> int:
        """Pending deliveries whose time has come."""
        return self._all("SELECT count(*) FROM deliveries WHERE status='pending' AND next_try<=?", (time.time(),))[0][0]

    def erase_person(self, pid: str) -> int:
        """Delete every delivery that names the person, and an actor's hook for them; the freed pages zeroed and
        the write-ahead log folded in, so no byte of them is left. Returns the rows deleted."""
        needle = json.dumps(pid)
        with self._lock:
            n = self.db.execute("DELETE FROM deliveries WHERE instr(people, ?) > 0", (needle,)).rowcount
            n += self.db.execute("DELETE FROM hooks WHERE person=?", (pid,)).rowcount
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self.db.execute("VACUUM")
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return n


_COLS = "id, account, payload, status, attempts, next_try, last_status, last_error, created, updated"


def _delivery(row: tuple) -> Delivery:
    d = Delivery(*row)
    d.payload = json.loads(d.payload)
    return d

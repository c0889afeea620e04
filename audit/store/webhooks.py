"""Webhooks and their delivery log: notify.sqlite in the store folder.

A hook belongs to one account (a web account, or "@cli" for `watch --webhook`) and hears of the findings relevant
to it: an auditor's (or admin's) of the scans it owns, an actor's of the findings that name their person. Each
delivery row keeps the summary it sends (never media), its status, attempts and last error, so the account can
read its own log. Deliveries name the people they are about, so a removal erases them (erase_person).

In an encrypted store the secrets and the delivery payloads are sealed with the store's cipher (AES-GCM, bound to
the account or delivery id) and opened only in memory; the file records the key check value, so a process without
the key cannot add plaintext rows to it. The person ids of `people` stay plain: erasure finds rows by them.
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

from ..errors import InputError, KeyProblem, StoreError
from .crypto import META_KEY, Cipher, check_marker, sealed

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
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
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

    def __init__(self, home: str | os.PathLike, cipher: Cipher | None = None):
        self.path = Path(home) / NOTIFY_FILE
        self.cipher = cipher
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
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (META_KEY,)).fetchone()
        self.marker = row[0] if row else None
        if self.marker is not None and cipher is not None:
            check_marker(self.marker, cipher, str(home))
        elif cipher is not None:
            self.reseal()

    # sealing (an encrypted store)
    def _seal(self, text: str, aad: str) -> str | bytes:
        if self.cipher is not None:
            return self.cipher.seal(text.encode(), aad.encode())
        if self.marker is not None:  # never plaintext into a sealed file
            raise KeyProblem(f"{self.path} is encrypted: give the store's key")
        return text

    def _open(self, value: str | bytes, aad: str, what: str) -> str:
        if isinstance(value, bytes) and sealed(value):
            if self.cipher is None:
                raise KeyProblem(f"{what} in {self.path} is encrypted: give the store's key")
            return self.cipher.open(value, aad.encode(), what).decode()
        return value

    def reseal(self) -> int:
        """Seal every plaintext secret and payload with this connection's cipher, record its key check value and
        vacuum the plaintext pages away (at `encrypt`, or the first open with a key). Returns the rows sealed."""
        if self.cipher is None:
            return 0
        n = 0
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                for account, secret in self.db.execute("SELECT account, secret FROM hooks").fetchall():
                    if isinstance(secret, str):
                        self.db.execute("UPDATE hooks SET secret=? WHERE account=?",
                                        (self._seal(secret, f"webhook secret {account}"), account))
                        n += 1
                for did, payload in self.db.execute("SELECT id, payload FROM deliveries").fetchall():
                    if isinstance(payload, str):
                        self.db.execute("UPDATE deliveries SET payload=? WHERE id=?",
                                        (self._seal(payload, f"webhook delivery {did}"), did))
                        n += 1
                self.marker = self.cipher.marker()
                self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (META_KEY, self.marker))
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            if n:
                self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self.db.execute("VACUUM")
                self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return n

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
                            (hook.account, hook.role, hook.person, hook.url,
                             self._seal(hook.secret, f"webhook secret {hook.account}"), hook.created))
        return hook

    def hook(self, account: str) -> Hook | None:
        """The account's hook."""
        rows = self._all("SELECT account, role, person, url, secret, created FROM hooks WHERE account=?", (account,))
        return self._hook(rows[0]) if rows else None

    def hooks(self) -> list[Hook]:
        """Every hook (the secrets opened: KeyProblem without the key of an encrypted store)."""
        return [self._hook(r) for r in self._all("SELECT account, role, person, url, secret, created FROM hooks")]

    def _hook(self, row: tuple) -> Hook:
        hook = Hook(*row)
        hook.secret = self._open(hook.secret, f"webhook secret {hook.account}", f"the secret of {hook.account}")
        return hook

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
                                    (did, account, json.dumps(sorted(set(people))),
                                     self._seal(json.dumps(payload), f"webhook delivery {did}"), now, now, now))
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

    def claim(self, limit: int, hold: float, account: str | None = None) -> list[tuple[Delivery, Hook]]:
        """Due pending deliveries (of one account, or all), held for `hold` seconds so another process does not
        send them too."""
        now = time.time()
        due = "status='pending' AND next_try<=? AND claimed<=?" + (" AND account=?" if account else "")
        args = (now, now, account) if account else (now, now)
        with self._lock:
            # Most polls find nothing: a plain read first, so an idle dispatcher never takes the write lock.
            if not self.db.execute(f"SELECT 1 FROM deliveries WHERE {due} LIMIT 1", args).fetchone():
                return []
            self.db.execute("BEGIN IMMEDIATE")
            try:
                rows = self.db.execute(f"SELECT {_COLS} FROM deliveries WHERE {due} ORDER BY next_try LIMIT ?",
                                       (*args, limit)).fetchall()
                for r in rows:
                    self.db.execute("UPDATE deliveries SET claimed=? WHERE id=?", (now + hold, r[0]))
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        out = []
        for r in rows:
            d = self._delivery(r)
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
        return [self._delivery(r) for r in self._all(
            f"SELECT {_COLS} FROM deliveries WHERE account=? ORDER BY created DESC, id LIMIT ?", (account, limit))]

    def delivery(self, did: str) -> Delivery | None:
        """One delivery by id."""
        rows = self._all(f"SELECT {_COLS} FROM deliveries WHERE id=?", (did,))
        return self._delivery(rows[0]) if rows else None

    def pending(self, account: str | None = None) -> int:
        """Deliveries not yet delivered nor given up (of one account, or of all)."""
        if account is not None:
            return self._all("SELECT count(*) FROM deliveries WHERE status='pending' AND account=?", (account,))[0][0]
        return self._all("SELECT count(*) FROM deliveries WHERE status='pending'")[0][0]

    def due(self, account: str | None = None) -> int:
        """Pending deliveries whose time has come (of one account, or of all)."""
        if account is not None:
            return self._all("SELECT count(*) FROM deliveries WHERE status='pending' AND next_try<=? AND account=?",
                             (time.time(), account))[0][0]
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

    def about(self, pid: str) -> list[Delivery]:
        """Every delivery that names the person (what their export lists), oldest first."""
        return [self._delivery(r) for r in self._all(
            f"SELECT {_COLS} FROM deliveries WHERE instr(people, ?) > 0 ORDER BY created, id", (json.dumps(pid),))]

    def _delivery(self, row: tuple) -> Delivery:
        d = Delivery(*row)
        d.payload = json.loads(self._open(d.payload, f"webhook delivery {d.id}", f"delivery {d.id}"))
        return d


_COLS = "id, account, payload, status, attempts, next_try, last_status, last_error, created, updated"


def seal_file(home: str | os.PathLike, cipher: Cipher) -> int:
    """Seal an existing notify.sqlite's secrets and payloads (at `encrypt`); returns the rows sealed."""
    if not (Path(home) / NOTIFY_FILE).exists():
        return 0
    hooks = Hooks(home)
    try:
        hooks.cipher = cipher
        return hooks.reseal()
    finally:
        hooks.close()

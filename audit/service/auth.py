"""Accounts, sessions, API tokens, invitations, roles, CSRF and login rate limiting for the web service."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, URLSafeTimedSerializer

from ..errors import AuditError
from ..store.naming import (
    ID_RE,  # one id rule: what the CLI enrols, the service accepts
)
from .accounts import ROLES, Accounts, User
from .logs import event

SESSION_COOKIE = "la_session"
SECRET_KEY = "cookie_secret"
MIN_PASSWORD = 10

_hasher = PasswordHasher()
_dummy: list[str] = []  # a hash to verify against when the account does not exist: as slow as a wrong password


class AuthError(AuditError):
    """A login, invitation or account request that cannot be granted."""


def digest(secret: str) -> str:
    """SHA-256 of a high-entropy secret (tokens, session ids, invite codes): enough, and fast to look up."""
    return hashlib.sha256(secret.encode()).hexdigest()


def check_id(value: str, what: str = "id") -> str:
    """An account or person id, by the store's rule (store/naming.py): 1-64 letters, digits, '.', '_' or '-'."""
    if not isinstance(value, str) or not ID_RE.fullmatch(value):
        raise AuthError(f"bad {what} '{value}': use 1-64 letters, digits, '.', '_' or '-', not starting with '-'",
                        code="bad-person-id" if what == "person id" else "bad-account-id")
    return value


def new_token() -> str:
    """A fresh API token; only its hash is stored."""
    return "la_" + secrets.token_urlsafe(32)


def add_account(accounts: Accounts, uid: str, role: str, person: str | None,
                by: str | None = None) -> tuple[User, str, str]:
    """Create an account with a random one-time password and API token; returns (user, password, token).
    by: who asked (an account id, or "cli"), for the service log."""
    check_id(uid, "account id")
    if role not in ROLES:
        raise AuthError(f"unknown role '{role}'; use one of {', '.join(ROLES)}")
    if (role == "actor") != bool(person):
        raise AuthError("an actor account needs --person, and only an actor account takes one")
    if person:
        check_id(person, "person id")
    password, token = secrets.token_urlsafe(12), new_token()
    user = accounts.add_user(uid, role, person, _hasher.hash(password), digest(token))
    event("account.created", account=uid, role=role, by=by)
    return user, password, token


def _existing(accounts: Accounts, uid: str) -> User:
    user = accounts.user(uid) if isinstance(uid, str) and ID_RE.fullmatch(uid) else None
    if user is None:
        raise AuthError(f"no account '{uid}'", code="unknown-account")
    return user


def reset_password(accounts: Accounts, uid: str, by: str | None = None) -> str:
    """A new random one-time password for an account (returned; only its hash is kept); its sessions end."""
    _existing(accounts, uid)
    password = secrets.token_urlsafe(12)
    accounts.set_password(uid, _hasher.hash(password))
    accounts.end_sessions(uid)
    event("account.password_reset", account=uid, by=by)
    return password


def rotate_token(accounts: Accounts, uid: str, by: str | None = None) -> str:
    """A new API token for an account (returned; only its hash is kept): the old one is refused at once."""
    _existing(accounts, uid)
    token = new_token()
    accounts.set_token(uid, digest(token))
    event("account.token_rotated", account=uid, by=by)
    return token


def delete_account(accounts: Accounts, uid: str, by: str | None = None) -> User:
    """Delete an account and end its sessions at once; the last admin account is kept (nobody could invite)."""
    user = _existing(accounts, uid)
    if user.role == "admin" and sum(u.role == "admin" for u in accounts.users()) == 1:
        raise AuthError(f"'{uid}' is the last admin account; add another admin first", code="last-admin")
    accounts.delete_user(uid)
    event("account.deleted", account=uid, role=user.role, by=by)
    from .. import notify

    if (accounts.home / notify.NOTIFY_FILE).exists():  # its webhook and delivery log go with it
        hooks = notify.Hooks(accounts.home)
        try:
            hooks.drop(uid)
        finally:
            hooks.close()
    return user


def login(accounts: Accounts, uid: str, password: str) -> User | None:
    """The account when the password is right, else None."""
    user = accounts.user(uid) if ID_RE.fullmatch(uid or "") else None
    if user is None and not _dummy:
        _dummy.append(_hasher.hash(secrets.token_urlsafe(16)))
    try:
        _hasher.verify(user.password if user else _dummy[0], password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None:
        return None
    if _hasher.check_needs_rehash(user.password):
        accounts.set_password(uid, _hasher.hash(password))
    return user


def bearer(accounts: Accounts, header: str | None) -> User | None:
    """The account behind an `Authorization: Bearer TOKEN` header."""
    if not header or not header.startswith("Bearer "):
        return None
    return accounts.user_by_token(digest(header[7:].strip()))


def new_invite(accounts: Accounts, by: User, role: str, person: str | None, hours: float) -> str:
    """Create a single-use invitation; returns the code for the link (only its hash is kept)."""
    if role not in ROLES:
        raise AuthError(f"unknown role '{role}'")
    if (role == "actor") != bool(person):
        raise AuthError("an actor invitation needs a person id, and only an actor invitation takes one")
    if person:
        check_id(person, "person id")
    code = secrets.token_urlsafe(24)
    accounts.add_invite(digest(code), role, person, by.id, time.time() + hours * 3600)
    event("invite.created", role=role, by=by.id)
    return code


def redeem(accounts: Accounts, code: str, uid: str, password: str) -> tuple[User, str]:
    """Open the invited account with the chosen id and password; returns (user, API token)."""
    check_id(uid, "account id")
    if len(password) < MIN_PASSWORD:
        raise AuthError(f"choose a password of at least {MIN_PASSWORD} characters")
    token = new_token()
    user = accounts.redeem_invite(digest(code), uid, _hasher.hash(password), digest(token))
    event("account.created", account=uid, role=user.role, by="invitation")
    return user, token


@dataclass
class Session:
    """A logged-in browser session."""

    user: User
    csrf: str
    sid_hash: str


class Sessions:
    """Signed cookie -> server-side session row; logout and expiry end it on the server too."""

    def __init__(self, accounts: Accounts, hours: float):
        self.accounts = accounts
        self.max_age = int(hours * 3600)
        self.signer = URLSafeTimedSerializer(accounts.meta_default(SECRET_KEY, secrets.token_hex(32)), "session")

    def start(self, user: User) -> str:
        """A new session for user; returns the cookie value."""
        sid = secrets.token_urlsafe(32)
        self.accounts.add_session(digest(sid), user.id, secrets.token_urlsafe(32), time.time() + self.max_age)
        return self.signer.dumps(sid)

    def read(self, cookie: str | None) -> Session | None:
        """The live session a cookie names, or None."""
        if not cookie:
            return None
        try:
            sid = self.signer.loads(cookie, max_age=self.max_age)
        except BadSignature:
            return None
        found = self.accounts.session(digest(sid))
        user = self.accounts.user(found[0]) if found else None
        return Session(user, found[1], digest(sid)) if user else None

    def end(self, session: Session) -> None:
        """Log out."""
        self.accounts.end_session(session.sid_hash)


def csrf_ok(session: Session | None, sent: str | None) -> bool:
    """Whether a form carried the session's CSRF token."""
    return bool(session and sent) and hmac.compare_digest(session.csrf, sent)


class RateLimit:
    """At most `limit` failures per key within `window` seconds."""

    def __init__(self, limit: int = 5, window: float = 300.0):
        self.limit, self.window = limit, window
        self._fails: dict[str, deque] = {}
        self._lock = threading.Lock()

    def blocked(self, key: str) -> bool:
        """Whether key has used up its failures."""
        now = time.monotonic()
        with self._lock:
            q = self._fails.get(key)
            while q and q[0] < now - self.window:
                q.popleft()
            return bool(q) and len(q) >= self.limit

    def fail(self, key: str) -> None:
        """Count a failure against key."""
        with self._lock:
            self._fails.setdefault(key, deque()).append(time.monotonic())
            if len(self._fails) > 100_000:  # bounded memory under a spray of names
                self._fails.clear()


# Who may do what: one function every route calls.
def allowed(user: User | None, action: str, *, owner: str | None = None, person: str | None = None) -> bool:
    """Whether user may do action on a scan (owner: its account) or a person (person: its id)."""
    if user is None:
        return False
    if user.role == "admin":
        return True
    if action in ("scan.create", "people.list", "reviews.summary"):
        return user.role == "auditor"
    if action in ("scan.read", "scan.review"):  # an auditor reviews the findings of their own scans
        return user.role == "auditor" and owner == user.id
    if action in ("person.read", "person.enroll", "person.consent", "person.remove"):
        return user.role == "actor" and person is not None and person == user.person
    if action == "admin":
        return False
    raise ValueError(f"unknown action {action}")

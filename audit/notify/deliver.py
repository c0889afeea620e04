"""Sending deliveries: HMAC-signed JSON POSTs from a background thread, retried with exponential backoff.

One dispatcher per store folder and process. It polls the delivery log (rows queued by other processes, e.g. a
scan worker, are sent by the server's dispatcher) and is woken at once by a queue in its own process. Nothing here
runs on the caller's thread: a slow or dead endpoint delays only its own deliveries.
"""

from __future__ import annotations

import atexit
import hashlib
import hmac
import http.client
import json
import logging
import os
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from ..errors import InputError
from ..store.webhooks import CLI_ACCOUNT, NOTIFY_FILE, Delivery, Hook, Hooks
from .guard import check_public

log = logging.getLogger("audit.notify")

SIGNATURE = "X-Likeness-Signature"
TIMESTAMP = "X-Likeness-Timestamp"
DELIVERY = "X-Likeness-Delivery"
TIMEOUT_S = 5.0  # one attempt; a slower endpoint counts as a failed attempt
# Attempts and the first retry's delay (each further one doubles): 6 attempts over about a minute by default.
# The environment may shorten them (tests) or lengthen them.
ATTEMPTS = int(os.environ.get("AUDIT_WEBHOOK_ATTEMPTS", "6"))
BACKOFF_S = float(os.environ.get("AUDIT_WEBHOOK_BACKOFF_S", "2"))
POLL_S = 1.0
SENDERS = 4  # endpoints answered at the same time
DRAIN_S = 5.0  # how long a process's exit waits for due deliveries; the rest stay queued for the next dispatcher


def sign(secret: str, body: bytes) -> str:
    """The signature header's value: sha256=HMAC-SHA256(secret, body) in hex."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str | None) -> bool:
    """Whether a signature header matches the body (what a receiver does; for tests and examples)."""
    return bool(header) and hmac.compare_digest(sign(secret, body), header)


def backoff(attempt: int) -> float:
    """Seconds before retry number `attempt` (1 = the first retry)."""
    return BACKOFF_S * 2 ** (attempt - 1)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, not a new place to send the finding to."""

    def redirect_request(self, *args, **kwargs):
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def pinned_opener(addresses: list[str]):
    """An opener whose connections go to these addresses (tried in order), whatever the host's name resolves to
    when the connection is made; TLS still checks the certificate against the host's name."""

    def connect(address, timeout=socket._GLOBAL_DEFAULT_TIMEOUT, source_address=None, **_):
        last: OSError = OSError("no address to connect to")
        for ip in addresses:
            try:
                return socket.create_connection((ip, address[1]), timeout, source_address)
            except OSError as exc:
                last = exc
        raise last

    def to_checked(base):
        def make(host, **kwargs):
            conn = base(host, **kwargs)
            conn._create_connection = connect  # http.client's hook for opening the socket
            return conn
        return make

    class Http(urllib.request.HTTPHandler):
        def http_open(self, req):
            return self.do_open(to_checked(http.client.HTTPConnection), req)

    class Https(urllib.request.HTTPSHandler):
        def https_open(self, req):
            return self.do_open(to_checked(http.client.HTTPSConnection), req, context=self._context)

    return urllib.request.build_opener(_NoRedirect, Http, Https)


def _proxied(url: str) -> bool:
    """Whether urllib sends this URL through a proxy from the environment (then the proxy connects to the host)."""
    parts = urllib.parse.urlsplit(url)
    return bool(urllib.request.getproxies().get(parts.scheme)) and not urllib.request.proxy_bypass(parts.hostname or "")


def send(delivery: Delivery, hook: Hook, addresses: list[str] | None = None) -> tuple[int | None, str | None]:
    """POST one delivery; (HTTP status, error or None when a 2xx answer came). addresses: connect only to these
    (the ones guard.check_public just checked), unless a proxy from the environment carries the request."""
    now = int(time.time())
    body = json.dumps({**delivery.payload, "delivery": delivery.id, "sent_at": now}, sort_keys=True).encode()
    request = urllib.request.Request(hook.url, data=body, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": "likeness-audit-webhook", DELIVERY: delivery.id,
        TIMESTAMP: str(now), SIGNATURE: sign(hook.secret, body)})
    try:
        opener = pinned_opener(addresses) if addresses and not _proxied(hook.url) else _opener
        with opener.open(request, timeout=TIMEOUT_S) as answer:
            answer.read(4096)
            return answer.status, None
    except urllib.error.HTTPError as exc:
        return exc.code, f"HTTP {exc.code} {exc.reason}"
    except (urllib.error.URLError, OSError, ValueError) as exc:  # refused, timed out, unresolvable, bad URL
        reason = getattr(exc, "reason", exc)
        return None, f"{type(reason).__name__}: {reason}"[:300]


class Dispatcher:
    """The background sender of one store folder's deliveries in this process."""

    allow_private = False  # web accounts' hooks to private addresses (guard.py); the server's operator may allow

    def __init__(self, home: Path, cipher=None, only: str | None = None):
        self.home = Path(home)
        self.only = only  # send only this account's deliveries (`watch --webhook`: its own; the server's: all)
        self.cipher = cipher  # the store's, when it is encrypted (secrets and payloads are sealed)
        self._hooks: Hooks | None = None  # opened once a hook exists: a store without any gets no file
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._busy = 0
        self._lock = threading.Lock()
        self._slots = threading.Semaphore(SENDERS)
        self._thread = threading.Thread(target=self._loop, name="webhook-dispatcher", daemon=True)
        self._thread.start()

    @property
    def hooks(self) -> Hooks | None:
        """The delivery log, or None while the store has none."""
        if self._hooks is None and (self.home / NOTIFY_FILE).exists():
            self._hooks = Hooks(self.home, self.cipher)
        return self._hooks

    def wake(self) -> None:
        """Deliveries were queued: look now rather than at the next poll."""
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                claimed = self.hooks.claim(SENDERS * 2, TIMEOUT_S * 4, self.only) if self.hooks else []
            except Exception:  # a locked or damaged log must not kill the thread; said in the server log
                log.exception("webhook delivery log unreadable")
                claimed = []
            for delivery, hook in claimed:
                # Plain daemon threads, not an executor: executors refuse work once the interpreter begins to exit,
                # and the exit's drain still sends what is due.
                self._slots.acquire()
                with self._lock:
                    self._busy += 1
                threading.Thread(target=self._attempt, args=(delivery, hook), name="webhook-send",
                                 daemon=True).start()
            if not claimed:
                self._wake.wait(POLL_S)
                self._wake.clear()

    def _attempt(self, delivery: Delivery, hook: Hook) -> None:
        try:
            code, error = self._send(delivery, hook)
            attempt = delivery.attempts + 1
            if error is None:
                self.hooks.finish(delivery.id, "delivered", code, None)
            elif attempt >= ATTEMPTS:
                self.hooks.finish(delivery.id, "failed", code, f"{error} (gave up after {attempt} attempts)")
            else:
                self.hooks.finish(delivery.id, "pending", code, error, next_try=time.time() + backoff(attempt))
                log.warning("webhook for %s: %s; retry %d of %d", hook.account, error, attempt, ATTEMPTS - 1)
        except Exception:
            log.exception("webhook delivery %s", delivery.id)
        finally:
            with self._lock:
                self._busy -= 1
            self._slots.release()
            self._wake.set()

    def _send(self, delivery: Delivery, hook: Hook) -> tuple[int | None, str | None]:
        if hook.account != CLI_ACCOUNT and not self.allow_private:
            try:
                addresses = check_public(hook.url)  # again now: the DNS answer may have changed since registration
            except InputError as exc:
                return None, f"refused: {exc}"[:300]
            return send(delivery, hook, addresses)  # to the addresses checked, not to a later answer
        return send(delivery, hook)

    def drain(self, timeout: float) -> int:
        """Wait up to timeout seconds until nothing is due or being sent; returns the deliveries still pending."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                busy = self._busy
            due = self.hooks.due(self.only) if self.hooks else 0
            if not busy and not due:
                break
            self._wake.set()
            time.sleep(0.05)
        return self.hooks.pending(self.only) if self.hooks else 0

    def stop(self) -> None:
        """Stop sending (what is pending stays queued)."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=POLL_S + 1)
        deadline = time.monotonic() + TIMEOUT_S + 1
        while self._busy and time.monotonic() < deadline:  # attempts under way finish and are logged
            time.sleep(0.05)
        if self._hooks is not None:
            self._hooks.close()


_dispatchers: dict[Path, Dispatcher] = {}
_guard = threading.Lock()


def dispatcher(home: str | os.PathLike, cipher=None, only: str | None = None) -> Dispatcher:
    """This process's dispatcher for a store folder, started on first use (cipher: the store's, when encrypted;
    only: the one account whose deliveries it sends, fixed by the first call)."""
    key = Path(home).resolve()
    with _guard:
        if key not in _dispatchers:
            _dispatchers[key] = Dispatcher(key, cipher, only)
        elif cipher is not None and _dispatchers[key].cipher is None:
            _dispatchers[key].cipher = cipher
            _dispatchers[key]._hooks = None  # reopened with the key at the next poll
        return _dispatchers[key]


def stop_all(wait: float = 0.0) -> None:
    """Stop every dispatcher of this process, after waiting up to `wait` seconds for due deliveries."""
    with _guard:
        running = list(_dispatchers.values())
        _dispatchers.clear()
    for d in running:
        if wait:
            d.drain(wait)
        d.stop()


atexit.register(lambda: stop_all(DRAIN_S))

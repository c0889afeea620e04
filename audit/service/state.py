"""The running service: its settings, the store (used from one thread), accounts, sessions and scan runner."""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .. import config, consent
from ..errors import AuditError
from ..store.crypto import FROM_ENV
from . import auth, roots, uploads
from .accounts import JOBS_DIR, Accounts
from .folders import FolderWatches
from .jobs import JobRunner
from .logs import event
from .metrics import Metrics

ACTOR_ENV = "AUDIT_ACTOR"  # who the store's audit log names (store/auditlog.py)
UPLOAD_PREFIX = "upload-"  # enrolment uploads, in the store's tmp/ while they are enrolled


@dataclass
class ServiceConfig:
    """Settings of `likeness-audit serve`."""

    home: Path
    models: str | None = None
    threads: int = 1
    key: object = FROM_ENV  # bytes, None (plaintext), or FROM_ENV: $AUDIT_KEY / $AUDIT_KEY_FILE
    scan_roots: list[Path] = field(default_factory=list)  # folders auditors may scan by path
    max_upload: int = config.SERVICE_MAX_UPLOAD_BYTES
    max_file: int = config.SERVICE_MAX_FILE_BYTES
    max_files: int = config.SERVICE_MAX_FILES
    session_hours: float = 12.0
    invite_hours: float = 72.0
    secure_cookies: bool = False  # set behind HTTPS
    scan_workers: int = 1
    metrics: str = "admin"  # who may read /metrics: admin, loopback (and admins) or off (metrics.ACCESS)
    webhook_allow_private: bool = False  # webhooks to loopback/private addresses (notify/guard.py)
    warm_models: bool = True  # load the models at start, so /readyz says when enrolment is ready


class StoreGate:
    """The store's SQLite connection belongs to one thread: every store call runs on this one."""

    def __init__(self, cfg: ServiceConfig):
        self.cfg = cfg
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="store")
        self._store = None

    def _open(self):
        import audit

        kwargs = {} if self.cfg.key is FROM_ENV else {"key": self.cfg.key}
        return audit.open_store(self.cfg.home, models=self.cfg.models, threads=self.cfg.threads, create=True,
                                **kwargs)

    def run(self, fn, *args, **kwargs):
        """fn(store, *args, **kwargs) on the store's thread; its exceptions are raised here."""
        return self.run_as(None, fn, *args, **kwargs)

    def check(self, timeout: float) -> None:
        """Open the store (if not yet) and read it; raises if it cannot within timeout seconds."""
        self._pool.submit(lambda: self._opened().names()).result(timeout=timeout)

    def _opened(self):
        """The store, opened on first use (on the store's thread only)."""
        if self._store is None:
            self._store = self._open()
        return self._store

    def run_as(self, account: str | None, fn, *args, **kwargs):
        """run(), with the store's audit log naming the web account that asked (not the server's OS user)."""
        def call():
            store = self._opened()
            if account is None:
                return fn(store, *args, **kwargs)
            # The audit log takes its actor from $AUDIT_ACTOR; only this thread writes the log, one call at a time.
            before = os.environ.get(ACTOR_ENV)
            os.environ[ACTOR_ENV] = web_actor(account)
            try:
                return fn(self._store, *args, **kwargs)
            finally:
                if before is None:
                    os.environ.pop(ACTOR_ENV, None)
                else:
                    os.environ[ACTOR_ENV] = before

        return self._pool.submit(call).result()

    def close(self) -> None:
        """Close the store and stop its thread."""
        if self._store is not None:
            self._pool.submit(self._store.close).result()
        self._pool.shutdown()


class Service:
    """Everything the routes use; built once per app."""

    def __init__(self, cfg: ServiceConfig):
        self.cfg = cfg
        cfg.home = Path(cfg.home).resolve()
        self.gate = StoreGate(cfg)
        self.accounts = self.gate.run(lambda s: Accounts(s.home))  # once the store has checked its folder
        self.sessions = auth.Sessions(self.accounts, cfg.session_hours)
        # Failed logins: 5 per account and 30 per client address in 5 minutes, then 429 until the window passes.
        self.logins = (auth.RateLimit(5), auth.RateLimit(30))
        self.metrics = Metrics(self.accounts)
        self.runner = JobRunner(self.accounts, cfg.home, cfg.models, cfg.threads, cfg.scan_workers,
                                on_finish=lambda job: self.metrics.scan_finished(job.status, job.summary))
        self.folders = FolderWatches(self.accounts, cfg.home, cfg.scan_roots, self.submit_inputs)
        self.models_state = "loading" if cfg.warm_models else "loaded on first use"

    def start(self) -> None:
        """Clear what a killed server left behind, resume interrupted scans, start the workers, load the models."""
        from .. import notify

        self.clear_stale()
        self.runner.start()
        self.folders.start()
        # Sends what scan workers queue (and what a stopped server left); an encrypted store's rows need its key.
        notify.dispatcher(self.cfg.home, self.gate.run(lambda s: s.cipher)).allow_private = \
            self.cfg.webhook_allow_private
        if self.cfg.warm_models:
            threading.Thread(target=self._warm, name="warm-models", daemon=True).start()

    def _warm(self) -> None:
        """Load the face and voice models on the store's thread (where enrolment uses them)."""
        try:
            self.gate.run(lambda s: (s.face_model.dim, s.voice_encoder.model_id))
            self.models_state = "ok"
        except Exception as exc:  # a missing or corrupt model pack: not ready, and the log says why
            self.models_state = "failed"
            event("models.failed", level=logging.ERROR, error=type(exc).__name__)

    def readiness(self) -> dict[str, str]:
        """Each check of /readyz: 'ok', or why not (no server path in the words)."""
        try:
            self.gate.check(timeout=5)
            store = "ok"
        except TimeoutError:
            store = "busy"
        except Exception as exc:  # any failure to open or read it
            store = f"cannot open: {type(exc).__name__}"
        models = "ok" if self.models_state in ("ok", "loaded on first use") else self.models_state
        return {"store": store, "models": models, "scan workers": "ok" if self.runner.ready() else "stopped"}

    def clear_stale(self) -> list[str]:
        """Upload temp folders, and job folders no job owns (an upload cut off before its job was queued): a
        server that was killed (kill -9, power cut) leaves them; none is in use before the server starts."""
        stale = [p for p in (self.cfg.home / "tmp").glob(UPLOAD_PREFIX + "*") if p.is_dir()]
        jobs_dir = self.cfg.home / JOBS_DIR
        if jobs_dir.is_dir():
            stale += [p for p in jobs_dir.iterdir() if p.is_dir() and self.accounts.job(p.name) is None]
        for path in stale:
            shutil.rmtree(path, ignore_errors=True)
        return [p.name for p in stale]

    def stop(self) -> None:
        """Stop the workers and close the store."""
        from .. import notify

        self.folders.stop()
        self.runner.stop()
        notify.stop_all(wait=2.0)
        self.accounts.close()
        self.gate.close()

    @contextmanager
    def uploaded(self, files: list):
        """Uploads saved in a private folder of the store for the duration of the block."""
        tmp = Path(tempfile.mkdtemp(prefix=UPLOAD_PREFIX, dir=self._tmp_root()))
        try:
            yield uploads.save(files, tmp, self.cfg.max_file, self.cfg.max_files)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _tmp_root(self) -> Path:
        root = self.cfg.home / "tmp"
        root.mkdir(mode=0o700, exist_ok=True)
        return root

    def submit_upload(self, owner: str, files: list, use: str | None) -> str:
        """Queue a scan of uploaded files; returns the job id."""
        use = _use(use)
        jid = secrets.token_hex(8)
        folder = self.accounts.job_dir(jid)
        try:
            saved = uploads.save(files, folder / "input", self.cfg.max_file, self.cfg.max_files)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        inputs = [{"path": s.path.name, "name": s.name} for s in saved]
        self.accounts.add_job(jid, owner, use, inputs)
        self._queued(jid, owner)
        return jid

    def submit_paths(self, owner: str, paths: list[str], use: str | None) -> str:
        """Queue a scan of files or folders inside an allowed scan root; returns the job id."""
        use = _use(use)
        if not self.cfg.scan_roots:
            raise AuditError("scanning by path is off: the server was started without --scan-root")
        resolved = []
        for given in paths:
            p, root = roots.resolve(given, self.cfg.scan_roots)
            # Evidence names the path relative to its root: no server path reaches the report or the actors.
            resolved.append({"path": str(p), "name": roots.shown_name(p, root), "root": str(root)})
        if not resolved:
            raise AuditError("no paths given")
        return self.submit_inputs(owner, use, resolved)

    def submit_inputs(self, owner: str, use: str | None, inputs: list[dict]) -> str:
        """Queue a path scan of checked inputs ({"path", "name", "root"}: a watched folder's new files too)."""
        jid = secrets.token_hex(8)
        self.accounts.add_job(jid, owner, use, inputs)
        self._queued(jid, owner)
        return jid

    def _queued(self, jid: str, owner: str) -> None:
        self.metrics.scans_queued.inc()
        event("scan.queued", job=jid, account=owner)
        self.runner.wake()


def web_actor(account: str) -> str:
    """How the audit log names a web account."""
    return f"web:{account}"


def _use(use: str | None) -> str | None:
    """The intended use of a scan, checked as a consent scope word."""
    return consent.scopes([use])[0] if use else None

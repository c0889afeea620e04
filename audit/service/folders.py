"""Folders the server watches: each file that arrives (once whole) becomes a path scan in the scan list, owned by
the account the admin chose; results show as those scans finish. The admin adds and removes folders among the
server's scan roots (--scan-root); the watch library (audit/watch) settles the files and remembers, across
restarts, which were queued already (watch.sqlite, one scope per watched folder)."""

from __future__ import annotations

import logging
import secrets
import threading
from pathlib import Path

from ..errors import AuditError
from ..store.watchstate import WatchState
from ..watch import Watcher
from . import roots
from .accounts import Accounts
from .logs import event

log = logging.getLogger("audit.service")
SCOPE = "service:"  # + the watch id: its files in watch.sqlite


class FolderWatches:
    """The running watchers of the configured folders."""

    def __init__(self, accounts: Accounts, home: Path, scan_roots: list[Path], submit):
        self.accounts, self.home, self.scan_roots = accounts, Path(home), scan_roots
        self.submit = submit  # submit(owner, use, inputs) -> job id
        self._running: dict[str, tuple[Watcher, threading.Thread]] = {}
        self._lock = threading.Lock()

    def start(self) -> None:
        """Watch every configured folder (a folder gone meanwhile is reported on its row and waited for)."""
        for w in self.accounts.watches():
            if not any(roots.inside(w["path"], r) for r in self.scan_roots):  # started with other --scan-root
                self.accounts.watch_error(w["id"], "not inside the server's scan roots now (--scan-root): not watched")
                continue
            self.accounts.watch_error(w["id"], None)  # its thread says so again if it still cannot watch
            self._start(w)

    def stop(self) -> None:
        """Stop every watcher (their state is kept: a restart queues only what is new)."""
        with self._lock:
            running, self._running = list(self._running.values()), {}
        for watcher, thread in running:
            watcher.stop.set()
            thread.join(timeout=5)
            watcher.state.close()

    def add(self, given: str, owner: str, use: str | None = None) -> dict:
        """Watch a folder inside a scan root for `owner` (an auditor or admin account); returns its row."""
        if not self.scan_roots:
            raise AuditError("watching folders is off: the server was started without --scan-root")
        path, root = roots.resolve(given, self.scan_roots)
        if not path.is_dir():
            raise AuditError(f"{roots.shown_name(path, root)} is not a folder", code="not-a-folder")
        user = self.accounts.user(owner)
        if user is None or user.role not in ("admin", "auditor"):
            raise AuditError(f"'{owner}' is not an auditor or admin account", code="bad-owner")
        if any(w["path"] == str(path) and w["owner"] == owner for w in self.accounts.watches()):
            raise AuditError(f"{roots.shown_name(path, root)} is watched for {owner} already", code="watched")
        wid = secrets.token_hex(6)
        self.accounts.add_watch(wid, str(path), str(root), owner, use)
        row = next(w for w in self.accounts.watches() if w["id"] == wid)
        self._start(row)
        return row

    def remove(self, wid: str) -> bool:
        """Stop watching a folder and forget which of its files were queued; whether it was watched."""
        with self._lock:
            running = self._running.pop(wid, None)
        if running is not None:
            running[0].stop.set()
            running[1].join(timeout=5)
            running[0].state.forget()
            running[0].state.close()
        return self.accounts.drop_watch(wid)

    def view(self) -> list[dict]:
        """The watched folders as the admin sees them: relative to their root, never the server's path."""
        out = []
        for w in self.accounts.watches():
            path, root = Path(w["path"]), Path(w["root"])
            out.append({"id": w["id"], "folder": roots.shown_name(path, root), "root": root.name,
                        "owner": w["owner"], "use": w["use"], "created": w["created"], "error": w["error"]})
        return out

    def _start(self, w: dict) -> None:
        wid, path, root = w["id"], Path(w["path"]), Path(w["root"])

        def queue(batch):
            # Each file is checked against its root again by the scan worker (roots.confine): a link placed in
            # the folder that leads outside is refused there.
            inputs = [{"path": str(p), "name": roots.shown_name(p, root), "root": str(root), "watch": wid}
                      for p, _, _ in batch if roots.inside(p, root)]
            if inputs:
                event("watch.files", watch=wid, files=len(inputs), job=self.submit(w["owner"], w["use"], inputs))
            return batch

        def error(_, why: str) -> None:
            why = why.replace(str(root), root.name)  # a watchfiles error may name the path: never the server's
            event("watch.error", level=logging.WARNING, watch=wid, error=why)
            self.accounts.watch_error(wid, why)

        def back(_) -> None:
            event("watch.back", watch=wid)
            self.accounts.watch_error(wid, None)

        watcher = Watcher([path], WatchState(self.home, SCOPE + wid), queue, on_error=error, on_back=back)
        thread = threading.Thread(target=self._run, args=(watcher, wid), name=f"watch-{wid}", daemon=True)
        with self._lock:
            self._running[wid] = (watcher, thread)
        thread.start()

    def _run(self, watcher: Watcher, wid: str) -> None:
        try:
            watcher.run()
        except Exception as exc:  # noqa: BLE001  one folder's failure is said on its row; the server goes on
            log.exception("watched folder %s stopped", wid)
            self.accounts.watch_error(wid, f"stopped: {type(exc).__name__}: {exc}"[:300])


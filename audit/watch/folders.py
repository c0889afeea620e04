"""Watching folders: files that arrive or change, handed over once whole and not scanned before.

Each folder has its own watchfiles thread, so a folder that is removed or becomes unreadable costs only itself:
it is reported (on_error) and the others go on; it is watched again, and caught up, if it comes back. At the start,
and when a folder comes back, its files are walked once, so what arrived while no one watched is handled too.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ..media import sha256_file
from ..store.watchstate import WatchState
from .settle import SETTLE_S, Settler

log = logging.getLogger("audit.watch")
CHECK_S = 1.0  # how often each folder's presence is checked
TICK_S = 0.2  # how often settling files are looked at
BATCH = 16  # files per scan: a stop (Ctrl-C) waits for one batch at most, not for a whole catch-up

# handle(files) -> the files it is done with (each (path, stat, sha256)); the rest are looked at again later.
Handler = Callable[[list[tuple[Path, os.stat_result, str | None]]], list[tuple[Path, os.stat_result, str | None]]]


class FolderError(Exception):
    """A watched folder is missing or unreadable."""


def readable_folder(path: Path) -> str | None:
    """Why a folder cannot be watched, or None when it can."""
    if not path.exists():
        return "no such folder (removed?)"
    if not path.is_dir():
        return "not a folder"
    if not os.access(path, os.R_OK | os.X_OK):
        return "permission denied"
    try:
        next(os.scandir(path), None)
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


class Watcher:
    """Watch folders (and single files) and hand settled, not yet scanned files to a handler, in batches."""

    def __init__(self, paths: list[str | os.PathLike], state: WatchState, handle: Handler, *,
                 on_error: Callable[[Path, str], None] | None = None,
                 on_back: Callable[[Path], None] | None = None, settle: float = SETTLE_S,
                 keep: Callable[[Path], bool] | None = None):
        self.paths = [Path(os.path.abspath(p)) for p in paths]
        self.state, self.handle = state, handle
        self.on_error = on_error or (lambda p, why: log.error("cannot watch %s: %s", p, why))
        self.on_back = on_back or (lambda p: None)
        self.keep = keep or (lambda p: not p.name.startswith("."))  # hidden files: editors' and downloads' temps
        self.settler = Settler(settle)
        self.stop = threading.Event()
        self._events: queue.Queue = queue.Queue()
        self._threads: list[threading.Thread] = []

    def run(self) -> None:
        """Watch until stop is set (from a signal handler or another thread); returns once stopped."""
        for path in self.paths:
            t = threading.Thread(target=self._folder, args=(path,), name=f"watch {path.name}", daemon=True)
            t.start()
            self._threads.append(t)
        while not self.stop.is_set():
            self._drain()
            ready = [(p, st) for p, st in self.settler.ready() if self.keep(p)]
            for i in range(0, len(ready), BATCH):
                if self.stop.is_set():
                    break  # the rest were not marked: the next start takes them up
                self._hand(ready[i:i + BATCH])
            self.stop.wait(TICK_S)

    def _drain(self) -> None:
        while True:
            try:
                kind, path = self._events.get_nowait()
            except queue.Empty:
                return
            if kind == "gone":
                self.settler.gone(path)
            else:
                self.settler.changed(path)

    def _hand(self, ready: list[tuple[Path, os.stat_result]]) -> None:
        """Skip what was scanned before (same size and mtime, or the same content); hand over the rest."""
        todo = []
        for path, st in ready:
            if self.state.done(path, st):
                continue
            try:
                sha = sha256_file(path)
            except OSError:
                sha = None  # unreadable: the scan gives it its error row
            before = self.state.get(path)
            if sha is not None and before is not None and before[2] == sha:
                self.state.mark(path, st, sha)  # touched, not changed
                continue
            todo.append((path, st, sha))
        if not todo:
            return
        done = self.handle(todo)
        for path, st, sha in done:
            self.state.mark(path, st, sha)
        for path, _, _ in set(todo) - set(done):
            self.settler.changed(path)  # changed while it was scanned: again once it settles

    def _folder(self, root: Path) -> None:
        """One folder's thread: catch up, then follow its changes; report it gone, and take it back when it is."""
        import watchfiles

        broken: str | None = None
        while not self.stop.is_set():
            why = readable_folder(root) if not root.is_file() else None
            if why is not None:
                if why != broken:
                    self.on_error(root, why)
                    broken = why
                self.stop.wait(CHECK_S)
                continue
            if broken is not None:
                self.on_back(root)
                broken = None
            self._catch_up(root)
            try:
                last = time.monotonic()
                for changes in watchfiles.watch(root, stop_event=self.stop, yield_on_timeout=True, rust_timeout=500,
                                                debounce=200, step=50, raise_interrupt=False,
                                                ignore_permission_denied=True):
                    for change, name in changes:
                        kind = "gone" if change == watchfiles.Change.deleted else "changed"
                        self._events.put((kind, Path(name)))
                    if time.monotonic() - last >= CHECK_S:
                        last = time.monotonic()
                        if (root.is_file() and not root.exists()) or (not root.is_file() and readable_folder(root)):
                            break  # removed or unreadable: said at the top of the loop
            except Exception as exc:  # noqa: BLE001  the watcher of one folder failing must not end the others
                self.on_error(root, f"{type(exc).__name__}: {exc}")
                broken = str(exc)
                self.stop.wait(CHECK_S)

    def _catch_up(self, root: Path) -> None:
        """Every file already there, to be settled and handed over unless scanned before."""
        if root.is_file():
            self._events.put(("changed", root))
            return
        for base, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                self._events.put(("changed", Path(base) / name))

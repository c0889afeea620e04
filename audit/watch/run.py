"""watch(): scan files as they arrive in watched folders, append their findings, tell the webhooks.

    import audit
    from audit.watch import watch
    w = watch(store, ["incoming/"], out="findings.jsonl", on_findings=print)
    w.run()            # until w.stop.set() (a signal handler, another thread)

A batch of settled files is scanned as one scan (the store's cache, thresholds and consent as `scan` has them).
A file that changed while it was scanned is not reported: its findings would describe a file that no longer
exists, so it is scanned again once it settles. Findings are appended to `out` (JSON Lines) and flushed file by
file, so what was reported before a stop or a crash stays, and the state (store/watchstate.py) records a file only
once its findings are written.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ..errors import NothingToScan
from ..findings import Finding
from ..report.tables import json_line
from ..scan import ScanOptions, scan
from ..store import Store
from ..store.watchstate import WatchState
from .folders import Watcher
from .settle import SETTLE_S

CLI_SCOPE = "cli"
JSONL = (".jsonl", ".ndjson")


class WatchScan:
    """The handler a Watcher calls: scan a batch, keep only files that did not change meanwhile, report."""

    def __init__(self, store: Store, options: ScanOptions, out: str | os.PathLike | None = None,
                 on_findings: Callable[[list[Finding]], None] | None = None,
                 notify_owner: str | None = None):
        self.store, self.options = store, options
        self.out = Path(out) if out else None
        self.on_findings = on_findings or (lambda rows: None)
        self.notify_owner = notify_owner
        self.state: WatchState | None = None
        self.files = 0
        self.findings = 0

    def __call__(self, batch: list[tuple[Path, os.stat_result, str | None]]) -> list:
        batch = [b for b in batch if os.path.lexists(b[0])]  # deleted since it settled: nothing to say
        paths = [str(p) for p, _, _ in batch]
        if not paths:
            return []
        try:
            run = scan(self.store, paths, self.options, shown={p: p for p in paths}, keep=False)
            rows = list(run)
        except NothingToScan:
            return batch  # no media among them (by content and name): done with, nothing to report
        by_path: dict[str, list[Finding]] = {}
        for f in rows:
            by_path.setdefault(f.path, []).append(f)
        done = []
        for path, st, sha in batch:
            try:
                now = os.stat(path, follow_symlinks=False)
            except OSError:
                continue  # gone while scanned: nothing to say about it
            if (now.st_size, now.st_mtime_ns) != (st.st_size, st.st_mtime_ns):
                continue  # changed while scanned: scanned again once it settles
            found = by_path.get(str(path), [])  # shown as given: the path itself
            self._report(found)
            if self.state is not None:  # at once: a second Ctrl-C later in the batch does not report it twice
                self.state.mark(path, st, sha)
            done.append((path, st, sha))
        return done

    def _report(self, found: list[Finding]) -> None:
        self.files += 1
        self.findings += sum(f.kind != "error" for f in found)
        if self.out is not None and found:
            with open(self.out, "a", encoding="utf-8") as f:
                f.writelines(json_line(row) + "\n" for row in found)
                f.flush()
                os.fsync(f.fileno())
        if found:
            self.on_findings(found)
            if self.notify_owner is not None:
                from .. import notify

                notify.findings_found(self.store.home, found, source="watch", owner=self.notify_owner,
                                      cipher=self.store.cipher)


def watch(store: Store, paths: list[str | os.PathLike], options: ScanOptions | None = None, *,
          out: str | os.PathLike | None = None, on_findings: Callable[[list[Finding]], None] | None = None,
          on_error: Callable[[Path, str], None] | None = None, on_back: Callable[[Path], None] | None = None,
          settle: float = SETTLE_S, scope: str = CLI_SCOPE, notify_owner: str | None = None) -> Watcher:
    """A Watcher that scans what arrives under `paths` and appends findings to `out` (JSON Lines); call run().

    :param on_error: told of a watched folder that is missing or unreadable (the others go on)
    :param scope: whose record of scanned files to keep (one per watch; see store/watchstate.py)
    :param notify_owner: the account whose webhook hears of the findings (notify.findings_found's owner)
    """
    options = options or ScanOptions(models=store.models_dir, threads=store.threads)
    if options.workers == 0:
        options.workers = 1  # a few files at a time: starting worker processes would cost more than it saves
    options.check()
    handler = WatchScan(store, options, out, on_findings, notify_owner)
    handler.state = WatchState(store.home, scope)
    w = Watcher(paths, handler.state, handler, on_error=on_error, on_back=on_back, settle=settle,
                keep=lambda p: not p.name.startswith(".") and not (out and os.path.abspath(out) == str(p)))
    w.scanner = handler
    return w

"""When a file that changed is whole: its size and mtime unchanged for a settle interval, and no one holding it
open for writing (where the system can tell), so a copy still under way is never scanned half written."""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

SETTLE_S = 1.0  # size and mtime unchanged this long: the writer has stopped (for copies that do not hold it open)


def open_for_writing(path: str | os.PathLike) -> bool:
    """Whether some process holds the file open for writing, by asking for a read lease (Linux): the system
    refuses one (EAGAIN) while the file is open for writing anywhere. False where leases are unavailable (not the
    file's owner, another system, a network file system): the settle interval alone decides there."""
    if not hasattr(fcntl, "F_SETLEASE"):
        return False
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
    except OSError as exc:
        return exc.errno == errno.EAGAIN
    else:
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)  # held for microseconds: a writer is never made to wait
        return False
    finally:
        os.close(fd)


@dataclass
class _Seen:
    size: int
    mtime_ns: int
    since: float  # when this size and mtime were first seen


class Settler:
    """Files reported changed, each handed back once it has settled."""

    def __init__(self, settle: float = SETTLE_S):
        self.settle = settle
        self._files: dict[Path, _Seen | None] = {}

    def __len__(self) -> int:
        return len(self._files)

    def changed(self, path: Path) -> None:
        """A file was added or modified: it settles again from now."""
        self._files[Path(path)] = None

    def gone(self, path: Path) -> None:
        """A file was deleted (or renamed away): forget it."""
        self._files.pop(Path(path), None)

    def ready(self, now: float | None = None) -> list[tuple[Path, os.stat_result]]:
        """The files that have settled, with the stat they settled at; they leave the watch list."""
        now = time.monotonic() if now is None else now
        out = []
        for path, seen in list(self._files.items()):
            try:
                st = os.stat(path, follow_symlinks=False)
            except OSError:
                self._files.pop(path)  # gone before it settled
                continue
            if not stat.S_ISREG(st.st_mode):
                self._files.pop(path)  # folders, links, FIFOs: the folder walk or nothing handles them
                continue
            if seen is None or (seen.size, seen.mtime_ns) != (st.st_size, st.st_mtime_ns):
                self._files[path] = _Seen(st.st_size, st.st_mtime_ns, now)
                continue
            # Settled: unchanged since the last look, and either last written a settle interval ago (what a
            # catch-up finds) or seen unchanged that long (a clock that disagrees with the file system's).
            quiet = time.time() - st.st_mtime_ns / 1e9 >= self.settle or now - seen.since >= self.settle
            if not quiet or open_for_writing(path):
                continue
            self._files.pop(path)
            out.append((path, st))
        return out

"""Private files: the store folder and every file in it must be ours, not writable by others, and never a symlink.

Biometric templates and the audit log are only as safe as the folder they sit in: a group-writable folder lets
another user swap a file, and a symlink planted as ``audit.log`` would make a writer append to (or a reader trust)
a file elsewhere. So the store refuses to open such a folder, opens its files with O_NOFOLLOW, and creates them
0600 whatever the umask.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from . import faults
from ..errors import StoreError

NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _trusted_owner(uid: int) -> bool:
    """Ours, or root's (as ssh accepts)."""
    return uid in (os.geteuid(), 0)


def check_folder(home: Path) -> None:
    """StoreError when the store folder is writable by group/other or owned by another user."""
    try:
        st = os.stat(home)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        raise StoreError(f"the store {home} is not a folder")
    _check_private(st, f"the store folder {home}", f"chmod 700 {home}")


def check_file(path: Path) -> None:
    """StoreError when a store file is a symlink, not a regular file, writable by others or someone else's."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise StoreError(f"{path} is a symbolic link; store files are never followed through links")
    if not stat.S_ISREG(st.st_mode):
        raise StoreError(f"{path} is not a regular file")
    _check_private(st, str(path), f"chmod 600 {path}")


def _check_private(st: os.stat_result, what: str, fix: str) -> None:
    """StoreError when what (a store folder or file) is writable by group or others, or someone else's."""
    if st.st_mode & 0o022:
        raise StoreError(f"{what} is writable by group or others (mode {st.st_mode & 0o777:o}); `{fix}` makes it "
                         "private")
    if not _trusted_owner(st.st_uid):
        raise StoreError(f"{what} belongs to another user (uid {st.st_uid})")


def check_store(home: Path) -> None:
    """Check the folder and every file directly in it."""
    check_folder(home)
    if home.is_dir():
        for entry in os.scandir(home):
            if not entry.is_dir(follow_symlinks=False):
                check_file(Path(entry.path))


def make_folder(home: Path) -> None:
    """Create the store folder 0700 (mkdir's mode is cut by the umask; chmod is not)."""
    if not home.exists():
        home.mkdir(parents=True, exist_ok=True)
        os.chmod(home, 0o700)


def open_fd(path: Path, flags: int) -> int:
    """os.open without following a symlink; a created file is 0600 whatever the umask."""
    try:
        fd = os.open(path, flags | NOFOLLOW | CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno == 40:  # ELOOP: the last component is a symlink
            raise StoreError(f"{path} is a symbolic link; store files are never followed through links") from exc
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise StoreError(f"{path} is not a regular file")
        if flags & os.O_CREAT and st.st_mode & 0o777 != 0o600 and _trusted_owner(st.st_uid):
            os.fchmod(fd, 0o600)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_bytes(path: Path) -> bytes:
    """A store file's bytes, never through a symlink."""
    fd = open_fd(path, os.O_RDONLY)
    with os.fdopen(fd, "rb") as f:
        return f.read()


def open_read(path: Path):
    """A binary file object for reading a store file, never through a symlink."""
    return os.fdopen(open_fd(path, os.O_RDONLY), "rb")


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write a file by temp file + fsync + rename, so readers never see half of it; its mode (private unless
    asked) is set before any byte is in it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        if mode != 0o600:  # mkstemp makes it 0600
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data[: len(data) // 2])
            faults.point("index.write:partial")
            f.write(data[len(data) // 2:])
            f.flush()
            os.fsync(f.fileno())
        faults.point("index.write:before-rename")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

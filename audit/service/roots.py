"""Path-mode scans: every file under a scan root is resolved and checked against the root before it is read.

A link (file or folder) that leads out of its root is never followed: the scan gets an error row for it instead.
Folders are walked here, not by the scanner, so the check holds for files found while walking too.
"""

from __future__ import annotations

import os
import stat
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .. import media
from ..errors import AuditError
from ..findings import Finding

KINDS = frozenset({"image", "video", "audio"})
OUTSIDE = "a link that leads outside the scan root: not followed"
NOT_FILE = "not a regular file: not read"


class OutsideRoot(AuditError):
    """A path given for a scan that is not inside any of the server's scan roots."""


def inside(path: str | os.PathLike, root: str | os.PathLike) -> bool:
    """Whether path, with every link resolved, is root or under it (root resolved too)."""
    real, base = Path(os.path.realpath(path)), Path(os.path.realpath(root))
    return real == base or real.is_relative_to(base)


def resolve(given: str, roots: list[Path]) -> tuple[Path, Path]:
    """(resolved path, its root) of a path given absolute or relative to the first root; OutsideRoot if none."""
    if "\x00" in given or not given:
        raise OutsideRoot("bad path", code="bad-path")
    p = Path(os.path.realpath(roots[0] / given))
    for root in roots:
        if inside(p, root):
            try:
                os.stat(p)
            except (OSError, ValueError):  # missing, or a name the system refuses (too long): the caller's error
                raise OutsideRoot(f"not found: {given[:200]}", code="not-found") from None
            return p, Path(os.path.realpath(root))
    raise OutsideRoot(f"{given[:200]} is outside the folders this server scans", code="outside-root")


def shown_name(path: Path, root: Path) -> str:
    """A scanned path as evidence names it: relative to its root (the root's own name for the root), never the
    server's absolute path."""
    rel = os.path.relpath(path, root)
    return root.name if rel == "." else rel


@dataclass
class Confined:
    """The files a path-mode scan may read, and the rows for what it refused."""

    files: list[str] = field(default_factory=list)
    shown: dict[str, str] = field(default_factory=dict)  # file -> name in evidence
    refused: list[Finding] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)


def confine(inputs: list[dict]) -> Confined:
    """Expand path inputs ({"path", "name", "root"}) to checked files: links leaving the root become error rows."""
    out = Confined()
    for item in inputs:
        path, name = Path(item["path"]), item.get("name") or Path(item["path"]).name
        root = Path(item.get("root") or path)
        if not inside(path, root):
            out.refused.append(_row(name, OUTSIDE))
        elif path.is_dir():
            _walk(path, root, name, out)
        else:
            _file(path, root, name, out, given=True)
    return out


def _walk(folder: Path, root: Path, name: str, out: Confined) -> None:
    for base, dirs, files in os.walk(folder, followlinks=False):
        dirs.sort()
        for d in list(dirs):
            p = Path(base) / d
            if os.path.islink(p):
                dirs.remove(d)  # os.walk does not follow it either; said here so it is not silent
                if not inside(p, root):
                    out.refused.append(_row(_under(name, folder, p), OUTSIDE))
        for f in sorted(files):
            p = Path(base) / f
            _file(p, root, _under(name, folder, p), out, given=False)


def _file(path: Path, root: Path, name: str, out: Confined, given: bool) -> None:
    if not inside(path, root):  # a link (or a link in its chain) out of the root: never opened
        out.refused.append(_row(name, OUTSIDE))
        return
    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = 0
    if not stat.S_ISREG(mode):  # FIFOs and devices would block or never end
        out.refused.append(_row(name, NOT_FILE))
        return
    if not given:  # the folder rule of media.walk: typed by content, non-media counted as skipped
        kind, fmt = media.content_kind(path)
        if not (kind in KINDS or (kind is None and media.kind_of(path.name) in KINDS)):
            out.skipped[f"{kind} (not scanned here)" if kind else f"unsupported format ({fmt})" if fmt
                        else "not media (by content)"] += 1
            return
    out.files.append(str(path))
    out.shown[str(path)] = name


def _under(name: str, folder: Path, path: Path) -> str:
    return media.display_path(name.rstrip("/") + "/" + os.path.relpath(path, folder))


def _row(name: str, why: str) -> Finding:
    return Finding(path=media.display_path(name), sha256=None, modality=None, kind="error", error=why)

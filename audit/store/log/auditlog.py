"""Append-only, hash-chained audit log (``audit.log``, JSON Lines) of enroll, remove, consent and scan events.

Each entry is ``{seq, time, event, actor, details, details_sha256, prev_hash, hash}``; ``hash`` is the SHA-256 of
the entry's canonical JSON without ``hash`` and ``details``, which it commits to through ``details_sha256``, and
``prev_hash`` the previous entry's hash, so an edited, dropped or reordered entry breaks the chain. Details hold
who/what/when, person ids, file SHA-256s and counts: never vectors or crops.

Committing to the details by their hash lets a removal erase personal data from earlier entries (redaction.py) and
keep the chain: the ``remove`` entry lists, per entry it redacted, the hash of the redacted details, so a redacted
entry verifies through a later, chained entry and any other change to details still breaks the chain. (Entries
written before ``details_sha256`` existed hash their details directly and cannot be redacted.)

Writing is two steps, both under the store's writer lock: ``stage`` records the new entry as the chain head in the
registry's ``meta`` table *inside the same SQLite transaction as the change it describes*, then ``flush`` appends it
to the file. A crash between the two leaves the head in the registry; the next write (or ``verify --repair``)
appends it, so every committed change has exactly one entry and a rolled-back change has none. The head kept in
the registry also anchors the chain's end: a log cut short, or rewritten with recomputed hashes, no longer ends
at the registry's head.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .. import faults, files
from ...errors import StoreError
from .seals import HEAD_KEY, HEAD_MAC, same

LOG_FILE = "audit.log"
GENESIS = "0" * 64
# Every event the store writes (`log --event` offers exactly these; tests/test_cli_misc.py checks the code agrees).
EVENTS = ("enroll", "remove", "consent", "calibrate", "scan", "export", "encrypt", "review", "answer")


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def details_hash(details: dict) -> str:
    """SHA-256 of an entry's details as canonical JSON."""
    return _digest(details)


def entry_hash(entry: dict) -> str:
    """SHA-256 of an entry's canonical JSON, leaving out its own ``hash`` (and its details, when it commits to
    them by ``details_sha256``)."""
    skip = ("hash", "details") if "details_sha256" in entry else ("hash",)
    return _digest({k: v for k, v in entry.items() if k not in skip})


def erasures(entries: list[dict]) -> dict[int, str]:
    """seq -> hash of the redacted details, as the remove entries that redacted them record it."""
    out: dict[int, str] = {}
    for e in entries:
        if isinstance(e, dict) and e.get("event") == "remove" and isinstance(e.get("details"), dict):
            for seq, h in (e["details"].get("erased") or {}).items():
                out[int(seq)] = h
    return out


def actor() -> str:
    """Who acts: $AUDIT_ACTOR, else user@host (no network look-up)."""
    if os.environ.get("AUDIT_ACTOR"):
        return os.environ["AUDIT_ACTOR"]
    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        user = f"uid{os.getuid()}"
    return f"{user}@{os.uname().nodename}"


def _line(entry: dict) -> bytes:
    return (json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n").encode()


@dataclass
class ChainReport:
    """The result of checking the log: entries read, the first broken seq (None: intact) and why."""

    entries: int
    first_broken: int | None = None
    reason: str | None = None
    pending: bool = False  # the registry's head is not in the file yet: an interrupted append, repairable

    def problems(self) -> list[str]:
        """Human-readable problems (empty when the chain is intact and complete)."""
        out = []
        if self.first_broken is not None:
            out.append(f"audit log broken at entry {self.first_broken}: {self.reason}")
        if self.pending:
            out.append("audit log lacks its last entry (an interrupted write); `likeness-audit verify --repair` "
                       "appends it")
        return out


class AuditLog:
    """The audit log of one store; ``registry`` holds the chain head (see the module docstring)."""

    sealer = None  # set by the store: MACs the head kept in the registry (seals.py)

    def __init__(self, path: Path, registry):
        self.path = Path(path)
        self.registry = registry

    def head(self) -> dict | None:
        """The newest entry as the registry knows it."""
        text = self.registry.meta(HEAD_KEY)
        return json.loads(text) if text else None

    def stage(self, event: str, details: dict) -> dict:
        """Make a new entry the chain head (call inside the registry transaction of the change it records)."""
        head = self.head()
        if head is None:  # a registry without a head (new, or recreated): continue the file's chain
            head, _, _ = self._tail()
        entry = {
            "seq": (head["seq"] + 1) if head else 1,
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "event": event,
            "actor": actor(),
            "details": details,
            "details_sha256": details_hash(details),
            "prev_hash": head["hash"] if head else GENESIS,
        }
        entry["hash"] = entry_hash(entry)
        text = json.dumps(entry, sort_keys=True)
        self.registry.set_meta(HEAD_KEY, text)
        if self.sealer is not None and self.sealer.key is not None:
            self.registry.set_meta(HEAD_MAC, self.sealer.head(text))
        return entry

    def rewrite(self, details: dict[int, dict]) -> None:
        """Replace the details of some entries (by seq), keeping every other byte, by temp file and rename."""
        import tempfile

        out = []
        for line in self.entries():
            if line.get("seq") in details:
                line = {**line, "details": details[line["seq"]]}
            out.append(_line(line))
        fd, tmp = tempfile.mkstemp(prefix=LOG_FILE + ".", suffix=".redact", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(b"".join(out))
                f.flush()
                os.fsync(f.fileno())
            faults.point("auditlog:redact-before-rename")
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def flush(self) -> bool:
        """Append the head entry when the file lacks it (call under the writer lock); True if it appended.

        A torn last line (a killed append) is cut off first. Nothing is appended where the file does not end
        right before the head: that gap is for ``check`` to report, not to paper over.
        """
        head = self.head()
        if head is None:
            return False
        last, end, size = self._tail()
        if last is None and end > 0:
            return False  # the last complete line is not an entry: leave it for check to report
        last_seq = last["seq"] if last else 0
        if last_seq >= head["seq"]:
            return False
        if head["seq"] != last_seq + 1 or head["prev_hash"] != (last["hash"] if last else GENESIS):
            return False
        line = _line(head)
        fd = files.open_fd(self.path, os.O_WRONLY | os.O_CREAT)
        try:
            if size > end:
                os.ftruncate(fd, end)
            os.lseek(fd, end, os.SEEK_SET)
            half = len(line) // 2
            os.write(fd, line[:half])
            faults.point("auditlog:partial-line")
            os.write(fd, line[half:])
            os.fsync(fd)
        finally:
            os.close(fd)
        return True

    def entries(self) -> list[dict]:
        """Every entry in the file, oldest first (raises StoreError on an unreadable line)."""
        out = []
        if not self.path.exists() and not self.path.is_symlink():
            return out
        with files.open_read(self.path) as f:
            for n, raw in enumerate(f, 1):
                try:
                    out.append(json.loads(raw))
                except ValueError as exc:
                    raise StoreError(f"audit log line {n} is not JSON: {exc}") from exc
        return out

    def about(self, person: str | None = None, event: str | None = None, scans: bool = False) -> list[dict]:
        """Entries, oldest first, optionally about one person (by id or by their pseudonym) or of one event.

        scans: also the scans that named the person (their entries name other people too: not for a person's
        own export)."""
        pseudonym = self.sealer.pseudonym(person) if person and self.sealer is not None else None
        who = {person, pseudonym} if person else set()
        kinds = (list, dict) if scans else (list,)  # a bulk enrolment lists its people; a scan counts them
        about = lambda d: d.get("person") in who or (  # noqa: E731
            isinstance(d.get("people"), kinds) and bool(who & set(d["people"])))
        return [e for e in self.entries()
                if (not event or e.get("event") == event) and (not person or about(e.get("details") or {}))]

    def _readable(self) -> list[dict]:
        """Every line that parses as JSON (check names the others)."""
        out = []
        if self.path.exists() or self.path.is_symlink():
            with files.open_read(self.path) as f:
                for raw in f:
                    try:
                        out.append(json.loads(raw))
                    except ValueError:
                        continue
        return out

    def check(self) -> ChainReport:
        """Walk the chain from the start and compare its end with the registry's head."""
        report = ChainReport(0)
        prev_seq, prev_hash = 0, GENESIS
        head = self.head()
        erased = erasures(self._readable() + ([head] if head else []))  # the head may not be in the file yet

        def broken(seq: int, reason: str) -> ChainReport:
            report.first_broken, report.reason = seq, reason
            return report

        if self.path.exists() or self.path.is_symlink():
            with files.open_read(self.path) as f:
                for raw in f:
                    want = prev_seq + 1
                    if not raw.endswith(b"\n"):
                        if f.read(1) == b"" and head and head["seq"] == want:
                            report.pending = True  # a torn append of the head: flush rewrites it
                            return report
                        return broken(want, "incomplete line")
                    try:
                        entry = json.loads(raw)
                        seq, ph, h = entry["seq"], entry["prev_hash"], entry["hash"]
                    except (ValueError, KeyError, TypeError):
                        return broken(want, "not a valid entry")
                    if seq != want:
                        return broken(want, f"entry {want} is missing or out of order (found seq {seq})")
                    if ph != prev_hash:
                        return broken(want, f"does not follow entry {prev_seq} (prev_hash differs)")
                    if entry_hash(entry) != h:
                        return broken(want, "entry was altered (hash differs)")
                    if "details_sha256" in entry and details_hash(entry.get("details")) not in (
                            entry["details_sha256"], erased.get(seq)):
                        by = entry["details"].get("redacted_by") if isinstance(entry["details"], dict) else None
                        return broken(want, f"redacted by entry {by}, which is missing or does not vouch for it" if by
                                      else "its details were altered (their hash differs)")
                    report.entries += 1
                    prev_seq, prev_hash = seq, h
        if head is None:
            if report.entries or self.registry.has_data():
                return broken(1, "the registry keeps no copy of the log head although the store has "
                                 f"{'entries' if report.entries else 'data'} (head deleted, or registry replaced)")
            return report
        if self.sealer is not None and self.sealer.key is not None and not same(
                self.registry.meta(HEAD_MAC), self.sealer.head(self.registry.meta(HEAD_KEY))):
            return broken(head["seq"], "the registry's copy of the log head fails its MAC (edited, or written "
                                       "without the store's key)")
        if head["seq"] == prev_seq:
            if head["hash"] != prev_hash:
                return broken(prev_seq, "differs from the copy of the last entry kept in the registry")
        elif head["seq"] == prev_seq + 1 and head["prev_hash"] == prev_hash:
            report.pending = True
        elif head["seq"] > prev_seq:
            return broken(prev_seq + 1, f"entries {prev_seq + 1}..{head['seq']} are missing from the end of the log")
        else:
            return broken(head["seq"] + 1, f"entries after {head['seq']} are unknown to the registry")
        return report

    def verify_chain(self) -> int | None:
        """The first broken seq, or None when the chain is intact (a pending last entry is not a break)."""
        return self.check().first_broken

    def _tail(self) -> tuple[dict | None, int, int]:
        """(last complete entry or None, offset just after it, file size); torn bytes may follow the offset."""
        try:
            f = files.open_read(self.path)
        except FileNotFoundError:
            return None, 0, 0
        with f:
            size = f.seek(0, os.SEEK_END)
            buf, pos = b"", size
            while pos > 0:
                step = min(1 << 16, pos)
                pos -= step
                f.seek(pos)
                buf = f.read(step) + buf
                end = buf.rfind(b"\n")
                if end >= 0 and (buf.rfind(b"\n", 0, end) >= 0 or pos == 0):
                    start = buf.rfind(b"\n", 0, end) + 1
                    try:
                        return json.loads(buf[start:end + 1]), pos + end + 1, size
                    except ValueError:
                        return None, pos + end + 1, size
            return None, 0, size


class ScanRecord:
    """What a scan's audit entry says: what was asked, counts, a digest of the files seen, who matched where."""

    MAX_LISTED = 1000  # matched files listed by hash; beyond this only counted

    def __init__(self, paths: list[str], use: str | None):
        self.paths, self.use = paths, use
        self._files = hashlib.sha256()
        self._hashes: list[str] = []
        self.matched: list[list[str]] = []
        self.people: dict[str, int] = {}
        self.unlisted = 0

    def add(self, sha256: str | None, rows) -> None:
        """Note one analysed file (its SHA-256, None when unreadable) and its finding rows."""
        if sha256:
            self._hashes.append(sha256)
        for r in rows:
            if r.kind == "error" or r.person is None:
                continue
            self.people[r.person] = self.people.get(r.person, 0) + 1
            if len(self.matched) < self.MAX_LISTED:
                self.matched.append([r.sha256, r.person, r.consent])
            else:
                self.unlisted += 1

    def details(self, counts: dict) -> dict:
        """The entry's details (no vectors, no similarity scores, no media)."""
        digest = hashlib.sha256("\n".join(sorted(self._hashes)).encode()).hexdigest()
        return {"paths": self.paths, "use": self.use, **counts, "files_sha256": digest,
                "people": dict(sorted(self.people.items())), "matched": self.matched,
                "matched_unlisted": self.unlisted}

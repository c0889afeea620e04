"""A scan: find and type the files, hash them, analyse each distinct content once (or take it from the cache),
match it, and yield findings file by file with a summary."""

from __future__ import annotations

import hashlib
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from .. import config, media
from ..errors import AuditError, MediaError, MissingPath, NothingEnrolled, NothingToScan
from ..evidence import Evidence
from ..findings import Finding, Reference
from ..models.channel import is_narrow
from ..models.face import FaceModel
from ..store import Store
from ..store.log.auditlog import ScanRecord
from . import cache as caching
from .archiving import ScanArchive
from .analyze import AnalyzedFile, Analyzer
from .engine import analyze
from .match import Matcher
from .options import ScanOptions


@dataclass
class ScanSummary:
    """Counts for the end of a scan (and, while it runs, for progress)."""

    files: int = 0
    errors: int = 0
    faces: int = 0
    voices: int = 0
    findings: int = 0
    composites: int = 0
    undecided: int = 0  # faces that looked like composites but were too low quality to judge (audit/composite.py)
    unconsented: int = 0  # findings whose consent for the use is not "allowed"
    elapsed: float = 0.0  # seconds, from the start of the scan to its last file
    warnings: list[str] = field(default_factory=list)  # e.g. the gallery outgrew its calibration
    total: int | None = None  # files to scan, once they are all found
    skipped: dict[str, int] = field(default_factory=dict)  # files not scanned, by reason
    duplicates: int = 0  # files whose content was already analysed in this scan
    cached: int = 0  # files whose analysis came from the scan cache
    resumed: int = 0  # files a resumed scan did not hash again (done before it stopped)
    complete: bool = False  # False while running, and when stopped (Ctrl-C) before the last file
    ai_declared: int = 0  # files whose content credentials declare them AI-generated (media/provenance.py)
    unread: int = 0  # files that were an error before any of their media decoded

    @property
    def nothing_read(self) -> bool:
        """A finished scan in which no file could be read at all (each an error before any of it decoded): nothing
        was audited, which is never a clean result. A file cut short after some frames or audio was read in part."""
        return self.complete and self.files > 0 and self.unread >= self.files

    def fails(self, fail_on: str | None) -> bool:
        """Whether a gate set to fail_on ("match": any finding; "unconsented": any finding not allowed) fails."""
        if fail_on == "match":
            return self.findings > 0
        if fail_on == "unconsented":
            return self.unconsented > 0
        return False


def in_shard(path: str | os.PathLike, shard: tuple[int, int] | None) -> bool:
    """Whether a file falls in shard (i, n), by a hash of its path: the same split on every machine."""
    if shard is None:
        return True
    digest = hashlib.sha256(os.fsencode(path)).digest()
    return int.from_bytes(digest[:8], "big") % shard[1] == shard[0] - 1


class ScanRun:
    """An iterator of findings, file by file; `summary` counts what has been scanned so far.

    Set `progress` to a callable to hear of every file scanned (it gets the summary). Closing the run
    (`close()`, or Ctrl-C while iterating) stops the workers; what was scanned stays in the cache and the
    journal, so the same scan can be resumed.
    """

    def __init__(self, store: Store, paths: Iterable[str | os.PathLike], options: ScanOptions,
                 model: FaceModel | None = None, shown: dict[str, str] | None = None, keep: bool = True):
        options.check()
        options.c2pa_roots = config.c2pa_trust(options.c2pa_trust)  # read once: workers and Ray actors get the text
        self.store, self.options = store, options
        self.paths = list(paths)
        self.shown = dict(shown or {})  # path as given -> the name evidence shows (an upload's own file name)
        check_paths(self.paths)
        self.model = model or store.face_model
        check_enrolled(store, self.model.model_id, options.voice)
        self.summary = ScanSummary()
        self.keep = keep  # False: findings stream through without being kept (no record; memory stays flat)
        self.findings: list[Finding] = []  # every finding yielded so far: the record is made from them
        self.started: datetime | None = None
        self.finished: datetime | None = None
        self.progress: Callable[[ScanSummary], None] | None = None
        self.scan_id: str | None = None  # this scan's id in the embedding archive (None: not archived)
        self.archived: list[str] = []  # the archive partitions it wrote
        if options.threshold is not None and options.threshold < LOW_FACE_THRESHOLD:
            self.summary.warnings.append(f"face threshold {options.threshold} is below {LOW_FACE_THRESHOLD}: expect "
                                         "many false matches (the default is "
                                         f"{config.DEFAULT_FACE_THRESHOLD})")
        self._findings = self._run()

    def record(self, references: bool = True) -> Evidence:
        """The evidence record of what was scanned so far: findings with their pictures, the run's metadata,
        and (unless references=False) the enrolled reference crop of every person named."""
        if not self.keep:
            raise AuditError("this scan was run with keep=False: it kept no findings to make a record of")
        evidence = Evidence.of(self.findings, self.run_info())
        if references:
            evidence.references = reference_crops(self.store, evidence.findings)
        return evidence

    def run_info(self) -> dict:
        """What the run itself recorded: times, counts, options in words, tool, models, indexes, gallery sizes."""
        from importlib.metadata import version

        s, store = self.summary, self.store
        stamp = lambda t: t.isoformat(timespec="seconds") if t else None  # noqa: E731
        return {"version": version("likeness-audit"), "started": stamp(self.started),
                "finished": stamp(self.finished), "files_total": s.total, "files_scanned": s.files,
                "complete": s.complete, "errors": s.errors, "unread": s.unread, "ai_declared": s.ai_declared, "duplicates": s.duplicates,
                "cached": s.cached, "skipped": s.skipped, "paths": [self._shown(p) for p in self.paths[:1000]], "use": self.options.use,
                "options": self.options.described(), "warnings": list(s.warnings),
                "models": {m: mo for m, mo in store.models() if not is_narrow(mo)},  # not band-limited templates
                "indexes": {f"{m}:{mo[:8]}": store.index_version(m, mo) for m, mo in store.models()},
                "gallery": {f"{m}:{mo[:8]}": store.gallery_size(m, mo) for m, mo in store.models()},
                "archive": self.scan_id}  # this scan's id in the embedding archive (None: not archived)

    def _shown(self, path: str | os.PathLike) -> str:
        """The name a file goes by in evidence: the one the caller gave it (or its folder, for a file found under
        a folder given a name), else its path as text."""
        path = os.fspath(path)
        if path in self.shown:
            return self.shown[path]
        for given, name in self.shown.items():
            if path.startswith(given.rstrip(os.sep) + os.sep):
                return media.display_path(name.rstrip("/") + "/" + path[len(given.rstrip(os.sep)) + 1:])
        return media.display_path(path)

    def __iter__(self) -> Iterator[Finding]:
        return self

    def __next__(self) -> Finding:
        return next(self._findings)

    def close(self) -> None:
        """Stop the scan: workers end, the cache keeps what was done."""
        self._findings.close()

    def _files(self) -> list[Path]:
        o, skipped = self.options, Counter()
        files = [p for p in media.walk(self.paths, include=o.include, exclude=o.exclude, skipped=skipped)
                 if in_shard(p, o.shard)]
        self.summary.skipped = dict(skipped)
        self.summary.total = len(files)
        # No media at all (folders without any, or only files that are no media by content or name): a clean
        # result would say nothing. One damaged .jpg is still media: it gets its error row.
        if not o.shard and not any(media.kind_by_content(p) for p in files):
            raise NothingToScan("no scannable media (images, videos, audio) under "
                                + ", ".join(self._shown(p) for p in self.paths))
        return files

    def _run(self) -> Iterator[Finding]:
        summary, started, o = self.summary, time.monotonic(), self.options
        self.started = datetime.now(timezone.utc)
        record = ScanRecord([self._shown(p) for p in self.paths], o.use)
        erasures = self.store.removals()  # before the gallery loads: a removal after it is noticed
        matcher = Matcher(self.store, self.model, o)
        summary.warnings += matcher.warnings
        analyzer = Analyzer(o, self.model, voice_enrolled=matcher.voices.enrolled)
        store_cache = self.store.scan_cache() if o.cache or o.resume else None
        run = caching.run_key([os.fspath(p) for p in self.paths], o, self.model.model_id,
                              {"voice": analyzer.voice_enrolled})
        if o.resume and (store_cache is None or not store_cache.resumable(run)):
            summary.warnings.append("nothing to resume: no stopped scan of these paths with these options; "
                                    "scanning everything")
        done = store_cache.start_run(run, o.resume) if store_cache else {}
        key = lambda sha: caching.cache_key(sha, self.model.model_id, self.model.detector_path.name, o,  # noqa: E731
                                            analyzer.voice_enrolled)
        unheard = 0
        keep = ScanArchive(self.store, self.started, self.model.model_id, matcher.faces.index_version,
                           matcher.voices.model, erasures=erasures) if o.archive else None
        self.scan_id = keep.scan if keep else None

        def emit(result: AnalyzedFile, paths: list[tuple[Path, os.stat_result | None]]) -> Iterator[Finding]:
            nonlocal unheard
            for i, (path, st) in enumerate(paths):
                one = replace(result, path=self._shown(path))
                summary.files += 1
                summary.duplicates += i > 0
                summary.faces += len(one.faces)
                summary.voices += len(one.voices)
                summary.ai_declared += bool((one.provenance or {}).get("ai_declared"))
                rows = matcher.findings(one)
                summary.errors += one.error is not None
                summary.unread += one.error is not None and not (one.partial or one.faces or one.voices)
                summary.findings += sum(r.kind != "error" for r in rows)
                summary.composites += sum(r.kind == "composite" for r in rows)
                summary.unconsented += sum(r.kind != "error" and r.consent != "allowed" for r in rows)
                summary.elapsed = round(time.monotonic() - started, 3)
                record.add(one.sha256, rows)
                if keep is not None and i == 0 and one.sha256:
                    keep.add(one, rows)  # every face and voice, matched or not: people who enrol later
                unheard += one.kind == "audio" and not analyzer.voice_enrolled
                if store_cache is not None and st is not None:
                    store_cache.mark_done(run, os.fsencode(path), st.st_size, st.st_mtime_ns, one.sha256)
                if self.keep:
                    self.findings += rows
                if self.progress is not None:
                    self.progress(summary)
                yield from rows

        try:
            files = self._files()
            if not o.shard:  # a shard of a mixed folder may hold only audio; the other shards hold the rest
                check_heard(self.store, files, analyzer.voice_enrolled, o.voice)
            groups = self._groups(files, done)
            todo = []
            for sha, paths in groups.items():
                blob = store_cache.get(key(sha)) if store_cache is not None and sha else None
                result = _load(blob, paths[0][0], sha)
                if result is None:
                    todo.append((paths[0][0], sha))
                    continue
                summary.cached += len(paths)
                yield from emit(result, paths)
            for (path, sha), result in zip(todo, analyze(todo, o, analyzer)):
                if store_cache is not None and result.sha256 and result.error is None:
                    store_cache.put(key(result.sha256), caching.dump(result))
                yield from emit(result, groups[sha or f"unread:{path}"])
            summary.complete = True
        finally:
            summary.undecided = matcher.faces.undecided
            if summary.undecided:
                summary.warnings.append(f"{summary.undecided} face(s) looked like composites of registered people "
                                        "but were too low quality to judge; matches among them say so in "
                                        "extra.composite")
            if unheard:
                summary.warnings.append(f"{unheard} audio file(s) not scanned: no voice is enrolled "
                                        "(or voice=False)")
            summary.elapsed = round(time.monotonic() - started, 3)
            self.finished = datetime.now(timezone.utc)
            if keep is not None:
                self.archived = keep.close()
            if store_cache is not None:
                if summary.complete:
                    store_cache.finish_run(run)
                store_cache.close()
            details = asdict(summary)
            details.pop("elapsed")
            self.store.log_event("scan", record.details(details))

    def _groups(self, files: list[Path], done: dict) -> dict[str, list[tuple[Path, os.stat_result | None]]]:
        """Files grouped by content (SHA-256), in order of first appearance; unreadable files stay alone."""
        groups: dict[str, list] = {}
        for path in files:
            try:
                st = path.stat()
            except OSError:
                st = None
            sha = None
            before = done.get(os.fsencode(path))
            if st is not None and before is not None and before[:2] == (st.st_size, st.st_mtime_ns):
                sha = before[2]  # done before the stop, unchanged since: not read again
                self.summary.resumed += 1
            if sha is None:
                try:
                    sha = media.hash_file(path)
                except MediaError:
                    sha = None  # the analyser gives this file its error row
            groups.setdefault(sha or f"unread:{path}", []).append((path, st))
        return groups


def _load(blob: bytes | None, path: Path, sha: str | None) -> AnalyzedFile | None:
    """A cached analysis for this path, or None when there is none or it is unreadable."""
    if blob is None:
        return None
    try:
        return caching.load(blob, media.display_path(path), sha)
    except (ValueError, KeyError, TypeError):
        return None


def reference_crops(store: Store, rows: list[dict]) -> dict[str, Reference]:
    """The enrolled reference crop of every person the finding rows name (composite contributors too), with the
    sample each crop was cut from."""
    people = {r["person"] for r in rows if isinstance(r.get("person"), str)}
    people |= {c["person"] for r in rows for c in r.get("contributors") or []
               if isinstance(c, dict) and isinstance(c.get("person"), str)}
    refs = {p: Reference(crop) for p in sorted(people) if (crop := store.reference(p))}
    samples = {(r.get("extra") or {}).get("sample") for r in rows if r.get("person") in refs}
    for info in store.sample_info(v for v in samples if isinstance(v, int)).values():
        if info.person in refs:
            refs[info.person].sample = info.reference_sample
    return refs


LOW_FACE_THRESHOLD = 0.2  # below this, unrelated faces match often (impostor scores reach ~0.3)


def check_paths(paths: list) -> None:
    """MissingPath naming every path that does not exist (a typo must not make a clean audit)."""
    if not paths:
        raise NothingToScan("no paths to scan")
    missing = [media.display_path(p) for p in paths if not os.path.lexists(p)]
    if missing:
        raise MissingPath(f"no such file or folder: {', '.join(missing)}")


def check_enrolled(store: Store, face_model: str, voice: bool) -> None:
    """NothingEnrolled when no one is enrolled for any modality this scan would search."""
    counts = store.counts()
    if any(m == "face" and mo == face_model for m, mo in counts):
        return
    if voice and any(m == "voice" for m, _ in counts):
        return
    others = ", ".join(f"{m} ({mo[:8]})" for m, mo in counts) or "nothing"
    raise NothingEnrolled(f"no one is enrolled for this scan (face model {face_model[:8]}"
                          f"{', or voice' if voice else ''}); the store {store.home} holds {others}: "
                          "`likeness-audit enroll` first")


def check_heard(store: Store, files: list[Path], voice_enrolled: bool, voice: bool) -> None:
    """NothingEnrolled when every file is audio and no voice is enrolled (or voice=False): the scan could only
    come back clean. Voices enrolled with another encoder count, as in check_enrolled (the scan warns)."""
    if voice_enrolled or (voice and any(m == "voice" for m, _ in store.models())):
        return
    if not files or not all(media.kind_by_content(p) == "audio" for p in files):
        return
    why = "no voice is enrolled" if voice else "voice scanning is off (--no-voice)"
    raise NothingEnrolled(f"{len(files)} audio file(s) and nothing else to scan, and {why}: the scan could only "
                          "come back clean" + ("; `likeness-audit enroll voice` first" if voice else ""))


def scan(store: Store, paths: Iterable[str | os.PathLike], options: ScanOptions | None = None, *,
         shown: dict[str, str] | None = None, keep: bool = True, **kwargs) -> ScanRun:
    """Scan files and folders against everyone in the store; iterate the result for findings, file by file.

    Keyword arguments are ScanOptions fields (threshold, voice_threshold, top_k, use, workers, fps, keyframes,
    min_frames, voice, voice_model, include, exclude, shard, cache, resume, engine, address); the face model and
    threads come from the store (audit.open_store). `shown` maps paths as given to the names evidence shows for
    them (an uploaded file's own name); `run.record()` gives the evidence record once iterated (keep=False streams
    findings without keeping them, for archives too large to hold).
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if options is None:
        kwargs.setdefault("models", store.models_dir)
        kwargs.setdefault("threads", store.threads)
        options = ScanOptions(**kwargs)
    elif kwargs:
        raise TypeError("scan() takes options or keyword arguments, not both")
    return ScanRun(store, paths, options, shown=shown, keep=keep)

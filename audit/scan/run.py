"""A scan: walk the paths, analyse each file, match it, and yield findings file by file with a summary."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field

from .. import config, media
from ..errors import MissingPath, NothingEnrolled, NothingToScan
from ..findings import Finding
from ..models.face import FaceModel
from ..store import Store
from ..store.auditlog import ScanRecord
from .analyze import Analyzer, analyze_files
from .match import Matcher
from .options import ScanOptions


@dataclass
class ScanSummary:
    """Counts for the end of a scan."""

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

    def fails(self, fail_on: str | None) -> bool:
        """Whether a gate set to fail_on ("match": any finding; "unconsented": any finding not allowed) fails."""
        if fail_on == "match":
            return self.findings > 0
        if fail_on == "unconsented":
            return self.unconsented > 0
        return False


class ScanRun:
    """An iterator of findings, file by file; `summary` counts what has been scanned so far."""

    def __init__(self, store: Store, paths: Iterable[str | os.PathLike], options: ScanOptions,
                 model: FaceModel | None = None):
        options.check()
        self.store, self.options = store, options
        self.paths = list(paths)
        check_paths(self.paths)
        self.model = model or store.face_model
        check_enrolled(store, self.model.model_id, options.voice)
        self.summary = ScanSummary()
        if options.threshold is not None and options.threshold < LOW_FACE_THRESHOLD:
            self.summary.warnings.append(f"face threshold {options.threshold} is below {LOW_FACE_THRESHOLD}: expect "
                                         "many false matches (the default is "
                                         f"{config.DEFAULT_FACE_THRESHOLD})")
        self._findings = self._run()

    def metadata(self) -> dict:
        """What a report states about this run: tool version, time, paths, options, counts, gallery sizes."""
        from datetime import datetime, timezone
        from importlib.metadata import version

        return {"version": version("likeness-audit"),
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "paths": [media.display_path(p) for p in self.paths], "use": self.options.use,
                "options": {k: v for k, v in asdict(self.options).items() if k not in ("models", "threads")},
                "files_scanned": self.summary.files, "errors": self.summary.errors,
                "gallery": {f"{m}:{mo[:8]}": self.store.gallery_size(m, mo) for m, mo in self.store.models()}}

    def __iter__(self) -> Iterator[Finding]:
        return self

    def __next__(self) -> Finding:
        return next(self._findings)

    def _run(self) -> Iterator[Finding]:
        summary, started = self.summary, time.monotonic()
        record = ScanRecord([media.display_path(p) for p in self.paths], self.options.use)
        matcher = Matcher(self.store, self.model, self.options)
        summary.warnings += matcher.warnings
        analyzer = Analyzer(self.options, self.model, voice_enrolled=matcher.voices.enrolled)
        unheard = 0
        for result in analyze_files(media.walk(self.paths), self.options, analyzer):
            summary.files += 1
            summary.faces += len(result.faces)
            summary.voices += len(result.voices)
            rows = matcher.findings(result)
            summary.errors += result.error is not None
            summary.findings += sum(r.kind != "error" for r in rows)
            summary.composites += sum(r.kind == "composite" for r in rows)
            summary.unconsented += sum(r.kind != "error" and r.consent != "allowed" for r in rows)
            summary.elapsed = round(time.monotonic() - started, 3)
            record.add(result.sha256, rows)
            unheard += result.kind == "audio" and not analyzer.voice_enrolled
            yield from rows
        if summary.files == 0:  # folders without any media: a clean result would say nothing
            raise NothingToScan("no scannable media (images, videos, audio) under "
                                + ", ".join(media.display_path(p) for p in self.paths))
        summary.undecided = matcher.faces.undecided
        if summary.undecided:
            summary.warnings.append(f"{summary.undecided} face(s) looked like composites of registered people but "
                                    "were too low quality to judge; matches among them say so in extra.composite")
        if unheard:
            summary.warnings.append(f"{unheard} audio file(s) not scanned: no voice is enrolled (or voice=False)")
        summary.elapsed = round(time.monotonic() - started, 3)
        details = asdict(summary)
        details.pop("elapsed")
        self.store.log_event("scan", record.details(details))


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


def scan(store: Store, paths: Iterable[str | os.PathLike], options: ScanOptions | None = None,
         **kwargs) -> ScanRun:
    """Scan files and folders against everyone in the store; iterate the result for findings, file by file.

    Keyword arguments are ScanOptions fields (threshold, voice_threshold, top_k, use, workers, fps, keyframes,
    min_frames, voice); the face model and threads come from the store (audit.open_store).
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if options is None:
        kwargs.setdefault("models", store.models_dir)
        kwargs.setdefault("threads", store.threads)
        options = ScanOptions(**kwargs)
    elif kwargs:
        raise TypeError("scan() takes options or keyword arguments, not both")
    return ScanRun(store, paths, options)

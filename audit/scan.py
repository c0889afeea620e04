"""Scanning: media -> embeddings (in worker processes) -> index search -> findings."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import config, media
from .errors import AuditError, MediaError
from .face import FaceModel
from .findings import Finding
from .store import Store


@dataclass
class ScanOptions:
    """How to scan."""

    threshold: float | None = None  # None: calibrated or default
    top_k: int = 1
    use: str | None = None  # the use (consent scope) the media is for
    workers: int = 0  # 0: one per core when there is enough work
    models: str | None = None  # face model pack folder
    threads: int = 1  # onnxruntime threads per process


@dataclass
class FaceHit:
    """A face seen in a file, ready to search."""

    bbox: list[int]
    score: float
    embedding: np.ndarray
    time: float | None = None


@dataclass
class FileResult:
    """What analysing one file gave."""

    path: str
    sha256: str | None
    kind: str | None
    faces: list[FaceHit] = field(default_factory=list)
    error: str | None = None


def analyze_file(path: Path, model: FaceModel) -> FileResult:
    """Decode one file and embed every face in it; errors become part of the result, never raised."""
    shown = media.display_path(path)
    kind = media.kind_of(path)
    result = FileResult(shown, None, kind)
    try:
        if path.is_dir():
            raise MediaError("is a folder")
        if kind != "image":
            raise MediaError(f"unsupported file type '{path.suffix or '(none)'}'")
        data = media.read_bytes(path)
        result.sha256 = hashlib.sha256(data).hexdigest()
        image = media.decode_image(data)
        for face in model.analyze(image):
            result.faces.append(FaceHit(face.box(), face.score, face.embedding))
    except AuditError as exc:
        result.error = str(exc)
    except Exception as exc:  # a decoder bug must cost one file, not the scan
        result.error = f"unexpected error: {type(exc).__name__}: {exc}"
    return result


_worker_model: FaceModel | None = None


def _init_worker(models: str | None, threads: int) -> None:
    global _worker_model
    _worker_model = FaceModel(models, threads=threads)


def _work(path: Path) -> FileResult:
    return analyze_file(path, _worker_model)


def analyze_files(paths: Iterable[Path], options: ScanOptions, model: FaceModel) -> Iterator[FileResult]:
    """Analyse files in order, in worker processes when there are several files and cores."""
    files = list(paths)
    workers = options.workers or min(os.cpu_count() or 1, 2 if len(files) >= 8 else 1)
    if workers <= 1 or len(files) < 2:
        for path in files:
            yield analyze_file(path, model)
        return
    # spawn: a forked onnxruntime session is not safe to reuse in the child.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(options.models, options.threads)) as pool:
        yield from pool.map(_work, files, chunksize=4)


class Scanner:
    """Searches analysed files against the store and turns hits into findings."""

    def __init__(self, store: Store, model: FaceModel, options: ScanOptions):
        self.store, self.model, self.options = store, model, options
        self.names = store.registry.names()
        self.threshold = options.threshold if options.threshold is not None else config.DEFAULT_FACE_THRESHOLD
        self.fmr = None if options.threshold is not None else config.DEFAULT_FACE_FMR
        self.source = "user" if options.threshold is not None else "default"
        self.index_version = store.index_version("face", model.model_id)

    def findings(self, result: FileResult) -> list[Finding]:
        """Findings for one analysed file (an error row when it could not be read)."""
        if result.error is not None:
            return [Finding(result.path, result.sha256, None, "error", error=result.error)]
        if not result.faces:
            return []
        vecs = np.stack([f.embedding for f in result.faces])
        out = []
        for hit, cands in zip(result.faces, self.store.search("face", self.model.model_id, vecs, self.options.top_k)):
            for c in cands:
                if c.similarity >= self.threshold:
                    out.append(self._finding(result, hit, c.person, c.similarity))
        return out

    def _finding(self, result: FileResult, hit: FaceHit, person: str, sim: float) -> Finding:
        return Finding(
            path=result.path, sha256=result.sha256, modality="face", kind="match", person=person,
            name=self.names.get(person), similarity=round(sim, 4), threshold=self.threshold, fmr=self.fmr,
            threshold_source=self.source, bbox=hit.bbox, start=hit.time, end=hit.time,
            consent=self.store.registry.consent_status(person, self.options.use),
            model=self.model.model_name, index=self.index_version,
        )


@dataclass
class ScanSummary:
    """Counts for the end of a scan."""

    files: int = 0
    errors: int = 0
    faces: int = 0
    findings: int = 0


def scan(store: Store, model: FaceModel, paths: Iterable[str | os.PathLike], options: ScanOptions,
         summary: ScanSummary | None = None) -> Iterator[Finding]:
    """Scan files and folders; yields findings (and error rows) file by file."""
    summary = summary if summary is not None else ScanSummary()
    scanner = Scanner(store, model, options)
    for result in analyze_files(media.walk(paths), options, model):
        summary.files += 1
        summary.faces += len(result.faces)
        rows = scanner.findings(result)
        summary.errors += result.error is not None
        summary.findings += sum(r.kind != "error" for r in rows)
        yield from rows

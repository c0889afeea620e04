"""Scanning: media -> embeddings (in worker processes) -> index search -> findings."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .. import config

from .. import media
from ..store.auditlog import ScanRecord
from ..errors import AuditError, MediaError
from ..models.face import FaceModel
from ..findings import Finding
from ..store.store import Store



@dataclass
class ScanOptions:
    """How to scan."""

    threshold: float | None = None  # face; None: calibrated or default
    voice_threshold: float | None = None
    top_k: int = 1
    use: str | None = None  # the use (consent scope) the media is for
    workers: int = 0  # 0: one per core when there is enough work
    models: str | None = None  # face model pack folder
    threads: int = 1  # onnxruntime threads per process
    fps: float = 1.0  # video frames sampled per second
    keyframes: bool = False  # sample keyframes only (fast)
    min_frames: int = 1  # appearances seen in fewer sampled frames are dropped
    voice: bool = True  # scan audio (only done when voices are enrolled)


@dataclass
class FaceHit:
    """A face seen in a file (or a video frame), ready to search."""

    bbox: list[int]
    score: float
    embedding: np.ndarray
    time: float | None = None


@dataclass
class VoiceHit:
    """An embedded stretch of speech."""

    start: float
    end: float
    embedding: np.ndarray


@dataclass
class FileResult:
    """What analysing one file gave; `error` may come with partial results (damaged video)."""

    path: str
    sha256: str | None
    kind: str | None
    faces: list[FaceHit] = field(default_factory=list)
    voices: list[VoiceHit] = field(default_factory=list)
    error: str | None = None


class Analyzer:
    """Decodes files and embeds faces and voices; one per process, models loaded on first use."""

    def __init__(self, options: ScanOptions, face: FaceModel | None = None, voice_enrolled: bool = False):
        self.options = options
        self._face = face
        self._voice = None
        self.voice_enrolled = voice_enrolled and options.voice
        self.decoder_threads = 0  # automatic: the one process may use every core

    @property
    def face(self) -> FaceModel:
        if self._face is None:
            self._face = FaceModel(self.options.models, threads=self.options.threads)
        return self._face

    @property
    def voice(self):
        if self._voice is None:
            from ..models.voice import VoiceEncoder

            self._voice = VoiceEncoder(threads=self.options.threads)
        return self._voice

    def __call__(self, path: Path) -> FileResult:
        """Analyse one file; errors become part of the result, never raised."""
        kind = media.kind_of(path)
        result = FileResult(media.display_path(path), None, kind)
        try:
            if path.is_dir():
                raise MediaError("is a folder")
            if kind == "image" and path.suffix.lower() == ".webp" and _animated(path):
                kind = result.kind = "video"
            if kind == "image":
                data = media.read_bytes(path)
                result.sha256 = hashlib.sha256(data).hexdigest()
                self._faces(media.decode_image(data), None, 1.0, result)
            elif kind in ("video", "audio"):
                result.sha256 = media.hash_file(path)
                if kind == "video":
                    self._video(path, result)
                if self.voice_enrolled:
                    self._audio(path, result, required=kind == "audio")
            else:
                raise MediaError(f"unsupported file type '{path.suffix or '(none)'}'")
        except AuditError as exc:
            result.error = str(exc)
        except Exception as exc:  # a decoder bug must cost one file, not the scan
            result.error = f"unexpected error: {type(exc).__name__}: {exc}"
        return result

    def _faces(self, image: np.ndarray, time: float | None, scale: float, result: FileResult) -> None:
        for face in self.face.analyze(image):
            box = [int(round(v / scale)) for v in face.bbox]
            result.faces.append(FaceHit(box, face.score, face.embedding, time))

    def _video(self, path: Path, result: FileResult) -> None:
        from ..media import video

        try:
            for frame in video.iter_frames(path, fps=self.options.fps, keyframes=self.options.keyframes,
                                           max_side=config.MAX_VIDEO_SIDE, threads=self.decoder_threads):
                self._faces(frame.image, round(frame.time, 3), frame.scale, result)
        except MediaError as exc:
            # Keep what decoded before the damage; the error row says where it stopped.
            result.error = str(exc)

    def _audio(self, path: Path, result: FileResult, required: bool) -> None:
        from ..media import audio

        if not required and not audio.has_audio(path):
            return
        try:
            wav, error = audio.load_audio_partial(path)
        except MediaError as exc:
            if required:
                raise
            result.error = result.error or f"audio track: {exc}"
            return
        for seg in self.voice.embed_segments(wav):
            result.voices.append(VoiceHit(round(seg.start, 2), round(seg.end, 2), seg.vector))
        if error:
            result.error = result.error or f"audio damaged: {error}"


def _animated(path: Path) -> bool:
    from ..media.video import is_animated

    return is_animated(path)


_worker: Analyzer | None = None


def _init_worker(options: ScanOptions, voice_enrolled: bool) -> None:
    global _worker
    _worker = Analyzer(options, voice_enrolled=voice_enrolled)
    _worker.decoder_threads = 1  # one process per core already


def _work(path: Path) -> FileResult:
    return _worker(path)


def analyze_files(paths: Iterable[Path], options: ScanOptions, analyzer: Analyzer) -> Iterator[FileResult]:
    """Analyse files in order, in worker processes when there are several files and cores."""
    files = list(paths)
    workers = options.workers or min(os.cpu_count() or 1, 2 if len(files) >= 8 else 1)
    if workers <= 1 or len(files) < 2:
        for path in files:
            yield analyzer(path)
        return
    # spawn: a forked onnxruntime session is not safe to reuse in the child.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(options, analyzer.voice_enrolled)) as pool:
        yield from pool.map(_work, files, chunksize=1 if len(files) < 64 else 4)


@dataclass
class Appearance:
    """Consecutive sampled frames in which one person's face (or one composite of the same people) was found."""

    person: str
    start: float
    end: float
    frames: int
    best: float
    best_hit: FaceHit
    total: float = 0.0
    verdict: object = None  # the best frame's composite verdict, for a composite appearance

    def add(self, hit: FaceHit, score: float, verdict: object = None) -> None:
        self.end = hit.time
        self.frames += 1
        self.total += score
        if score > self.best:
            self.best, self.best_hit, self.verdict = score, hit, verdict


class Scanner:
    """Searches analysed files against the store and turns hits into findings."""

    def __init__(self, store: Store, model: FaceModel, options: ScanOptions):
        self.store, self.model, self.options = store, model, options
        self.names = store.registry.names()
        from ..calibrate import in_force

        # The user's threshold, else the stored calibration, else the documented default (audit/calibrate.py).
        self.settings = in_force(store.registry.calibration("face", model.model_id), options.threshold,
                                 store.registry.gallery_size("face", model.model_id),
                                 config.DEFAULT_FACE_THRESHOLD, config.DEFAULT_FACE_FMR)
        self.threshold, self.fmr, self.source = self.settings.threshold, self.settings.fmr, self.settings.source
        self.warnings = list(self.settings.warnings)
        self._centroids: dict[str, np.ndarray] | None = None
        self.index_version = store.index_version("face", model.model_id)
        self.voice = VoiceMatcher(store, options, self._consent, self.names)

    def findings(self, result: FileResult) -> list[Finding]:
        """Findings for one analysed file, plus an error row when it could not be read (fully)."""
        out = []
        if result.faces:
            if result.kind == "video":
                out += self._appearances(result)
            else:
                out += self._image_faces(result)
        if result.voices:
            out += self.voice.findings(result)
        if result.error is not None:
            out.append(Finding(result.path, result.sha256, None, "error", error=result.error))
        return out

    def judge(self, hits: list[FaceHit]) -> list[list[tuple[str, float, object]]]:
        """Per face, [(key, score, composite verdict or None)]: one composite, or the matches among the top-k.

        The key is the person, or for a composite its contributors joined by '+': video appearances merge on it.
        """
        rule = self.settings.composite
        vecs = np.stack([h.embedding for h in hits])
        found = self.store.search("face", self.model.model_id, vecs, max(self.options.top_k, rule.top_k))
        out = []
        for hit, cands in zip(hits, found):
            verdict = self._composite(hit, cands)
            if verdict is not None:
                out.append([("+".join(sorted(c.person for c in verdict.contributors)), verdict.explained, verdict)])
            else:
                out.append([(c.person, c.similarity, None) for c in cands[: self.options.top_k]
                            if c.similarity >= self.threshold])
        return out

    def _image_faces(self, result: FileResult) -> list[Finding]:
        """Matches, or one composite finding for a face that is a blend of registered people (not both)."""
        out = []
        for hit, items in zip(result.faces, self.judge(result.faces)):
            for key, score, verdict in items:
                out.append(self._composite_finding(result, hit, verdict) if verdict is not None
                           else self._finding(result, hit, key, score))
        return out

    def _composite(self, hit: FaceHit, cands):
        """The composite verdict for one face, or None when it is not a composite (audit/composite.py)."""
        from .. import composite

        if len(cands) < 2:
            return None
        if self._centroids is None:
            people, cents = self.store.centroids("face", self.model.model_id)
            self._centroids = dict(zip(people, cents))
        rule = self.settings.composite
        pool = [composite.Candidate(c.person, c.similarity, self._centroids[c.person]) for c in cands[: rule.top_k]]
        verdict = composite.judge(hit.embedding, pool, rule)
        return verdict if verdict.kind == "composite" else None

    def _composite_finding(self, result: FileResult, hit: FaceHit, verdict) -> Finding:
        """similarity/threshold of a composite: the part of the face its contributors explain, and the composite
        threshold; fmr: the false-composite rate stated for real faces."""
        consents = [self._consent(c.person) for c in verdict.contributors]
        order = ("denied", "expired", "unknown", "allowed")
        consent = next((s for s in order if s in consents), None)
        return Finding(
            path=result.path, sha256=result.sha256, modality="face", kind="composite",
            similarity=round(verdict.explained, 4), threshold=self.settings.composite.explained,
            fmr=self.settings.composite_rate, threshold_source=self.settings.composite_source, bbox=hit.bbox,
            start=hit.time, end=hit.time, frames=1 if hit.time is not None else None, consent=consent,
            model=self.model.model_name, index=self.index_version,
            contributors=[{"person": c.person, "name": self.names.get(c.person), "similarity": round(c.similarity, 4),
                           "weight": round(c.weight, 4), "consent": s} for c, s in zip(verdict.contributors, consents)],
            extra={"fit": round(verdict.fit, 4), "focus": round(verdict.focus, 4),
                   "match_threshold": self.threshold, "match_source": self.source},
        )

    def _appearances(self, result: FileResult) -> list[Finding]:
        """Merge per-frame matches into appearances: same person, gaps of at most a couple of samples."""
        max_gap = 10.0 if self.options.keyframes else 2.5 / self.options.fps
        open_: dict[str, Appearance] = {}
        done: list[Appearance] = []
        for hit, items in sorted(zip(result.faces, self.judge(result.faces)), key=lambda x: x[0].time):
            for key, score, verdict in items:
                a = open_.get(key)
                if a is not None and a.end is not None and hit.time - a.end <= max_gap:
                    a.add(hit, score, verdict)
                else:
                    if a is not None:
                        done.append(a)
                    open_[key] = Appearance(key, hit.time, hit.time, 1, score, hit, score, verdict)
        done += open_.values()
        out = []
        for a in sorted(done, key=lambda a: (a.start, a.person)):
            if a.frames < self.options.min_frames:
                continue
            if a.verdict is not None:
                f = self._composite_finding(result, a.best_hit, a.verdict)
            else:
                f = self._finding(result, a.best_hit, a.person, a.best)
            f.start, f.end, f.frames = a.start, a.end, a.frames
            f.extra = {**f.extra, "best_time": a.best_hit.time, "mean_similarity": round(a.total / a.frames, 4),
                       "fps": self.options.fps, "keyframes": self.options.keyframes}
            out.append(f)
        return out

    def _consent(self, person: str) -> str | None:
        return self.store.registry.consent_status(person, self.options.use)

    def _finding(self, result: FileResult, hit: FaceHit, person: str, sim: float) -> Finding:
        return Finding(
            path=result.path, sha256=result.sha256, modality="face", kind="match", person=person,
            name=self.names.get(person), similarity=round(sim, 4), threshold=self.threshold, fmr=self.fmr,
            threshold_source=self.source, bbox=hit.bbox, start=hit.time, end=hit.time,
            frames=1 if hit.time is not None else None, consent=self._consent(person),
            model=self.model.model_name, index=self.index_version,
        )


class VoiceMatcher:
    """Aggregates per-segment voice scores into per-file, per-person findings."""

    # A finding needs half of the file's voiced segments, and two of them unless the file has only one:
    # one noisy segment among several never makes a finding on its own.
    MIN_SEGMENTS = 2
    MIN_FRACTION = 0.5

    def __init__(self, store: Store, options: ScanOptions, consent, names: dict[str, str]):
        from ..calibrate import in_force

        self.store, self.options, self.consent, self.names = store, options, consent, names
        self.model = next((mo for m, mo in store.registry.models() if m == "voice"), None)
        # Same precedence as faces: the user's threshold, else a stored calibration, else the documented default.
        cal = store.registry.calibration("voice", self.model) if self.model else None
        size = store.registry.gallery_size("voice", self.model) if self.model else 0
        settings = in_force(cal, options.voice_threshold, size, config.DEFAULT_VOICE_THRESHOLD,
                            config.DEFAULT_VOICE_FMR, modality="voice")
        self.threshold, self.fmr, self.source = settings.threshold, settings.fmr, settings.source
        self._centroids = None
        self._people: list[str] = []

    @property
    def enrolled(self) -> bool:
        return self.model is not None

    def search(self, vecs: np.ndarray) -> list[list[tuple[str, float]]]:
        """Per segment, the top people by similarity to their centroid (the threshold was measured that way)."""
        if self._centroids is None:
            from ..store.index import VectorIndex

            people, cents = self.store.centroids("voice", self.model)
            self._centroids = VectorIndex("voice", self.model, cents.shape[1])
            self._centroids.add(np.arange(len(people)), cents)
            self._people = people
        sims, ids = self._centroids.search(vecs, max(self.options.top_k, 3))
        return [[(self._people[i], float(s)) for s, i in zip(srow, irow) if i >= 0] for srow, irow in zip(sims, ids)]

    def findings(self, result: FileResult) -> list[Finding]:
        if self.model is None:
            return []
        vecs = np.stack([v.embedding for v in result.voices])
        per_person: dict[str, list[tuple[VoiceHit, float]]] = {}
        for seg, cands in zip(result.voices, self.search(vecs)):
            for person, sim in cands:
                if sim >= self.threshold:
                    per_person.setdefault(person, []).append((seg, sim))
        n = len(result.voices)
        out = []
        for person, hits in per_person.items():
            if len(hits) < min(self.MIN_SEGMENTS, n) or len(hits) / n < self.MIN_FRACTION:
                continue
            sims = [s for _, s in hits]
            out.append(Finding(
                path=result.path, sha256=result.sha256, modality="voice", kind="match", person=person,
                name=self.names.get(person), similarity=round(float(np.mean(sims)), 4), threshold=self.threshold,
                fmr=self.fmr, threshold_source=self.source, start=min(h.start for h, _ in hits),
                end=max(h.end for h, _ in hits), frames=len(hits), consent=self.consent(person),
                model=f"ge2e:{self.model[:8]}", index=self.store.index_version("voice", self.model),
                extra={"segments": n, "best_similarity": round(max(sims), 4)},
            ))
        return sorted(out, key=lambda f: -f.similarity)


@dataclass
class ScanSummary:
    """Counts for the end of a scan."""

    files: int = 0
    errors: int = 0
    faces: int = 0
    voices: int = 0
    findings: int = 0
    composites: int = 0
    warnings: list[str] = field(default_factory=list)  # e.g. the gallery outgrew its calibration


def scan(store: Store, model: FaceModel, paths: Iterable[str | os.PathLike], options: ScanOptions,
         summary: ScanSummary | None = None) -> Iterator[Finding]:
    """Scan files and folders; yields findings (and error rows) file by file."""
    summary = summary if summary is not None else ScanSummary()
    paths = list(paths)
    record = ScanRecord([media.display_path(p) for p in paths], options.use)
    scanner = Scanner(store, model, options)
    summary.warnings += scanner.warnings
    analyzer = Analyzer(options, model, voice_enrolled=scanner.voice.enrolled)
    unheard = 0
    for result in analyze_files(media.walk(paths), options, analyzer):
        summary.files += 1
        summary.faces += len(result.faces)
        summary.voices += len(result.voices)
        rows = scanner.findings(result)
        summary.errors += result.error is not None
        summary.findings += sum(r.kind != "error" for r in rows)
        summary.composites += sum(r.kind == "composite" for r in rows)
        record.add(result.sha256, rows)
        unheard += result.kind == "audio" and not analyzer.voice_enrolled
        yield from rows
    if unheard:
        summary.warnings.append(f"{unheard} audio file(s) not scanned: no voice is enrolled (or --no-voice)")
    store.log_event("scan", record.details(asdict(summary)))

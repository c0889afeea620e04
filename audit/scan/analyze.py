"""Decode files and embed the faces and voices in them, in worker processes when there is enough work."""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import config, media
from ..errors import AuditError, MediaError
from ..media import pictures
from ..media.provenance import read_provenance
from ..media.source import open_source
from ..models import quality as face_quality
from ..models.face import FaceModel
from .options import ScanOptions


@dataclass
class DetectedFace:
    """A face seen in a file (or a video frame), embedded and ready to search."""

    bbox: list[int]
    score: float
    embedding: np.ndarray
    time: float | None = None
    quality: face_quality.Quality | None = None  # audit/models/quality.py
    crop: bytes | None = None  # JPEG cut from the decoded image or frame: the evidence picture of this face
    scene: bytes | None = None  # the whole image or frame, reduced, with this face boxed (JPEG)


@dataclass
class VoiceSegment:
    """An embedded stretch of speech."""

    start: float
    end: float
    embedding: np.ndarray
    narrow: bool = False  # telephone-band speech: scored against band-limited templates (models/channel.py)


@dataclass
class AnalyzedFile:
    """What analysing one file gave; `error` may come with partial results (damaged video)."""

    path: str
    sha256: str | None
    kind: str | None
    faces: list[DetectedFace] = field(default_factory=list)
    voices: list[VoiceSegment] = field(default_factory=list)
    error: str | None = None
    envelope: np.ndarray | None = None  # the audio's (min, max) envelope, to draw voice findings' waveforms
    duration: float | None = None  # seconds of audio the envelope covers
    provenance: dict | None = None  # the content credentials the file declares (media/provenance.py), if any
    partial: bool = False  # with an error: part of the media was decoded before it (the file was read in part)


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
            from ..models.voice import voice_encoder

            self._voice = voice_encoder(self.options.voice_model, threads=self.options.threads)
        return self._voice

    def __call__(self, path: Path, sha256: str | None = None) -> AnalyzedFile:
        """Analyse one file; errors become part of the result, never raised."""
        result = AnalyzedFile(media.display_path(path), sha256, media.kind_by_content(path))
        try:
            source = open_source(path, sha256)
            result.kind, result.sha256 = source.kind, source.sha256
            result.provenance = _provenance(path, self.options.c2pa_roots)  # before decoding: a file that fails to decode still says it
            if source.kind == "image":
                image, scale = media.decode_image_scaled(source.data)  # large JPEGs decode reduced
                self._faces(image, None, scale, result)
            else:
                if source.kind == "video":
                    self._video(path, result)
                if self.voice_enrolled:
                    self._audio(path, result, required=source.kind == "audio")
        except AuditError as exc:
            result.error = str(exc)
        except Exception as exc:  # a decoder bug must cost one file, not the scan
            result.error = f"unexpected error: {type(exc).__name__}: {exc}"
        return result

    def _faces(self, image: np.ndarray, time: float | None, scale: float, result: AnalyzedFile) -> None:
        scene = None
        for face in self.face.analyze(image):
            box = [int(round(v / scale)) for v in face.bbox]
            if scene is None:
                scene = _scene(image)
            result.faces.append(DetectedFace(box, face.score, face.embedding, time, face_quality.measure(face),
                                             _crop(image, face.bbox), _boxed(scene, face.bbox)))

    def _video(self, path: Path, result: AnalyzedFile) -> None:
        from ..media import video

        try:
            for frame in video.iter_frames(path, fps=self.options.fps, keyframes=self.options.keyframes,
                                           max_side=config.MAX_VIDEO_SIDE, threads=self.decoder_threads):
                result.partial = True
                self._faces(frame.image, round(frame.time, 3), frame.scale, result)
        except MediaError as exc:
            # Keep what decoded before the damage; the error row says where it stopped.
            result.error = str(exc)

    def _audio(self, path: Path, result: AnalyzedFile, required: bool) -> None:
        from ..media import audio

        if not required and not audio.has_audio(path):
            return
        reader = audio.AudioReader(path, max_seconds=config.MAX_AUDIO_SECONDS)  # chunks: bounded memory
        wave = pictures.Envelope()  # for the waveform of voice findings, without keeping the audio
        try:
            for chunk in reader:
                result.partial = True
                wave.add(chunk.samples, round(chunk.start * config.SAMPLE_RATE))
                for seg in self.voice.embed_segments(chunk.samples):
                    start, end = chunk.start + seg.start, chunk.start + seg.end
                    result.voices.append(VoiceSegment(round(start, 2), round(end, 2), seg.vector, seg.narrow))
        except MediaError as exc:
            if required:
                raise
            result.error = result.error or f"audio track: {exc}"
            return
        if result.voices:
            result.envelope, result.duration = wave.envelope(), reader.samples / config.SAMPLE_RATE
        problems = [result.error, reader.error and f"audio damaged: {reader.error}", reader.unscanned]
        result.error = "; ".join(p for p in problems if p) or None  # each thing not scanned is named


def _crop(image: np.ndarray, bbox) -> bytes | None:
    """The face's evidence crop from the image as decoded (a picture that cannot be cut costs no finding)."""
    try:
        return pictures.crop_jpeg(image, bbox)
    except ValueError:
        return None


def _scene(image: np.ndarray) -> pictures.Scene | bool:
    """The image reduced once for every face's whole-picture evidence; False when it cannot be."""
    try:
        return pictures.Scene(image)
    except ValueError:
        return False


def _boxed(scene: pictures.Scene | bool, bbox) -> bytes | None:
    """The whole picture with this face boxed (a picture that cannot be made costs no finding)."""
    try:
        return scene.jpeg(bbox) if scene else None
    except ValueError:
        return None


_worker: Analyzer | None = None


def _init_worker(options: ScanOptions, voice_enrolled: bool) -> None:
    global _worker
    # Ctrl-C reaches the whole process group: the parent stops the workers, they must not die mid-file on their own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker = Analyzer(options, voice_enrolled=voice_enrolled)
    _worker.decoder_threads = 1  # one process per core already


def _work(task: tuple[Path, str | None]) -> AnalyzedFile:
    return _worker(*task)


def worker_count(options: ScanOptions, files: int) -> int:
    """Worker processes for this many files: the option, else one per core when there is enough work."""
    return options.workers or min(os.cpu_count() or 1, 2 if files >= 8 else 1)


def _provenance(path: Path, trust: str | None = None) -> dict | None:
    """The file's content credentials as plain data (never raises; bounded work); trust: PEM roots to trust."""
    found = read_provenance(path, trust=trust)
    return found.to_dict() if found is not None else None


def analyze_files(tasks: Iterable[tuple[Path, str | None]], options: ScanOptions,
                  analyzer: Analyzer) -> Iterator[AnalyzedFile]:
    """Analyse (path, sha256 or None) in order, in worker processes when there are several files and cores.

    Closing the iterator early (Ctrl-C, an error in the caller) terminates the workers at once.
    """
    tasks = list(tasks)
    workers = worker_count(options, len(tasks))
    if workers <= 1 or len(tasks) < 2:
        for task in tasks:
            yield analyzer(*task)
        return
    # spawn: a forked onnxruntime session is not safe to reuse in the child.
    pool = multiprocessing.get_context("spawn").Pool(workers, _init_worker, (options, analyzer.voice_enrolled))
    try:
        yield from pool.imap(_work, tasks, chunksize=1 if len(tasks) < 64 else 4)
        pool.close()
    finally:
        pool.terminate()
        pool.join()

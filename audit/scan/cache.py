"""Analysed files <-> bytes for the store's scan cache (JSON + raw float32, never pickle), and the cache keys."""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import asdict

import numpy as np

from .. import config
from ..models import quality as face_quality
from .analyze import AnalyzedFile, DetectedFace, VoiceSegment
from .options import ScanOptions

FORMAT = 6  # bump when what an analysis holds changes: older entries are then simply missed


def cache_key(sha256: str, face_model: str, detector: str, options: ScanOptions, voice: bool) -> str:
    """What an analysis depends on: the file's content, the models, and the sampling settings."""
    parts = {"format": FORMAT, "sha256": sha256, "face": face_model, "detector": detector, "fps": options.fps,
             "keyframes": options.keyframes, "voice": voice, "voice_model": options.voice_model,
             "max_side": config.MAX_VIDEO_SIDE}
    if options.c2pa_roots:  # provenance is cached with the analysis: "trusted" holds only for the same roots
        parts["c2pa_roots"] = hashlib.sha256(options.c2pa_roots.encode()).hexdigest()
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def run_key(paths: list[str], options: ScanOptions, face_model: str, extra: dict) -> str:
    """The identity of a scan for --resume: the same paths (as given) and the same options."""
    how = ("workers", "resume", "cache", "archive", "engine", "address")  # where and how fast, not what is scanned
    parts = {"paths": paths, "options": {k: v for k, v in vars(options).items() if k not in how},
             "face": face_model, **extra}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def dump(result: AnalyzedFile) -> bytes:
    """An analysed file as bytes: a JSON header, the face and voice embeddings as float32, the face crops and
    whole pictures (JPEG), then the audio envelope as float32: a cached file gives the same evidence as a decoded one."""
    faces = np.stack([f.embedding for f in result.faces]).astype("<f4") if result.faces else np.zeros((0, 0), "<f4")
    voices = np.stack([v.embedding for v in result.voices]).astype("<f4") if result.voices else np.zeros((0, 0), "<f4")
    env = np.zeros(0, "<f4") if result.envelope is None else np.asarray(result.envelope, "<f4")
    head = json.dumps({
        "kind": result.kind, "error": result.error,
        "faces": [[[int(v) for v in f.bbox], float(f.score), _num(f.time),
                   None if f.quality is None else {k: float(v) for k, v in asdict(f.quality).items()},
                   len(f.crop or b""), len(f.scene or b"")]
                  for f in result.faces], "face_dim": int(faces.shape[1]),
        "voices": [[float(v.start), float(v.end), bool(v.narrow)] for v in result.voices], "voice_dim": int(voices.shape[1]),
        "envelope": int(env.size), "duration": _num(result.duration), "provenance": result.provenance,
        "partial": result.partial,
    }).encode()
    crops = b"".join((f.crop or b"") + (f.scene or b"") for f in result.faces)
    return struct.pack("<I", len(head)) + head + faces.tobytes() + voices.tobytes() + crops + env.tobytes()


def _num(value) -> float | None:
    return None if value is None else float(value)


def load(blob: bytes, path: str, sha256: str) -> AnalyzedFile:
    """The analysed file back from dump(), for a path with this content."""
    (n,) = struct.unpack_from("<I", blob)
    head = json.loads(blob[4:4 + n])
    at = 4 + n
    result = AnalyzedFile(path, sha256, head["kind"], error=head["error"], duration=head["duration"],
                          provenance=head.get("provenance"), partial=bool(head.get("partial")))
    dim = head["face_dim"]
    for bbox, score, time, quality, *_ in head["faces"]:
        emb = np.frombuffer(blob, "<f4", dim, at).astype(np.float32)
        at += 4 * dim
        result.faces.append(DetectedFace(list(bbox), score, emb, time,
                                         None if quality is None else face_quality.Quality(**quality)))
    dim = head["voice_dim"]
    for start, end, narrow in head["voices"]:
        emb = np.frombuffer(blob, "<f4", dim, at).astype(np.float32)
        at += 4 * dim
        result.voices.append(VoiceSegment(start, end, emb, narrow))
    for face, (*_, size, scene) in zip(result.faces, head["faces"]):
        face.crop = blob[at:at + size] or None
        face.scene = blob[at + size:at + size + scene] or None
        at += size + scene
    if head["envelope"]:
        result.envelope = np.frombuffer(blob, "<f4", head["envelope"], at).astype(np.float32)
        at += 4 * head["envelope"]
    if at != len(blob):
        raise ValueError("cached analysis has the wrong length")
    return result

"""Enrolment: media of one person -> checked embeddings -> registry and index."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import media
from .errors import EnrollError, MediaError
from .face import Face, FaceModel
from .registry import Sample
from .store import Store

MIN_FACE_PX = 40  # below this ArcFace embeddings are unreliable
MIN_SHARPNESS = 15.0  # Laplacian variance of the aligned crop; lower is a blur


@dataclass
class Skipped:
    """A file that gave nothing to enroll, and why."""

    path: str
    reason: str


@dataclass
class EnrollResult:
    """What an enrolment added and what it skipped."""

    person: str
    added: int = 0
    already: int = 0
    skipped: list[Skipped] = field(default_factory=list)


def reference_jpeg(crop: np.ndarray) -> bytes:
    """A small JPEG of an aligned 112 px crop, for reports."""
    import cv2

    ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return buf.tobytes()


def choose_face(faces: list[Face], pick: str | None) -> Face:
    """The one face to enroll from a photo, or EnrollError saying why none."""
    if not faces:
        raise EnrollError("no face found")
    if len(faces) > 1 and pick != "largest":
        raise EnrollError(f"{len(faces)} faces found; use --pick largest to take the largest")
    face = max(faces, key=lambda f: f.size)
    if face.size < MIN_FACE_PX:
        raise EnrollError(f"face too small ({face.size:.0f} px; need {MIN_FACE_PX})")
    if face.sharpness < MIN_SHARPNESS:
        raise EnrollError(f"face too blurred (sharpness {face.sharpness:.1f}; need {MIN_SHARPNESS})")
    return face


def enroll_faces(
    store: Store,
    model: FaceModel,
    person: str,
    paths: Iterable[str | Path],
    name: str | None = None,
    pick: str | None = None,
    keep_reference: bool = True,
) -> EnrollResult:
    """Enroll the face in each photo; raises EnrollError when nothing usable remains."""
    result = EnrollResult(person)
    samples: list[Sample] = []
    best: Face | None = None
    files = list(media.walk(paths, kinds=frozenset({"image"})))
    if not files:
        raise EnrollError("no image files given")
    seen: set[str] = set()
    for path in files:
        shown = media.display_path(path)
        try:
            data = media.read_bytes(path)
            sha = hashlib.sha256(data).hexdigest()
            if sha in seen or store.registry.has_source(person, "face", model.model_id, sha):
                result.already += 1
                continue
            seen.add(sha)
            face = choose_face(model.analyze(media.decode_image(data)), pick)
        except (MediaError, EnrollError) as exc:
            result.skipped.append(Skipped(shown, str(exc)))
            continue
        samples.append(
            Sample("face", model.model_id, sha, face.embedding, face.box(), face.score, face.size)
        )
        if best is None or face.size * face.score > best.size * best.score:
            best = face
    if not samples:
        if result.already:
            return result
        reasons = "; ".join(f"{s.path}: {s.reason}" for s in result.skipped)
        raise EnrollError(f"nothing usable to enroll for '{person}' ({reasons})")
    reference = ("face", reference_jpeg(best.crop)) if keep_reference and best is not None else None
    store.add_samples(person, name, samples, reference)
    result.added = len(samples)
    return result


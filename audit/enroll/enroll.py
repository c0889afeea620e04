"""Enrolment: media of one person -> checked embeddings -> registry and index."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import config, media
from ..config import MIN_FACE_PX, SAMPLE_RATE
from ..errors import AuditError, EnrollError, MediaError
from ..media.source import Source, open_source
from ..models.face import Face, FaceModel
from ..store import Store, naming
from ..store.registry import Sample
from ..store.index.search import Candidate
from .narrowband import narrow_sample

MIN_SHARPNESS = 15.0  # Laplacian variance of the aligned crop; lower is a blur
VIDEO_FRAMES = 5  # distinct frames kept from one enrolment video
MAX_VIDEO_SAMPLES = 600  # sampled frames read from one enrolment video at most
NEAR_COPY = 0.95  # embeddings this similar are the same shot twice
# Voiced seconds (webrtcvad, mode 3) a person needs: 10 s of clean read speech gave 6.6-8.0 s voiced (LibriSpeech
# recordings of 10-11 s), and enrolling from 10 s of audio flagged 81 % of clones against 87 % from 30 s with the
# fused encoder (benchmarks/voice_clones.py), so anyone with 10 s of clean speech enrols.
MIN_VOICED_TOTAL_S = 6.0
MIN_VOICED_FILE_S = 1.0
# Raw cosine between whole recordings (embed_utterance) at which another enrolled speaker counts as a match when the
# person has no other recording yet: chosen with benchmarks/voice_enrol_agreement.py (figures in
# benchmarks/README.md). Stored voice thresholds are AS-normalised segment scores against centroids, another scale.
VOICE_AGREEMENT = {"ge2e": 0.76, "campplus": 0.55}
# Floors below which a new sample is as likely a stranger's as the person's (check_agreement): the highest impostor
# percentile that no genuine pair of the shared data falls below, rounded down, measured with
# benchmarks/enrol_floor.py (2026-12-07). Faces: p99 of 1,690 pairs of deepface photos of different people (ArcFace
# cosine 0.195; the lowest of 140 genuine pairs 0.362): a stranger's photo clears it 1 time in 100, a hard genuine
# one (0.27-0.33 for aligned 112 px crops elsewhere) enrols. Voices, whole-recording cosine over 60,975 pairs of
# LibriSpeech recordings of different speakers: CAM++ p99 0.539 (genuine minimum 0.568); GE2E p95 0.695 (its p99,
# 0.753, is above 12 of 450 genuine pairs; genuine minimum 0.702): a stranger clears it 1 time in 20.
FACE_FLOOR = 0.19
VOICE_FLOOR = {"ge2e": 0.69, "campplus": 0.53}


@dataclass
class Skipped:
    """A file that gave nothing to enroll, and why."""

    path: str
    reason: str
    error: AuditError | None = None  # the refusal as fields (code, scores, hint) for each door to word


@dataclass
class Accepted:
    """A file that gave samples (or had given them before), and what was found: face size, voiced seconds."""

    path: str
    detail: str


@dataclass
class EnrollResult:
    """What an enrolment added and what it skipped."""

    person: str
    added: int = 0
    already: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    accepted: list[Accepted] = field(default_factory=list)


def skipped(shown: str, exc: AuditError) -> Skipped:
    """A refused file, its error naming the file as the caller gave it."""
    exc.path = shown
    return Skipped(shown, exc.message, exc)


def reference_jpeg(crop: np.ndarray) -> bytes:
    """A small JPEG of an aligned 112 px crop, for reports."""
    import cv2

    ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return buf.tobytes()


def choose_face(faces: list[Face], pick: str | None) -> Face:
    """The one face to enroll from a photo, or EnrollError saying why none."""
    if not faces:
        raise EnrollError("no face found", code="no-face")
    if len(faces) > 1 and pick != "largest":
        raise EnrollError(f"{len(faces)} faces found", code="several-faces", scores={"faces": len(faces)},
                          hint="pick-largest")
    face = max(faces, key=lambda f: f.size)
    if face.size < MIN_FACE_PX:
        raise EnrollError(f"face too small ({face.size:.0f} px; need {MIN_FACE_PX})", code="face-too-small",
                          scores={"size_px": float(face.size), "need_px": float(MIN_FACE_PX)})
    if face.sharpness < MIN_SHARPNESS:
        raise EnrollError(f"face too blurred (sharpness {face.sharpness:.1f}; need {MIN_SHARPNESS})",
                          code="face-too-blurred", scores={"sharpness": float(face.sharpness),
                                                           "need": MIN_SHARPNESS})
    return face


def enroll_faces(
    store: Store,
    person: str,
    paths: Iterable[str | Path] | str | Path,
    name: str | None = None,
    pick: str | None = None,
    reference: bool = True,
    force: bool = False,
    model: FaceModel | None = None,
) -> EnrollResult:
    """Enroll the face in each photo (and the best frames of each video) under paths; EnrollError if none.

    :param pick: which face of a photo with several (largest, or left-to-right index)
    :param reference: keep a reference crop for evidence pages
    :param force: keep samples that do not agree with the person's others (check_agreement)
    :param model: the face model (default: the store's)
    """
    naming.check_id(person)
    naming.check_name(name)
    result = EnrollResult(person)
    model = model if model is not None else store.face_model
    samples, reference = face_samples(store, model, person, _paths(paths), pick, reference, result, force)
    if samples:
        store.add_samples(person, name, samples, reference)
    return result


def face_samples(store: Store, model: FaceModel, person: str, paths: Iterable[str | Path], pick: str | None,
                 keep_reference: bool, result: EnrollResult, force: bool = False,
                 pending: list[tuple[str, list[Sample]]] = ()) -> tuple[list[Sample], tuple[str, bytes] | None]:
    """The checked face samples of one person's new files and a reference crop, counted in result (not stored).

    pending: samples of other people not yet written (bulk enrolment), which check_agreement also compares with.

    EnrollError when nothing usable remains and nothing was enrolled before.
    """
    picked: list[tuple[Sample, Face, str]] = []
    for source in _new_sources(store, person, "face", model.model_id, paths, frozenset({"image", "video"}), result):
        try:
            if source.kind == "video":
                faces = video_faces(model, source.path, pick)
            else:
                faces = [(None, choose_face(model.analyze(media.decode_image(source.data)), pick))]
        except (MediaError, EnrollError) as exc:
            result.skipped.append(skipped(source.shown, exc))
            continue
        sizes = "/".join(f"{f.size:.0f}" for _, f in faces)
        result.accepted.append(Accepted(source.shown, f"face found, {sizes} px" + (
            f" in {len(faces)} frames" if source.kind == "video" else "")))
        for t, face in faces:
            sample = Sample("face", model.model_id, source.sha256, face.embedding, face.box(), face.score, face.size,
                            t, t)
            picked.append((sample, face, source.shown))
    if not force:
        refusals = check_agreement(store, person, [s for s, _, _ in picked], pending=pending)
        result.skipped += [skipped(p[2], why) for p, why in zip(picked, refusals) if why]
        picked = [p for p, why in zip(picked, refusals) if not why]
        kept = {p[2] for p in picked}
        result.accepted = [a for a in result.accepted if a.path in kept or a.detail == "already enrolled"]
    if not picked:
        if result.already:
            return [], None
        raise EnrollError(f"nothing usable to enroll for '{person}'", code="nothing-usable", person=person,
                          problems=[s.error for s in result.skipped if s.error])
    best = max(range(len(picked)), key=lambda i: quality(picked[i][1]))
    result.added = len(picked)
    # The crop names the sample it was cut from, so a report can say whether it shows the sample that matched.
    return [s for s, _, _ in picked], (("face", reference_jpeg(picked[best][1].crop), best) if keep_reference else None)


def check_agreement(store: Store, person: str, samples: list[Sample], threshold: float | None = None,
                    pending: list[tuple[str, list[Sample]]] = (), floor: float | None = None,
                    ) -> list[EnrollError | None]:
    """Per new sample, why it is refused (None: it agrees), so one wrong photo cannot poison a person's gallery.

    pending: other people's samples accepted but not yet written (a bulk enrolment's batch), checked as if enrolled.

    A sample is refused only when it is more likely someone else's: when it was enrolled for someone else already,
    when another enrolled person (or pending one) scores higher against it than the person's own other samples do
    (enrolled, or new in this batch), or, for a person's first sample, when someone else reaches the threshold;
    or when it is as likely a stranger's: its best score against the person's own samples is below the floor (a
    high percentile of impostor scores, FACE_FLOOR or the encoder's VOICE_FLOOR, that no genuine pair fell below).
    A genuine hard sample (a small, blurred or short one) below the match threshold is kept.
    threshold: the face match threshold in force unless given (voices pass their encoder's VOICE_AGREEMENT).
    """
    if not samples:
        return []
    modality, model = samples[0].modality, samples[0].model
    if threshold is None:
        cal = store.calibration(modality, model)
        threshold = cal.threshold if cal is not None else config.DEFAULT_FACE_THRESHOLD
    if floor is None:
        floor = FACE_FLOOR if modality == "face" else min(VOICE_FLOOR.values())  # enroll_voices passes its own
    new = np.stack([np.asarray(s.vector, np.float32) for s in samples])
    own = store.person_vectors(person, modality, model)
    others = store.search(modality, model, new, top_k=3) if store.gallery_size(modality, model) else [[]] * len(new)
    out: list[EnrollError | None] = []
    for i, s in enumerate(samples):
        taken = [p for p in store.source_people(s.source_sha256, modality) if p != person]
        refs = np.concatenate([own.reshape(-1, new.shape[1]), np.delete(new, i, axis=0)])
        mine = float(np.max(refs @ new[i])) if len(refs) else None
        rival = next((c for c in others[i] if c.person != person), None)
        for pid, theirs in pending:
            if pid == person:
                continue
            taken += [pid] if any(t.source_sha256 == s.source_sha256 for t in theirs) else []
            score = float(max(np.asarray(t.vector, np.float32) @ new[i] for t in theirs))
            if rival is None or score > rival.similarity:
                rival = Candidate(pid, score, -1)
        scores = {"similarity": mine, "threshold": threshold} if mine is not None else {"threshold": threshold}
        # With own samples to compare, any rival that beats them wins; with none, only a rival at match strength.
        beaten = rival is not None and (rival.similarity > mine if mine is not None else rival.similarity >= threshold)
        if taken:
            out.append(EnrollError(f"this file is already enrolled for {', '.join(taken)}", code="already-enrolled",
                                   person=person, hint="force"))
        elif beaten:
            out.append(EnrollError(
                f"{'sounds' if modality == 'voice' else 'looks'} more like {rival.person} (similarity "
                f"{rival.similarity:.3f}) than {person} (" + (f"{mine:.3f}" if mine is not None else
                                                               "no other samples") + ")",
                code="more-like-someone-else", person=person, hint="force",
                scores={**scores, "rival": rival.similarity}))
        elif mine is not None and mine < floor:
            out.append(EnrollError(
                f"does not {'sound' if modality == 'voice' else 'look'} like {person}'s other samples: best "
                f"similarity {mine:.3f} < floor {floor:.3f} (what almost any other person scores)"
                + (f" ({rival.person}: {rival.similarity:.3f})" if rival else ""),
                code="unlike-own-samples", person=person, hint="force",
                scores={"similarity": mine, "threshold": floor, "floor": floor,
                        **({"rival": rival.similarity} if rival else {})}))
        else:
            out.append(None)
    return out


def _new_sources(store: Store, person: str, modality: str, model: str, paths: Iterable[str | Path],
                 kinds: frozenset[str], result: EnrollResult) -> Iterator[Source]:
    """Files of the given kinds not yet enrolled for this person and model.

    Unreadable files and files of other kinds go to result.skipped, files seen before to result.already.
    """
    files = list(media.walk(paths, kinds=kinds))
    if not files:
        raise EnrollError(f"no {' or '.join(sorted(kinds))} files given", code="no-files", person=person)
    seen: set[str] = set()
    for path in files:
        try:
            source = open_source(path)
            if source.kind not in kinds:
                raise MediaError(f"a {source.kind} file; {modality} enrolment takes {' or '.join(sorted(kinds))}",
                                 code="wrong-kind")
        except MediaError as exc:
            result.skipped.append(skipped(media.display_path(path), exc))
            continue
        if source.sha256 in seen or store.has_source(person, modality, model, source.sha256):
            result.already += 1
            result.accepted.append(Accepted(source.shown, "already enrolled"))
            continue
        seen.add(source.sha256)
        yield source


def frontalness(face: Face) -> float:
    """1 for a frontal face, towards 0 as the head turns (nose off the eyes' midline)."""
    (lx, _), (rx, _), (nx, _) = face.kps[0], face.kps[1], face.kps[2]
    eye = max(abs(rx - lx), 1e-6)
    return float(max(0.0, 1.0 - abs(nx - (lx + rx) / 2) / eye * 2))


def quality(face: Face) -> float:
    """Size, sharpness and pose in one number for choosing enrolment frames."""
    return min(face.size, 200) / 200 * min(face.sharpness, 200) / 200 * frontalness(face) * face.score


def video_faces(model: FaceModel, path: Path, pick: str | None, fps: float = 2.0, keep: int = VIDEO_FRAMES) -> list[tuple[float, Face]]:
    """The best distinct frames of the one person in a video; EnrollError if none or several compete."""
    from ..media import video

    seen: list[tuple[float, Face]] = []
    for frame in video.iter_frames(path, fps=fps, max_side=1920, threads=1):
        for face in model.analyze(frame.image):
            if face.size * frame.scale >= MIN_FACE_PX and face.sharpness >= MIN_SHARPNESS:
                face.bbox = face.bbox / frame.scale
                seen.append((frame.time, face))
        if frame.index >= MAX_VIDEO_SAMPLES:
            break
    if not seen:
        raise EnrollError("no usable face in the video", code="no-face")
    groups = _group_by_identity([f for _, f in seen])
    major = [g for g in groups if len(g) >= max(2, 0.2 * len(seen))] or [max(groups, key=len)]
    if len(major) > 1 and pick != "largest":
        raise EnrollError(f"{len(major)} people appear in the video; enroll from a video of one person",
                          code="several-people", scores={"people": len(major)}, hint="pick-largest")
    chosen = max(major, key=lambda g: (sum(seen[i][1].size for i in g) / len(g), len(g)))
    ranked = sorted((seen[i] for i in chosen), key=lambda tf: -quality(tf[1]))
    out: list[tuple[float, Face]] = []
    for t, face in ranked:
        # Distinct frames: not a near copy of one already taken, and at least a second apart.
        if all(abs(t - t2) >= 1.0 and float(face.embedding @ f2.embedding) < NEAR_COPY for t2, f2 in out):
            out.append((t, face))
        if len(out) == keep:
            break
    return out


def _group_by_identity(faces: list[Face], same: float = 0.5) -> list[list[int]]:
    """Greedy clustering of face embeddings against each group's running mean."""
    groups: list[list[int]] = []
    means: list[np.ndarray] = []
    for i, f in enumerate(faces):
        sims = [float(f.embedding @ (m / np.linalg.norm(m))) for m in means]
        if sims and max(sims) >= same:
            k = int(np.argmax(sims))
            groups[k].append(i)
            means[k] = means[k] + f.embedding
        else:
            groups.append([i])
            means.append(f.embedding.copy())
    return groups


def enroll_voices(store: Store, person: str, paths: Iterable[str | Path] | str | Path, name: str | None = None,
                  force: bool = False, model="fused") -> EnrollResult:
    """Enroll one vector per recording with voice encoder `model` (fused: both ge2e and campplus; ge2e, campplus,
    or an encoder); EnrollError below MIN_VOICED_TOTAL_S of voiced speech (what 10 s of clean read speech gives).

    Unless force, recordings more like another enrolled speaker, or below the encoder's VOICE_FLOOR against the
    person's others (check_agreement, on raw cosines), are refused, with the scores.
    """
    from ..media import audio
    from ..models.voice import voice_encoder

    if model == "fused":
        return _enroll_fused(store, person, paths, name, force)
    paths = _paths(paths)
    encoder = store.voice_encoder if model == "ge2e" else model  # the store keeps the default encoder loaded
    if isinstance(encoder, str):
        encoder = voice_encoder(encoder, threads=store.threads)

    naming.check_id(person)
    naming.check_name(name)
    result = EnrollResult(person)
    picked: list[tuple[Sample, float, str, Sample | None]] = []
    for source in _new_sources(store, person, "voice", encoder.model_id, paths, frozenset({"audio", "video"}),
                               result):
        try:
            wav = audio.load_audio(source.path)
            voiced = encoder.voiced_seconds(wav)
            if voiced < MIN_VOICED_FILE_S:
                raise EnrollError(f"too little speech ({voiced:.1f} s voiced)", code="too-little-speech",
                                  scores={"voiced_s": voiced, "need_s": MIN_VOICED_FILE_S})
        except (MediaError, EnrollError) as exc:
            result.skipped.append(skipped(source.shown, exc))
            continue
        sample = Sample("voice", encoder.model_id, source.sha256, encoder.embed_utterance(wav), start=0.0,
                        end=round(len(wav) / SAMPLE_RATE, 2))
        picked.append((sample, voiced, source.shown, narrow_sample(encoder, sample, wav)))
    if not force:
        refusals = check_agreement(store, person, [p[0] for p in picked], VOICE_AGREEMENT[encoder.name],
                                   floor=VOICE_FLOOR.get(encoder.name, -1.0))
        result.skipped += [skipped(p[2], why) for p, why in zip(picked, refusals) if why]
        picked = [p for p, why in zip(picked, refusals) if not why]
    result.accepted += [Accepted(shown, f"{voiced:.1f} s of speech") for _, voiced, shown, _ in picked]
    have = sum(p[1] for p in picked) + store.enrolled_seconds(person, "voice", encoder.model_id)
    if not picked and result.already:
        return result
    if not picked:
        raise EnrollError(f"nothing usable to enroll for '{person}'", code="nothing-usable", person=person,
                          problems=[s.error for s in result.skipped if s.error])
    if have < MIN_VOICED_TOTAL_S:
        raise EnrollError(f"only {have:.1f} s of voiced speech for '{person}'; need at least "
                          f"{MIN_VOICED_TOTAL_S:.0f} s", code="too-little-speech", person=person,
                          scores={"voiced_s": have, "need_s": MIN_VOICED_TOTAL_S},
                          problems=[s.error for s in result.skipped if s.error])
    samples = [s for s, _, _, _ in picked]
    store.add_samples(person, name, samples + [n for *_, n in picked if n is not None], None)
    result.added = len(samples)
    return result


def _enroll_fused(store: Store, person: str, paths, name: str | None, force: bool) -> EnrollResult:
    """Enroll with each part of the fused encoder (its own index and hygiene); EnrollError only when both refuse.

    The result counts recordings (those the more accepting part added: each recording is one sample per part);
    what either part skipped is listed once per part that skipped it.
    """
    from ..models.fused import PARTS

    paths = _paths(paths)
    done, errors = [], []
    for part in PARTS:
        try:
            done.append(enroll_voices(store, person, paths, name=name, force=force, model=part))
        except EnrollError as exc:
            errors.append(exc)
    if not done:
        raise errors[0]
    result = EnrollResult(person, added=max(r.added for r in done), already=min(r.already for r in done))
    result.accepted = done[0].accepted
    result.skipped = [s for r in done for s in r.skipped]
    return result


def _paths(paths: Iterable[str | Path] | str | Path) -> list[str | Path]:
    """One path or many."""
    return [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)

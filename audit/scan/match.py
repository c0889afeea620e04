"""Search analysed faces and voices against the store and judge them: matches, composites -> findings."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import composite, config
from ..calibrate import in_force
from ..findings import Finding, Pictures
from ..media import pictures
from ..models.face import FaceModel
from ..store import Store
from .analyze import AnalyzedFile, DetectedFace
from .options import ScanOptions
from .voices import voice_matcher


@dataclass
class Appearance:
    """Consecutive sampled frames in which one person's face (or one composite of the same people) was found."""

    person: str
    start: float
    end: float
    frames: int
    best: float
    best_face: DetectedFace
    total: float = 0.0
    verdict: object = None  # the best frame's composite verdict, for a composite appearance

    def add(self, face: DetectedFace, score: float, verdict: object = None) -> None:
        self.end = face.time
        self.frames += 1
        self.total += score
        if score > self.best:
            self.best, self.best_face, self.verdict = score, face, verdict


class FaceMatcher:
    """Searches the faces of analysed files against the store and turns them into findings."""

    def __init__(self, store: Store, model: FaceModel, options: ScanOptions, names: dict[str, str]):
        self.store, self.model, self.options, self.names = store, model, options, names
        # The user's threshold, else the stored calibration, else the documented default (audit/calibrate.py).
        self.settings = in_force(store.calibration("face", model.model_id), options.threshold,
                                 store.gallery_size("face", model.model_id),
                                 config.DEFAULT_FACE_THRESHOLD, config.DEFAULT_FACE_FMR)
        self.threshold, self.fmr, self.source = self.settings.threshold, self.settings.fmr, self.settings.source
        self.warnings = list(self.settings.warnings)
        self.undecided = 0  # faces that would be composites but are too low quality to judge
        if self.settings.fpir is not None and self.settings.gallery_size:
            # 1:N false alarms grow with N: state what the per-comparison rate means at this gallery's size.
            self.warnings.append(
                f"face gallery of {self.settings.gallery_size} people: at threshold {self.threshold} (false-match rate "
                f"{self.fmr:.1e} per comparison) a face of someone not enrolled matches somebody with probability "
                f"about {self.settings.fpir:.1e} (FPIR)")
        self._matched: dict[tuple[int, str], int] = {}  # (face, person) -> the vector id of the sample that matched
        self.index_version = store.index_version("face", model.model_id)
        _, man = store.index("face", model.model_id)
        how = {"ivf": f"IVF, {man.nprobe} of {man.nlist} lists probed",
               "pqfs": "fast-scan PQ codes, a shortlist re-scored"}.get(man.kind) if man is not None else None
        if how:  # fail safe: say that the search itself can miss a match
            self.warnings.append(
                f"the face index of {man.count} templates is approximate ({how}): a true match can be missed, though "
                "no score is inflated (benchmarks/README.md, Gallery scale)")

    def findings(self, result: AnalyzedFile) -> list[Finding]:
        """Face findings of one analysed file: appearances in video, one per face and person in images."""
        if not result.faces:
            return []
        self._matched = {}
        return self._appearances(result) if result.kind == "video" else self._image_faces(result)

    def judge(self, faces: list[DetectedFace]) -> list[list[tuple[str, float, object]]]:
        """Per face, [(key, score, composite verdict or None)]: one composite, or the matches among the top-k.

        The key is the person, or for a composite its contributors joined by '+': video appearances merge on it.
        """
        rule = self.settings.composite
        vecs = np.stack([h.embedding for h in faces])
        found = self.store.search("face", self.model.model_id, vecs, max(self.options.top_k, rule.top_k))
        out = []
        for face, cands in zip(faces, found):
            verdict = self._composite(face, cands)
            if _is_composite(verdict):
                out.append([("+".join(sorted(c.person for c in verdict.contributors)), verdict.explained, verdict)])
            else:
                # A low-quality face that looked like a composite is still a match where it reaches the threshold;
                # its findings say the composite question was left open (verdict kept for that).
                self.undecided += verdict is not None
                kept = [c for c in cands[: self.options.top_k] if c.similarity >= self.threshold]
                # The enrolled sample that matched goes into the finding (evidence names it, not just the person).
                self._matched.update({(id(face), c.person): c.vector_id for c in kept})
                out.append([(c.person, c.similarity, verdict) for c in kept])
        return out

    def _image_faces(self, result: AnalyzedFile) -> list[Finding]:
        """Matches, or one composite finding for a face that is a blend of registered people (not both)."""
        out = []
        for face, items in zip(result.faces, self.judge(result.faces)):
            for key, score, verdict in items:
                out.append(self._composite_finding(result, face, verdict) if _is_composite(verdict)
                           else self._finding(result, face, key, score, verdict))
        return out

    def _composite(self, face: DetectedFace, cands):
        """The composite verdict for one face when it is a composite, or one too low quality to judge; else None."""
        if len(cands) < 2:
            return None
        rule = self.settings.composite
        # Only the candidates' stored centroids are read: nothing is recomputed or loaded whole per scan.
        cents = self.store.centroids_of("face", self.model.model_id, [c.person for c in cands[: rule.top_k]])
        pool = [composite.Candidate(c.person, c.similarity, cents[c.person]) for c in cands[: rule.top_k]]
        verdict = composite.judge(face.embedding, pool, rule, face.quality)
        return verdict if verdict.kind in ("composite", "low_quality") else None

    def _composite_finding(self, result: AnalyzedFile, face: DetectedFace, verdict) -> Finding:
        """similarity/threshold of a composite: the part of the face its contributors explain, and the composite
        threshold; fmr: the false-composite rate stated for real faces."""
        consents = [self.consent(c.person) for c in verdict.contributors]
        order = ("denied", "expired", "unknown", "allowed")
        consent = next((s for s in order if s in consents), None)
        f = Finding(
            path=result.path, sha256=result.sha256, modality="face", kind="composite",
            similarity=round(verdict.explained, 4), threshold=self.settings.composite.explained,
            fmr=self.settings.composite_rate, threshold_source=self.settings.composite_source, bbox=face.bbox,
            start=face.time, end=face.time, frames=1 if face.time is not None else None, consent=consent,
            model=self.model.model_name, index=self.index_version,
            contributors=[{"person": c.person, "name": self.names.get(c.person), "similarity": round(c.similarity, 4),
                           "weight": round(c.weight, 4), "consent": s} for c, s in zip(verdict.contributors, consents)],
            extra={"fit": round(verdict.fit, 4), "focus": round(verdict.focus, 4),
                   "match_threshold": self.threshold, "match_source": self.source, **_quality(face)},
        )
        f.pictures = Pictures(crop=face.crop, scene=face.scene)
        return f

    def _appearances(self, result: AnalyzedFile) -> list[Finding]:
        """Merge per-frame matches into appearances: same person, gaps of at most a couple of samples."""
        max_gap = 10.0 if self.options.keyframes else 2.5 / self.options.fps
        open_: dict[str, Appearance] = {}
        done: list[Appearance] = []
        for face, items in sorted(zip(result.faces, self.judge(result.faces)), key=lambda x: x[0].time):
            for key, score, verdict in items:
                a = open_.get(key)
                if a is not None and a.end is not None and face.time - a.end <= max_gap:
                    a.add(face, score, verdict)
                else:
                    if a is not None:
                        done.append(a)
                    open_[key] = Appearance(key, face.time, face.time, 1, score, face, score, verdict)
        done += open_.values()
        out = []
        for a in sorted(done, key=lambda a: (a.start, a.person)):
            if a.frames < self.options.min_frames:
                continue
            if _is_composite(a.verdict):
                f = self._composite_finding(result, a.best_face, a.verdict)
            else:
                f = self._finding(result, a.best_face, a.person, a.best, a.verdict)
            f.start, f.end, f.frames = a.start, a.end, a.frames
            f.extra = {**f.extra, "best_time": a.best_face.time, "mean_similarity": round(a.total / a.frames, 4),
                       "fps": self.options.fps, "keyframes": self.options.keyframes}
            out.append(f)
        return out

    def consent(self, person: str) -> str | None:
        return self.store.consent_status(person, self.options.use)

    def _finding(self, result: AnalyzedFile, face: DetectedFace, person: str, sim: float,
                 verdict=None) -> Finding:
        extra = _quality(face)
        if verdict is not None:  # looked like a composite of these people, on a face too poor to say so
            extra["composite"] = "too low quality to judge"
            extra["composite_of"] = [c.person for c in verdict.contributors]
        f = Finding(
            path=result.path, sha256=result.sha256, modality="face", kind="match", person=person,
            name=self.names.get(person), similarity=round(sim, 4), threshold=self.threshold, fmr=self.fmr,
            threshold_source=self.source, bbox=face.bbox, start=face.time, end=face.time,
            frames=1 if face.time is not None else None, consent=self.consent(person),
            model=self.model.model_name, index=self.index_version,
            extra={**extra, **self._sample(face, person)},
        )
        f.pictures = Pictures(crop=face.crop, scene=face.scene)
        return f

    def _sample(self, face: DetectedFace, person: str) -> dict:
        """The enrolled sample that matched: its id, its file's SHA-256 and when it was enrolled."""
        vid = self._matched.pop((id(face), person), None)
        info = self.store.sample_info([vid]).get(vid) if vid is not None else None
        if info is None:
            return {"sample": vid}
        return {"sample": vid, "sample_sha256": info.source_sha256, "sample_enrolled": info.enrolled}


def _waveform(result: AnalyzedFile, f: Finding) -> bytes | None:
    """The recording's waveform with the finding's span shaded, drawn from the envelope the analysis kept."""
    if result.envelope is None or not result.envelope.size or not result.duration:
        return None
    return pictures.waveform_png(result.envelope, result.envelope.size / result.duration, f.start or 0.0,
                                 f.end or 0.0)


def _is_composite(verdict) -> bool:
    return verdict is not None and verdict.kind == "composite"


def _quality(face: DetectedFace) -> dict:
    """extra["quality"]: the face's quality measures, and why it counts as low quality (if it does)."""
    if face.quality is None:
        return {}
    return {"quality": {**face.quality.to_dict(), "low": face.quality.reasons()}}


class Matcher:
    """One analysed file -> its face and voice findings, plus an error row when it could not be read (fully)."""

    def __init__(self, store: Store, model: FaceModel, options: ScanOptions):
        names = store.names()
        self.faces = FaceMatcher(store, model, options, names)
        self.warnings = list(self.faces.warnings)
        self.voices = voice_matcher(store, options, self.faces.consent, names, self.warnings)

    def findings(self, result: AnalyzedFile) -> list[Finding]:
        """Every finding of one file, in a stable order: faces, voices, then the error row."""
        out = self.faces.findings(result)
        if result.voices:
            for f in self.voices.findings(result.path, result.sha256, result.voices):
                f.pictures = Pictures(waveform=_waveform(result, f))
                out.append(f)
        if result.error is not None:
            out.append(Finding(result.path, result.sha256, None, "error", error=result.error))
        if result.provenance:  # what the file declares about itself travels with each of its findings
            for f in out:
                f.extra = {**(f.extra or {}), "provenance": result.provenance}
        return out

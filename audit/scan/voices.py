"""Voice matching: segment embeddings -> AS-normalised scores against every enrolled person -> each segment assigned
to at most one person (spans.assign) -> one finding per span of that person's segments."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .. import config
from ..calibrate import in_force
from ..findings import Finding
from ..models.voice_cohort import Cohort, as_norm, load_cohort
from .options import ScanOptions
from .spans import assign, spans


def voice_defaults(encoder: str) -> tuple[float, float]:
    """(threshold on AS-normalised scores, stated false-match rate per file and person) for a shipped encoder."""
    return config.VOICE_DEFAULTS.get(encoder, config.VOICE_DEFAULTS["ge2e"])


class VoiceScorer:
    """Raw and AS-normalised scores of segments against every enrolled person's centroid.

    The enrolled side's cohort statistics are computed once per person when the scorer is built (a few hundred
    dot products each), from the same centroids the scan compares with, so they never go stale after an enrolment
    or a removal.
    """

    def __init__(self, people: list[str], centroids: np.ndarray, cohort: Cohort):
        self.people = list(people)
        self.centroids = np.asarray(centroids, np.float32)
        self.cohort = cohort
        self.enrol_stats = cohort.stats(self.centroids) if len(self.people) else (np.zeros(0), np.zeros(0))

    def score(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """([segments, people] raw cosine, the same AS-normalised)."""
        vecs = np.atleast_2d(np.asarray(vectors, np.float32))
        raw = vecs @ self.centroids.T
        return raw, as_norm(raw, self.enrol_stats, self.cohort.stats(vecs))


class VoiceMatcher:
    """Turns a file's voice segments into findings: one per span of one enrolled person's speech."""

    def __init__(self, store, encoder: str, model: str | None, settings, consent: Callable[[str], str | None],
                 names: dict[str, str]):
        """:param model: the encoder's model id, None when nobody is enrolled with it (then settings may be None)
        :param settings: the thresholds in force (calibrate.InForce)
        """
        self.store, self.encoder, self.model, self.consent, self.names = store, encoder, model, consent, names
        self.threshold, self.fmr, self.source = (settings.threshold, settings.fmr, settings.source) if settings \
            else (None, None, None)
        self._scorer: VoiceScorer | None = None
        self._checked: set[str] = set()  # people whose samples and centroid passed their integrity check

    @property
    def enrolled(self) -> bool:
        """True when someone is enrolled with this encoder."""
        return self.model is not None

    @property
    def scorer(self) -> VoiceScorer:
        """Centroids and cohort statistics, loaded on first use."""
        if self._scorer is None:
            people, cents = self.store.centroids("voice", self.model)
            self._scorer = VoiceScorer(people, cents, load_cohort(self.model))
        return self._scorer

    def findings(self, path: str, sha256: str | None, voices: list) -> list[Finding]:
        """Findings for the voice segments (VoiceHit: start, end, embedding) of one file."""
        if self.model is None or not voices:
            return []
        scorer = self.scorer
        raw, norm = scorer.score(np.stack([v.embedding for v in voices]))
        times = np.array([[v.start, v.end] for v in voices], np.float64)
        owner = assign(norm, self.threshold)
        out = []
        for j in np.unique(owner[owner >= 0]):
            person = scorer.people[j]
            # Spans of this person's segments only: a segment another person won (or nobody did) breaks the run.
            mine = np.where(owner == j, norm[:, j], -np.inf)
            for a, b in spans(mine, times, self.threshold):
                out.append(Finding(
                    path=path, sha256=sha256, modality="voice", kind="match", person=person,
                    name=self.names.get(person), similarity=round(float(norm[a:b, j].mean()), 4),
                    threshold=self.threshold, fmr=self.fmr, threshold_source=self.source,
                    start=float(times[a, 0]), end=float(times[b - 1, 1]), frames=b - a,
                    consent=self.consent(person), model=f"{self.encoder}:{self.model[:8]}",
                    index=self.store.index_version("voice", self.model),
                    extra={"score": "as-norm", "cohort": scorer.cohort.name,
                           "raw_similarity": round(float(raw[a:b, j].mean()), 4),
                           "best_similarity": round(float(norm[a:b, j].max()), 4),
                           "best_raw_similarity": round(float(raw[a:b, j].max()), 4),
                           "segments": len(voices)},
                ))
        # Nobody is named before their samples pass their seals and their centroid is theirs (checked once each).
        fresh = {f.person for f in out} - self._checked
        if fresh:
            self.store.check_centroids("voice", self.model, {p: scorer.centroids[scorer.people.index(p)]
                                                             for p in fresh})
            self._checked |= fresh
        return sorted(out, key=lambda f: (f.start, -f.similarity))


def voice_matcher(store, options: ScanOptions, consent: Callable[[str], str | None], names: dict[str, str],
                  warnings: list[str]) -> VoiceMatcher:
    """The voice matcher for the chosen encoder, with its threshold on AS-normalised scores.

    Same precedence as faces: the user's threshold, else a stored calibration, else the documented default; a
    calibration counts only if it was made on scores normalised with the cohort in use now.
    """
    from ..models.voice import voice_encoder

    model = voice_encoder(options.voice_model).model_id
    if ("voice", model) not in store.models():
        return VoiceMatcher(store, options.voice_model, None, None, consent, names)
    cal = store.calibration("voice", model)
    score = load_cohort(model).name
    if cal is not None and cal.details.get("score") != score:
        warnings.append(f"the voice calibration of {cal.date} was made on other scores than {score}; using the "
                        "default voice threshold (run `likeness-audit calibrate --modality voice` again)")
        cal = None
    threshold, fmr = voice_defaults(options.voice_model)
    settings = in_force(cal, options.voice_threshold, store.gallery_size("voice", model), threshold, fmr,
                        modality="voice")
    warnings += [w for w in settings.warnings if w not in warnings]
    if settings.fpir is not None and settings.gallery_size:  # 1:N false alarms grow with N, as for faces
        warnings.append(f"voice gallery of {settings.gallery_size} people: at threshold {settings.threshold} "
                        f"(false-match rate {settings.fmr:.1e} per file and person) a recording of someone not "
                        f"enrolled matches somebody with probability about {settings.fpir:.1e} (FPIR)")
    return VoiceMatcher(store, options.voice_model, model, settings, consent, names)

"""Voice matching: segment embeddings -> AS-normalised scores against every enrolled person -> each segment assigned
to at most one person (spans.assign) -> one finding per span of that person's segments."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .. import config
from ..calibrate import in_force
from ..findings import Finding
from ..models.channel import narrow_id
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
        self._narrow: VoiceScorer | bool | None = None  # band-limited templates' scorer; False: the store has none
        self._checked: set[tuple[str, str]] = set()  # (model, person) whose samples and centroid passed

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

    @property
    def narrow(self) -> VoiceScorer | None:
        """The scorer of the people's band-limited templates (models/channel.py), None when the store has none (one
        enrolled before them)."""
        if self._narrow is None:
            nid = narrow_id(self.model)
            self._narrow = False
            if ("voice", nid) in self.store.models():
                people, cents = self.store.centroids("voice", nid)
                self._narrow = VoiceScorer(people, cents, load_cohort(nid))
        return self._narrow or None

    def score(self, vectors: np.ndarray, narrow: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """([segments, scorer.people] raw, AS-norm, which of them came from band-limited templates): band-limited
        segments (narrow) are scored against the band-limited templates of the people who have them, every other
        score against the wideband centroids (all of them, in a store enrolled before band-limited templates)."""
        raw, norm = self.scorer.score(vectors)
        used = np.zeros(norm.shape, bool)
        rows = np.flatnonzero(narrow)
        nb = self.narrow if len(rows) else None
        if nb is not None:
            nraw, nnorm = nb.score(np.atleast_2d(vectors)[rows])
            both = [q for q in nb.people if q in self.scorer.people]
            cols, src = [self.scorer.people.index(q) for q in both], [nb.people.index(q) for q in both]
            at = np.ix_(rows, cols)
            raw[at], norm[at], used[at] = nraw[:, src], nnorm[:, src], True
        return raw, norm, used

    def findings(self, path: str, sha256: str | None, voices: list) -> list[Finding]:
        """Findings for the voice segments (VoiceHit: start, end, embedding, narrow) of one file."""
        if self.model is None or not voices:
            return []
        scorer = self.scorer
        raw, norm, used = self.score(np.stack([v.embedding for v in voices]), narrow_of(voices))
        out = report(self, path, sha256, voices, scorer.people, norm, {"raw": raw},
                     {"score": "as-norm", "cohort": scorer.cohort.name}, used)
        self.check({f.person for f in out})
        return out

    def check(self, people: set[str]) -> None:
        """Nobody is named before their samples pass their seals and their centroids (wideband, and band-limited
        once used) are theirs (checked once each)."""
        for model, scorer in ((self.model, self.scorer), (narrow_id(self.model), self._narrow or None)):
            mine = {p for p in people if scorer is not None and p in scorer.people and (model, p) not in self._checked}
            if mine:
                self.store.check_centroids("voice", model, {p: scorer.centroids[scorer.people.index(p)] for p in mine})
                self._checked |= {(model, p) for p in mine}

    @property
    def label(self) -> str:
        """The model as findings name it."""
        return f"{self.encoder}:{self.model[:8]}"

    @property
    def index(self) -> str | None:
        return self.store.index_version("voice", self.model)


def report(m, path: str, sha256: str | None, voices: list, people: list[str], norm: np.ndarray,
           extras: dict[str, np.ndarray], fixed: dict, narrow: np.ndarray) -> list[Finding]:
    """One finding per span of one person's assigned segments (m: the matcher, for threshold, names, consent).

    :param extras: name -> [segments, people] scores also reported per span (mean; and best for "raw")
    :param narrow: [segments, people] True where a score came from the person's band-limited templates
    """
    times = np.array([[v.start, v.end] for v in voices], np.float64)
    owner = assign(norm, m.threshold)
    out = []
    for j in np.unique(owner[owner >= 0]):
        person = people[j]
        # Spans of this person's segments only: a segment another person won (or nobody did) breaks the run.
        mine = np.where(owner == j, norm[:, j], -np.inf)
        for a, b in spans(mine, times, m.threshold):
            extra = dict(fixed)
            for name, sc in extras.items():
                if not np.isnan(sc[a:b, j]).any():  # fused: a part that does not score this person says nothing
                    extra["raw_similarity" if name == "raw" else f"{name}_score"] = round(float(sc[a:b, j].mean()), 4)
            extra["best_similarity"] = round(float(norm[a:b, j].max()), 4)
            if "raw" in extras:
                extra["best_raw_similarity"] = round(float(extras["raw"][a:b, j].max()), 4)
            extra["segments"] = len(voices)
            if narrow[a:b, j].any():  # telephone-band segments judged against the person's band-limited templates
                extra["band_limited_segments"] = int(narrow[a:b, j].sum())
            out.append(Finding(
                path=path, sha256=sha256, modality="voice", kind="match", person=person,
                name=m.names.get(person), similarity=round(float(norm[a:b, j].mean()), 4),
                threshold=m.threshold, fmr=m.fmr, threshold_source=m.source,
                start=float(times[a, 0]), end=float(times[b - 1, 1]), frames=b - a,
                consent=m.consent(person), model=m.label, index=m.index, extra=extra,
            ))
    return sorted(out, key=lambda f: (f.start, -f.similarity))


class FusedVoiceMatcher:
    """GE2E and CAM++ on the same segments: per person, the mean of the two AS-normalised scores.

    A person enrolled with one encoder only is scored by that encoder alone, its score moved by the difference
    between the fused threshold and that encoder's own, so a store enrolled before fusion keeps working.
    """

    encoder = "fused"

    def __init__(self, parts: list[VoiceMatcher], threshold: float, fmr: float | None, source: str,
                 consent: Callable[[str], str | None], names: dict[str, str], fused_id: str = ""):
        self.parts, self.threshold, self.fmr, self.source = parts, threshold, fmr, source
        self.fused_id = fused_id
        self.consent, self.names = consent, names

    @property
    def enrolled(self) -> bool:
        """True when someone is enrolled with either encoder."""
        return any(p.enrolled for p in self.parts)

    @property
    def model(self) -> str | None:
        """The fused encoder's model id (models/fused.py) when either part has someone enrolled, else None: the
        embedding archive keeps fused segment vectors (both parts end to end) under it."""
        return self.fused_id if self.enrolled else None

    @property
    def label(self) -> str:
        return "fused:" + "+".join(p.label for p in self.parts if p.enrolled)

    @property
    def index(self) -> str | None:
        return "+".join(str(p.index) for p in self.parts if p.enrolled)

    def findings(self, path: str, sha256: str | None, voices: list) -> list[Finding]:
        """Findings for segments whose embeddings are the fused encoder's (both parts end to end)."""
        if not self.enrolled or not voices:
            return []
        from ..models.fused import fuse, split_parts

        halves = split_parts(np.stack([v.embedding for v in voices]))
        people: list[str] = sorted({q for p in self.parts if p.enrolled for q in p.scorer.people})
        each = {}  # part -> [segments, people] AS-norm scores, NaN for people it does not score
        narrow = np.zeros((len(voices), len(people)), bool)
        for p in self.parts:
            if not p.enrolled:
                continue
            _raw, norm, used = p.score(halves[p.encoder], narrow_of(voices))
            cols = [people.index(q) for q in p.scorer.people]
            each[p.encoder] = np.full((len(voices), len(people)), np.nan)
            each[p.encoder][:, cols] = norm
            narrow[:, cols] |= used
        fused = fuse(each, {p.encoder: p.threshold for p in self.parts if p.enrolled}, self.threshold)
        out = report(self, path, sha256, voices, people, fused, each, {"score": "as-norm, fused"}, narrow)
        for p in self.parts:
            if p.enrolled:
                p.check({f.person for f in out})
        return out


def narrow_of(voices: list) -> np.ndarray:
    """[segments] bool: which segments are band-limited (segments analysed before the detector say no)."""
    return np.array([bool(getattr(v, "narrow", False)) for v in voices], bool)


def voice_matcher(store, options: ScanOptions, consent: Callable[[str], str | None], names: dict[str, str],
                  warnings: list[str]):
    """The voice matcher for the chosen encoder, with its threshold on AS-normalised scores.

    Same precedence as faces: the user's threshold, else a stored calibration, else the documented default; a
    calibration counts only if it was made on scores normalised with the cohort in use now. "fused" combines the
    two encoders' matchers (each with its own threshold in force) at the fused threshold.
    """
    if options.voice_model != "fused":
        return _single(store, options.voice_model, options.voice_threshold, consent, names, warnings)
    from ..models.fused import PARTS

    parts = [_single(store, name, None, consent, names, warnings) for name in PARTS]
    threshold, fmr = voice_defaults("fused")
    source = "default"
    if options.voice_threshold is not None:
        threshold, fmr, source = options.voice_threshold, None, "user"
    from ..models.voice import voice_encoder

    # The fused id names archived voice rows; with nobody's voice enrolled it is never asked for (nor hashed).
    fused = voice_encoder("fused").model_id if any(p.enrolled for p in parts) else ""
    return FusedVoiceMatcher(parts, threshold, fmr, source, consent, names, fused)


def _single(store, encoder: str, user_threshold: float | None, consent, names: dict[str, str],
            warnings: list[str]) -> VoiceMatcher:
    """The matcher of one shipped encoder."""
    from ..models.voice import voice_encoder

    if not any(modality == "voice" for modality, _ in store.models()):  # no voice enrolled: no model file hashed
        return VoiceMatcher(store, encoder, None, None, consent, names)
    model = voice_encoder(encoder).model_id
    if ("voice", model) not in store.models():
        return VoiceMatcher(store, encoder, None, None, consent, names)
    cal = store.calibration("voice", model)
    score = load_cohort(model).name
    if cal is not None and cal.details.get("score") != score:
        warnings.append(f"the voice calibration of {cal.date} was made on other scores than {score}; using the "
                        "default voice threshold (run `likeness-audit calibrate --modality voice` again)")
        cal = None
    threshold, fmr = voice_defaults(encoder)
    settings = in_force(cal, user_threshold, store.gallery_size("voice", model), threshold, fmr, modality="voice")
    warnings += [w for w in settings.warnings if w not in warnings]
    if settings.fpir is not None and settings.gallery_size:  # 1:N false alarms grow with N, as for faces
        warnings.append(f"voice gallery of {settings.gallery_size} people: at threshold {settings.threshold} "
                        f"(false-match rate {settings.fmr:.1e} per file and person) a recording of someone not "
                        f"enrolled matches somebody with probability about {settings.fpir:.1e} (FPIR)")
    return VoiceMatcher(store, encoder, model, settings, consent, names)

"""Voice calibration: AS-normalised gallery and cohort scores -> a voice threshold with its stated false-match rate.

Impostor scores are what a scan would see from people who are not the person compared with, all AS-normalised:
  - every enrolled recording against every other person's centroid;
  - every vector of the shipped normalisation cohort against every centroid, normalised with itself left out of
    the cohort (a speaker is never its own cohort neighbour in a scan either);
  - with a cohort of recordings (`--cohort`), each file's segments against every centroid, scored as a scan flags
    a file: the best span of two consecutive segments (audio/scan/spans.py).
Genuine scores are each enrolled recording against the centroid of the rest of its person (leave-one-out).
The threshold and the stated rate follow the face calibration (audit/calibrate.py): the target FPIR at the gallery
size gives a per-comparison rate; the threshold is the larger of the empirical quantile and the exponential tail
fit; the stated rate is the larger of the tail estimate and the 95 % upper bound over pairs of identities.
"""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np

from .calibrate import (MIN_IMPOSTOR, CalibrationError, fpir_at, per_comparison_rate, tail_rate, threshold_for,
                        upper_bound)
from .models.voice_cohort import Cohort, as_norm
from .scan.spans import file_score
from .store.registry import Calibration


def _centroids(vecs: np.ndarray, owner: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(unit centroids [k, dim], sums [k, dim]) of each person's rows."""
    sums = np.zeros((k, vecs.shape[1]))
    np.add.at(sums, owner, vecs.astype(np.float64))
    return sums / np.linalg.norm(sums, axis=1, keepdims=True), sums


def voice_scores(vecs: np.ndarray, people: list[str], cohort: Cohort,
                 files: list[tuple[np.ndarray, np.ndarray]] = ()) -> dict[str, np.ndarray]:
    """Genuine, impostor and per-identity-pair impostor scores (AS-normalised) of a voice gallery.

    :param vecs: [n, dim] unit vectors of the enrolled recordings; people: the person of each
    :param files: per cohort recording, (segment vectors [k, dim], segment times [k, 2])
    """
    names, owner = np.unique(np.asarray(people), return_inverse=True)
    vecs = np.asarray(vecs, np.float32)
    cents, sums = _centroids(vecs, owner, len(names))
    estats = cohort.stats(cents)
    genuine, impostor, units = [], [], []
    pair = np.full((len(names), len(names)), -np.inf)
    norm = as_norm(vecs @ cents.T, estats, cohort.stats(vecs))
    for i, p in enumerate(owner):
        others = np.flatnonzero(np.arange(len(names)) != p)
        impostor.append(norm[i, others])
        pair[p, others] = np.maximum(pair[p, others], norm[i, others])
        rest = sums[p] - vecs[i]
        if np.linalg.norm(rest) > 1e-6:  # the person has other recordings
            c = (rest / np.linalg.norm(rest))[None, :].astype(np.float32)
            genuine.append(float(as_norm(vecs[i : i + 1] @ c.T, cohort.stats(c), cohort.stats(vecs[i : i + 1]))[0, 0]))
    upper = np.triu_indices(len(names), 1)
    both = np.maximum(pair, pair.T)[upper]
    units.append(both[np.isfinite(both)])
    own = np.arange(len(cohort.vectors))
    shipped = as_norm(cohort.vectors @ cents.T, estats, cohort.stats(cohort.vectors, exclude=own))
    impostor.append(shipped.ravel())
    units.append(shipped.ravel())
    for seg_vecs, times in files:
        if not len(seg_vecs):
            continue
        s = as_norm(np.asarray(seg_vecs, np.float32) @ cents.T, estats, cohort.stats(seg_vecs))
        best = np.array([file_score(s[:, j], times) for j in range(len(names))])
        impostor.append(best)
        units.append(best)
    return {"genuine": np.asarray(genuine), "impostor": np.concatenate(impostor), "units": np.concatenate(units),
            "people": np.array(len(names)), "samples": np.array(len(vecs)), "files": np.array(len(files))}


def calibrate_voice(scores: dict[str, np.ndarray], model: str, cohort: Cohort, target_fpir: float = 0.01,
                    gallery_size: int | None = None) -> Calibration:
    """The voice threshold for a target FPIR at the gallery size, on AS-normalised scores."""
    if not 0 < target_fpir < 1:
        raise CalibrationError(f"the target FPIR must be between 0 and 1, not {target_fpir}")
    imp, units, gen = scores["impostor"], scores["units"], scores["genuine"]
    people = int(scores["people"])
    if len(imp) < MIN_IMPOSTOR:
        raise CalibrationError(f"too little data to calibrate voices: {len(imp)} impostor comparisons "
                               f"(need {MIN_IMPOSTOR}); add a --cohort of recordings of people who are not enrolled")
    n = gallery_size or people
    target_fmr = per_comparison_rate(target_fpir, n)
    threshold = threshold_for(imp, target_fmr)
    seen_units = int(np.sum(units >= threshold))
    fmr = max(upper_bound(seen_units, len(units)), tail_rate(imp, threshold))
    details = {
        "score": cohort.name, "target_fmr": target_fmr, "fmr_model": tail_rate(imp, threshold),
        "fmr_upper95": upper_bound(seen_units, len(units)), "impostor_at_or_above": int(np.sum(imp >= threshold)),
        "identity_pairs": len(units), "identity_pairs_at_or_above": seen_units, "impostor_max": float(imp.max()),
        "genuine_min": float(gen.min()) if len(gen) else None, "samples": int(scores["samples"]), "people": people,
        "cohort_files": int(scores["files"]), "cohort_vectors": len(cohort.vectors), "rule": "run2",
    }
    return Calibration(
        modality="voice", model=model, threshold=round(threshold, 4), fmr=fmr, fpir=fpir_at(fmr, n),
        target_fpir=target_fpir, gallery_size=n, genuine=len(gen), impostor=len(imp),
        cohort=int(scores["files"]) + len(cohort.vectors), fnmr=float(np.mean(gen < threshold)) if len(gen) else None,
        composite_threshold=None, composite_rate=None,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"), details=details)


def cohort_segments(encoder, paths) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[str]]:
    """Segment vectors and times of every recording under paths (people who are not enrolled), and the problems."""
    from . import media
    from .errors import AuditError
    from .media.audio import load_audio

    files, problems = [], []
    for path in media.walk(paths, kinds=frozenset({"audio", "video"})):
        try:
            segs = encoder.embed_segments(load_audio(path))
        except AuditError as exc:
            problems.append(f"{media.display_path(path)}: {exc}")
            continue
        if not segs:
            problems.append(f"{media.display_path(path)}: no speech")
            continue
        files.append((np.stack([s.vector for s in segs]), np.array([[s.start, s.end] for s in segs])))
    return files, problems


def calibrate_voice_store(store, encoder, cohort_paths=(), target_fpir: float = 0.01) -> tuple[Calibration, list[str]]:
    """Calibrate the voices enrolled with `encoder` (plus a cohort of recordings) and record it in the store."""
    from .models.voice_cohort import load_cohort

    _, vecs, people = store.vectors("voice", encoder.model_id)
    if len(set(people)) < 1:
        raise CalibrationError(f"nobody is enrolled with the {encoder.name} voice model")
    cohort = load_cohort(encoder.model_id)
    files, problems = cohort_segments(encoder, cohort_paths) if cohort_paths else ([], [])
    cal = calibrate_voice(voice_scores(vecs, people, cohort, files), encoder.model_id, cohort, target_fpir,
                          len(set(people)))
    store.add_calibration(cal)
    return cal, problems

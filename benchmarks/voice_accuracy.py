"""Voice accuracy under channel mismatch: per-condition flag rates and EER, raw and AS-normalised.

Usage: python benchmarks/voice_accuracy.py [--model ge2e|campplus] [--data ../shared/data/voices] [--conditions ...]
                                           [--workers 2] [--cache DIR]

Enrolment is on clean audio: each of the 10 LibriSpeech test-other speakers is enrolled twice (fold A from its
first 5 utterances, fold B from its last 5), as the centroid of embed_utterance vectors, as `enroll voice` does.
Probes are degraded copies made here (benchmarks/voice_degrade.py), embedded with embed_segments as a scan does:
  targets    the 5 utterances a fold did not enrol from, against their own speaker (100 files)
  same-chan  those utterances against the 9 other test-other speakers (900 file-person pairs)
  impostors  the 125 train-clean speakers at odd positions in speaker-id order, never in the shipped cohort
             (2,500 file-person pairs); this is where the stated false-match rate comes from
  tuning     the 126 train-clean speakers of the shipped cohort (even positions), each normalised with itself left
             out of the cohort: the normalised threshold is chosen on these alone (2,520 pairs per condition)
A file is flagged for a person under the scan's rule: `run2` (two consecutive segments at or above the
threshold; a file of one segment needs that one) or, for the old default, `half` (half the file's segments and at
least two). Rates come with 95 % Clopper-Pearson bounds; file-person pairs of one speaker are not independent.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from voice_degrade import CONDITIONS  # noqa: E402  sibling script

from audit.calibrate import upper_bound  # noqa: E402
from audit.models.voice import VOICE_MODELS, voice_encoder  # noqa: E402
from audit.models.voice_cohort import as_norm, load_cohort  # noqa: E402
from audit.scan.spans import file_score  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "voices"
RAW_DEFAULT = 0.76  # the landed default (raw cosine, `half` rule)
TUNE_RATE = 1e-3  # the normalised threshold keeps at most this share of tuning pairs flagged, every condition pooled

_enc = None


def _embed(job: tuple[str, str, str]) -> tuple[np.ndarray, np.ndarray]:
    """Degrade one file and embed its segments: ([k, dim] vectors, [k, 2] start/end)."""
    global _enc
    from audit.media.audio import load_audio
    from audit.models.voice import voice_encoder

    path, condition, model = job
    if _enc is None or _enc.name != model:
        _enc = voice_encoder(model)
    segs = _enc.embed_segments(CONDITIONS[condition](load_audio(path)))
    if not segs:
        return np.zeros((0, _enc.dim), np.float32), np.zeros((0, 2))
    return np.stack([s.vector for s in segs]), np.array([[s.start, s.end] for s in segs])


def lower_bound(k: int, n: int) -> float:
    """One-sided 95 % Clopper-Pearson lower bound of a rate seen k times in n."""
    return 1 - upper_bound(n - k, n) if n else 0.0


def eer(genuine: np.ndarray, impostor: np.ndarray) -> float:
    """Equal error rate: where the false-accept and false-reject rates cross."""
    ts = np.unique(np.concatenate([genuine, impostor]))
    far = np.array([(impostor >= t).mean() for t in ts])
    frr = np.array([(genuine < t).mean() for t in ts])
    i = int(np.argmin(np.abs(far - frr)))
    return float((far[i] + frr[i]) / 2)


def centroid(vectors: np.ndarray) -> np.ndarray:
    """Normalised mean of unit vectors."""
    m = vectors.mean(axis=0)
    return m / np.linalg.norm(m)


class Probes:
    """Segment embeddings of every probe file under one condition."""

    def __init__(self, files: list[Path], results: list[tuple[np.ndarray, np.ndarray]]):
        self.files = files
        self.vectors = [v for v, _ in results]
        self.times = [t for _, t in results]


def embed_condition(files: list[Path], condition: str, model: str, workers: int, cache: Path | None) -> Probes:
    """Embed every file under a condition, from the cache when it has them."""
    if cache is not None and (cache / f"{condition}.npz").exists():
        with np.load(cache / f"{condition}.npz", allow_pickle=False) as d:
            counts = d["counts"]
            vecs, times = np.split(d["vectors"], np.cumsum(counts)[:-1]), np.split(d["times"], np.cumsum(counts)[:-1])
        return Probes(files, list(zip(vecs, times)))
    jobs = [(str(p), condition, model) for p in files]
    if workers > 1:
        import multiprocessing

        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            results = list(pool.map(_embed, jobs, chunksize=4))
    else:
        results = [_embed(j) for j in jobs]
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(cache / f"{condition}.npz", vectors=np.concatenate([v for v, _ in results]),
                 times=np.concatenate([t for _, t in results]), counts=np.array([len(v) for v, _ in results]))
    return Probes(files, results)


def file_scores(probes: Probes, cents: np.ndarray, enrol_stats, cohort, exclude: list[int], rule: str,
                normalise: bool) -> np.ndarray:
    """[files, people] score at which each file would be flagged for each enrolled person under `rule`."""
    out = np.full((len(probes.files), len(cents)), -np.inf)
    for f, (vecs, times) in enumerate(zip(probes.vectors, probes.times)):
        if not len(vecs):
            continue
        raw = vecs @ cents.T
        if normalise:
            ex = np.full(len(vecs), exclude[f]) if exclude[f] >= 0 else None
            raw = as_norm(raw, enrol_stats, cohort.stats(vecs, exclude=ex))
        for j in range(len(cents)):
            out[f, j] = file_score(raw[:, j], times, rule)
    return out


def fmt_rate(k: int, n: int) -> str:
    """k/n with the 95 % upper bound."""
    return f"{k}/{n} ({k / n:.2%}, <= {upper_bound(k, n):.2%})"


def main() -> None:
    """Embed every condition, then print the tables."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--conditions", default=",".join(CONDITIONS))
    ap.add_argument("--model", choices=VOICE_MODELS, default="ge2e", help="voice encoder")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--cache", type=Path, help="keep segment embeddings here (npz) to rerun the analysis quickly")
    ap.add_argument("--quick", action="store_true",
                    help="probe the test-other files only: EER against same-channel impostors, no flag-rate tables")
    args = ap.parse_args()
    test_dir, train_dir = args.data / "librispeech-test-other", args.data / "librispeech-train-clean"
    if not test_dir.is_dir() or not train_dir.is_dir():
        raise SystemExit(f"shared voices not found under {args.data}")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    from build_voice_cohort import split

    from audit.media.audio import load_audio

    enc = voice_encoder(args.model)
    cohort = load_cohort(enc.model_id)
    speakers = {d.name: sorted(d.glob("*.flac")) for d in sorted(test_dir.iterdir()) if d.is_dir()}
    names = list(speakers)
    tune_files, eval_files = split(sorted(train_dir.glob("*.flac")))
    if [p.name.split("-")[0] for p in tune_files] != list(cohort.speakers):
        raise SystemExit("the shipped cohort is not the even half of train-clean: rebuild it")
    if args.quick:
        eval_files, tune_files = [], []
    t0 = time.perf_counter()
    utt = {p: enc.embed_utterance(load_audio(p)) for files in speakers.values() for p in files}
    folds = {"A": slice(0, 5), "B": slice(5, 10)}
    cents = {f: np.stack([centroid(np.stack([utt[p] for p in files[sl]])) for files in speakers.values()])
             for f, sl in folds.items()}
    estats = {f: cohort.stats(c) for f, c in cents.items()}
    test_files = [p for files in speakers.values() for p in files]
    owner = np.array([names.index(p.parent.name) for p in test_files])
    pos = np.array([speakers[p.parent.name].index(p) for p in test_files])
    probe_files = test_files + eval_files + tune_files
    tune_ex = list(range(len(tune_files)))
    exclude = [-1] * (len(test_files) + len(eval_files)) + tune_ex
    conditions = args.conditions.split(",")
    print(f"model {enc.name} {enc.model_id[:12]}; cohort {cohort.name} ({len(cohort.speakers)} speakers); "
          f"{len(names)} enrolled speakers x 2 folds; {len(test_files)} test-other, {len(eval_files)} impostor and "
          f"{len(tune_files)} tuning files per condition; machine load {os.getloadavg()[0]:.1f}")

    scores: dict[tuple[str, str, bool], dict[str, np.ndarray]] = {}
    seg_scores: dict[tuple[str, bool], tuple[np.ndarray, np.ndarray]] = {}
    for cond in conditions:
        t1 = time.perf_counter()
        probes = embed_condition(probe_files, cond, args.model, args.workers,
                                 args.cache / (args.model + "-quick" * args.quick) if args.cache else None)
        n_t, n_e = len(test_files), len(eval_files)
        for rule in ("half", "run2"):
            for norm in (False, True):
                tgt, same, imp, tune = [], [], [], []
                seg_t, seg_i = [], []
                for f, sl in folds.items():
                    fs = file_scores(probes, cents[f], estats[f], cohort, exclude, rule, norm)
                    held = ~np.isin(pos, np.arange(10)[sl])
                    t_scores = fs[:n_t]
                    mine = owner[:, None] == np.arange(len(names))[None, :]
                    tgt.append(t_scores[held][mine[held]])
                    same.append(t_scores[held][~mine[held]])
                    imp.append(fs[n_t : n_t + n_e].ravel())
                    tune.append(fs[n_t + n_e :].ravel())
                    if rule == "run2":  # segment scores once per normalisation
                        for i in np.flatnonzero(held):
                            v = probes.vectors[i]
                            if not len(v):
                                continue
                            raw = v @ cents[f].T
                            if norm:
                                raw = as_norm(raw, estats[f], cohort.stats(v))
                            seg_t.append(raw[:, owner[i]])
                            seg_i.append(np.delete(raw, owner[i], axis=1).ravel())
                        for i in range(n_t, n_t + n_e):
                            v = probes.vectors[i]
                            if len(v):
                                raw = v @ cents[f].T
                                seg_i.append((as_norm(raw, estats[f], cohort.stats(v)) if norm else raw).ravel())
                scores[(cond, rule, norm)] = {k: np.concatenate(v) for k, v in
                                              (("target", tgt), ("same", same), ("impostor", imp), ("tune", tune))}
                if rule == "run2":
                    seg_scores[(cond, norm)] = (np.concatenate(seg_t), np.concatenate(seg_i))
        print(f"  {cond}: {sum(len(v) for v in probes.vectors)} segments in {time.perf_counter() - t1:.0f} s",
              flush=True)

    if not args.quick:
        flag_tables(scores, conditions, args.model)
    print("\nEER (file level under run2, targets vs impostor and same-channel pairs; segment level: every 3 s segment)")
    print("| condition | file EER raw | file EER AS-norm | segment EER raw | segment EER AS-norm |")
    print("|---|---|---|---|---|")
    for c in conditions:
        row = []
        for norm in (False, True):
            s = scores[(c, "run2", norm)]
            row.append(eer(s["target"], np.concatenate([s["impostor"], s["same"]])))
        for norm in (False, True):
            row.append(eer(*seg_scores[(c, norm)]))
        print(f"| {c} | " + " | ".join(f"{r:.2%}" for r in row) + " |")
    print(f"\ntotal {time.perf_counter() - t0:.0f} s; load average {os.getloadavg()[0]:.1f}")


def flag_tables(scores: dict, conditions: list[str], model: str) -> None:
    """Thresholds chosen on the tuning speakers only (the shipped cohort, left out of their own normalisation),
    then the flag rates per condition at them."""
    chosen = {}
    for rule in ("half", "run2"):
        for norm in (False, True):
            pooled = np.sort(np.concatenate([scores[(c, rule, norm)]["tune"] for c in conditions]))[::-1]
            k = int(math.floor(TUNE_RATE * len(pooled)))
            chosen[(rule, norm)] = float(pooled[k]) + 1e-6
    chosen[("half", False, "default")] = RAW_DEFAULT
    print(f"\nThresholds chosen on the tuning speakers (at most {TUNE_RATE:.1%} of their file-person pairs flagged, "
          f"all conditions pooled): " + ", ".join(f"{r} {'norm' if n else 'raw'} {t:.3f}"
                                                  for (r, n, *_), t in chosen.items()))
    setups = [("raw 0.76, half (the old GE2E default)", "half", False, RAW_DEFAULT)] if model == "ge2e" else []
    setups += [(f"raw {chosen[('run2', False)]:.3f}, run2", "run2", False, chosen[("run2", False)]),
              (f"AS-norm {chosen[('half', True)]:.2f}, half", "half", True, chosen[("half", True)]),
              (f"AS-norm {chosen[('run2', True)]:.2f}, run2 (new default)", "run2", True, chosen[("run2", True)])]
    for label, rule, norm, thr in setups:
        print(f"\n{label}")
        print("| condition | targets flagged (95 % lower) | impostor pairs flagged (95 % upper) | "
              "same-channel pairs flagged | tuning pairs |")
        print("|---|---|---|---|---|")
        tot = np.zeros(4, int)
        for c in conditions:
            s = scores[(c, rule, norm)]
            kt, nt = int((s["target"] >= thr).sum()), len(s["target"])
            ki, ni = int((s["impostor"] >= thr).sum()), len(s["impostor"])
            ks, ns = int((s["same"] >= thr).sum()), len(s["same"])
            ku, nu = int((s["tune"] >= thr).sum()), len(s["tune"])
            tot += [ki, ni, ks, ns]
            print(f"| {c} | {kt}/{nt} ({kt / nt:.1%}, >= {lower_bound(kt, nt):.1%}) | {fmt_rate(ki, ni)} | "
                  f"{fmt_rate(ks, ns)} | {ku}/{nu} |")
        print(f"| all | | {fmt_rate(int(tot[0]), int(tot[1]))} | {fmt_rate(int(tot[2]), int(tot[3]))} | |")


if __name__ == "__main__":
    main()

"""Voice enrolment hygiene: the raw cosine a new recording must reach against the person's own recordings.

Usage: python benchmarks/voice_enrol_agreement.py [--data ../shared/data/voices] [--models ge2e,campplus]
                                                  [--workers 2] [--cache DIR]

`enroll voice` refuses a new recording whose best raw cosine (embed_utterance vectors, as stored) against the
person's other recordings is below a per-model constant (audit/enroll/enroll.py, VOICE_AGREEMENT). This measures it:
  enrolled   each LibriSpeech test-other speaker's first 2 utterances, clean, as 2 stored samples
  genuine    the speaker's other 8 utterances, through each channel condition, against the speaker's 2 samples
  impostor   the other test-other speakers' 8 utterances (same corpus and channel: the hard case) and the
             LibriSpeech train-clean speakers (one file each), through the same condition, against each speaker
The 10 test-other speakers are split by position in speaker-id order: even positions tune, odd positions report;
train-clean impostors likewise (even: the tuning half, odd: the reporting half), so no speaker of the reported
rates was seen when choosing the value. The value is the lowest threshold (step 0.01) at which at most 1 % of the
tuning impostor pairs are accepted in every condition. Rates come with one-sided 95 % Clopper-Pearson upper
bounds; pairs sharing a speaker are not independent, so the bounds are optimistic.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from voice_degrade import CONDITIONS, SR  # noqa: E402  sibling script

from audit.calibrate import upper_bound  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "voices"
ENROLLED = 2  # stored recordings per speaker before the new one arrives
TARGET_FAR = 0.01  # tuning impostor pairs accepted, at most, in every condition
GRID = np.round(np.arange(0.30, 0.96, 0.01), 2)


def lowpass_4k(wav: np.ndarray) -> np.ndarray:
    """Low-pass at 4 kHz (8th-order Butterworth), as a cheap microphone or a band-limited stream."""
    from scipy import signal

    sos = signal.butter(8, 4000, btype="lowpass", fs=SR, output="sos")
    return signal.sosfilt(sos, wav).astype(np.float32)


CHANNELS = {name: CONDITIONS[name] for name in ("clean", "mp3-32k", "opus-12k", "noise-10dB", "telephone-8k",
                                                 "reverb-0.6s")}
CHANNELS["lowpass-4k"] = lowpass_4k

_encoders: dict = {}


def _embed(job: tuple[str, str, tuple[str, ...]]) -> dict[str, np.ndarray]:
    """Degrade one file and embed it whole with each model, as `enroll voice` does."""
    from audit.media.audio import load_audio
    from audit.models.voice import voice_encoder

    path, condition, models = job
    wav = CHANNELS[condition](load_audio(path))
    out = {}
    for m in models:
        if m not in _encoders:
            _encoders[m] = voice_encoder(m)
        out[m] = _encoders[m].embed_utterance(wav)
    return out


def embed_all(files: list[Path], condition: str, models: tuple[str, ...], workers: int,
              cache: Path | None) -> dict[str, np.ndarray]:
    """model -> [files, dim] whole-file embeddings under one condition, from the cache when there."""
    want = [m for m in models if cache is None or not (cache / f"{m}-{condition}.npy").exists()]
    got: dict[str, np.ndarray] = {}
    if want:
        jobs = [(str(p), condition, tuple(want)) for p in files]
        if workers > 1:
            import multiprocessing

            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                rows = list(pool.map(_embed, jobs, chunksize=4))
        else:
            rows = [_embed(j) for j in jobs]
        for m in want:
            got[m] = np.stack([r[m] for r in rows])
            if cache is not None:
                cache.mkdir(parents=True, exist_ok=True)
                np.save(cache / f"{m}-{condition}.npy", got[m])
    for m in models:
        if m not in got:
            got[m] = np.load(cache / f"{m}-{condition}.npy")
    return got


def pair_scores(vecs: np.ndarray, speakers: list[list[int]], impostors: list[int], clean: np.ndarray,
                ) -> tuple[np.ndarray, np.ndarray]:
    """(genuine, impostor) best raw cosines of new recordings against each enrolled speaker's stored ones.

    speakers: per enrolled speaker, the row indices of its utterances (the first ENROLLED are stored, taken from
    `clean`); impostors: rows of one-file speakers that are never enrolled.
    """
    genuine, impostor = [], []
    for s, rows in enumerate(speakers):
        stored = clean[rows[:ENROLLED]]
        for t, other in enumerate(speakers):
            best = np.max(vecs[other[ENROLLED:]] @ stored.T, axis=1)
            (genuine if t == s else impostor).append(best)
        impostor.append(np.max(vecs[impostors] @ stored.T, axis=1))
    return np.concatenate(genuine), np.concatenate(impostor)


def rate(k: int, n: int) -> str:
    """k/n (rate, 95 % upper bound)."""
    return f"{k}/{n} ({k / n:.1%}, <= {upper_bound(k, n):.1%})"


def main() -> None:
    """Embed every file under every condition, choose the value on the tuning half, report the other half."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--models", default="ge2e,campplus")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--cache", type=Path, help="keep embeddings here (npy) to rerun the analysis quickly")
    args = ap.parse_args()
    test_dir, train_dir = args.data / "librispeech-test-other", args.data / "librispeech-train-clean"
    if not test_dir.is_dir() or not train_dir.is_dir():
        raise SystemExit(f"shared voices not found under {args.data}")
    models = tuple(args.models.split(","))
    dirs = sorted((d for d in test_dir.iterdir() if d.is_dir()), key=lambda d: int(d.name))
    utts = [sorted(d.glob("*.flac")) for d in dirs]
    train = sorted(train_dir.glob("*.flac"), key=lambda p: int(p.name.split("-")[0]))
    files = [p for u in utts for p in u] + train
    rows, i = [], 0
    for u in utts:
        rows.append(list(range(i, i + len(u))))
        i += len(u)
    train_rows = list(range(i, len(files)))
    halves = {"tune": (rows[0::2], train_rows[0::2]), "report": (rows[1::2], train_rows[1::2])}
    print(f"{len(dirs)} test-other speakers x {len(utts[0])} utterances ({ENROLLED} stored, the rest new), "
          f"{len(train)} train-clean impostors; halves by speaker position; load average {os.getloadavg()[0]:.1f}")
    t0 = time.perf_counter()
    emb = {c: embed_all(files, c, models, args.workers, args.cache) for c in CHANNELS}
    print(f"embedded {len(files)} files x {len(CHANNELS)} conditions x {len(models)} models in "
          f"{time.perf_counter() - t0:.0f} s; load average {os.getloadavg()[0]:.1f}")
    chosen_by: dict[str, float] = {}
    pooled: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for m in models:
        scores = {h: {c: pair_scores(emb[c][m], spk, imp, emb["clean"][m]) for c in CHANNELS}
                  for h, (spk, imp) in halves.items()}
        tune = scores["tune"]
        ok = [t for t in GRID if all(np.mean(imp >= t) <= TARGET_FAR for _, imp in tune.values())]
        chosen = float(ok[0]) if ok else float(GRID[-1])
        print(f"\n{m}: chosen on the tuning half: {chosen:.2f} (lowest value accepting <= {TARGET_FAR:.0%} of "
              f"impostor pairs in every condition)")
        print("| condition | tune: genuine refused | tune: impostor accepted | report: genuine refused | "
              "report: impostor accepted | report: genuine p5 / impostor max |")
        print("|---|---|---|---|---|---|")
        totals = np.zeros(4, int)
        for c in CHANNELS:
            cells = []
            for h in ("tune", "report"):
                gen, imp = scores[h][c]
                cells += [rate(int(np.sum(gen < chosen)), len(gen)), rate(int(np.sum(imp >= chosen)), len(imp))]
                if h == "report":
                    totals += [int(np.sum(gen < chosen)), len(gen), int(np.sum(imp >= chosen)), len(imp)]
            gen, imp = scores["report"][c]
            print(f"| {c} | " + " | ".join(cells) + f" | {np.percentile(gen, 5):.3f} / {imp.max():.3f} |")
        print(f"| all (report) | | | {rate(totals[0], totals[1])} | {rate(totals[2], totals[3])} | |")
        chosen_by[m] = chosen
        pooled[m] = tuple(np.concatenate([scores["report"][c][k] for c in CHANNELS]) for k in (0, 1))
    for m in models:  # why the value is per encoder: another encoder's cosines live on another scale
        for other, value in chosen_by.items():
            if other != m:
                gen, imp = pooled[m]
                print(f"{m} at {other}'s value {value:.2f} (report half, all conditions): genuine refused "
                      f"{rate(int(np.sum(gen < value)), len(gen))}, impostor accepted "
                      f"{rate(int(np.sum(imp >= value)), len(imp))}")
    print(f"\ntotal {time.perf_counter() - t0:.0f} s; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

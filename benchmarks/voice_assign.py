"""One speaker per stretch of speech: how the runner-up margin of spans.assign trades wrong names for misses.

Usage: python benchmarks/voice_assign.py [--data ../shared/data/voices] [--model ge2e] [--workers 2]
                                         [--condition clean|noise-10dB|telephone-8k|...]

Each of the 10 LibriSpeech test-other speakers is enrolled from its first 5 utterances (the centroid of
embed_utterance vectors, as `enroll voice` does). Probes, embedded with embed_segments as a scan does:
  single   the other 5 utterances of each speaker (50 files of one enrolled speaker)
  pairs    each speaker's 6th utterance followed by the next speaker's 7th (10 files of two enrolled speakers)
Probes go through --condition (benchmarks/voice_degrade.py), enrolment stays clean.
  strangers  the train-clean speakers at odd positions, one file each (never enrolled)
The train-clean speakers at even positions (126) are enrolled too, each from its one file, as distractors: a gallery
of 136 voices where wrong names can happen. Segment level: of the segments of single files where the runner-up
also reaches the threshold, how often the best is the true speaker, by the best's lead over the runner-up.
For each margin: single files naming their speaker / naming someone else; pair files whose two speakers are both
named / files with a span naming a speaker outside its own turn; strangers flagged. Margin 'none' is the old rule
(every person over the threshold gets their own spans, a segment may count for several).
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # voice_degrade, a sibling script

from audit.scan.spans import assign, spans  # noqa: E402
from audit.scan.voices import VoiceScorer, voice_defaults  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "voices"
MARGINS = ["none", 0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0]
EDGE = 3.0  # a window straddling a change of speaker may go either way

_enc = None


def _job(job: tuple[tuple[str, ...], str, str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[float]]:
    """(utterance vectors, segment vectors, segment times, turn boundaries) of the files joined end to end."""
    global _enc
    from audit.media.audio import load_audio
    from audit.models.voice import voice_encoder

    from voice_degrade import CONDITIONS

    paths, model, condition = job
    if _enc is None:
        _enc = voice_encoder(model)
    wavs = [load_audio(p) for p in paths]
    utt = np.stack([_enc.embed_utterance(w) for w in wavs])
    segs = _enc.embed_segments(CONDITIONS[condition](np.concatenate(wavs)))
    vecs = np.stack([s.vector for s in segs]) if segs else np.zeros((0, _enc.dim), np.float32)
    times = np.array([[s.start, s.end] for s in segs]).reshape(-1, 2)
    return utt, vecs, times, list(np.cumsum([len(w) / 16000 for w in wavs]))


def named(norm: np.ndarray, times: np.ndarray, threshold: float, margin) -> list[tuple[int, float, float]]:
    """(person column, start, end) of every span the scan would report under the margin ('none': the old rule)."""
    out = []
    if margin == "none":
        cols = {j: norm[:, j] for j in range(norm.shape[1])}
    else:
        owner = assign(norm, threshold, margin)
        cols = {j: np.where(owner == j, norm[:, j], -np.inf) for j in np.unique(owner[owner >= 0])}
    for j, col in cols.items():
        out += [(j, times[a, 0], times[b - 1, 1]) for a, b in spans(col, times, threshold)]
    return out


def main() -> None:
    """Embed, enrol, and print one line per margin."""
    from audit.models.voice_cohort import load_cohort
    from audit.models.voice import voice_encoder

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--model", default="ge2e")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--condition", default="clean")
    args = ap.parse_args()
    t0 = time.time()
    root = args.data / "librispeech-test-other"
    speakers = {d.name: sorted(d.glob("*.flac")) for d in sorted(root.iterdir()) if d.is_dir()}
    names = list(speakers)
    jobs = [((str(p),), args.model, args.condition) for s in names for p in speakers[s]]
    pairs = [(names[i], names[(i + 1) % len(names)]) for i in range(len(names))]
    jobs += [((str(speakers[a][5]), str(speakers[b][6])), args.model, args.condition) for a, b in pairs]
    train = sorted((args.data / "librispeech-train-clean").glob("*.flac"), key=lambda p: int(p.name.split("-")[0]))
    distractors, strangers = train[0::2], train[1::2]
    jobs += [((str(p),), args.model, args.condition) for p in strangers + distractors]
    if args.workers > 1:
        import multiprocessing

        with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            rows = list(pool.map(_job, jobs, chunksize=4))
    else:
        rows = [_job(j) for j in jobs]
    n = sum(len(v) for v in speakers.values())
    utt = {s: np.concatenate([rows[k][0] for k in range(n) if jobs[k][0][0].split("/")[-2] == s]) for s in names}
    cents = np.stack([utt[s][:5].mean(axis=0) / np.linalg.norm(utt[s][:5].mean(axis=0)) for s in names])
    first = n + len(pairs) + len(strangers)
    cents = np.concatenate([cents, np.concatenate([rows[k][0] for k in range(first, len(rows))])])
    encoder = voice_encoder(args.model)
    # The shipped cohort holds train-clean speakers: the distractors' own cohort rows make their scores a little low.
    scorer = VoiceScorer(names + [f"d{i}" for i in range(len(distractors))], cents, load_cohort(encoder.model_id))
    threshold = voice_defaults(args.model)[0]
    single = [(k, names.index(jobs[k][0][0].split("/")[-2])) for k in range(n)
              if speakers[jobs[k][0][0].split("/")[-2]].index(Path(jobs[k][0][0])) >= 5]
    print(f"{args.model}, {args.condition}, threshold {threshold}: {len(single)} single files, {len(pairs)} two-speaker files, "
          f"{len(strangers)} strangers, {len(distractors)} distractors enrolled")
    gaps, right = [], []
    for k, j in single:
        _, vecs, _, _ = rows[k]
        norm = scorer.score(vecs)[1] if len(vecs) else np.zeros((0, 1))
        order = np.argsort(-norm, axis=1)
        for row, o in zip(norm, order):
            if row[o[1]] >= threshold:
                gaps.append(row[o[0]] - row[o[1]])
                right.append(o[0] == j)
    gaps, right = np.array(gaps), np.array(right, bool)
    print(f"segments of single files with two people over the threshold: {len(gaps)}")
    for lo, hi in ((0, 0.25), (0.25, 0.5), (0.5, 1.0), (1.0, 2.0), (2.0, np.inf)):
        m = (gaps >= lo) & (gaps < hi)
        print(f"  lead {lo}-{hi}: {int(m.sum())} segments, best is the true speaker in {int(right[m].sum())}")
    print("| margin | single: own speaker named | single: another named | pairs: both named | "
          "pairs: a span outside its own turn | strangers flagged |")
    print("|---|---|---|---|---|---|")
    for margin in MARGINS:
        own = wrong = both = stray = flagged = 0
        for k, j in single:
            _, vecs, times, _ = rows[k]
            found = {p for p, _, _ in named(scorer.score(vecs)[1], times, threshold, margin)} if len(vecs) else set()
            own += j in found
            wrong += bool(found - {j})
        for i, (a, b) in enumerate(pairs):
            _, vecs, times, ends = rows[n + i]
            got = named(scorer.score(vecs)[1], times, threshold, margin) if len(vecs) else []
            ja, jb = names.index(a), names.index(b)
            both += {ja, jb} <= {p for p, _, _ in got}
            stray += any((p == ja and e > ends[0] + EDGE) or (p == jb and s < ends[0] - EDGE)
                         or p not in (ja, jb) for p, s, e in got)
        for k in range(n + len(pairs), first):
            _, vecs, times, _ = rows[k]
            flagged += bool(len(vecs) and named(scorer.score(vecs)[1], times, threshold, margin))
        print(f"| {margin} | {own}/{len(single)} | {wrong}/{len(single)} | {both}/{len(pairs)} | "
              f"{stray}/{len(pairs)} | {flagged}/{len(strangers)} |")
    print(f"({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()

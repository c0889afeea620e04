"""Voice clones of the shared LibriSpeech speakers, on a held-out half of them: GE2E, CAM++ and their fusion.

Usage: python benchmarks/voice_clones.py [--data ../shared/data/voices] [--cache DIR] [--probes 4] [--impostors 40]
       [--rtf]   (also the real-time factor of each encoder on one core)
       [--weights]   (also weighted fusions of the two encoders' scores, each tuned on the tune half)

Clones are made here, from the speakers' own recordings, by analysis-resynthesis with the WORLD vocoder
(pyworld: DIO + StoneMask pitch, CheapTrick envelope, D4C aperiodicity) plus the channel a clone goes through:

  world          plain resynthesis
  world-pitch+3  F0 raised 3 semitones        world-formant  spectral envelope stretched 8 % (formants up)
  world-tempo    12 % slower                  world-mp3      then MP3 32 kbit/s
  world-opus     then Opus 12 kbit/s          world-phone    then a 300-3400 Hz mu-law telephone line
  world-noise    then white noise at 10 dB    world-reverb   then a 0.6 s synthetic room
  griffin-lim    an 80-band mel spectrogram re-synthesised by Griffin-Lim (a neural vocoder's stand-in)
  real           the recording itself (no clone; the reference)

Protocol: the 10 test-other speakers are enrolled, each from its first recordings (>= 30 s of audio; one vector per
recording, the centroid as the store keeps it); the last `--probes` recordings of each are cloned. Non-enrolled
speakers: train-clean speakers at odd positions (never in the shipped AS-norm cohorts), one recording each, cloned
the same way. Speakers are split in two halves (test-other by sorted id, even/odd; impostors alternately): the tune
half chooses each method's threshold (the lowest at which at most 1 % of the tune half's non-enrolled clips, all
conditions pooled, are flagged), the report half is scored at it. A file is judged as a scan does: 3 s segments,
AS-normalised scores against every enrolled person, each segment assigned to at most one person (spans.assign,
margin 0.5), a finding for a run of two segments (spans.spans). Fusion: the mean of the two encoders' AS-norm
scores per segment and person (both encoders cut the same segments).

Printed per method and condition on the report half: clones of enrolled speakers flagged as themselves, clones
naming a wrong enrolled speaker, non-enrolled clips flagged, each with a 95 % Wilson interval; the shipped
thresholds as "before"; accuracy against enrolment length (3, 10, 30 s of enrolment audio).
"""

from __future__ import annotations

import argparse
import hashlib
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audit import config
from audit.models.voice import voice_encoder
from audit.models.voice_cohort import as_norm, load_cohort
from audit.scan.spans import assign, spans

try:
    import voice_degrade as vd
    from rates import wilson
except ImportError:  # run from the repository root
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import voice_degrade as vd
    from rates import wilson

SR = 16000
DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "voices"
ENCODERS = ("ge2e", "campplus")
METHODS = ("ge2e", "campplus", "fused")
TARGET = 0.01  # share of the tune half's non-enrolled clips a threshold may flag
ENROL_S = 30.0


def _pyworld():
    """pyworld; its 0.3.5 __init__ asks pkg_resources for its version, which setuptools >= 81 no longer ships."""
    import importlib.util
    import sys
    import types

    try:
        import pyworld
    except ModuleNotFoundError as e:
        if e.name != "pkg_resources":
            raise
        if importlib.util.find_spec("pkg_resources") is None:
            stub = types.ModuleType("pkg_resources")
            stub.get_distribution = lambda name: types.SimpleNamespace(version="unknown")
            sys.modules["pkg_resources"] = stub
        import pyworld
    return pyworld


_ANALYSED: dict[str, tuple] = {}


def world(wav: np.ndarray, f0_scale: float = 1.0, formant: float = 1.0, tempo: float = 1.0) -> np.ndarray:
    """WORLD analysis-resynthesis: pitch times f0_scale, envelope stretched by `formant`, duration times `tempo`."""
    pw = _pyworld()

    x = wav.astype(np.float64)
    f0, t = pw.dio(x, SR, frame_period=5.0)
    f0 = pw.stonemask(x, f0, t, SR)
    sp = pw.cheaptrick(x, f0, t, SR)
    ap = pw.d4c(x, f0, t, SR)
    f0 = f0 * f0_scale
    if formant != 1.0:  # formants up: the envelope at bin k is the original's at k / formant
        bins = np.arange(sp.shape[1])
        src = np.clip(bins / formant, 0, sp.shape[1] - 1)
        sp = np.stack([np.interp(src, bins, row) for row in sp])
    if tempo != 1.0:  # frames resampled; pitch kept voiced/unvoiced by nearest frame
        n = int(round(len(f0) * tempo))
        pos = np.linspace(0, len(f0) - 1, n)
        near = np.round(pos).astype(int)
        f0 = f0[near]
        sp = np.stack([np.interp(pos, np.arange(len(sp)), col) for col in sp.T], axis=1)
        ap = np.stack([np.interp(pos, np.arange(len(ap)), col) for col in ap.T], axis=1)
    y = pw.synthesize(np.ascontiguousarray(f0), np.ascontiguousarray(sp), np.ascontiguousarray(ap), SR, 5.0)
    return (y / max(1.0, float(np.max(np.abs(y))))).astype(np.float32)


def _w(fn=None, **kw):
    def make(wav):
        y = world(wav, **kw)
        return fn(y) if fn else y
    return make


CONDITIONS = {
    "real": lambda wav: wav,
    "world": _w(),
    "world-pitch+3": _w(f0_scale=2 ** (3 / 12)),
    "world-formant": _w(formant=1.08),
    "world-tempo": _w(tempo=1.12),
    "world-mp3": _w(vd.mp3_32k),
    "world-opus": _w(vd.opus_12k),
    "world-phone": _w(vd.telephone),
    "world-noise": _w(vd.noise_10db),
    "world-reverb": _w(vd.reverb),
    "griffin-lim": vd.griffin_lim,
}



def rate(k: int, n: int) -> str:
    lo, hi = wilson(k, n)
    return f"{k:3d}/{n:<3d} {k / max(n, 1):6.1%} [{lo:5.1%}-{hi:5.1%}]"


class Embedder:
    """Segment embeddings of both encoders for a clip, cached on disk by clip id."""

    def __init__(self, cache: Path | None):
        self.enc = {name: voice_encoder(name) for name in ENCODERS}
        self.cache = cache
        if cache:
            cache.mkdir(parents=True, exist_ok=True)

    def segments(self, key: str, make) -> dict:
        """{'times': [n, 2], 'ge2e': [n, 256], 'campplus': [n, 192]} of the clip `make()` returns."""
        file = self.cache / (hashlib.sha1(key.encode()).hexdigest()[:16] + ".npz") if self.cache else None
        if file is not None and file.exists():
            with np.load(file) as d:
                return {k: d[k] for k in d.files}
        wav = make()
        out = {}
        for name, enc in self.enc.items():
            segs = enc.embed_segments(wav)
            out["times"] = np.array([[s.start, s.end] for s in segs], np.float64).reshape(-1, 2)
            out[name] = np.stack([s.vector for s in segs]) if segs else np.zeros((0, enc.dim), np.float32)
        if file is not None:
            np.savez(file, **out)
        return out


class Gallery:
    """Enrolled centroids and AS-norm statistics per encoder; scores segments per method."""

    def __init__(self, cents: dict[str, np.ndarray], cohort: dict | None = None):
        """:param cohort: encoder -> Cohort (default: the shipped ones)"""
        self.cents = cents
        self.cohort = cohort or {n: load_cohort(voice_encoder(n).model_id) for n in ENCODERS}
        self.stats = {n: self.cohort[n].stats(cents[n]) for n in ENCODERS}

    def norm(self, segs: dict) -> dict[str, np.ndarray]:
        """Method -> [segments, people] AS-norm scores (fused: their mean)."""
        out = {}
        for n in ENCODERS:
            v = segs[n]
            out[n] = as_norm(v @ self.cents[n].T, self.stats[n], self.cohort[n].stats(v)) if len(v) else \
                np.zeros((0, len(self.cents[n])))
        out["fused"] = (out["ge2e"] + out["campplus"]) / 2
        return out


def named(norm: np.ndarray, times: np.ndarray, threshold: float) -> set[int]:
    """The enrolled people (columns) a scan would name in a file, at `threshold`."""
    if not len(norm):
        return set()
    owner = assign(norm, threshold)
    out = set()
    for j in np.unique(owner[owner >= 0]):
        if spans(np.where(owner == j, norm[:, j], -np.inf), times, threshold):
            out.add(int(j))
    return out


def file_max(norm: np.ndarray, times: np.ndarray, grid: np.ndarray) -> float:
    """The highest grid threshold at which anyone is named (-inf when nobody ever is)."""
    best = -np.inf
    for t in grid:
        if named(norm, times, t):
            best = t
        else:
            break
    return best


class Audio:
    """Decoded recordings, kept until dropped (a recording serves every condition, then goes)."""

    def __init__(self):
        self.wavs: dict[Path, np.ndarray] = {}

    def __call__(self, p: Path) -> np.ndarray:
        from audit.media.audio import load_audio

        if p not in self.wavs:
            self.wavs[p] = load_audio(p)
        return self.wavs[p]


@dataclass
class Corpus:
    """Who is enrolled from which recordings, what is cloned, and which half each speaker is in."""

    names: list[str]  # enrolled speakers (test-other ids), in column order
    enrol: dict[str, list[Path]]
    probes: dict[str, list[Path]]
    impostors: list[Path]
    tune_spk: set[str]

    def items(self) -> list[tuple[Path, str, int]]:
        """(recording, half, true speaker column or -1) of every recording that is cloned."""
        out = [(p, "tune" if s in self.tune_spk else "report", self.names.index(s))
               for s in self.names for p in self.probes[s]]
        return out + [(p, "tune" if k % 2 == 0 else "report", -1) for k, p in enumerate(self.impostors)]


def corpus(data: Path, n_probes: int, n_impostors: int, load: Audio) -> Corpus:
    """Enrolment: first recordings up to ENROL_S of audio; the rest (last `n_probes`) are cloned."""
    test_dir, train_dir = data / "librispeech-test-other", data / "librispeech-train-clean"
    speakers = {d.name: sorted(d.glob("*.flac")) for d in sorted(test_dir.iterdir()) if d.is_dir()}
    names = sorted(speakers)
    train = sorted(train_dir.glob("*.flac"), key=lambda p: int(p.name.split("-")[0]))
    impostors = train[1::2][:n_impostors]  # odd positions: never in the shipped cohorts
    enrol, probes = {}, {}
    for s in names:
        files, have, i = speakers[s], 0.0, 0
        while have < ENROL_S and i < len(files) - n_probes:
            have += len(load(files[i])) / SR
            i += 1
        enrol[s], probes[s] = files[:i], files[-n_probes:]
    return Corpus(names, enrol, probes, impostors, set(names[0::2]))


def centroid(enc, wavs: list[np.ndarray]) -> np.ndarray:
    """The unit mean of the recordings' utterance vectors, as the store keeps a person's centroid."""
    row = np.mean([enc.embed_utterance(w) for w in wavs], axis=0)
    return (row / np.linalg.norm(row)).astype(np.float32)


def embed_clips(emb: Embedder, cor: Corpus, conditions: list[str], load: Audio, t0: float) -> list[tuple]:
    """Every clip: (condition, half, true speaker column or -1, segments, recording), recording by recording, every
    condition (one WORLD analysis per recording serves them all)."""
    clips = []
    items = cor.items()
    for i, (p, half, truth) in enumerate(items):
        for cond in conditions:
            segs = emb.segments(f"{cond}|{p.name}", lambda p=p, c=cond: CONDITIONS[c](load(p)))
            clips.append((cond, half, truth, segs, p))
        load.wavs.pop(p, None)
        if i % 10 == 9:
            print(f"  {i + 1}/{len(items)} recordings: {time.perf_counter() - t0:.0f} s", flush=True)
    load.wavs.clear()
    return clips


def tune(clips: list, scores: list, grid: np.ndarray) -> float:
    """The lowest grid threshold flagging at most TARGET of the tune half's non-enrolled clips (scores: one
    [segments, people] array per clip)."""
    imp = np.array([file_max(sc, c[3]["times"], grid) for c, sc in zip(clips, scores) if c[1] == "tune" and c[2] < 0])
    return float(min(t for t in grid if (imp >= t).sum() <= int(math.floor(TARGET * len(imp)))))


GRID = np.round(np.arange(0.0, 12.0, 0.05), 2)


def table(clips: list, scores: list, conditions: list[str], label: str, threshold: float,
          half: str = "report") -> np.ndarray:
    """Print per condition, on one half: clones flagged as their speaker, naming a wrong speaker, non-enrolled clips
    flagged; return the totals over clones (own, n, wrong, n, non-enrolled flagged, n)."""
    print(f"\n{label} ({half} half, threshold {threshold:.2f})")
    print(f"  {'condition':14s} {'clones flagged as the speaker':32s} {'clones naming a wrong speaker':32s} "
          f"{'non-enrolled clips flagged':32s}")
    tot = np.zeros(6, int)
    for cond in conditions:
        k = np.zeros(6, int)  # own, n_own, wrong, n_own, imp flagged, n_imp
        for c, sc in zip(clips, scores):
            if c[0] != cond or c[1] != half:
                continue
            who = named(sc, c[3]["times"], threshold)
            if c[2] >= 0:
                k += [c[2] in who, 1, bool(who - {c[2]}), 1, 0, 0]
            else:
                k += [0, 0, 0, 0, bool(who), 1]
        if cond != "real":
            tot += k
        print(f"  {cond:14s} {rate(k[0], k[1]):32s} {rate(k[2], k[3]):32s} {rate(k[4], k[5]):32s}")
    print(f"  {'all clones':14s} {rate(tot[0], tot[1]):32s} {rate(tot[2], tot[3]):32s} {rate(tot[4], tot[5]):32s}")
    return tot


def main() -> None:
    """Make the clones, embed, calibrate on the tune half, print the report half."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--cache", type=Path, default=None, help="keep segment embeddings here")
    ap.add_argument("--probes", type=int, default=4, help="recordings cloned per enrolled speaker")
    ap.add_argument("--impostors", type=int, default=40, help="non-enrolled train-clean speakers")
    ap.add_argument("--conditions", default=",".join(CONDITIONS))
    ap.add_argument("--rtf", action="store_true", help="also time each encoder on one core")
    ap.add_argument("--weights", action="store_true", help="also weighted fusions (w * GE2E + (1 - w) * CAM++, max)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    conditions = args.conditions.split(",")
    load = Audio()
    cor = corpus(args.data, args.probes, args.impostors, load)
    names, enrol = cor.names, cor.enrol
    emb = Embedder(args.cache)
    cents, by_len = {}, {}
    for n, enc in emb.enc.items():
        cents[n] = np.stack([centroid(enc, [load(p) for p in enrol[s]]) for s in names])
        for secs in (3.0, 10.0, 30.0):  # enrolment length: one vector from the first `secs` of enrolment audio
            rows = [enc.embed_utterance(np.concatenate([load(p) for p in enrol[s]])[: int(secs * SR)]) for s in names]
            by_len[(n, secs)] = np.stack(rows).astype(np.float32)
    gallery = Gallery(cents)
    print(f"{len(names)} enrolled speakers ({', '.join(f'{s}: {sum(len(load(p)) for p in enrol[s]) / SR:.0f} s' for s in names)}); "
          f"tune half {sorted(cor.tune_spk)}; {len(cor.impostors)} non-enrolled speakers; {len(conditions)} conditions")
    clips = embed_clips(emb, cor, conditions, load, t0)
    norms = [gallery.norm(c[3]) for c in clips]

    # Thresholds: the lowest flagging at most TARGET of the tune half's non-enrolled clips.
    thresholds = {m: tune(clips, [nm[m] for nm in norms], GRID) for m in METHODS}
    shipped = {"ge2e": config.VOICE_DEFAULTS["ge2e"][0], "campplus": config.VOICE_DEFAULTS["campplus"][0]}
    print(f"thresholds at <= {TARGET:.0%} of the tune half's non-enrolled clips flagged: "
          + ", ".join(f"{m} {t:.2f}" for m, t in thresholds.items())
          + "; shipped: " + ", ".join(f"{m} {t:.2f}" for m, t in shipped.items()))

    if args.weights:
        weighted(clips, norms, GRID)
    for m in ("ge2e", "campplus"):
        table(clips, [nm[m] for nm in norms], conditions, f"BEFORE: {m} at its shipped threshold", shipped[m])
    for m in METHODS:
        table(clips, [nm[m] for nm in norms], conditions, f"{m} at the tuned threshold", thresholds[m])
    for secs in (3.0, 10.0, 30.0):
        g = Gallery({n: by_len[(n, secs)] for n in ENCODERS})
        for m in METHODS:
            hits = n = wrong = 0
            for c in clips:
                if c[1] != "report" or c[2] < 0:
                    continue
                who = named(g.norm(c[3])[m], c[3]["times"], thresholds[m])
                hits, wrong, n = hits + (c[2] in who), wrong + bool(who - {c[2]}), n + 1
            print(f"enrolment {secs:4.0f} s, {m:8s}: all report-half clips of enrolled speakers flagged {rate(hits, n)}"
                  f", naming a wrong speaker {rate(wrong, n)}")
    if args.rtf:
        rtf(load(enrol[names[0]][0]))
    print(f"\n({time.perf_counter() - t0:.0f} s)")


def weighted(clips: list, norms: list, grid: np.ndarray) -> None:
    """Clones and non-enrolled clips flagged on the report half by weighted fusions, each at the threshold tuned
    on the tune half as the methods' are."""
    print("\nweighted fusions (threshold tuned on the tune half; report half)")
    fusions = {f"w_ge2e={w}": (lambda nm, w=w: w * nm["ge2e"] + (1 - w) * nm["campplus"]) for w in (0.5, 0.4, 0.3, 0.2)}
    fusions["max"] = lambda nm: np.maximum(nm["ge2e"], nm["campplus"])
    for label, fuse in fusions.items():
        scores = [fuse(nm) for nm in norms]
        threshold = tune(clips, scores, grid)
        k = np.zeros(5, int)  # own, clones, wrong, non-enrolled flagged, non-enrolled clips
        phone = 0
        for c, sc in zip(clips, scores):
            if c[1] != "report" or c[0] == "real":
                continue
            who = named(sc, c[3]["times"], threshold)
            if c[2] >= 0:
                k += [c[2] in who, 1, bool(who - {c[2]}), 0, 0]
                phone += c[0] == "world-phone" and c[2] in who
            else:
                k += [0, 0, 0, bool(who), 1]
        print(f"  {label:10s} threshold {threshold:.2f}: clones {rate(k[0], k[1])}, wrong speaker {k[2]}, "
              f"telephone {phone}, non-enrolled flagged {rate(k[3], k[4])}")


def rtf(wav: np.ndarray) -> None:
    """Seconds of audio embedded per second of one core's time (onnxruntime on one thread), per encoder."""
    wav = np.tile(wav, int(np.ceil(60 * SR / len(wav))))[: 60 * SR]
    for name in ENCODERS:
        enc = voice_encoder(name, threads=1)
        enc.embed_segments(wav[: 5 * SR])  # session start
        t = time.process_time()
        enc.embed_segments(wav)
        cpu = time.process_time() - t
        print(f"real-time factor per core, {name}: {60 / cpu:.0f}x (60 s of speech in {cpu:.2f} s of CPU time)")


if __name__ == "__main__":
    main()

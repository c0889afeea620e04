"""A GE2E -> CAM++ cascade for the fused voice encoder, measured on voice_clones.py's clips (not shipped).

Usage: python benchmarks/voice_cascade.py --cache DIR   (the --cache of a finished benchmarks/voice_clones.py run)

CAM++ would run only on segments whose GE2E AS-norm score for some enrolled person reaches a pre-threshold p; the
other segments score -inf for everyone. p is the highest (0.1 grid) at which no tune-half clone that the fusion
names is lost; printed for p and p +- 0.5 on both halves: clones named, wrong speakers, non-enrolled clips flagged
(fusion against cascade), and the share of segments CAM++ would still embed.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import voice_clones as vc  # noqa: E402
from audit import config  # noqa: E402
from audit.media.audio import load_audio  # noqa: E402

SR = 16000
ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--cache", type=Path, required=True)
ap.add_argument("--data", type=Path, default=vc.DEFAULT_DATA)
args = ap.parse_args()
emb = vc.Embedder(args.cache)
data = args.data
test_dir, train_dir = data / "librispeech-test-other", data / "librispeech-train-clean"
speakers = {d.name: sorted(d.glob("*.flac")) for d in sorted(test_dir.iterdir()) if d.is_dir()}
names = sorted(speakers)
train = sorted(train_dir.glob("*.flac"), key=lambda p: int(p.name.split("-")[0]))
impostors = train[1::2][:40]
enrol, probes = {}, {}
for s in names:
    files, have, i = speakers[s], 0.0, 0
    while have < vc.ENROL_S and i < len(files) - 4:
        have += len(load_audio(files[i])) / SR
        i += 1
    enrol[s], probes[s] = files[:i], files[-4:]
cents = {}
for n, enc in emb.enc.items():
    rows = [np.mean([enc.embed_utterance(load_audio(p)) for p in enrol[s]], axis=0) for s in names]
    cents[n] = np.stack([r / np.linalg.norm(r) for r in rows]).astype(np.float32)
g = vc.Gallery(cents)
tune = set(names[0::2])
items = [(p, "tune" if s in tune else "report", names.index(s)) for s in names for p in probes[s]]
items += [(p, "tune" if k % 2 == 0 else "report", -1) for k, p in enumerate(impostors)]
clips = []
for p, half, truth in items:
    for cond in vc.CONDITIONS:
        segs = emb.segments(f"{cond}|{p.name}", lambda c=cond, p=p: vc.CONDITIONS[c](load_audio(p)))
        clips.append((cond, half, truth, segs, g.norm(segs)))
thr = config.VOICE_DEFAULTS["fused"][0]


def casc(nm, p):
    """Cascade scores and the gate (segments CAM++ would embed)."""
    gate = nm["ge2e"].max(axis=1) >= p if len(nm["ge2e"]) else np.zeros(0, bool)
    out = np.where(gate[:, None], nm["fused"], -np.inf)
    return out, gate


def judge(half, p):
    """Counts for one half at pre-threshold p: [fused, cascade, n] per outcome, segments gated."""
    k = dict(own=[0, 0, 0, 0], wrong=[0, 0, 0, 0], imp=[0, 0, 0, 0], seg_imp=[0, 0], seg_own=[0, 0], lost=0)
    for cond, h, truth, segs, nm in clips:
        if h != half:
            continue
        cn, gate = casc(nm, p)
        a, b = vc.named(nm["fused"], segs["times"], thr), vc.named(cn, segs["times"], thr)
        key = "seg_imp" if truth < 0 else "seg_own"
        k[key][0] += int(gate.sum())
        k[key][1] += len(gate)
        if cond == "real":
            continue
        if truth >= 0:
            k["own"][0] += truth in a
            k["own"][1] += truth in b
            k["own"][2] += 1
            k["wrong"][0] += bool(a - {truth})
            k["wrong"][1] += bool(b - {truth})
            k["wrong"][2] += 1
            k["lost"] += (truth in a) and (truth not in b)
        else:
            k["imp"][0] += bool(a)
            k["imp"][1] += bool(b)
            k["imp"][2] += 1
    return k


grid = np.round(np.arange(-2.0, 6.0, 0.1), 2)
best = None
for p in grid:
    if judge("tune", p)["lost"] == 0:
        best = p
    else:
        break
print(f"fused threshold {thr}; highest pre-threshold losing no tune-half clone flagged by fusion: p = {best}")
for p in sorted({best, round(best - 0.5, 2), round(best + 0.5, 2)}):
    for half in ("tune", "report"):
        k = judge(half, p)
        fi, fo = k["seg_imp"][0] / max(1, k["seg_imp"][1]), k["seg_own"][0] / max(1, k["seg_own"][1])
        print(
            f"p={p:5.2f} {half:6s}: clones own fused {vc.rate(k['own'][0], k['own'][2])} cascade {vc.rate(k['own'][1], k['own'][2])} lost {k['lost']}; "
            f"wrong fused {k['wrong'][0]} cascade {k['wrong'][1]}; non-enrolled flagged fused {vc.rate(k['imp'][0], k['imp'][2])} cascade {vc.rate(k['imp'][1], k['imp'][2])}; "
            f"CAM++ runs on {fi:.1%} of non-enrolled segments ({k['seg_imp'][1]}), {fo:.1%} of enrolled speakers' ({k['seg_own'][1]})"
        )

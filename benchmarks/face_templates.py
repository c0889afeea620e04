"""How a person's face templates are scored: best sample, centroid, quality-weighted centroid; test-time flip;
aligned 112 px crops enrolled and scanned.

Usage: python benchmarks/face_templates.py [--data ../shared/data/faces/deepface] [--skip-aligned]

Part 1, scores (no store): every labelled shared photo showing one face is a probe, as it is and in four degraded
variants (face shrunk to 40 px, JPEG quality 15, blur, tight crop; benchmarks/composite_real.variant), searched
against each person's *other* photos (leave one photo out), two galleries: the original photos, and every gallery
photo replaced by one random degraded variant (a poor enrolment). Impostor scores: each probe against every other
person, plus the faces of photos nobody is labelled in. Methods: the best sample (max), the centroid (mean of the
unit templates), the centroid weighted by the recognizer's embedding norm (a quality measure), and the better of
best sample and centroid (tried in FaceMatcher, not kept: docs/accuracy-generated.md). Each with and without
test-time flip (the mirrored aligned crop embedded too, the two averaged, for probes and templates). Printed: rank-1 and above-threshold rate with
95 % Wilson bounds, the median genuine score, the impostor 99th percentile and how many impostors reach the
threshold; and the time flip adds per face.

Part 2, aligned crops through enrolment and scan: each photo's 112 px aligned crop written as a PNG; two folds per
person (alternate crops), each fold enrolled with audit.enroll_faces (hygiene on) and the other fold scanned with
audit.scan; printed: people who could enrol, and probes named right (95 % Wilson).
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from audit import config, media
from audit.config import MIN_FACE_PX
from audit.models.face import FaceModel

try:
    from composite_real import variant, wilson
except ImportError:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from composite_real import variant, wilson

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faces" / "deepface"
KINDS = ("photo", "small", "jpeg", "blur", "crop")
METHODS = ("max", "centroid", "norm-weighted", "max(sample, centroid)")


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def score(probe: np.ndarray, temps: np.ndarray, norms: np.ndarray, method: str) -> float:
    """One person's score for a probe under `method` (templates: unit rows; norms: their embedding norms)."""
    best = float((temps @ probe).max())
    cent = float(probe @ unit(temps.sum(0)))
    if method == "max":
        return best
    if method == "centroid":
        return cent
    if method == "norm-weighted":
        return float(probe @ unit((norms[:, None] * temps).sum(0)))
    return max(best, cent)


def embed(model: FaceModel, image: np.ndarray):
    """(embedding, flip-averaged embedding, norm) of the largest face, or None."""
    faces = model.analyze(image)
    if not faces:
        return None
    f = max(faces, key=lambda x: x.size)
    flipped = model.embed_crops([cv2.flip(f.crop, 1)])[0]
    return f.embedding, unit(f.embedding + flipped), f.norm


def part_scores(model: FaceModel, data: Path, ident: dict[str, str], thr: float) -> None:
    """Part 1: the methods on held-out photos and variants."""
    rec, kinds_of = {}, {}
    for name in sorted(ident):
        image = media.load_image(data / name)
        faces = model.analyze(image)
        if len(faces) != 1:
            continue
        for kind in KINDS:
            got = embed(model, variant(image, faces[0], kind))
            if got is not None:
                rec[(name, kind)] = got
                kinds_of.setdefault(name, []).append(kind)
    photos = sorted(kinds_of)
    people = sorted({ident[f] for f in photos})
    strangers = []
    for path in sorted(set(data.glob("*.jpg")) - {data / f for f in ident}) + config.sample_photos():
        for f in model.analyze(media.load_image(path)):
            if f.size >= MIN_FACE_PX:
                strangers.append((f.embedding, unit(f.embedding + model.embed_crops([cv2.flip(f.crop, 1)])[0])))
    rng = np.random.default_rng(0)
    poor = {f: rng.choice([k for k in kinds_of[f] if k != "photo"] or ["photo"]) for f in photos}
    print(f"{len(photos)} photos of {len(people)} people, {len(rec)} probes with variants, {len(strangers)} faces "
          f"of people nobody enrolled; threshold {thr}")
    for gallery in ("original", "poor"):
        for flip in (False, True):
            print(f"\ngallery {gallery}, flip {'on' if flip else 'off'}")
            for method in METHODS:
                right = n = 0
                genuine, impostor = [], []
                for (f, _kind), r in rec.items():
                    probe = r[1] if flip else r[0]
                    scores = {}
                    for q in people:
                        rows = [rec[(g, "photo" if gallery == "original" else poor[g])] for g in photos
                                if ident[g] == q and g != f]
                        if rows:
                            scores[q] = score(probe, np.stack([x[1] if flip else x[0] for x in rows]),
                                              np.array([x[2] for x in rows]), method)
                    truth = ident[f]
                    if truth not in scores:
                        continue
                    n += 1
                    right += max(scores, key=scores.get) == truth and scores[truth] >= thr
                    genuine.append(scores[truth])
                    impostor += [v for q, v in scores.items() if q != truth]
                for e, ef in strangers:
                    for q in people:
                        rows = [rec[(g, "photo" if gallery == "original" else poor[g])] for g in photos if ident[g] == q]
                        impostor.append(score(ef if flip else e, np.stack([x[1] if flip else x[0] for x in rows]),
                                              np.array([x[2] for x in rows]), method))
                lo, hi = wilson(right, n)
                imp = np.array(impostor)
                print(f"  {method:22s} right {right}/{n} ({right / n:.1%}, 95 % Wilson {lo:.1%}-{hi:.1%}); median "
                      f"genuine {np.median(genuine):.3f}; impostors: p99 {np.quantile(imp, 0.99):.3f}, "
                      f"{int((imp >= thr).sum())}/{len(imp)} at or above the threshold")
    crops = [model.analyze(media.load_image(data / p))[0].crop for p in photos[:32]]
    for label, batch in (("one crop per face", crops), ("with its mirror", crops + [cv2.flip(c, 1) for c in crops])):
        model.embed_crops(batch[:2])
        t = time.process_time()
        for _ in range(3):
            model.embed_crops(batch)
        print(f"recognition, {label}: {(time.process_time() - t) / 3 / len(crops) * 1000:.1f} ms CPU per face")


def part_aligned(model: FaceModel, data: Path, ident: dict[str, str]) -> None:
    """Part 2: aligned crops enrolled and scanned through the library."""
    import audit

    work = Path(tempfile.mkdtemp(prefix="aligned-"))
    files: dict[str, list[Path]] = {}
    for name in sorted(ident, key=lambda x: (ident[x], x)):
        faces = model.analyze(media.load_image(data / name))
        if len(faces) != 1:
            continue
        out = work / f"{ident[name]}-{Path(name).stem}.png"
        cv2.imwrite(str(out), faces[0].crop)
        files.setdefault(ident[name], []).append(out)
    enrolled_all, right, n = set(files), 0, 0
    for fold in (0, 1):
        with audit.open_store(work / f"store{fold}", key=None) as store:
            probes = {}
            for person, crops in files.items():
                enrol, probe = crops[fold::2], crops[1 - fold::2]
                try:
                    audit.enroll_faces(store, person, enrol)
                except audit.EnrollError as e:
                    print(f"  fold {fold}: {person} not enrolled ({e})")
                    enrolled_all.discard(person)
                    continue
                probes.update({str(p): person for p in probe})
            got: dict[str, set] = {}
            for f in audit.scan(store, list(probes), workers=1):
                if f.kind == "match":
                    got.setdefault(f.path, set()).add(f.person)
            for path, person in probes.items():
                n += 1
                right += got.get(path) == {person}
    lo, hi = wilson(right, n)
    print(f"\naligned 112 px crops: {len(enrolled_all)}/{len(files)} people enrolled in both folds; probes named "
          f"right (and no one else) {right}/{n} ({right / max(n, 1):.1%}, 95 % Wilson {lo:.1%}-{hi:.1%})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--skip-aligned", action="store_true")
    args = ap.parse_args()
    t0 = time.perf_counter()
    model = FaceModel()
    with open(args.data / "identities.csv", newline="") as f:
        ident = {r["file"].strip(): r["person"].strip() for r in csv.DictReader(f)}
    part_scores(model, args.data, ident, config.DEFAULT_FACE_THRESHOLD)
    if not args.skip_aligned:
        part_aligned(model, args.data, ident)
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()

"""Face swaps scored against the source person's other photos: does a scan name the person whose face was swapped in?

Usage: python benchmarks/face_swap.py [--data ../shared/data/faces/deepface] [--out DIR] [--workers 2]

A classical swap (swap_face): the project's own face model (audit.models.face.FaceModel) finds the 5 landmarks of
the largest face in the source and the target photo; the source photo is warped onto the target's landmarks by a
similarity transform (rotation, scale, shift; cv2.estimateAffinePartial2D); a mask, the convex hull of an ellipse
inside the target's face box and its landmarks, keeps the face only; OpenCV seamlessClone blends it in.

Protocol: every labelled person of the shared deepface photos whose photos show one face each holds one photo back
(the last by file name) and is enrolled from the rest with `audit.enroll_faces` (its hygiene applies). Each held-out
photo's face is swapped into every other such person's held-out photo, and the swaps are scanned with `audit.scan`
at the default threshold. So a swap is scored against the source person's *other* photos, never the photo its face
came from, and against the target's other photos, never the photo it was pasted into. The real held-out photos are scanned the same way, side by side.
Printed: swaps made, share matched to the source person (95 % Wilson interval), median margin of the source's score
over the threshold, files where the source is named only as a composite's contributor, files naming a wrong person
(the target, or anyone else, composite contributors included), for swaps and for real photos. A second pass scores
the same swaps directly (largest face's embedding against each person's other photos, best photo) to separate the
swap's identity from the scan's composite rule.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

try:
    from rates import wilson
except ImportError:  # imported from outside benchmarks/
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from rates import wilson

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faces" / "deepface"


def largest_face(model, image: np.ndarray):
    """The largest face the model finds, or None."""
    faces = model.analyze(image)
    return max(faces, key=lambda f: f.size) if faces else None


def face_mask(shape: tuple[int, ...], face) -> np.ndarray:
    """uint8 mask (255 inside) of the convex hull of an ellipse inside the face box and the face's landmarks."""
    x0, y0, x1, y1 = (float(v) for v in face.bbox[:4])
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 + 0.05 * (y1 - y0)
    t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    ring = np.stack([cx + 0.42 * (x1 - x0) * np.cos(t), cy + 0.45 * (y1 - y0) * np.sin(t)], axis=1)
    hull = cv2.convexHull(np.concatenate([ring, face.kps]).astype(np.int32))
    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, hull, 255)
    return mask


def swap_face(model, source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """target (BGR) with the largest face of source (BGR) warped onto its largest face and seamlessly cloned.

    ValueError when either photo has no face.
    """
    src, dst = largest_face(model, source), largest_face(model, target)
    if src is None or dst is None:
        raise ValueError("no face in the " + ("source" if src is None else "target"))
    m, _ = cv2.estimateAffinePartial2D(src.kps.astype(np.float32), dst.kps.astype(np.float32), method=cv2.LMEDS)
    h, w = target.shape[:2]
    warped = cv2.warpAffine(source, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    covered = cv2.warpAffine(np.full(source.shape[:2], 255, np.uint8), m, (w, h), flags=cv2.INTER_NEAREST)
    mask = cv2.erode(face_mask(target.shape, dst) & covered, np.ones((3, 3), np.uint8))
    # seamlessClone needs the mask's box strictly inside the picture: keep a 2 px border clear.
    mask[:2], mask[-2:], mask[:, :2], mask[:, -2:] = 0, 0, 0, 0
    x, y, bw, bh = cv2.boundingRect(mask)
    return cv2.seamlessClone(warped, target, mask, (x + bw // 2, y + bh // 2), cv2.NORMAL_CLONE)



def named(finding) -> set[str]:
    """Everyone a finding names: the matched person, or a composite's contributors."""
    return {finding.person} if finding.person else {c["person"] for c in finding.contributors or []}


def summary(label: str, files: dict[str, tuple[str, str | None]], found: dict[str, list]) -> None:
    """One block of figures: files maps a scanned path to (source person, target person or None)."""
    n = len(files)
    matched, margins, composite, wrong, target_named = 0, [], 0, 0, 0
    for path, (source, target) in files.items():
        rows = found.get(path, [])
        people = set().union(*(named(f) for f in rows)) if rows else set()
        hits = [f.similarity - f.threshold for f in rows if f.kind == "match" and f.person == source]
        if hits:
            matched += 1
            margins.append(max(hits))
        elif any(f.kind == "composite" and source in named(f) for f in rows):
            composite += 1
        wrong += bool(people - {source})
        target_named += target is not None and target in people
    lo, hi = wilson(matched, n)
    median = f"{np.median(margins):+.3f}" if margins else "n/a"
    print(f"{label}: {n} files; matched to the source person {matched}/{n} ({matched / max(n, 1):.1%}, 95 % Wilson "
          f"{lo:.1%}-{hi:.1%}); median margin over the threshold {median} (of the matched); otherwise named only "
          f"as a composite contributor {composite}; files naming a wrong person {wrong}"
          + (f" (the target in {target_named})" if any(t for _, t in files.values()) else ""))


def direct(model, swaps: dict[str, tuple[str, str | None]], people: dict[str, list[str]], images: dict) -> None:
    """The swaps' largest faces against each person's enrolled photos (best score), without the scan's rules."""
    # Neither the source's nor the target's enrolled photos hold any pixel of the swap: both came from held-out ones.
    from audit import config

    emb = {name: largest_face(model, images[name]).embedding for files in people.values() for name in files[:-1]}
    src, closer = [], 0
    for path, (s, t) in swaps.items():
        face = largest_face(model, cv2.imread(path))
        if face is None:
            continue
        a = max(float(face.embedding @ emb[x]) for x in people[s][:-1])
        b = max(float(face.embedding @ emb[x]) for x in people[t][:-1])
        src.append(a)
        closer += a > b
    k = sum(x >= config.DEFAULT_FACE_THRESHOLD for x in src)
    lo, hi = wilson(k, len(swaps))
    print(f"swaps scored directly: source's other photos at or above the threshold {k}/{len(swaps)} (95 % Wilson "
          f"{lo:.1%}-{hi:.1%}), median {np.median(src):.3f}; closer to the source than to the target's enrolled "
          f"photos {closer}/{len(swaps)}")


def main() -> None:
    """Enrol, swap, scan, print."""
    import audit
    from audit import config
    from audit.models.face import FaceModel

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--out", type=Path, default=None, help="keep the swaps and the store here")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    t0 = time.time()
    work = args.out or Path(tempfile.mkdtemp(prefix="face-swap-"))
    (work / "swaps").mkdir(parents=True, exist_ok=True)
    model = FaceModel()
    people: dict[str, list[str]] = {}
    with open(args.data / "identities.csv") as f:
        for row in csv.DictReader(f):
            people.setdefault(row["person"], []).append(row["file"])
    images = {name: cv2.imread(str(args.data / name)) for files in people.values() for name in files}
    single = {name for name, img in images.items() if len(model.analyze(img)) == 1}
    people = {p: sorted((x for x in files if x in single), key=lambda x: int("".join(filter(str.isdigit, x))))
              for p, files in people.items()}
    people = {p: files for p, files in people.items() if len(files) >= 2}
    held = {p: files[-1] for p, files in people.items()}
    with audit.open_store(work / "store", key=None) as store:
        enrolled = set()
        for p, files in people.items():
            try:
                if audit.enroll_faces(store, p, [args.data / x for x in files[:-1]]).added:
                    enrolled.add(p)
            except audit.EnrollError as e:
                print(f"{p}: not enrolled ({e})")
        swaps: dict[str, tuple[str, str | None]] = {}
        for s in sorted(enrolled):
            for t in sorted(enrolled - {s}):
                out = work / "swaps" / f"{s}-into-{t}.png"
                try:
                    cv2.imwrite(str(out), swap_face(model, images[held[s]], images[held[t]]))
                except ValueError:
                    continue
                swaps[str(out)] = (s, t)
        real = {str(args.data / held[p]): (p, None) for p in sorted(enrolled)}
        found: dict[str, list] = {}
        for f in audit.scan(store, list(swaps) + list(real), workers=args.workers):
            if f.kind != "error":
                found.setdefault(f.path, []).append(f)
        print(f"{len(enrolled)} people enrolled ({sum(len(v) - 1 for v in people.values())} photos offered), "
              f"threshold {config.DEFAULT_FACE_THRESHOLD} (default)")
        summary("swaps", swaps, found)
        summary("real held-out photos", real, found)
    direct(model, swaps, people, images)
    print(f"({time.time() - t0:.0f} s; swaps in {work / 'swaps'})")


if __name__ == "__main__":
    main()

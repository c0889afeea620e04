"""likeness-audit against the peer `face_recognition` (dlib) on the shared photos: accuracy and scan speed.

Usage: python benchmarks/peer_face_recognition.py [--data ../shared/data/faces/deepface] [--venv /tmp/fr-venv]

The peer runs in its own virtual environment (created on first use with `face_recognition`, dlib from the
`dlib-bin` wheel and the weights of `face_recognition_models`; face_recognition itself is installed with --no-deps
because it asks for the `dlib` source distribution). Both tools embed the largest face of every photo in pairs.csv:
ROC AUC and TAR at FAR 1 % / 0.1 % (the peer's score is minus the Euclidean distance of its 128-d encodings, ours
the cosine of ArcFace embeddings). Speed: a known folder (one photo per person, named after the person) against an
unknown folder (every other labelled photo), as whole commands (model loading included): `face_recognition KNOWN
UNKNOWN` (which encodes the known folder too) against `likeness-audit scan UNKNOWN` alone and against the
`likeness-audit enroll` commands (one per person) plus the scan, on one core and on all cores (--cpus / --workers).
Ratios are likeness-audit / peer (above 1: likeness-audit is better or faster).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from audit import media
from audit.models.face import FaceModel

sys.path.insert(0, str(Path(__file__).resolve().parent))
from face_accuracy import roc_auc, tar_at_far

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faces" / "deepface"
PEER_PACKAGES = ["dlib-bin", "face_recognition_models", "Click>=6.0", "Pillow", "numpy", "setuptools<81"]

# Runs inside the peer's venv: file list on stdin, {file: encoding or null} on stdout.
PEER_EMBED = r"""
import json, sys
import face_recognition
out = {}
for path in json.load(sys.stdin):
    img = face_recognition.load_image_file(path)
    locs = face_recognition.face_locations(img)
    if not locs:
        out[path] = None
        continue
    loc = max(locs, key=lambda l: (l[2] - l[0]) * (l[1] - l[3]))
    out[path] = face_recognition.face_encodings(img, [loc])[0].tolist()
json.dump(out, sys.stdout)
"""


def peer_venv(venv: Path) -> Path:
    """The peer's Python, installing it into its own venv when missing."""
    py = venv / "bin" / "python"
    if py.exists() and subprocess.run([py, "-c", "import face_recognition"], capture_output=True, check=False).returncode == 0:
        return py
    print(f"installing face_recognition into {venv} ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(py), "-m", "pip", "install", "-q"]
    subprocess.run(pip + PEER_PACKAGES, check=True)
    subprocess.run(pip + ["--no-deps", "face_recognition"], check=True)
    return py


def versions(py: Path) -> str:
    code = ("import dlib; from importlib.metadata import version as v; "
            "print(f\"face_recognition {v('face_recognition')}, dlib {dlib.__version__} (dlib-bin)\")")
    return subprocess.run([py, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def peer_embed(py: Path, files: list[Path]) -> dict[str, np.ndarray | None]:
    out = subprocess.run([py, "-c", PEER_EMBED], input=json.dumps([str(f) for f in files]), capture_output=True,
                         text=True, check=True).stdout
    return {Path(k).name: (np.array(v) if v is not None else None) for k, v in json.loads(out).items()}


def ours_embed(files: list[Path]) -> dict[str, np.ndarray | None]:
    model = FaceModel()
    out = {}
    for f in files:
        faces = model.analyze(media.load_image(f))
        out[f.name] = max(faces, key=lambda x: x.size).embedding if faces else None
    return out


def accuracy(title: str, pairs: list[tuple[str, str, int]], peer: dict, ours: dict) -> None:
    """Print ROC AUC and TAR at FAR 1 % / 0.1 % of both tools on the pairs both found faces for."""
    usable = [(a, b, s) for a, b, s in pairs if all(e.get(x) is not None for e in (peer, ours) for x in (a, b))]
    rows = {}
    for label, emb, score in (("peer", peer, lambda x, y: -float(np.linalg.norm(x - y))),
                              ("ours", ours, lambda x, y: float(x @ y))):
        gen = np.array([score(emb[a], emb[b]) for a, b, s in usable if s == 1])
        imp = np.array([score(emb[a], emb[b]) for a, b, s in usable if s == 0])
        rows[label] = [roc_auc(gen, imp)] + [tar_at_far(gen, imp, far)[0] for far in (0.01, 0.001)]
    n_gen = sum(s for _, _, s in usable)
    print(f"\naccuracy on {title} ({len(usable)} of {len(pairs)} pairs where both found a face: {n_gen} genuine, "
          f"{len(usable) - n_gen} impostor)")
    print(f"  {'':14s} {'peer':>8s} {'ours':>8s} {'ours/peer':>9s}")
    for i, name in enumerate(("ROC AUC", "TAR @ FAR 1%", "TAR @ FAR 0.1%")):
        p, o = rows["peer"][i], rows["ours"][i]
        print(f"  {name:14s} {p:8.4f} {o:8.4f} {o / p if p else float('nan'):9.3f}")


def timed(cmd: list[str], env: dict | None = None) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--venv", type=Path, default=Path(tempfile.gettempdir()) / "face-recognition-peer-venv")
    args = ap.parse_args()
    if not (args.data / "pairs.csv").exists():
        raise SystemExit(f"shared data not found at {args.data}")
    py = peer_venv(args.venv)
    print(f"peer: {versions(py)} ({args.venv}); ours: likeness-audit, w600k_mbf; {os.cpu_count()} cores")

    with open(args.data / "pairs.csv", newline="") as f:
        pairs = [(r["file_x"].strip(), r["file_y"].strip(), int(r["same_person"])) for r in csv.DictReader(f)]
    with open(args.data / "identities.csv", newline="") as f:
        ident = {r["file"].strip(): r["person"].strip() for r in csv.DictReader(f)}
    files = sorted({args.data / a for a, _, _ in pairs} | {args.data / b for _, b, _ in pairs}
                   | {args.data / f for f in ident})

    t = time.perf_counter()
    peer = peer_embed(py, files)
    t_peer = time.perf_counter() - t
    t = time.perf_counter()
    ours = ours_embed(files)
    t_ours = time.perf_counter() - t
    print(f"embedding {len(files)} photos (one process each): peer {t_peer:.1f} s, ours {t_ours:.1f} s; "
          f"no face: peer {sum(v is None for v in peer.values())}, ours {sum(v is None for v in ours.values())}")

    labelled = sorted(f for f in ident if (args.data / f) in files)
    all_pairs = [(a, b, int(ident[a] == ident[b])) for i, a in enumerate(labelled) for b in labelled[i + 1:]]
    for title, chosen in (("pairs.csv", pairs), ("all labelled pairs", all_pairs)):
        accuracy(title, chosen, peer, ours)

    # Speed: known folder (one photo per person) vs unknown folder (every other labelled photo).
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        known, unknown = tmp / "known", tmp / "unknown"
        known.mkdir()
        unknown.mkdir()
        seen = set()
        for f in sorted(ident):
            p = ident[f]
            if p not in seen:
                seen.add(p)
                shutil.copy(args.data / f, known / f"{p}.jpg")
            else:
                shutil.copy(args.data / f, unknown / f)
        n = len(list(unknown.iterdir()))
        cli = Path(sys.executable).with_name("likeness-audit")
        fr = py.with_name("face_recognition")
        print(f"\nspeed: {len(seen)} known photos, {n} unknown photos, whole commands (model loading included)")
        print(f"  {'':8s} {'peer img/s':>10s} {'ours: scan':>10s} {'ratio':>6s} {'enroll+scan':>11s} {'ratio':>6s}")
        for cores in (1, os.cpu_count() or 1):
            env = dict(os.environ, AUDIT_HOME=str(tmp / f"store{cores}"))
            t_fr = timed([str(fr), "--cpus", str(cores), str(known), str(unknown)])
            t = time.perf_counter()
            for person_file in sorted(known.iterdir()):
                subprocess.run([str(cli), "enroll", "face", person_file.stem, str(person_file), "--pick", "largest"],
                               check=True, capture_output=True, env=env)
            t_enroll = time.perf_counter() - t
            t_scan = timed([str(cli), "scan", str(unknown), "--workers", str(cores), "--quiet"], env)
            t_la = t_enroll + t_scan
            print(f"  {cores} core{'s' if cores > 1 else ' '}  {n / t_fr:10.2f} {n / t_scan:10.2f} {t_fr / t_scan:6.2f}"
                  f" {n / t_la:11.2f} {t_fr / t_la:6.2f}   (peer {t_fr:.1f} s; ours scan {t_scan:.1f} s, "
                  f"enroll {t_enroll:.1f} s in {len(seen)} commands)")


if __name__ == "__main__":
    main()

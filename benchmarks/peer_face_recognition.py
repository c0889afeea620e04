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

Speed runs on two sets, each in one run, the two tools interleaved:
- shared: the shared photos as they are (mostly 400-600 px, faces of 100-400 px); 13 known, 48 unknown;
- small: photos as people mostly have them, faces of 150-250 px: every labelled photo cropped around its largest face
  (1.4-2.2 face widths of context) and resized so the face is 150, 183, 216 or 250 px wide (4 crops a photo, 244
  files). The known folder holds 37 "people": the shared set has only 13 real people, so each person's photos are
  split into separate enrolments (person-1, person-2, ...: 37 of the 61 labelled photos, one photo each), which is
  what matters for speed (37 enrol commands, 37 faces the peer encodes); enrol runs with --force, since person-2
  looks like person-1 (the check it skips is one search).
One-file commands: the wall time of `likeness-audit enroll` and `scan` of one photo (median of --repeat), with
their CPU time. The load average (`uptime`) is printed with every figure. Bytecode is compiled first and
PYTHONDONTWRITEBYTECODE is dropped for the commands timed, as an installed package has its .pyc files.
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


CPU = {"total": 0.0}  # CPU seconds of every command timed so far (children's user + system)


def timed(cmd: list[str], env: dict | None = None) -> float:
    """Wall seconds of a command; its CPU seconds are added to CPU["total"]."""
    before = os.times()
    t = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    after = os.times()
    CPU["total"] += after.children_user + after.children_system - before.children_user - before.children_system
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed: {done.stderr.strip()}")
    return wall


def cpu_since(start: float) -> float:
    """CPU seconds of the commands timed since CPU["total"] was `start`."""
    return CPU["total"] - start


def load() -> str:
    """The 1-minute load average, to print beside every figure (the machine may be shared)."""
    return f"load {os.getloadavg()[0]:.2f}"


def small_set(data: Path, ident: dict[str, str], out: Path) -> list[Path]:
    """Crops of every labelled photo around its largest face, resized to faces of 150-250 px (4 a photo)."""
    import cv2

    model = FaceModel()
    files = []
    for f in sorted(ident):
        image = media.load_image(data / f)
        faces = model.analyze(image)
        if not faces:
            continue
        x1, y1, x2, y2 = max(faces, key=lambda x: x.size).bbox
        cx, cy, side = (x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1)
        for i, (face_px, context) in enumerate(((150, 1.4), (183, 2.2), (216, 1.6), (250, 1.8))):
            half = side * context / 2
            a, b = int(max(0, cx - half)), int(max(0, cy - half))
            crop = image[b:int(min(image.shape[0], cy + half)), a:int(min(image.shape[1], cx + half))]
            k = face_px / side
            crop = cv2.resize(crop, (max(1, round(crop.shape[1] * k)), max(1, round(crop.shape[0] * k))),
                              interpolation=cv2.INTER_AREA)
            path = out / f"{Path(f).stem}-{i}.jpg"
            cv2.imwrite(str(path), crop, [cv2.IMWRITE_JPEG_QUALITY, 90])
            files.append(path)
    return files


def known_people(data: Path, ident: dict[str, str], count: int) -> dict[str, Path]:
    """`count` enrolments, one photo each: every person once, then their other photos as person-2, person-3..."""
    by_person: dict[str, list[str]] = {}
    for f in sorted(ident):
        by_person.setdefault(ident[f], []).append(f)
    chosen: dict[str, Path] = {}
    for k in range(max(len(v) for v in by_person.values())):
        for person, photos in sorted(by_person.items()):
            if k < len(photos) and len(chosen) < count:
                chosen[f"{person}-{k + 1}"] = data / photos[k]
    return chosen


def speed(title: str, py: Path, known: dict[str, Path], unknown: list[Path], tmp: Path, env: dict,
          core_counts: list[int]) -> None:
    """Peer (`face_recognition KNOWN UNKNOWN`) against our scan and enrol commands + scan, 1 core and all."""
    kdir, udir = tmp / f"known-{title}", tmp / f"unknown-{title}"
    kdir.mkdir()
    udir.mkdir()
    for name, f in known.items():
        shutil.copy(f, kdir / f"{name}.jpg")
    for f in unknown:
        shutil.copy(f, udir / f.name)
    n = len(unknown)
    cli = Path(sys.executable).with_name("likeness-audit")
    fr = py.with_name("face_recognition")
    print(f"\nspeed, {title}: {len(known)} known photos, {n} unknown photos, whole commands (model loading included)")
    print(f"  {'':8s} {'peer img/s':>10s} {'ours: scan':>10s} {'ratio':>6s} {'enroll+scan':>11s} {'ratio':>6s}")
    for cores in core_counts:
        # One core: the commands are pinned to CPU 0 (the peer's --cpus 1 and our --workers 1 also use one).
        pin = ["taskset", "-c", "0"] if cores == 1 and shutil.which("taskset") else []
        e = dict(env, AUDIT_HOME=str(tmp / f"store-{title}-{cores}"))
        c0 = CPU["total"]
        t_fr = timed(pin + [str(fr), "--cpus", str(cores), str(kdir), str(udir)])
        c_fr, c0 = cpu_since(c0), CPU["total"]
        t_enroll = sum(timed(pin + [str(cli), "enroll", "face", f.stem, str(f), "--pick", "largest", "--force"], e)
                       for f in sorted(kdir.iterdir()))
        c_enroll, c0 = cpu_since(c0), CPU["total"]
        t_scan = timed(pin + [str(cli), "scan", str(udir), "--workers", str(cores), "--quiet"], e)
        c_scan = cpu_since(c0)
        t_la = t_enroll + t_scan
        print(f"  {cores} core{'s' if cores > 1 else ' '}  {n / t_fr:10.2f} {n / t_scan:10.2f} {t_fr / t_scan:6.2f}"
              f" {n / t_la:11.2f} {t_fr / t_la:6.2f}   (peer {t_fr:.1f} s; ours scan {t_scan:.1f} s, "
              f"enroll {t_enroll:.1f} s in {len(known)} commands; {load()})", flush=True)
        # On a loaded machine wall time measures the queue; CPU seconds are the work each tool asked for. One core
        # only: the peer's worker processes (--cpus 2) are not waited for, so their CPU time is not counted.
        if cores == 1:
            print(f"  {'':8s} CPU seconds: peer {c_fr:.1f}, scan {c_scan:.1f} (ratio {c_fr / c_scan:.2f}), enroll "
                  f"{c_enroll:.1f} (enroll+scan ratio {c_fr / (c_enroll + c_scan):.2f})", flush=True)


def one_file(photo: Path, tmp: Path, env: dict, repeat: int) -> None:
    """Wall and CPU seconds of one-photo `enroll` and `scan` commands, medians of `repeat`, pinned to one core."""
    cli = Path(sys.executable).with_name("likeness-audit")
    pin = ["taskset", "-c", "0"] if shutil.which("taskset") else []
    e = dict(env, AUDIT_HOME=str(tmp / "store-one"))
    subprocess.run([str(cli), "enroll", "face", "first", str(photo)], check=True, capture_output=True, env=e)
    rows: dict[str, list[tuple[float, float]]] = {"enroll": [], "scan": []}
    for i in range(repeat):
        copy = tmp / f"one-{i}.jpg"
        copy.write_bytes(photo.read_bytes() + bytes([i]))  # a new file each time: a file is enrolled once
        for kind, cmd in (("enroll", ["enroll", "face", f"p{i}", str(copy), "--force"]),
                          ("scan", ["scan", str(copy)])):
            before = os.times()
            wall = timed(pin + [str(cli)] + cmd, e)
            after = os.times()
            rows[kind].append((wall, after.children_user + after.children_system
                               - before.children_user - before.children_system))
    print(f"\none-file commands ({photo.name}, pinned to one core, median of {repeat}; {load()})")
    for kind, r in rows.items():
        wall, cpu = np.median(np.array(r), axis=0)
        print(f"  {kind:7s} {wall:5.2f} s wall ({cpu:.2f} s CPU)   goal <= 0.8 s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--venv", type=Path, default=Path(tempfile.gettempdir()) / "fr-venv")
    ap.add_argument("--sets", nargs="+", choices=["shared", "small"], default=["shared", "small"])
    ap.add_argument("--repeat", type=int, default=5, help="one-file commands timed this many times each")
    ap.add_argument("--no-accuracy", action="store_true", help="speed only")
    ap.add_argument("--cores", nargs="+", type=int, default=[1, os.cpu_count() or 1], help="core counts to time")
    ap.add_argument("--no-one-file", action="store_true", help="skip the one-file command timings")
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

    if not args.no_accuracy:
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

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(media.__file__).parents[1])],
                       check=True, capture_output=True)
        if not args.no_one_file:
            one_file(args.data / sorted(ident)[0], tmp, env, args.repeat)
        if "shared" in args.sets:
            first = {}
            for f in sorted(ident):
                first.setdefault(ident[f], args.data / f)
            speed("shared", py, first, [args.data / f for f in sorted(ident) if args.data / f not in first.values()],
                  tmp, env, args.cores)
        if "small" in args.sets:
            (tmp / "small").mkdir()
            speed("small", py, known_people(args.data, ident, 37), small_set(args.data, ident, tmp / "small"), tmp,
                  env, args.cores)


if __name__ == "__main__":
    main()

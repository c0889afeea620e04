"""What cutting evidence at scan time costs: analysis of the shared photos with no pictures, with the face crops only,
and with the crops and the whole picture with the face boxed, side by side in one run (alternating rounds, best of
each), and what the pictures weigh.

Usage: nice -n 10 python benchmarks/evidence_cost.py [--data DIR] [--rounds 3]
One process, one onnxruntime thread; the time is decode + detection + embedding (+ the crops), no store search.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from audit.scan import analyze
from audit.scan.options import ScanOptions

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faces" / "deepface"


MODES = {0: "without pictures", 1: "with crops only (before)", 2: "with crops and whole pictures (now)"}


def one_pass(analyzer: analyze.Analyzer, files: list[Path], mode: int) -> tuple[float, int, int, int]:
    """(seconds, faces, crop bytes, whole-picture bytes) for one pass over the files."""
    cut, scene = analyze._crop, analyze._scene
    if mode < 1:
        analyze._crop = lambda image, bbox: None
    if mode < 2:
        analyze._scene = lambda image: False
    try:
        t = time.perf_counter()
        results = [analyzer(p) for p in files]
        secs = time.perf_counter() - t
    finally:
        analyze._crop, analyze._scene = cut, scene
    faces = [f for r in results for f in r.faces]
    return secs, len(faces), sum(len(f.crop or b"") for f in faces), sum(len(f.scene or b"") for f in faces)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    files = sorted(args.data.glob("*.jpg"))
    print(f"load before: {os.getloadavg()[0]:.1f} (1 min); {len(files)} photos from {args.data}")
    analyzer = analyze.Analyzer(ScanOptions(threads=1))
    analyzer(files[0])  # models loaded outside the timing
    best = dict.fromkeys(MODES, float("inf"))
    for _ in range(args.rounds):
        for mode in MODES:
            secs, faces, crops, scenes = one_pass(analyzer, files, mode)
            best[mode] = min(best[mode], secs)
    print("| analysis of the photos | seconds | ms per image |\n|---|---:|---:|")
    for mode, label in MODES.items():
        print(f"| {label} | {best[mode]:.2f} | {best[mode] / len(files) * 1000:.1f} |")
    print(f"{faces} faces; crops {(best[1] - best[0]) / faces * 1000:.2f} ms and {crops / faces / 1024:.1f} KiB a "
          f"face; whole pictures {(best[2] - best[1]) / faces * 1000:.2f} ms and {scenes / faces / 1024:.1f} KiB a "
          f"face; ratio now / without pictures {best[2] / best[0]:.3f}, now / crops only {best[2] / best[1]:.3f}")
    print(f"load after: {os.getloadavg()[0]:.1f} (1 min)")


if __name__ == "__main__":
    main()

"""What cutting evidence at scan time costs: analysis of the shared photos with and without the face crops, side by
side in one run (alternating rounds, best of each), and what the record weighs.

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


def one_pass(analyzer: analyze.Analyzer, files: list[Path], crops: bool) -> tuple[float, int, int]:
    """(seconds, faces, crop bytes) for one pass over the files."""
    cut = analyze._crop
    if not crops:
        analyze._crop = lambda image, bbox: None
    try:
        t = time.perf_counter()
        results = [analyzer(p) for p in files]
        secs = time.perf_counter() - t
    finally:
        analyze._crop = cut
    faces = sum(len(r.faces) for r in results)
    return secs, faces, sum(len(f.crop or b"") for r in results for f in r.faces)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    files = sorted(args.data.glob("*.jpg"))
    print(f"load before: {os.getloadavg()[0]:.1f} (1 min); {len(files)} photos from {args.data}")
    analyzer = analyze.Analyzer(ScanOptions(threads=1))
    analyzer(files[0])  # models loaded outside the timing
    best = {True: float("inf"), False: float("inf")}
    for _ in range(args.rounds):
        for crops in (False, True):
            secs, faces, size = one_pass(analyzer, files, crops)
            best[crops] = min(best[crops], secs)
            if crops:
                kept = size
    per = (best[True] - best[False]) / faces * 1000
    print("| analysis of the photos | seconds | ms per image |\n|---|---:|---:|")
    for crops in (False, True):
        label = "with evidence crops (now)" if crops else "without crops (before)"
        print(f"| {label} | {best[crops]:.2f} | {best[crops] / len(files) * 1000:.1f} |")
    print(f"ratio with / without: {best[True] / best[False]:.3f}; {faces} faces, crops {per:.2f} ms a face, "
          f"{kept / faces / 1024:.1f} KiB a face")
    print(f"load after: {os.getloadavg()[0]:.1f} (1 min)")


if __name__ == "__main__":
    main()

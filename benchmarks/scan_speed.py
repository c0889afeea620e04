"""End-to-end scan speed (decode + detect + align + embed + search) on the shared photos.

Usage: python benchmarks/scan_speed.py [--data DIR] [--repeat N]
Scans the photo folder N times over (as N copies, each made distinct by an appended byte) with 1 and 2 worker processes, and with one
process of 2 onnxruntime threads, and prints images/s for each.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import audit

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faces" / "deepface"


def timed_scan(home: Path, paths: list[Path], workers: int, threads: int) -> tuple[float, audit.ScanSummary]:
    """Seconds for one scan of the paths (store opening and model loading included)."""
    t = time.perf_counter()
    store = audit.open_store(home, threads=threads)
    run = audit.scan(store, paths, workers=workers, cache=False)
    for _ in run:
        pass
    return time.perf_counter() - t, run.summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--repeat", type=int, default=4)
    args = ap.parse_args()
    photos = sorted(args.data.glob("*.jpg"))
    if not photos:
        raise SystemExit(f"no photos in {args.data}")
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "store"
        audit.enroll_faces(audit.open_store(home), "p1", photos[:1], pick="largest")
        files = []
        for r in range(args.repeat):
            for p in photos:
                copy = Path(tmp) / f"{r}-{p.name}"
                copy.write_bytes(p.read_bytes() + bytes([r]))  # distinct bytes: identical files are analysed once
                files.append(copy)
        print(f"{len(files)} images ({len(photos)} photos x {args.repeat}), {os.cpu_count()} cores")
        for workers, threads in ((1, 1), (1, 2), (2, 1)):
            secs, s = timed_scan(home, files, workers, threads)
            print(f"  {workers} process(es) x {threads} thread(s): {s.files / secs:6.1f} images/s "
                  f"({s.faces} faces, {secs:.1f} s, worker start-up included)")


if __name__ == "__main__":
    main()

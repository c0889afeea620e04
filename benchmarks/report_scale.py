"""Size and render time of the HTML evidence report for 10,000 findings.

Usage: nice -n 10 python benchmarks/report_scale.py [--data DIR] [--findings 10000]
All 13 shared people are enrolled (one photo each); the 64 shared photos are scanned for real findings, with the
pictures the scan cut, which are then repeated under other paths (the same SHA-256 and pictures) up to the count
asked for, so the page groups identical files as it would in an archive. Rendering takes everything from the
evidence record (audit.Evidence): no media is read again. The sidecar's size is printed too.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import audit
from audit.scan.run import reference_crops

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faces" / "deepface"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--findings", type=int, default=10_000)
    args = ap.parse_args()
    import csv

    people: dict[str, list[str]] = {}
    with open(args.data / "identities.csv") as f:
        for row in csv.DictReader(f):
            people.setdefault(row["person"], []).append(row["file"])
    print(f"load before: {os.getloadavg()[0]:.1f} (1 min)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        store = audit.open_store(tmp / "store")
        for person, files in sorted(people.items()):
            audit.enroll_faces(store, person, [args.data / sorted(files)[0]], name=person.title(), pick="largest")
        run = audit.scan(store, args.data, cache=False)
        base = [f for f in run if f.kind != "error"]
        print(f"{len(base)} real findings in {len(list(args.data.glob('*.jpg')))} photos")
        rows, pics, copy = [], [], 0
        while len(rows) < args.findings:
            for f in base[: args.findings - len(rows)]:
                rows.append({**f.to_dict(), "path": f"copy{copy}/{Path(f.path).name}"})
                pics.append(f.pictures)
            copy += 1
        evidence = audit.Evidence(rows, pics, run.run_info(), reference_crops(store, rows))
        files = len({r["path"] for r in rows})
        contents = len({r["sha256"] for r in rows})
        out = tmp / "report.html"
        t = time.perf_counter()
        audit.write_record(evidence, out)
        secs = time.perf_counter() - t
        size = out.stat().st_size
        page = out.read_text()
        t = time.perf_counter()
        audit.write_record(evidence, tmp / "findings.parquet")
        table_secs = time.perf_counter() - t
        side = (tmp / "findings.parquet.evidence").stat().st_size
        print(f"{len(rows):,} findings, {files:,} files, {contents} distinct contents, {len(people)} people")
        print("| findings | HTML size | render time | <details> | <img> |\n|---:|---:|---:|---:|---:|")
        print(f"| {len(rows):,} | {size / 2**20:.1f} MiB | {secs:.1f} s | {page.count('<details')} | "
              f"{page.count('<img')} |")
        print(f"Parquet + evidence sidecar: {table_secs:.1f} s, sidecar {side / 2**20:.2f} MiB "
              f"({len({id(p) for p in pics if p})} distinct pictures, stored once each)")
    print(f"load after: {os.getloadavg()[0]:.1f} (1 min)")


if __name__ == "__main__":
    main()

"""Size and render time of the HTML evidence report for 10,000 findings.

Usage: nice -n 10 python benchmarks/report_scale.py [--data DIR] [--findings 10000]
All 13 shared people are enrolled (one photo each); the 64 shared photos are scanned for real findings, which are
then repeated over symlinked copies of the photos (each copy its own path, the same SHA-256) up to the count asked
for, so the page re-reads real files for its crops and groups identical files as it would in an archive.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import audit

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
        base = [f.to_dict() for f in audit.scan(store, args.data, cache=False) if f.kind != "error"]
        print(f"{len(base)} real findings in {len(list(args.data.glob('*.jpg')))} photos")
        rows, copy = [], 0
        while len(rows) < args.findings:
            folder = tmp / f"copy{copy}"
            folder.mkdir()
            for f in base:
                link = folder / Path(f["path"]).name
                if not link.exists():
                    os.symlink(Path(f["path"]).resolve(), link)
                rows.append({**f, "path": str(link)})
                if len(rows) == args.findings:
                    break
            copy += 1
        files = len({r["path"] for r in rows})
        contents = len({r["sha256"] for r in rows})
        out = tmp / "report.html"
        t = time.perf_counter()
        audit.write_findings(rows, out, store=store, meta={"files_scanned": files})
        secs = time.perf_counter() - t
        size = out.stat().st_size
        page = out.read_text()
        print(f"{len(rows):,} findings, {files:,} files, {contents} distinct contents, {len(people)} people")
        print("| findings | HTML size | render time | <details> | <img> |\n|---:|---:|---:|---:|---:|")
        print(f"| {len(rows):,} | {size / 2**20:.1f} MiB | {secs:.1f} s | {page.count('<details')} | "
              f"{page.count('<img')} |")
    print(f"load after: {os.getloadavg()[0]:.1f} (1 min)")


if __name__ == "__main__":
    main()

"""Retro-match speed, memory and recall: one new person's templates against 10^6 and 10^7 archived faces.

Synthetic unit vectors stand in for faces at scale (the search's cost does not depend on what the vectors are);
the recall check uses real embeddings of the shared photos: each person's first photo enrolled, every face of the
other photos archived among the synthetic rows, and every archived face whose exact score reaches the threshold
must be found (recall of the exact search's hits; its top-1 included).

    python benchmarks/rematch.py [--sizes 1000000 10000000] [--ray] [--folder /tmp/rematch-bench]

Peak memory is the process's maximum resident set (ru_maxrss), measured in a child process per size.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audit.store import archive_sign  # noqa: E402
from audit.store.archive import PART_ROWS, Archive, PartWriter, encode, schema  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faces" / "deepface"
MODEL = "bench"
THRESHOLD = 0.35
BLOCKS = 4  # distinct synthetic blocks, rotated: generating 10^7 fresh vectors would dominate the run


def block_table(rng, n: int, dim: int = 512):
    """A partition's worth of synthetic unit vectors as an archive table (no crops)."""
    import pyarrow as pa

    x = rng.standard_normal((n, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    code, clipped = encode(x)
    meta = {"modality": "face", "model": MODEL, "scan": "bench", "scanned": "2026-01-01T00:00:00+00:00"}
    sch = schema(dim, meta)
    cols = {name: pa.nulls(n, sch.field(name).type) for name in sch.names}
    cols["sha256"] = pa.array([f"{i:064x}" for i in range(n)])
    cols["media"] = pa.array(["image"] * n)
    cols["clipped"] = pa.array(clipped)
    cols["code"] = pa.FixedSizeBinaryArray.from_buffers(pa.binary(dim), n, [None, pa.py_buffer(code)])
    sign = archive_sign.encode(x)
    cols["sign"] = pa.FixedSizeBinaryArray.from_buffers(pa.binary(sign.shape[1]), n, [None, pa.py_buffer(sign)])
    cols["embedding"] = pa.FixedSizeBinaryArray.from_buffers(pa.binary(2 * dim), n,
                                                             [None, pa.py_buffer(x.astype("<f2").tobytes())])
    return pa.table([cols[k] for k in sch.names], schema=sch)


def real_faces():
    """(templates of each person's first photo, archived faces of the other photos, their owners)."""
    from audit import media
    from audit.models.face import FaceModel

    model = FaceModel()
    people: dict[str, list[str]] = {}
    with open(SHARED / "identities.csv") as f:
        for row in csv.DictReader(f):
            people.setdefault(row["person"], []).append(row["file"])
    templates, faces, owners = [], [], []
    for person, files in sorted(people.items()):
        for i, name in enumerate(sorted(files)):
            found = model.analyze(media.load_image(SHARED / name))
            if not found:
                continue
            if i == 0:
                templates.append(max(found, key=lambda f: (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1])).embedding)
            else:
                faces += [f.embedding for f in found]
                owners += [person] * len(found)
    return np.stack(templates).astype(np.float32), np.stack(faces).astype(np.float32), owners


def build(folder: Path, size: int, real: np.ndarray | None) -> Archive:
    """An archive of `size` synthetic faces (and the real ones, in their own partition)."""
    archive = Archive(folder)
    if archive.partitions():
        return archive
    rng = np.random.default_rng(0)
    blocks = [block_table(rng, PART_ROWS) for _ in range(BLOCKS)]
    for i in range(size // PART_ROWS):
        archive.write(blocks[i % BLOCKS], "face", MODEL, "2026-01-01", f"bench-{i:05d}")
    if real is not None:
        w = PartWriter(archive, "face", MODEL, "real", datetime(2026, 1, 2, tzinfo=timezone.utc), None)
        for j, v in enumerate(real):
            w.add({"sha256": f"real{j:060d}", "path": f"real-{j}.jpg", "media": "image", "box": [0, 0, 1, 1]}, v)
        w.flush()
    return archive


def measure(folder: Path, templates: np.ndarray, engine: str) -> dict:
    """Child process: one search of the archive; time, peak memory, hits."""
    from audit.scan import rematch

    import faiss  # noqa: F401  imported before the clock (0.8 s once per process here; a service has it loaded)

    archive = Archive(folder)
    parts = archive.partitions("face", MODEL)
    start = time.perf_counter()
    cpu = time.process_time()
    if engine == "ray":
        from audit.scan.rematch_ray import _connect, candidates

        ray, _ = _connect(None)  # started before the clock: a cluster is already up when one searches it
        start, cpu = time.perf_counter(), time.process_time()
        hits, rows = candidates(parts, templates, THRESHOLD, folder, None, None)
    else:
        hits, rows = rematch.candidates(archive, parts, templates, THRESHOLD)
    took, cpu = time.perf_counter() - start, time.process_time() - cpu
    again, again_cpu = time.perf_counter(), time.process_time()  # the same search once more: a warm process
    if engine == "local":
        rematch.candidates(archive, parts, templates, THRESHOLD)
    again, again_cpu = time.perf_counter() - again, time.process_time() - again_cpu
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB
    return {"rows": rows, "seconds": round(took, 3), "cpu_s": round(cpu, 3), "again_s": round(again, 3), "again_cpu_s": round(again_cpu, 3), "peak_mib": round(rss), "rows_per_s": round(rows / took),
            "hits": sorted(s for v in hits.values() for s in (v or ()))}


def planted(root: Path, queries: np.ndarray, per: int = 200, threshold: float = THRESHOLD) -> dict:
    """Rows planted just above the threshold (cosine in [t, t + 0.01]) for each query, among noise: how many the
    search finds (the sign-code prefilter's recall is measured, not guaranteed)."""
    from audit.scan import rematch

    rng = np.random.default_rng(1)
    archive = Archive(root / "planted")
    if archive.root.exists():
        shutil.rmtree(archive.root)
    w = PartWriter(archive, "face", MODEL, "planted", datetime(2026, 1, 3, tzinfo=timezone.utc), None)
    want = 0
    for t, q in enumerate(queries):
        r = rng.standard_normal((per, q.shape[0])).astype(np.float32)
        r -= (r @ q)[:, None] * q[None, :]
        r /= np.linalg.norm(r, axis=1, keepdims=True)
        target = rng.uniform(threshold + 0.0005, threshold + 0.01, per)[:, None]  # float16 storage: off 0.0005
        rows = target * q[None, :] + np.sqrt(1 - target**2) * r
        want += int((rows.astype(np.float16).astype(np.float32) @ q >= threshold).sum())  # stored as float16
        for j, v in enumerate(rows):
            w.add({"sha256": f"{t:030d}{j:034d}", "path": "p.jpg", "media": "image", "box": [0, 0, 1, 1]}, v)
    w.flush()
    found = 0
    for t in range(len(queries)):
        hits, _ = rematch.candidates(archive, archive.partitions(), queries[t:t + 1], threshold)
        found += sum(s.startswith(f"{t:030d}") for v in hits.values() for s in v)
    return {"planted_found": f"{found}/{want}", "planted_low95": round(wilson_low(found, want), 5)}


def wilson_low(k: int, n: int, z: float = 1.96) -> float:
    if n == 0:
        return float("nan")
    p = k / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - spread) / (1 + z * z / n)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000],
                        help="Archive sizes (0: the real faces only, for the recall check).")
    parser.add_argument("--ray", action="store_true", help="Also time the Ray Data job (a local Ray).")
    parser.add_argument("--folder", default="/tmp/rematch-bench")
    parser.add_argument("--keep", action="store_true", help="Keep the 10^7 archive (15 GB) for another run.")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        folder, tfile, engine = args.child
        print(json.dumps(measure(Path(folder), np.load(tfile), engine)))
        return
    templates, faces, owners = real_faces()
    root = Path(args.folder)
    tfile = root / "templates.npy"
    root.mkdir(parents=True, exist_ok=True)
    np.save(tfile, templates[:1])  # "one new person": the first person's template
    for size in args.sizes:
        folder = root / f"n{size}"
        t0 = time.perf_counter()
        build(folder, size, faces)
        built = time.perf_counter() - t0
        for engine in ["local"] + (["ray"] if args.ray else []):
            out = subprocess.run([sys.executable, __file__, "--child", str(folder), str(tfile), engine],
                                 capture_output=True, text=True)
            lines = [x for x in out.stdout.strip().splitlines() if x.startswith("{")]
            if not lines:
                print(json.dumps({"size": size, "engine": engine, "failed": out.stderr[-500:]}))
                continue
            got = json.loads(lines[-1])
            print(json.dumps({"size": size, "engine": engine, "built_s": round(built, 1),
                              **{k: v for k, v in got.items() if k != "hits"}}))
        # Recall: every real archived face at or above the threshold for a template, found. Templates: each
        # person's first photo, and (leave one out) every archived real face in turn as a new person's template.
        archive = Archive(folder)
        real = [p for p in archive.partitions("face", MODEL) if "real" in p.rel]
        from audit.scan import rematch

        queries = np.concatenate([templates, faces])
        exact = faces.astype(np.float16).astype(np.float32) @ queries.T
        for j in range(len(faces)):
            exact[j, len(templates) + j] = -1  # a face is not its own hit
        want = {(f"real{j:060d}", t) for j, t in zip(*np.nonzero(exact >= THRESHOLD))}
        got = set()
        for t in range(len(queries)):
            hits, _ = rematch.candidates(archive, real, queries[t:t + 1], THRESHOLD)
            got |= {(s, t) for v in hits.values() for s in v}
        got = {(s, t) for s, t in got if t < len(templates) or s != f"real{t - len(templates):060d}"}
        top1 = {(f"real{int(np.argmax(exact[:, t])):060d}", t) for t in range(len(queries))
                if exact[:, t].max() >= THRESHOLD}
        k = len(want & got)
        print(json.dumps({"size": size, "queries": len(queries), "recall_hits": f"{k}/{len(want)}",
                          "recall_low95": round(wilson_low(k, len(want)), 4),
                          "top1_found": f"{len(top1 & got)}/{len(top1)}", "false_hits": len(got - want)}))
        print(json.dumps({"size": size, **planted(root, queries)}))
        if size >= 10_000_000 and not args.keep:
            shutil.rmtree(folder, ignore_errors=True)  # 15 GB: not kept
    print(json.dumps({"uptime": os.getloadavg()}))


if __name__ == "__main__":
    main()

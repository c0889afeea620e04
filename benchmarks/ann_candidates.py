"""ANN index experiment for issue 11 at 1M face templates (standalone; does not touch the library).

Usage (about 2 GB of vectors under $ANN_WORK, default /tmp/ann_candidates):
  nice -n 10 python benchmarks/ann_candidates.py data          # gallery + probes + exact truth
  nice -n 10 python benchmarks/ann_candidates.py run CONFIG...  # build + measure each config
  CONFIG: ivfsq8:4096 | ivfpqfs:4096:64 | ivfsq8:16384 | ivfpqfs:16384:64 | hnswflat:32 | hnswsq8:32

The gallery is regenerated exactly as benchmarks/gallery_scale.py builds its 1M store (same Generator, same seed,
same batches of 50,000 people, the 13 real people's enrolment photos appended), and the probes are the benchmark's
(rng seed 7: 200 genuine, 200 impostor, 200 morph). Search is single threaded, one query at a time: a shortlist of
k ids from the index, then exact cosine re-rank against the float vectors, best template per person, top 10 people
(as audit/store/search.py does, but from an in-memory array instead of SQLite rows).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "faces" / "deepface"
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO))
WORK = Path(os.environ.get("ANN_WORK", "/tmp/ann_candidates"))
PER, PROBES, N_PEOPLE, D = 5, 200, 200_000, 512
TRAIN_PER_LIST = 32
KEEP: list = []
REFINE_FACTOR = 8  # fast-scan candidates per shortlisted id that the 8-bit codes re-score


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cur_rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return 0.0


def make_data() -> None:
    """The benchmark's 1M gallery, owners, probes and exact top-10 people, saved under WORK."""
    import gallery_scale as g

    rvecs, rpeople, _ = g.real_embeddings(DATA)  # ArcFace embeddings of the shared photos
    gen = g.Generator(rvecs, rpeople)
    gen.fit(g.cosine_stats(rvecs, rpeople))
    held = sorted({max(i for i, p in enumerate(rpeople) if p == name) for name in set(rpeople)})
    t = time.time()
    chunks, owners = [], []
    for start, k, vecs in g.synthetic_batches(gen, N_PEOPLE):
        chunks.append(vecs)
        owners.append(np.repeat(np.arange(start, start + k), PER))
    names = sorted(set(rpeople))
    enrol = [i for i in range(len(rvecs)) if i not in held]
    chunks.append(rvecs[enrol])
    owners.append(np.array([N_PEOPLE + names.index(rpeople[i]) for i in enrol]))
    vecs, owners = np.concatenate(chunks), np.concatenate(owners)
    print(f"gallery {vecs.shape} in {time.time() - t:.1f} s")
    rng = np.random.default_rng(7)
    who = rng.choice(N_PEOPLE, PROBES, replace=False)
    def centre(w):
        return vecs[w * PER:(w + 1) * PER].mean(0)  # synthetic people are rows w*5..w*5+4

    genuine = gen.samples(np.stack([centre(w) for w in who]), 1)
    impostor = gen.samples(gen.centres(PROBES), 1)
    pair = rng.choice(N_PEOPLE, (PROBES, 2), replace=False)
    morph = gen.samples(np.stack([centre(a) for a, _ in pair]), 1) + gen.samples(np.stack([centre(b) for _, b in pair]), 1)
    morph /= np.linalg.norm(morph, axis=1, keepdims=True)
    probes = {"genuine": genuine, "impostor": impostor, "morph": morph}
    exact = {}
    for label, q in probes.items():
        t = time.time()
        ex, _ = g.exact_people(vecs, owners, q)
        exact[label] = np.array(ex, np.int64)
        print(f"exact {label} {time.time() - t:.1f} s")
    np.save(WORK / "vecs.npy", vecs)
    np.save(WORK / "owners.npy", owners)
    np.savez(WORK / "probes.npz", **probes, **{f"exact_{k}": v for k, v in exact.items()})


def make_extra(seed: int = 8, n: int = 600) -> None:
    """More probes of each kind (new seed) against the saved gallery, for tighter recall bounds."""
    import gallery_scale as g

    rvecs, rpeople, _ = g.real_embeddings(DATA)
    gen = g.Generator(rvecs, rpeople, seed=seed)
    gen.fit(g.cosine_stats(rvecs, rpeople))
    vecs, owners = np.load(WORK / "vecs.npy"), np.load(WORK / "owners.npy")
    rng = np.random.default_rng(seed)
    def centre(w):
        return vecs[w * PER:(w + 1) * PER].mean(0)

    genuine = gen.samples(np.stack([centre(w) for w in rng.choice(N_PEOPLE, n, replace=False)]), 1)
    impostor = gen.samples(gen.centres(n), 1)
    pair = rng.choice(N_PEOPLE, (n, 2), replace=False)
    morph = gen.samples(np.stack([centre(a) for a, _ in pair]), 1) + gen.samples(np.stack([centre(b) for _, b in pair]), 1)
    morph /= np.linalg.norm(morph, axis=1, keepdims=True)
    probes = {"genuine": genuine, "impostor": impostor, "morph": morph}
    exact = {k: np.array(g.exact_people(vecs, owners, q)[0], np.int64) for k, q in probes.items()}
    np.savez(WORK / "probes_extra.npz", **probes, **{f"exact_{k}": v for k, v in exact.items()})


def load_data():
    vecs = np.load(WORK / "vecs.npy", mmap_mode="r")
    owners = np.load(WORK / "owners.npy")
    z = np.load(WORK / os.environ.get("PROBES", "probes.npz"))
    probes = {k: z[k] for k in ("genuine", "impostor", "morph")}
    exact = {k: z[f"exact_{k}"] for k in probes}
    return vecs, owners, probes, exact


def coarse(vecs, nlist: int):
    """A trained IVF coarse quantizer (IndexFlatIP of k-means centroids), cached per nlist."""
    import faiss

    path = WORK / f"centroids{nlist}.npy"
    if path.exists():
        cents, secs = np.load(path), float(json.loads((WORK / f"centroids{nlist}.json").read_text())["s"])
    else:
        n = len(vecs)
        want = min(n, nlist * TRAIN_PER_LIST)
        train = np.ascontiguousarray(vecs[:: max(1, n // want)][:want], np.float32)
        t = time.time()
        km = faiss.Kmeans(D, nlist, niter=10, spherical=False, seed=1234, verbose=False)
        km.cp.max_points_per_centroid = TRAIN_PER_LIST + 1
        km.train(train)
        secs = time.time() - t
        cents = km.centroids
        np.save(path, cents)
        (WORK / f"centroids{nlist}.json").write_text(json.dumps({"s": secs}))
    q = faiss.IndexFlatIP(D)
    q.add(cents)
    return q, secs


def build(vecs, cfg: str):
    """(index, build seconds) for one config."""
    import faiss

    parts = cfg.replace("pqfs:128b", "pqfs:128").split(":")
    implem = int(parts.pop()[1:]) if parts[-1].startswith("i") else 0  # fast-scan kernel (faiss implem), e.g. :i14
    kind = parts[0]
    t0 = time.time()
    extra = 0.0
    if kind.startswith("ivf") or kind.startswith("opq"):
        nlist = int(parts[1])
        q, extra = coarse(vecs, nlist)
        if kind == "ivfsq8":
            index = faiss.IndexIVFScalarQuantizer(q, D, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
        elif kind in ("ivfpqfs", "ivfpqfsr"):
            index = faiss.IndexIVFPQFastScan(q, D, nlist, int(parts[2]), 4, faiss.METRIC_INNER_PRODUCT)
        else:
            raise SystemExit(cfg)
        index.own_fields = False
        KEEP.append(q)  # keep the quantizer alive (the index does not own it)
        sample = np.ascontiguousarray(vecs[:: max(1, len(vecs) // 65536)][:65536], np.float32)
        index.train(sample)
        if kind == "ivfpqfsr":  # fast-scan shortlist re-scored on 8-bit codes (IndexRefine), then exact
            KEEP.append(index)
            refine = faiss.IndexScalarQuantizer(D, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
            refine.train(sample)
            KEEP.append(refine)
            index = faiss.IndexRefine(index, refine)
            index.own_fields = False
    elif kind == "pqfs":  # no IVF: every code scanned with fast-scan
        index = faiss.IndexPQFastScan(D, int(parts[1]), 4, faiss.METRIC_INNER_PRODUCT)
        index.train(np.ascontiguousarray(vecs[:: max(1, len(vecs) // 65536)][:65536], np.float32))
    elif kind == "factory":  # any flat (IVF-less) faiss factory string, e.g. OPQ64,PQ64x4fs
        index = faiss.index_factory(D, parts[1], faiss.METRIC_INNER_PRODUCT)
        index.train(np.ascontiguousarray(vecs[:: max(1, len(vecs) // 65536)][:65536], np.float32))
    elif kind == "hnswflat":
        index = faiss.IndexHNSWFlat(D, int(parts[1]), faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 40
    elif kind == "hnswsq8":
        index = faiss.IndexHNSWSQ(D, faiss.ScalarQuantizer.QT_8bit, int(parts[1]), faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 40
        index.train(np.ascontiguousarray(vecs[::16], np.float32))
    else:
        raise SystemExit(cfg)
    if implem:
        index.implem = implem
    step = 100_000
    for s in range(0, len(vecs), step):
        chunk = np.ascontiguousarray(vecs[s:s + step], np.float32)
        if kind.startswith("hnsw") or kind in ("ivfpqfsr", "pqfs", "factory"):
            index.add(chunk)
        else:
            index.add_with_ids(chunk, np.arange(s, s + len(chunk), dtype=np.int64))
        print(f"    added {s + len(chunk):,} ({time.time() - t0:.0f} s)", flush=True)
    return index, time.time() - t0 + extra, extra


def probe_load(path: str) -> None:
    """Fresh process: read the index with IO_FLAG_MMAP (then MMAP_IFC) and search once; print times and RSS."""
    import faiss

    base = cur_rss_mb()
    out = {"rss_before_mb": base}
    for name, flag in (("mmap", faiss.IO_FLAG_MMAP), ("mmap_ifc", faiss.IO_FLAG_MMAP_IFC), ("read", 0)):
        t = time.time()
        try:
            index = faiss.read_index(path, flag | (faiss.IO_FLAG_READ_ONLY if flag else 0))
            load_s = time.time() - t
            rss_load = cur_rss_mb()
            q = np.ones((1, D), np.float32) / np.sqrt(D)
            index.search(q, 10)
            out[name] = {"load_s": load_s, "ready_s": time.time() - t, "rss_load_mb": rss_load,
                         "rss_search_mb": cur_rss_mb()}
            del index
            break  # the first flag that loads is the one a store would use; RSS of later ones would be polluted
        except RuntimeError as exc:
            out[name] = {"error": str(exc).splitlines()[0][:200]}
    print(json.dumps(out))


def measure(index, cfg: str, vecs, owners, probes, exact, knobs: list, shortlists: list) -> list[dict]:
    """Per knob (nprobe or efSearch) and shortlist: recall@1/@10 per probe kind and per-query CPU / wall time."""
    import faiss

    faiss.omp_set_num_threads(1)
    rows = []
    best = {}  # each probe's exact best similarity: its exact top person's best template
    for label, qs in probes.items():
        best[label] = [float((vecs[np.flatnonzero(owners == ex[0])] @ q).max()) for q, ex in zip(qs, exact[label])]
    for knob in knobs:
        if cfg.startswith("hnsw"):
            params = faiss.SearchParametersHNSW(efSearch=knob)
        elif cfg.startswith("pqfs") or cfg.startswith("factory"):
            params = None
        elif cfg.startswith("ivfpqfsr"):
            params = faiss.IndexRefineSearchParameters(k_factor=REFINE_FACTOR,
                                                       base_index_params=faiss.SearchParametersIVF(nprobe=knob))
        else:
            params = faiss.SearchParametersIVF(nprobe=knob)
        for k in shortlists:
            if cfg.startswith("hnsw") and k > knob:
                continue
            row = {"config": cfg, "knob": knob, "shortlist": k}
            cpus, walls, ann_cpus = [], [], []
            hits_m, miss_m = {k: [] for k in probes}, {k: [0] for k in probes}
            for label, qs in probes.items():
                r1, r10 = 0, 0.0
                for q, ex in zip(qs, exact[label]):
                    w, c = time.perf_counter(), time.process_time()
                    _, ids = index.search(q[None], k, params=params)
                    ca = time.process_time()
                    ids = ids[0][ids[0] >= 0]
                    sims = vecs[np.sort(ids)] @ q  # exact re-rank (sorted ids: sequential page reads)
                    ids = np.sort(ids)
                    order = np.argsort(-sims, kind="stable")
                    mine: list[int] = []
                    for i in order:
                        p = int(owners[ids[i]])
                        if p not in mine:
                            mine.append(p)
                            if len(mine) == 10:
                                break
                    cpus.append(time.process_time() - c)
                    walls.append(time.perf_counter() - w)
                    ann_cpus.append(ca - c)
                    r1 += bool(mine) and mine[0] == ex[0]
                    if best[label][len(hits_m[label]) + miss_m[label][0]] >= 0.35:
                        hits_m[label].append(bool(mine) and mine[0] == ex[0])
                    else:
                        miss_m[label][0] += 1
                    r10 += len(set(mine) & set(ex.tolist())) / len(ex)
                row[f"{label}_r1"] = r1 / len(qs)
                row[f"{label}_match"] = [int(sum(hits_m[label])), len(hits_m[label])]
                row[f"{label}_r10"] = r10 / len(qs)
            row["cpu_ms"] = 1000 * float(np.median(cpus))
            row["cpu_p95_ms"] = 1000 * float(np.quantile(cpus, 0.95))
            row["ann_cpu_ms"] = 1000 * float(np.median(ann_cpus))
            row["wall_ms"] = 1000 * float(np.median(walls))
            row["load"] = os.getloadavg()[0]
            rows.append(row)
            print("  " + json.dumps(row), flush=True)
    return rows


KNOBS = {
    "ivfsq8:4096": ([82, 328], [160]),
    "ivfpqfs:4096:64": ([256, 512, 1024], [100, 200]),
    "ivfpqfs:4096:32": ([512, 1024], [100, 200]),
    "ivfpqfs:4096:128": ([512, 1024], [200, 400]),
    "ivfpqfsr:4096:64": ([512, 1024], [100]),
    "ivfpqfsr:4096:128": ([512, 1024], [100]),
    "pqfs:128": ([0], [200, 1000]),
    "pqfs:128b": ([0], [500]),
    "pqfs:128:i14": ([0], [500, 1000]),
    "pqfs:128:i15": ([0], [500, 1000]),
    "pqfs:128b:i15": ([0], [2000]),
    "factory:OPQ64,PQ64x4fs": ([0], [500, 1000, 2000]),
    "factory:OPQ96_384,PQ96x4fs": ([0], [500, 1000]),
    "pqfs:64": ([0], [200, 1000]),
    "ivfsq8:16384": ([328, 1024], [160]),
    "ivfpqfs:16384:64": ([1024, 2048, 4096], [100, 200]),
    "hnswflat:32": ([64, 128, 256], [50, 100, 200]),
    "hnswsq8:32": ([64, 128, 256], [50, 100, 200]),
}


def run(configs: list[str]) -> None:
    import faiss

    faiss.omp_set_num_threads(int(os.environ.get("BUILD_THREADS", "2")))
    vecs, owners, probes, exact = load_data()
    vecs = np.ascontiguousarray(vecs)  # 2 GB in memory for build and re-rank
    print(f"load {os.getloadavg()}, faiss {faiss.__version__}")
    for cfg in configs:
        faiss.omp_set_num_threads(int(os.environ.get("BUILD_THREADS", "2")))
        print(f"== {cfg}", flush=True)
        index, build_s, train_s = build(vecs, cfg)
        path = WORK / (cfg.replace(":", "_").replace(",", "_") + ".faiss")
        faiss.write_index(index, str(path))
        disk_mb = path.stat().st_size / 1e6
        got = subprocess.run([sys.executable, __file__, "probe-load", str(path)], capture_output=True, text=True)
        loaded = json.loads(got.stdout.strip().splitlines()[-1]) if got.returncode == 0 else {"error": got.stderr[-300:]}
        print(f"  build {build_s:.0f} s (coarse k-means {train_s:.0f} s), disk {disk_mb:.0f} MB, load {json.dumps(loaded)}",
              flush=True)
        knobs, shortlists = KNOBS[cfg]
        rows = measure(index, cfg, vecs, owners, probes, exact, knobs, shortlists)
        with open(WORK / "rows.jsonl", "a") as f:
            for r in rows:
                f.write(json.dumps({**r, "probes": os.environ.get("PROBES", "probes.npz"), "build_s": build_s, "kmeans_s": train_s, "disk_mb": disk_mb,
                                    "loaded": loaded}) + "\n")
        del index
        path.unlink()  # disk hygiene: the index files are large


if __name__ == "__main__":
    WORK.mkdir(parents=True, exist_ok=True)
    if sys.argv[1] == "data":
        make_data()
    elif sys.argv[1] == "extra":
        make_extra()
    elif sys.argv[1] == "probe-load":
        probe_load(sys.argv[2])
    elif sys.argv[1] == "run":
        run(sys.argv[2:])

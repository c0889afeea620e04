"""Shorter fast-scan PQ codes (with or without an OPQ rotation) and cheaper re-scoring, against the PQ base's current
layout (benchmarks/README.md, "Gallery scale"), on one synthetic 1M gallery, all in one process.

Usage: OMP_NUM_THREADS=1 nice -n 10 python benchmarks/pq_layouts.py [--seed 1] [--probes 600]
       [--configs base:2000,opq64:2000,opq64:4000] [--n 1000000]

The gallery and probes are made as benchmarks/gallery_scale.py makes them (its Generator, fitted to ArcFace
embeddings of the shared photos; genuine, impostor and morph probes, the real people's held-out photos); --seed picks
the probes (tune on one seed, report on another). Truth: the person of the best template by brute-force cosine.

A configuration is LAYOUT:CANDIDATES. Layouts: base (128 sub-quantizers x 4 bits, as pqbase builds), pq64 (64 x 4,
no rotation), opq64 / opq96 / opq128 (an OPQ rotation trained on the same TRAIN vectors, then 64 x 4 on 512 dims,
96 x 4 on 480, 128 x 4 on 512). Every configuration's candidates are re-scored two ways, both timed: "decode" (what
pqbase.search does: 8-bit codes decoded to float, cosine) and "subset" (faiss's IndexFlatCodes.search_subset: inner
products on the 8-bit codes without writing floats, the best 160 kept, then their cosines). recall@1: the exact best
template among the re-scoring's best 160 (the store's shortlist for k = 10) belongs to the true best person.
CPU times (time.process_time, one thread) per probe: configurations alternate in blocks of 50 probes, so that load
changes on this shared machine fall on all of them alike. The store's own part (people, exact re-rank, seals;
~0.9 ms) is not included: add it to the index total.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from gallery_scale import DATA, PER, Generator, cosine_stats, real_embeddings, synthetic_batches  # noqa: E402

TRAIN, CHUNK, SHORTLIST, BLOCK = 65_536, 65_536, 160, 50
OPQ_ITER, OPQ_TRAIN = 10, 32_768
CACHE = Path("/tmp/search5")


def wilson(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson interval of a rate."""
    if not n:
        return 0.0, 1.0
    p = hits / n
    centre, half = p + z * z / (2 * n), z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n)


def real_data():
    CACHE.mkdir(exist_ok=True)
    path = CACHE / "real.npz"
    if not path.exists():
        vecs, people, files = real_embeddings(DATA)
        np.savez(path, vecs=vecs, people=np.array(people))
    got = np.load(path)
    return got["vecs"], got["people"].tolist()


def gallery(n: int):
    """(templates, person number of each, generator, held-out real probes), as gallery_scale builds a store."""
    rvecs, rpeople = real_data()
    gen = Generator(rvecs, rpeople)
    gen.fit(cosine_stats(rvecs, rpeople))
    held = sorted({max(i for i, p in enumerate(rpeople) if p == name) for name in set(rpeople)})
    names = sorted(set(rpeople))
    n_people = n // PER
    chunks, owners = [], []
    for start, k, vecs in synthetic_batches(gen, n_people):
        chunks.append(vecs)
        owners.append(np.repeat(np.arange(start, start + k), PER))
    enrol = [i for i in range(len(rvecs)) if i not in held]
    chunks.append(rvecs[enrol] / np.linalg.norm(rvecs[enrol], axis=1, keepdims=True))
    owners.append(np.array([n_people + names.index(rpeople[i]) for i in enrol]))
    return np.concatenate(chunks).astype(np.float32), np.concatenate(owners), gen, rvecs[held], n_people


def probes(gen, vecs, owners, n_people: int, realq, count: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    gen.rng = np.random.default_rng(seed + 1000)
    centre = lambda w: vecs[owners == w].mean(0)  # noqa: E731
    who = rng.choice(n_people, count, replace=False)
    genuine = gen.samples(np.stack([centre(w) for w in who]), 1)
    impostor = gen.samples(gen.centres(count), 1)
    pair = rng.choice(n_people, (count, 2), replace=False)
    morph = gen.samples(np.stack([centre(a) for a, _ in pair]), 1) + gen.samples(np.stack([centre(b) for _, b in pair]), 1)
    morph /= np.linalg.norm(morph, axis=1, keepdims=True)
    realq = realq / np.linalg.norm(realq, axis=1, keepdims=True)
    return {"genuine": genuine, "impostor": impostor, "morph": morph, "real": realq.astype(np.float32)}


def truth(vecs, owners, qs) -> np.ndarray:
    best, arg = np.full(len(qs), -np.inf, np.float32), np.zeros(len(qs), np.int64)
    for i in range(0, len(vecs), 100_000):
        s = vecs[i:i + 100_000] @ qs.T
        j = s.argmax(0)
        v = s[j, np.arange(len(qs))]
        better = v > best
        best[better], arg[better] = v[better], j[better] + i
    return owners[arg]


class Layout:
    """A fast-scan PQ index of every vector (codes made from the 8-bit decoded vectors, as pqbase does)."""

    def __init__(self, name: str, train: np.ndarray, dec_chunks, dim: int):
        import faiss

        self.name, self.opq = name, None
        m = {"base": 128, "pq64": 64, "opq64": 64, "opq96": 96, "opq128": 128}[name]
        d2 = 480 if name == "opq96" else dim
        t = time.process_time()
        if name.startswith("opq"):
            self.opq = faiss.OPQMatrix(dim, m, d2)
            self.opq.niter, self.opq.max_train_points = OPQ_ITER, OPQ_TRAIN  # faiss's 50 x 65,536: 8 min a layout
            self.opq.train(train)
            train = self.opq.apply_py(train)
        self.index = faiss.IndexPQFastScan(d2, m, 4, faiss.METRIC_INNER_PRODUCT, 64)
        self.index.train(np.ascontiguousarray(train))
        for dec in dec_chunks():
            self.index.add(self.opq.apply_py(dec) if self.opq is not None else dec)
        self.index.implem = 15
        print(f"  {name}: {self.index.code_size} bytes a vector, built in {time.process_time() - t:.0f} s CPU",
              flush=True)

    def search(self, q: np.ndarray, k: int) -> np.ndarray:
        if self.opq is not None:
            q = self.opq.apply_py(q)
        return self.index.search(q, k)[1][0]


def rescore_decode(sq, stored, q, pos):
    """pqbase.search's re-scoring: (positions, cosines) best first."""
    import faiss

    v = sq.sa_decode(np.take(stored, pos, axis=0))
    dots, norms = np.empty(len(v), np.float32), np.empty(len(v), np.float32)
    faiss.fvec_inner_products_ny(faiss.swig_ptr(dots), faiss.swig_ptr(q), faiss.swig_ptr(v), len(q), len(v))
    faiss.fvec_norms_L2sqr(faiss.swig_ptr(norms), faiss.swig_ptr(v), len(q), len(v))
    s = dots / np.maximum(np.sqrt(norms), 1e-12)
    top = np.argsort(-s, kind="stable")[:SHORTLIST]
    return pos[top], s[top]


def rescore_subset(sq, stored, q, pos, tmp):
    """Inner products on the 8-bit codes (an 8-bit index holding the candidates' codes, searched: faiss's SQ
    search_subset is not implemented), the best SHORTLIST kept, then their cosines."""
    import faiss

    tmp.reset()
    tmp.add_sa_codes(np.take(stored, pos, axis=0))
    d, i = tmp.search(q[None], SHORTLIST)
    d, i = d[0], pos[i[0]]
    v = sq.sa_decode(np.take(stored, i, axis=0))
    norms = np.empty(len(v), np.float32)
    faiss.fvec_norms_L2sqr(faiss.swig_ptr(norms), faiss.swig_ptr(v), len(q), len(v))
    s = d / np.maximum(np.sqrt(norms), 1e-12)
    top = np.argsort(-s, kind="stable")
    return i[top], s[top]


def main() -> None:
    import faiss

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="1,2", help="probe seeds, each its own table (tune on the first)")
    ap.add_argument("--probes", type=int, default=600)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--configs", default="base:2000,pq64:2000,pq64:4000,opq64:2000,opq64:3000,opq64:4000,"
                    "opq96:2000,opq96:3000,opq128:1000,opq128:1500")
    args = ap.parse_args()
    faiss.omp_set_num_threads(1)
    print(f"load {os.getloadavg()}, {args.probes} probes a synthetic kind", flush=True)
    vecs, owners, gen, realq, n_people = gallery(args.n)
    train = np.ascontiguousarray(vecs[::max(1, len(vecs) // TRAIN)][:TRAIN])
    sq = faiss.IndexScalarQuantizer(vecs.shape[1], faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
    sq.train(train)
    tmp = faiss.clone_index(sq)
    sq.add(vecs)
    stored = faiss.rev_swig_ptr(sq.codes.data(), sq.ntotal * sq.code_size).reshape(sq.ntotal, sq.code_size)
    chunks = lambda: (sq.sa_decode(np.ascontiguousarray(stored[i:i + CHUNK])) for i in range(0, len(vecs), CHUNK))  # noqa: E731
    configs = [(c.split(":")[0], int(c.split(":")[1])) for c in args.configs.split(",")]
    layouts = {name: Layout(name, train, chunks, vecs.shape[1]) for name in dict.fromkeys(n for n, _ in configs)}
    for seed in [int(s) for s in args.seeds.split(",")]:
        kinds = probes(gen, vecs, owners, n_people, realq, args.probes, seed)
        run(kinds, configs, layouts, sq, stored, tmp, vecs, owners, seed)


def run(kinds, configs, layouts, sq, stored, tmp, vecs, owners, seed) -> None:
    """Time and score every configuration on one seed's probes; print a table."""
    labels = list(kinds)
    qs = np.concatenate([kinds[k] for k in labels]).astype(np.float32)
    kind_of = np.concatenate([[k] * len(kinds[k]) for k in labels])
    want = truth(vecs, owners, qs)
    print(f"seed {seed}: {len(vecs):,} templates, {len(qs)} probes, truth done; load {os.getloadavg()}", flush=True)
    secs = {c: np.zeros(3) for c in configs}
    hits = {(c, how): {k: 0 for k in labels} for c in configs for how in ("decode", "subset")}
    differ = {c: 0 for c in configs}
    for start in range(0, len(qs), BLOCK):  # every configuration on each block of probes in turn
        block = range(start, min(start + BLOCK, len(qs)))
        for c in (configs if (start // BLOCK) % 2 == 0 else configs[::-1]):
            lay, k = layouts[c[0]], c[1]
            t0 = time.process_time()
            cands = [lay.search(qs[j:j + 1], k) for j in block]
            t1 = time.process_time()
            a = [rescore_decode(sq, stored, qs[j], p) for j, p in zip(block, cands)]
            t2 = time.process_time()
            b = [rescore_subset(sq, stored, qs[j], p, tmp) for j, p in zip(block, cands)]
            t3 = time.process_time()
            secs[c] += (t1 - t0, t2 - t1, t3 - t2)
            for j, x, y in zip(block, a, b):
                tops = [owners[pos[np.argmax(vecs[pos] @ qs[j])]] for pos, _ in (x, y)]  # the store's exact re-rank
                hits[(c, "decode")][kind_of[j]] += int(tops[0] == want[j])
                hits[(c, "subset")][kind_of[j]] += int(tops[1] == want[j])
                differ[c] += int(tops[0] != tops[1])
    print(f"seed {seed} done; load {os.getloadavg()}")
    print("| layout | candidates | bytes | kernel ms | re-score ms: decode / subset | index total ms: decode / "
          "subset | recall@1 (decode) genuine / impostor / morph / real [95 % Wilson] | top-1 differs, subset |")
    print("|---|---:|---:|---:|---:|---:|---|---:|")
    for c in configs:
        ms = 1000 * secs[c] / len(qs)
        rec = " / ".join(f"{hits[(c, 'decode')][k]}/{len(kinds[k])} [{wilson(hits[(c, 'decode')][k], len(kinds[k]))[0]:.4f}, "
                         f"{wilson(hits[(c, 'decode')][k], len(kinds[k]))[1]:.4f}]" for k in labels)
        print(f"| {c[0]} | {c[1]} | {layouts[c[0]].index.code_size} | {ms[0]:.2f} | {ms[1]:.2f} / {ms[2]:.2f} | "
              f"{ms[0] + ms[1]:.2f} / {ms[0] + ms[2]:.2f} | {rec} | {differ[c]} |", flush=True)


if __name__ == "__main__":
    main()

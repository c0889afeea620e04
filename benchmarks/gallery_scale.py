"""Gallery scale: open time, memory, search latency, recall against exact search, enrolment time and disk size of
stores of 10k, 100k and 1M face templates.

Usage: nice -n 10 python benchmarks/gallery_scale.py [--sizes 10000,100000,1000000] [--probes 200] [--work DIR]
       [--keep] [--no-sweep]

--keep leaves each gallery, its templates and its probes in --work and, when run again, reuses them and measures
search alone (after one untimed pass): a 1M gallery takes ~5 minutes to build here, so before/after comparisons of
search code run on one store with the same probes.

Synthetic templates resemble face embeddings (see "Gallery scale" in benchmarks/README.md): they are drawn from a
Gaussian fitted to real ArcFace embeddings of the shared photos, with identity centres spread like the real people
and samples spread around their centre like the real photos of one person (both spreads tuned so that the synthetic
genuine and impostor cosine similarities match the real ones, printed side by side). The 13 real people are enrolled
too, and their held-out photos are searched: recall is also checked on real embeddings.

Every gallery is inserted through Store.add_people, 5 templates a person. Open time and peak memory are measured in
a fresh process (store open + index ready + one search), and for a whole one-image `likeness-audit scan` (model
loading included). recall@1: share of probes whose top person equals exact search's (brute force over every
template, cosine); recall@10: share of exact search's top-10 people found in the store's top 10.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from audit.calibrate import upper_bound
from audit.config import DEFAULT_FACE_THRESHOLD

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "faces" / "deepface"
PER = 5
PROBES = 200
SWEEP = True  # also sweep the shortlist / lists probed


def real_embeddings(data: Path) -> tuple[np.ndarray, list[str], list[str]]:
    """ArcFace embeddings of the largest face of each shared photo: (vectors, person of each, file of each)."""
    import cv2

    from audit.models.face import FaceModel

    model = FaceModel()
    vecs, people, files = [], [], []
    with open(data / "identities.csv") as f:
        for row in csv.DictReader(f):
            faces = model.analyze(cv2.imread(str(data / row["file"])))
            if faces:
                vecs.append(max(faces, key=lambda fc: fc.size).embedding)
                people.append(row["person"])
                files.append(row["file"])
    return np.stack(vecs).astype(np.float32), people, files


def cosine_stats(vecs: np.ndarray, people: list[str]) -> dict:
    """Mean and spread of genuine (same person) and impostor cosine similarities."""
    sims = vecs @ vecs.T
    same = np.equal.outer(np.array(people), np.array(people))
    iu = np.triu_indices(len(vecs), 1)
    gen, imp = sims[iu][same[iu]], sims[iu][~same[iu]]
    return {"genuine_mean": float(gen.mean()), "genuine_std": float(gen.std()), "impostor_mean": float(imp.mean()),
            "impostor_std": float(imp.std()), "impostor_p99": float(np.quantile(imp, 0.99))}


class Generator:
    """Face-like synthetic templates: identity centres and per-photo spread from shrunk covariances of real data."""

    def __init__(self, vecs: np.ndarray, people: list[str], seed: int = 0):
        names = sorted(set(people))
        idx = np.array([names.index(p) for p in people])
        means = np.stack([vecs[idx == i].mean(0) for i in range(len(names))])
        self.mu = means.mean(0)
        self._between_dev = means - self.mu
        self.between = self._factor(self._between_dev)
        self.within = self._factor(vecs - means[idx])
        self.kb, self.kw, self.shrink = 1.0, 1.0, 0.5
        self.rng = np.random.default_rng(seed)

    @staticmethod
    def _factor(dev: np.ndarray, shrink: float = 0.5):
        """(directions scaled, isotropic sd): half the variance along the real deviations, half spread evenly
        (a Ledoit-Wolf-style shrinkage; a few dozen real vectors cannot fill 512 dimensions)."""
        d = dev.shape[1]
        total = float((dev ** 2).sum(1).mean())
        return dev * np.sqrt((1 - shrink) / max(len(dev) - 1, 1)), np.sqrt(shrink * total / d)

    def _draw(self, factor, n: int) -> np.ndarray:
        dirs, iso = factor
        return (self.rng.standard_normal((n, len(dirs))) @ dirs + iso * self.rng.standard_normal((n, dirs.shape[1])))

    def centres(self, n: int) -> np.ndarray:
        """n identity centres."""
        return (self.mu + self.kb * self._draw(self.between, n)).astype(np.float32)

    def samples(self, centres: np.ndarray, per: int) -> np.ndarray:
        """per unit templates around each centre (rows grouped by centre)."""
        c = np.repeat(centres, per, axis=0)
        x = c + self.kw * self._draw(self.within, len(c))
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    def fit(self, target: dict) -> dict:
        """Tune the spreads so that synthetic genuine and impostor means match the real ones, and the share of
        the between-person spread that is isotropic so that the impostor spread matches too."""
        lo, hi = 0.0, 0.99
        for _ in range(8):
            self.shrink = (lo + hi) / 2
            self.between = self._factor(self._between_dev, self.shrink)
            self._fit_means(target)
            if self.stats()["impostor_std"] > target["impostor_std"]:
                lo = self.shrink  # too concentrated: spread more of it evenly
            else:
                hi = self.shrink
        return self.stats()

    def _fit_means(self, target: dict) -> None:
        for _ in range(2):
            for attr, key, sign in (("kb", "impostor_mean", -1), ("kw", "genuine_mean", -1)):
                lo, hi = 0.05, 5.0
                for _ in range(14):
                    setattr(self, attr, (lo + hi) / 2)
                    got = self.stats()[key]
                    if (got > target[key]) == (sign < 0):
                        lo = getattr(self, attr)
                    else:
                        hi = getattr(self, attr)

    def stats(self, n: int = 100) -> dict:
        state = self.rng.bit_generator.state
        self.rng = np.random.default_rng(12345)
        vecs = self.samples(self.centres(n), PER)
        self.rng.bit_generator.state = state
        return cosine_stats(vecs, [i // PER for i in range(len(vecs))])


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic_batches(gen: Generator, n_people: int):
    """(first person number, people k, their k x PER templates) in the large batches an initial load comes in (as
    `import` or a manifest gives them); the same draws in the same order for every script that builds the gallery."""
    batch = max(4000, n_people // 4)
    for start in range(0, n_people, batch):
        k = min(batch, n_people - start)
        yield start, k, gen.samples(gen.centres(k), PER)


def build(home: Path, gen: Generator, n_people: int, real: tuple, model_id: str) -> tuple[np.ndarray, np.ndarray, float]:
    """A store of n_people synthetic people (PER templates each) plus the real people's enrolment photos.

    Returns every template and its person number (real people after the synthetic ones), and seconds taken.
    """
    from audit.store.registry import Sample
    from audit.store.store import Store

    store = Store(home, key=None)
    rvecs, rpeople, held = real
    t = time.perf_counter()
    chunks, owners = [], []
    for start, k, vecs in synthetic_batches(gen, n_people):
        store.add_people([(f"s{start + i:07d}", None, [
            Sample("face", model_id, f"{start + i:07d}-{j}".ljust(64, "0"), vecs[i * PER + j]) for j in range(PER)],
            None) for i in range(k)])
        chunks.append(vecs)
        owners.append(np.repeat(np.arange(start, start + k), PER))
    names = sorted(set(rpeople))
    enrol = [i for i in range(len(rvecs)) if i not in held]
    store.add_people([(f"real-{p}", p, [Sample("face", model_id, f"real{i}".ljust(64, "0"), rvecs[i])
                                         for i in enrol if rpeople[i] == p], None) for p in names])
    chunks.append(rvecs[enrol])
    owners.append(np.array([n_people + names.index(rpeople[i]) for i in enrol]))
    secs = time.perf_counter() - t
    store.close()
    return np.concatenate(chunks), np.concatenate(owners), secs


def exact_people(vecs: np.ndarray, owners: np.ndarray, probes: np.ndarray, k: int = 10) -> tuple[list, np.ndarray]:
    """Brute-force top-k people per probe (best template of each person), and each probe's best similarity."""
    out = []
    sims = np.concatenate([vecs[i:i + 200_000] @ probes.T for i in range(0, len(vecs), 200_000)])
    best = sims.max(0)
    for col in sims.T:
        top = np.argsort(-col)[: k * 40]
        seen: list[int] = []
        for i in top:
            if owners[i] not in seen:
                seen.append(int(owners[i]))
                if len(seen) == k:
                    break
        out.append(seen)
    return out, best


def person_number(pid: str, n_people: int, names: list[str]) -> int:
    return int(pid[1:]) if pid.startswith("s") else n_people + names.index(pid[5:])


def probe_open(home: str, model_id: str, dim: int) -> None:
    """In a fresh process: open the store, make the index ready, search once; print seconds and peak RSS."""
    t, cpu = time.perf_counter(), time.process_time()
    from audit.store.store import Store

    store = Store(home, key=None)
    store.index("face", model_id)
    store.search("face", model_id, np.ones((1, dim), np.float32) / np.sqrt(dim), 1)
    print(json.dumps({"open_s": time.perf_counter() - t, "open_cpu_s": time.process_time() - cpu, "rss_mb": rss_mb()}))


def timed_child(cmd: list[str], env: dict | None = None) -> tuple[float, float, float, str]:
    """Run a command; (seconds, CPU seconds, its peak RSS in MB, stdout). GNU time measures: a child's own
    ru_maxrss starts from its parent's at the fork."""
    report = Path(f"/tmp/gallery_scale_time_{os.getpid()}")
    t = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-f", "%U %S %M", "-o", str(report), *cmd], capture_output=True,
                          env={**os.environ, **(env or {})})
    secs = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"{cmd} failed: {done.stderr.decode()[-2000:]}")
    user, system, rss = (float(x) for x in report.read_text().split()[-3:])
    report.unlink()
    return secs, user + system, rss / 1024, done.stdout.decode()


def measure(n_people: int, work: Path, gen: Generator, real: tuple, model_id: str, photo: Path,
            keep: bool = False) -> dict:
    """Build one gallery and measure it. keep: reuse the gallery (and its probes) a run with keep left in work, or
    leave one there; only search is measured (enrolment and compaction would change it)."""
    from audit.store.registry import Sample
    from audit.store.store import Store

    home, saved = work / f"g{n_people}", work / f"g{n_people}.npz"
    rvecs, rpeople, held = real
    names = sorted(set(rpeople))
    if keep and saved.exists() and home.exists():
        got = np.load(saved)
        vecs, owners = got["vecs"], got["owners"]
        store = Store(home, key=None)
        kinds = {label: got[label] for label in ("genuine", "impostor", "morph", "real")}
        for probes in kinds.values():  # just opened: one untimed pass, so that every run meets warm caches
            for q in probes:
                store.search("face", model_id, q[None], 10)
        return search_row(store, model_id, n_people, names, vecs, owners, kinds,
                          {"vectors": len(vecs), "people": n_people + len(names), "build_s": float(got["build_s"])})
    shutil.rmtree(home, ignore_errors=True)
    vecs, owners, build_s = build(home, gen, n_people, real, model_id)
    row = {"vectors": len(vecs), "people": n_people + len(names), "build_s": build_s}
    if keep:
        store = Store(home, key=None)
        probes = _probes(gen, vecs, owners, n_people, rvecs[held])
        np.savez(saved, vecs=vecs, owners=owners, build_s=build_s, **probes)
        return search_row(store, model_id, n_people, names, vecs, owners, probes, row)
    # Open + ready, and a one-image scan, each in a fresh process (file pages may be cached: warm figures).
    secs, cpu, rss, out = timed_child([sys.executable, __file__, "--probe-open", str(home), model_id,
                                       str(vecs.shape[1])])
    got = json.loads(out)
    row.update(open_s=got["open_s"], open_cpu_s=got["open_cpu_s"], open_rss_mb=rss)
    secs, cpu, rss, out = timed_child([sys.executable, "-m", "audit", "scan", str(photo), "--json", "--workers", "0"],
                                      env={"AUDIT_HOME": str(home)})
    row.update(scan1_s=secs, scan1_cpu_s=cpu, scan1_rss_mb=rss)
    store = Store(home, key=None)
    search_row(store, model_id, n_people, names, vecs, owners, _probes(gen, vecs, owners, n_people, rvecs[held]), row)
    # Enrol one more person (5 templates) a few times; the store compacts when its delta is full.
    times, cpus = [], []
    for i in range(5):
        new = gen.samples(gen.centres(1), PER)
        t, cpu = time.perf_counter(), time.process_time()
        store.add_samples(f"new{i}", None, [Sample("face", model_id, f"new{i}-{j}".ljust(64, "0"), v)
                                            for j, v in enumerate(new)], None)
        times.append(time.perf_counter() - t)
        cpus.append(time.process_time() - cpu)
    row["enroll_s"] = float(np.median(times))
    row["enroll_cpu_s"] = float(np.median(cpus))
    row["enroll_max_s"] = float(max(times))
    t = time.perf_counter()
    store.compact()
    row["compact_s"] = time.perf_counter() - t
    store.close()
    row["disk_mb"] = sum(p.stat().st_size for p in home.iterdir() if p.is_file()) / 1e6
    row["index_mb"] = sum(p.stat().st_size for p in home.glob("*.faiss")) / 1e6
    return row


def _probes(gen: Generator, vecs: np.ndarray, owners: np.ndarray, n_people: int, realq: np.ndarray) -> dict:
    """New photos of enrolled synthetic people, people who are not enrolled, morphs; real held-out photos."""
    rng = np.random.default_rng(7)
    who = rng.choice(n_people, PROBES, replace=False)
    genuine = gen.samples(np.stack([_centre_of(vecs, owners, w) for w in who]), 1)
    impostor = gen.samples(gen.centres(PROBES), 1)
    pair = rng.choice(n_people, (PROBES, 2), replace=False)  # morphs: the blend of two enrolled people
    morph = gen.samples(np.stack([_centre_of(vecs, owners, a) for a, _ in pair]), 1) + \
        gen.samples(np.stack([_centre_of(vecs, owners, b) for _, b in pair]), 1)
    morph /= np.linalg.norm(morph, axis=1, keepdims=True)
    return {"genuine": genuine, "impostor": impostor, "morph": morph, "real": realq}


def search_row(store, model_id: str, n_people: int, names: list[str], vecs: np.ndarray, owners: np.ndarray,
               kinds: dict, row: dict) -> dict:
    """Search time and recall of each probe kind (and the shortlist sweep) into row."""
    seg, man = store.index("face", model_id)
    row.update(kind=man.kind, nlist=man.nlist, nprobe=man.nprobe)
    above, above_hit, every = 0, 0, []
    for label, probes in kinds.items():
        exact, best = exact_people(vecs, owners, probes)
        times, cpus, r1, r10 = [], [], 0, 0.0
        for q, ex, b in zip(probes, exact, best):
            t, cpu = time.perf_counter(), time.process_time()
            got = store.search("face", model_id, q[None], 10)[0]
            times.append(time.perf_counter() - t)
            cpus.append(time.process_time() - cpu)
            mine = [person_number(c.person, n_people, names) for c in got]
            hit = bool(mine) and mine[0] == ex[0]
            r1 += hit
            r10 += len(set(mine) & set(ex)) / len(ex)
            if b >= DEFAULT_FACE_THRESHOLD:  # a probe exact search would report as a match
                above += 1
                above_hit += hit
        row[f"{label}_r1"] = r1 / len(probes)
        row[f"{label}_r10"] = r10 / len(probes)
        row[f"{label}_ms"] = 1000 * float(np.median(times))
        row[f"{label}_cpu_ms"] = 1000 * float(np.median(cpus))
        every += cpus
        row[f"{label}_p95_ms"] = 1000 * float(np.quantile(times, 0.95))
        row[f"{label}_n"] = len(probes)
    row["match_probes"], row["match_r1"] = above, above_hit / max(above, 1)
    row["all_cpu_ms"], row["all_n"] = 1000 * float(np.median(every)), len(every)
    row["load"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    if SWEEP and man.kind in ("ivf", "pqfs"):  # the same probes, other lists probed or shortlists: recall against time
        row["sweep"] = sweep(store, seg, model_id, n_people, names, vecs, owners, kinds)
    return row


def sweep(store, seg, model_id: str, n_people: int, names: list[str], vecs, owners, probes: dict) -> list[dict]:
    """recall@1 per probe kind and search time at 1, 2 and 4 times the IVF lists probed by default, or at a quarter
    to twice the PQ base's default shortlist."""
    from audit.store.index import pqbase

    default, shortlist = seg.man.nprobe, pqbase.FASTSCAN_CANDIDATES
    exact = {label: exact_people(vecs, owners, q)[0] for label, q in probes.items()}
    out = []
    for mult in (1, 2, 4) if seg.man.kind == "ivf" else (0.25, 0.5, 1, 2):
        if seg.man.kind == "ivf":
            seg.man.nprobe = min(seg.man.nlist, default * mult)
            got = {"nprobe": seg.man.nprobe}
        else:
            pqbase.FASTSCAN_CANDIDATES = int(shortlist * mult)
            got = {"shortlist": pqbase.FASTSCAN_CANDIDATES}
        cpus = []
        for label, qs in probes.items():
            hits = 0
            for q, ex in zip(qs, exact[label]):
                cpu = time.process_time()
                cands = store.search("face", model_id, q[None], 10)[0]
                cpus.append(time.process_time() - cpu)
                hits += bool(cands) and person_number(cands[0].person, n_people, names) == ex[0]
            got[f"{label}_r1"] = hits / len(qs)
        got["cpu_ms"] = 1000 * float(np.median(cpus))
        out.append(got)
    seg.man.nprobe, pqbase.FASTSCAN_CANDIDATES = default, shortlist
    return out


def bulk_vs_scan(data: Path, work: Path) -> dict:
    """Images/s of `enroll face --manifest` (one process, enrolment checks included) against a scan of the same
    photos (cold: no scan cache), with one worker and with the default workers (one per core)."""
    import audit
    from audit.enroll import enroll_manifest

    rows = list(csv.DictReader(open(data / "identities.csv")))
    home = work / "bulk"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    manifest = home.parent / "bulk.csv"
    with open(manifest, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["person", "path"])
        w.writerows([[f"m-{r['person']}", str(data / r["file"])] for r in rows])
    store = audit.open_store(home / "s", key=None)
    t, cpu = time.perf_counter(), time.process_time()
    done = enroll_manifest(store, manifest, pick="largest")
    out = {"images": len(rows), "enrolled": done.added, "bulk_s": time.perf_counter() - t,
           "bulk_cpu_s": time.process_time() - cpu}
    paths = [data / r["file"] for r in rows]
    for label, workers in (("scan1", 1), ("scan", 0)):
        t = time.perf_counter()
        run = audit.scan(store, paths, workers=workers, cache=False)
        list(run)
        out[f"{label}_s"] = time.perf_counter() - t
    store.close()
    for key in ("bulk", "scan1", "scan"):
        out[f"{key}_ips"] = len(rows) / out[f"{key}_s"]
    return out


def _centre_of(vecs: np.ndarray, owners: np.ndarray, who: int) -> np.ndarray:
    """A stand-in identity centre for an enrolled person: the mean of their templates."""
    return vecs[owners == who].mean(0)


def kind_label(r: dict) -> str:
    if r["kind"] == "ivf":
        return f"IVF {r['nlist']}/{r['nprobe']}"
    return {"pqfs": "fast-scan PQ"}.get(r["kind"], r["kind"])


def table(rows: list[dict]) -> str:
    """The results as a Markdown table."""
    head = ("| vectors | index | store open + ready (CPU) | RSS | 1-image scan, CLI (CPU) | scan RSS | "
            "search/face: median (CPU), p95 | "
            "recall@1 genuine / impostor / morph / real | recall@1 of matches | recall@10 genuine / impostor / morph | "
            "enroll 1 person: median (CPU), max | compaction | disk (index) |\n|" + "---:|" * 13)
    lines = [head]
    for r in rows:
        lines.append(
            f"| {r['vectors']:,} | {kind_label(r)} "
            f"| {r['open_s']:.2f} s ({r['open_cpu_s']:.2f} s) | {r['open_rss_mb'] / 1024:.2f} GB | "
            f"{r['scan1_s']:.1f} s ({r['scan1_cpu_s']:.1f} s) | {r['scan1_rss_mb'] / 1024:.2f} GB | "
            f"{r['impostor_ms']:.1f} ms ({r['impostor_cpu_ms']:.1f} ms), {r['impostor_p95_ms']:.1f} ms | "
            f"{r['genuine_r1']:.3f} / {r['impostor_r1']:.3f} / {r['morph_r1']:.3f} / {r['real_r1']:.3f} (n={r['genuine_n']}/"
            f"{r['impostor_n']}/{r['morph_n']}/{r['real_n']}) | {r['match_r1']:.3f} (n={r['match_probes']}) | "
            f"{r['genuine_r10']:.3f} / {r['impostor_r10']:.3f} / {r['morph_r10']:.3f} | "
            f"{r['enroll_s']:.2f} s ({r['enroll_cpu_s']:.2f} s), {r['enroll_max_s']:.2f} s | {r['compact_s']:.1f} s | "
            f"{r['disk_mb'] / 1000:.2f} GB ({r['index_mb']:.0f} MB) |")
    return "\n".join(lines)


def crossover(dim: int = 512) -> str:
    """Exact Flat search time per face against the fast-scan PQ base (shortlist re-scored on the vectors) at
    growing sizes (random unit vectors: time only)."""
    import faiss

    from audit.store.index import pqbase

    rng = np.random.default_rng(3)
    lines = ["| vectors | Flat CPU ms/face | fast-scan PQ + re-score CPU ms/face |", "|---:|---:|---:|"]
    for n in (8192, 16384, 32768, 65536):
        x = rng.standard_normal((n, dim)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        flat = faiss.IndexFlatIP(dim)
        flat.add(x)
        ids = np.arange(n, dtype=np.int64)
        codes, rerank = pqbase.build(lambda: iter([(ids, x)]), n, dim)
        none = np.zeros(0, np.int64)
        out = []
        for search in (lambda q: flat.search(q, 64), lambda q: pqbase.search(codes, rerank, ids, none, q, 64)):
            t = time.process_time()  # CPU time: the machine is shared
            for q in x[:200]:
                search(q[None])
            out.append((time.process_time() - t) / 200 * 1000)
        lines.append(f"| {n:,} | {out[0]:.2f} | {out[1]:.2f} |")
    return "\n".join(lines)


def code_error(gen: Generator, n: int = 100_000, probes: int = 1000) -> str:
    """How far the PQ base's 8-bit re-scoring cosines lie from exact ones: every probe against every template of a
    synthetic gallery (genuine probes, so that high similarities are covered too), ranges trained as the store does."""
    from audit.store.index import pqbase

    vecs = gen.samples(gen.centres(n // PER), PER)
    ids = np.arange(len(vecs), dtype=np.int64)
    codes, rerank = pqbase.build(lambda: iter([(ids, vecs)]), len(vecs), vecs.shape[1])
    dec = pqbase.decoded(rerank, 0, rerank.ntotal)
    dec /= np.linalg.norm(dec, axis=1, keepdims=True)
    q = gen.samples(np.stack([vecs[i * PER:(i + 1) * PER].mean(0) for i in range(probes)]), 1)
    err = np.abs(dec @ q.T - vecs @ q.T)
    return (f"8-bit re-scoring, {len(vecs):,} templates x {probes} probes: |cosine error| median {np.median(err):.1e}, "
            f"99.99th percentile {np.quantile(err, 0.9999):.1e}, max {err.max():.1e}")


def main() -> None:
    global PROBES, SWEEP
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000,1000000", help="templates per gallery, comma separated")
    ap.add_argument("--work", type=Path, default=Path("/tmp/gallery_scale"))
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--probes", type=int, default=PROBES, help="synthetic probes of each kind (genuine, impostor, morph)")
    ap.add_argument("--extra-rows", nargs="*", default=[], help="JSON rows of earlier runs to add to the table")
    ap.add_argument("--probe-open", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--bulk", action="store_true", help="also compare manifest enrolment with scan throughput")
    ap.add_argument("--code-error", action="store_true", help="also measure the 8-bit re-scoring error")
    ap.add_argument("--keep", action="store_true",
                    help="keep each gallery and its probes in --work and reuse them on the next run (search only)")
    ap.add_argument("--no-sweep", action="store_true", help="skip the recall-against-shortlist sweep")
    args = ap.parse_args()
    PROBES = args.probes
    if args.probe_open:
        probe_open(args.probe_open[0], args.probe_open[1], int(args.probe_open[2]))
        return
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from audit.models.face import FaceModel

    print(f"load: {os.getloadavg()}, cores: {os.cpu_count()}")
    args.work.mkdir(parents=True, exist_ok=True)
    real = args.work / "real.npz"
    if args.keep and real.exists():
        got = np.load(real)
        rvecs, rpeople, files = got["vecs"], got["people"].tolist(), got["files"].tolist()
    else:
        rvecs, rpeople, files = real_embeddings(args.data)
        if args.keep:
            np.savez(real, vecs=rvecs, people=np.array(rpeople), files=np.array(files))
    real_stats = cosine_stats(rvecs, rpeople)
    gen = Generator(rvecs, rpeople)
    syn_stats = gen.fit(real_stats)
    print("cosine similarities, real vs synthetic:")
    for k in real_stats:
        print(f"  {k:14s} real {real_stats[k]:+.3f}  synthetic {syn_stats[k]:+.3f}")
    print(f"  spreads: between x{gen.kb:.3f} ({gen.shrink:.2f} of it isotropic), within x{gen.kw:.3f}")
    # One held-out photo per real person (their last), searched as a real probe.
    held = sorted({max(i for i, p in enumerate(rpeople) if p == name) for name in set(rpeople)})
    model_id = FaceModel().model_id
    if args.code_error:
        print(code_error(gen))
    if not args.keep:
        print("crossover (Flat vs fast-scan PQ, per face):\n" + crossover())
    if args.no_sweep:
        SWEEP = False
    rows = []
    for n in [int(s) for s in args.sizes.split(",") if s]:
        row = measure(n // PER, args.work, gen, (rvecs, rpeople, held), model_id, args.data / files[held[0]],
                      args.keep)
        rows.append(row)
        print(json.dumps(row), flush=True)
        if not args.keep:
            shutil.rmtree(args.work / f"g{n // PER}", ignore_errors=True)
    for path in args.extra_rows:  # rows measured by an earlier run, to print one table
        rows += [json.loads(line) for line in Path(path).read_text().splitlines() if line.startswith("{")]
    rows.sort(key=lambda r: r["vectors"])
    if not args.keep:
        print(table(rows))
    for r in rows:  # search alone, every probe: the median CPU time a face and the load it ran at
        print(f"  {r['vectors']:,} vectors: search {r['all_cpu_ms']:.2f} ms CPU a face (median of all {r['all_n']} "
              f"probes; impostors {r['impostor_cpu_ms']:.2f} ms CPU, {r['impostor_ms']:.2f} ms wall), "
              f"load {r['load']}")
    for r in rows:  # recall@1 with its 95 % lower bound, per probe kind
        print(f"  {r['vectors']:,} vectors ({kind_label(r)}): " + ", ".join(
            f"{label} {round(r[label + '_r1'] * r[label + '_n'])}/{r[label + '_n']} (>= "
            f"{1 - upper_bound(r[label + '_n'] - round(r[label + '_r1'] * r[label + '_n']), r[label + '_n']):.4f})"
            for label in ("genuine", "impostor", "morph", "real")))
    for r in rows:
        for got in r.get("sweep", []):
            knob = f"nprobe {got['nprobe']}" if "nprobe" in got else f"shortlist {got['shortlist']}"
            print(f"  {r['vectors']:,} vectors, {knob}: recall@1 genuine {got['genuine_r1']:.3f} "
                  f"impostor {got['impostor_r1']:.3f} morph {got['morph_r1']:.3f} real {got['real_r1']:.3f}, "
                  f"search {got['cpu_ms']:.1f} ms CPU/face")
    if args.bulk:
        got = bulk_vs_scan(args.data, args.work)
        print(json.dumps(got))
        print(f"bulk manifest enrolment: {got['bulk_ips']:.2f} images/s ({got['enrolled']} of {got['images']} "
              f"enrolled); scan, 1 worker: {got['scan1_ips']:.2f} images/s; scan, default workers: "
              f"{got['scan_ips']:.2f} images/s; bulk / scan(1 worker) = {got['bulk_ips'] / got['scan1_ips']:.2f}")
    print(f"peak RSS of this benchmark process: {rss_mb() / 1024:.1f} GB; load: {os.getloadavg()}")


if __name__ == "__main__":
    main()

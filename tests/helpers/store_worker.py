"""A separate process that writes to or reads from a store, for the crash and concurrency tests.

With AUDIT_TEST_SEGMENTS=FLAT_MAX,DELTA_MAX[,PQFS_MAX] set, the index policy is shrunk so that a few vectors already
make a fast-scan PQ base (an IVF base with PQFS_MAX) and every write compacts (the compaction write path of audit/store/segments.py).

Synthetic unit vectors (two models, so a write touches two index files) keep each process quick; the real face
pipeline is exercised by the CLI tests. Usage:

    python tests/helpers/store_worker.py HOME op enroll NAME | op remove NAME | op consent NAME | op compact -
    python tests/helpers/store_worker.py HOME loop PREFIX COUNT      # the ops of plan(PREFIX, COUNT), printing "done K" after each
    python tests/helpers/store_worker.py HOME read SECONDS           # open, check and search the store again and again
"""

from __future__ import annotations

import sys
import time
import zlib

import numpy as np

from audit.store.registry import Sample
from audit.store import Store

MODELS = {"m1": 16, "m2": 8}
SAMPLES = 3


def vectors(name: str, model: str, n: int = SAMPLES) -> np.ndarray:
    """Deterministic unit vectors of one person for one model."""
    rng = np.random.default_rng(zlib.crc32(f"{name}/{model}".encode()))
    v = rng.normal(size=(n, MODELS[model])).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def samples(name: str) -> list[Sample]:
    """Samples of one person under both models."""
    out = []
    for model in MODELS:
        for i, v in enumerate(vectors(name, model)):
            out.append(Sample("face", model, f"{zlib.crc32(name.encode()):08x}{model}{i}".ljust(64, "0"), v))
    return out


def reference(name: str) -> bytes:
    """A deterministic stand-in for a reference crop."""
    return np.random.default_rng(zlib.crc32(name.encode()) + 1).integers(0, 256, 600, np.uint8).tobytes()


def run_op(store: Store, op: str, name: str) -> None:
    """One write."""
    if op == "enroll":
        store.add_samples(name, name.upper(), samples(name), ("face", reference(name)))
    elif op == "remove":
        store.remove(name)
    elif op == "consent":
        store.consent(name, allow=["research"], deny=["advertising"], note="worker")
    elif op == "compact":
        store.compact()
    else:
        raise SystemExit(f"unknown op {op}")


def plan(prefix: str, count: int) -> list[tuple[str, str]]:
    """A deterministic mix of enrolments, removals and consent changes."""
    ops = []
    for i in range(count):
        ops.append(("enroll", f"{prefix}{i}"))
        if i % 4 == 3:
            ops.append(("consent", f"{prefix}{i}"))
        if i % 3 == 2:
            ops.append(("remove", f"{prefix}{i - 1}"))
    return ops


def read(home: str, seconds: float) -> None:
    """Reopen and search the store repeatedly; exit 1 on anything inconsistent."""
    end, n = time.monotonic() + seconds, 0
    probe = {m: vectors("base", m)[:1] for m in MODELS}
    while time.monotonic() < end:
        store = Store(home, key=None)
        for model in MODELS:
            hits = store.search("face", model, probe[model], top_k=1)  # raises when index and registry disagree
            if not hits[0] or hits[0][0].person != "base" or hits[0][0].similarity < 0.999:
                print(f"wrong hit for base under {model}: {hits}", flush=True)
                raise SystemExit(1)
        store.close()
        n += 1
    print(f"reads {n}", flush=True)


def small_segments(spec: str | None) -> None:
    """Shrink the index policy (FLAT_MAX,DELTA_MAX[,PQFS_MAX]) in this process, as the compaction tests ask."""
    if spec:
        from audit.store.index import ivfbase, segments

        sizes = [int(x) for x in spec.split(",")]
        segments.FLAT_MAX, segments.DELTA_MAX = sizes[:2]
        if len(sizes) > 2:
            segments.PQFS_MAX = sizes[2]
        ivfbase.TRAIN_PER_LIST = 1


def main(argv: list[str]) -> None:
    import os

    small_segments(os.environ.get("AUDIT_TEST_SEGMENTS"))
    home, mode, *rest = argv
    if mode == "read":
        read(home, float(rest[0]))
        return
    store = Store(home, key=None)
    if mode == "op":
        run_op(store, rest[0], rest[1])
    elif mode == "loop":
        for k, (op, name) in enumerate(plan(rest[0], int(rest[1]))):
            run_op(store, op, name)
            print(f"done {k}", flush=True)
    store.close()


if __name__ == "__main__":
    main(sys.argv[1:])

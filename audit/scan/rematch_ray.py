"""The archive search of retro-match (rematch.py) as a Ray Data job: the partitions are the dataset, each actor
searches a batch of them with one FAISS scan (store/archive_search.py), and the hits of all batches are merged.

Every node must see the store folder at the same path (a shared file system) and have likeness-audit installed;
for an encrypted store every node needs the key in $AUDIT_KEY or $AUDIT_KEY_FILE (the key never travels with the
job: actors check it against the store's key check value and refuse another).
"""

from __future__ import annotations

import json
import os

import numpy as np

from ..errors import AuditError, KeyProblem
from ..store.archive import Archive, ArchiveDamaged, Partition
from ..store.archive_search import search
from ..store.crypto import Cipher, load_key
from .engine import _connect

BATCH = 8  # partitions per actor call: one FAISS scan over their codes
COLUMNS = ["sha256", "sign", "code", "clipped", "embedding"]


class PartitionSearcher:
    """A Ray Data actor: opens the archive once, then searches batches of partitions for the templates."""

    def __init__(self, home: str, check: str | None, templates: np.ndarray, threshold: float):
        cipher = None
        if check is not None:
            key = load_key()
            if key is None:
                raise KeyProblem("the store is encrypted: this Ray node needs its key in $AUDIT_KEY or $AUDIT_KEY_FILE")
            cipher = Cipher(key)
            if cipher.check_value != check:
                raise KeyProblem("this Ray node has another key than the store's")
        self.archive, self.templates, self.threshold = Archive(home, cipher), templates, threshold

    def __call__(self, batch: dict) -> dict:
        rels = [str(r) for r in batch["rel"]]
        try:
            tables = [self.archive.read(r, COLUMNS) for r in rels]
        except ArchiveDamaged as exc:  # said, not raised: the driver refuses the whole search with it
            return {"rel": rels, "shas": ["[]"] * len(rels), "rows": [0] * len(rels), "error": [str(exc)] * len(rels)}
        found: dict[int, set[str]] = {}
        for hit in search(tables, self.templates, self.threshold):
            found.setdefault(hit.table, set()).add(tables[hit.table].column("sha256")[hit.row].as_py())
        return {"rel": rels, "shas": [json.dumps(sorted(found.get(i, ()))) for i in range(len(rels))],
                "rows": [t.num_rows for t in tables], "error": [""] * len(rels)}


def candidates(parts: list[Partition], q: np.ndarray, threshold: float, home, cipher: Cipher | None,
               address: str | None) -> tuple[dict[str, set[str] | None], int]:
    """rematch.candidates on a Ray cluster: partition -> file hashes within reach of the threshold, rows searched."""
    if not parts or not len(q):
        return {}, 0
    ray, started = _connect(address)
    try:
        import ray.data

        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        blocks = max(1, -(-len(parts) // BATCH))
        ds = ray.data.from_items([{"rel": p.rel} for p in parts], override_num_blocks=blocks)
        out = ds.map_batches(PartitionSearcher, batch_size=BATCH, concurrency=min(cpus, blocks),
                             fn_constructor_kwargs={"home": os.fspath(home), "templates": q, "threshold": threshold,
                                                    "check": cipher.check_value if cipher is not None else None},
                             num_cpus=1).take_all()
    except AuditError:
        raise
    except Exception as exc:  # a failed actor (another key, a node without the store): said, not searched around
        raise AuditError(f"the Ray archive search failed: {type(exc).__name__}: {str(exc)[-500:]}") from exc
    finally:
        if started:
            ray.shutdown()
    errors = [r["error"] for r in out if r["error"]]
    if errors:
        raise ArchiveDamaged(errors[0])
    if sorted(r["rel"] for r in out) != sorted(p.rel for p in parts):
        raise AuditError("the Ray archive search did not answer for every partition")
    hits = {r["rel"]: set(json.loads(r["shas"])) for r in out if json.loads(r["shas"])}
    return hits, int(sum(r["rows"] for r in out))

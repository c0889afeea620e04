"""Search: the index proposes a shortlist, the registry's exact vectors decide (approximate recall, exact scores)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .store import Store

SHORTLIST = 64  # candidates per probe that the index proposes and the registry's exact vectors re-score


@dataclass
class Candidate:
    """One registered person's best score against a probe."""

    person: str
    similarity: float
    vector_id: int


def rerank(store: Store, table: str, modality: str, model: str, vectors: np.ndarray, top_k: int,
           shortlist: int) -> list[list[Candidate]]:
    """Per probe, the top_k people by exact cosine similarity among the shortlist the index proposes.

    The registry's vectors of the shortlisted ids give both the exact scores and the id -> person map.
    """
    seg, _ = store.index(modality, model, table)
    vectors = np.asarray(vectors, np.float32).reshape(len(vectors), -1)
    if seg.count == 0 or len(vectors) == 0:
        return [[] for _ in range(len(vectors))]
    _, ids = seg.search(vectors, min(seg.count, shortlist))
    rids, rvecs, people = store.registry.rows_by_id(table, modality, model, np.unique(ids))
    row = {int(v): i for i, v in enumerate(rids)}
    probes = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    stored = rvecs / np.maximum(np.linalg.norm(rvecs, axis=1, keepdims=True), 1e-12) if len(rids) else rvecs
    out = []
    for probe, cand in zip(probes, ids):
        pos = np.array([row[int(v)] for v in cand if int(v) in row], np.int64)
        sims = stored[pos] @ probe if len(pos) else np.zeros(0, np.float32)
        best: dict[str, Candidate] = {}
        for i in np.argsort(-sims, kind="stable"):
            p = people[pos[i]]
            if p not in best:
                best[p] = Candidate(p, float(sims[i]), int(rids[pos[i]]))
                if len(best) >= top_k:
                    break
        out.append(list(best.values()))
    return out


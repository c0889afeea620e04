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

    The registry's vectors of the shortlisted ids give both the exact scores and the id -> person map. When the
    index's own scores are near exact (seg.slack), the registry is asked first for the best FIRST * top_k ids and
    every id within the slack of them, and for the rest only if those name fewer than top_k people.
    """
    seg, _ = store.index(modality, model, table)
    vectors = np.asarray(vectors, np.float32).reshape(len(vectors), -1)
    if seg.count == 0 or len(vectors) == 0:
        return [[] for _ in range(len(vectors))]
    sims, ids = seg.search(vectors, min(seg.count, shortlist))
    probes = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    lists = [i[i >= 0] for i in ids]
    if seg.slack is None:
        return _best(store, table, modality, model, probes, lists, top_k)
    firsts = [_head(s[i >= 0], lst, FIRST * top_k, seg.slack) for s, i, lst in zip(sims, ids, lists)]
    out = _best(store, table, modality, model, probes, firsts, top_k)
    again = [j for j, got in enumerate(out) if len(got) < top_k and len(firsts[j]) < len(lists[j])]
    if again:
        for j, got in zip(again, _best(store, table, modality, model, probes[again], [lists[j] for j in again], top_k)):
            out[j] = got
    return out


FIRST = 8  # ids fetched first per person asked for (enrolment keeps a few templates a person)


def _head(sims: np.ndarray, ids: np.ndarray, n: int, slack: float) -> np.ndarray:
    """The first n ids (sims sorted best first) and every later one within slack of the n-th."""
    if len(ids) <= n:
        return ids
    return ids[sims >= sims[n - 1] - slack]


def _best(store: Store, table: str, modality: str, model: str, probes: np.ndarray, lists: list[np.ndarray],
          top_k: int) -> list[list[Candidate]]:
    """Per probe (unit vectors), the top_k people by exact cosine among its candidate ids, from the registry."""
    rids, rvecs, people = store.registry.rows_by_id(table, modality, model, np.unique(np.concatenate(lists)))
    row = {int(v): i for i, v in enumerate(rids)}
    stored = rvecs / np.maximum(np.linalg.norm(rvecs, axis=1, keepdims=True), 1e-12) if len(rids) else rvecs
    out = []
    for probe, cand in zip(probes, lists):
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

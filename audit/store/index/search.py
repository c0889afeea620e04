"""Search: the index proposes a shortlist, the registry's exact vectors decide (approximate recall, exact scores)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ..registry import Registry
    from .segments import Segments

SHORTLIST = 64  # candidates per probe that the index proposes and the registry's exact vectors re-score


@dataclass
class Candidate:
    """One registered person's best score against a probe."""

    person: str
    similarity: float
    vector_id: int


def rerank(seg: Segments, registry: Registry, table: str, vectors: np.ndarray, top_k: int) -> list[list[Candidate]]:
    """Per probe, the top_k people by exact cosine similarity among the shortlist the index (seg, of the table's
    rows of one modality and model) proposes.

    The shortlist: SHORTLIST ids, or 16 per person asked for, of samples; half of that, or 4 per person, of centroids.

    The registry's vectors of the shortlisted ids give both the exact scores and the id -> person map. When the
    index's own scores lie within seg.slack of the exact ones (a PQ base's 8-bit re-scoring), the people are looked
    up first and only the ids that could still be among the exact top_k people are read whole.
    """
    vectors = np.asarray(vectors, np.float32).reshape(len(vectors), -1)
    shortlist = max(top_k * 16, SHORTLIST) if table == "samples" else max(top_k * 4, SHORTLIST // 2)
    if seg.count == 0 or len(vectors) == 0:
        return [[] for _ in range(len(vectors))]
    sims, ids = seg.search(vectors, min(seg.count, shortlist))
    probes = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    if seg.slack is None:
        return _best(registry, table, seg.modality, seg.model, probes, [i[i >= 0] for i in ids], top_k)
    who: dict[int, str] = {}
    lists = [_contenders(s[i >= 0], i[i >= 0], _people(registry, table, s[i >= 0], i[i >= 0], who, top_k, seg.slack),
                         top_k, seg.slack) for s, i in zip(sims, ids)]
    return _best(registry, table, seg.modality, seg.model, probes, lists, top_k)


def _people(registry: Registry, table: str, sims: np.ndarray, ids: np.ndarray, who: dict[int, str], top_k: int,
            slack: float) -> dict[int, str]:
    """who (id -> person, shared between probes) extended with the people of the best-scored ids, in growing
    steps, until the rest of the list (sims best first) cannot hold a contender: top_k people are known and the
    next score lies below the top_k-th person's best by more than 2 slack. Each id looked up is a SQLite read, and
    a shortlist of 160 ids usually needs only its first 40."""
    done, step = 0, 4 * top_k
    while done < len(ids):
        want = [i for i in ids[done:done + step].tolist() if i not in who]
        who.update(registry.people_of_ids(table, want) if want else {})
        done += step
        step *= 2
        best: dict[str, float] = {}
        for s, i in zip(sims[:done].tolist(), ids[:done].tolist()):
            if i in who and who[i] not in best:
                best[who[i]] = s
        if done < len(ids) and len(best) >= top_k and sims[done] < sorted(best.values())[-top_k] - 2 * slack:
            break
    return who


def _contenders(sims: np.ndarray, ids: np.ndarray, who: dict[int, str], top_k: int, slack: float) -> np.ndarray:
    """The ids (sims best first, each within slack of its exact score) that could be a person's best template among
    the exact top_k people: within 2 slack of their person's best and of the top_k-th person's best."""
    best: dict[str, float] = {}
    for s, i in zip(sims.tolist(), ids.tolist()):
        if i in who and who[i] not in best:
            best[who[i]] = s
    if not best:
        return ids[:0]
    floor = sorted(best.values(), reverse=True)[min(top_k, len(best)) - 1] - 2 * slack
    keep = [i for s, i in zip(sims.tolist(), ids.tolist()) if i in who and s >= max(floor, best[who[i]] - 2 * slack)]
    return np.array(keep, np.int64)


def _best(registry: Registry, table: str, modality: str, model: str, probes: np.ndarray, lists: list[np.ndarray],
          top_k: int) -> list[list[Candidate]]:
    """Per probe (unit vectors), the top_k people by exact cosine among its candidate ids, from the registry."""
    rids, rvecs, people = registry.rows_by_id(table, modality, model, np.unique(np.concatenate(lists)))
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

"""The registry's vector rows (samples and per-person centroids): read by id or in chunks, id summaries kept by
triggers, and centroids kept in step with the samples. A mixin of Registry."""

from __future__ import annotations

import numpy as np

# Vector ids are summarised per table, modality and model as (count, sum of ids, sum of a hash of each id), kept by
# triggers in the same transaction as the rows: an index compares its own summary with it in O(1) when opened.
ID_HASH_MUL, ID_HASH_MOD = 2654435761, 4294967291
SCHEMA_VERSION = 2  # 2: centroids and id summaries

_TRIGGERS = """
CREATE TRIGGER IF NOT EXISTS {t}_ids_add AFTER INSERT ON {t} BEGIN
    INSERT INTO id_state VALUES ('{t}', NEW.modality, NEW.model, 1, NEW.id, (NEW.id * {mul}) % {mod})
    ON CONFLICT (tbl, modality, model) DO UPDATE SET n = n + 1, s1 = s1 + NEW.id, s2 = s2 + (NEW.id * {mul}) % {mod};
END;
CREATE TRIGGER IF NOT EXISTS {t}_ids_del AFTER DELETE ON {t} BEGIN
    UPDATE id_state SET n = n - 1, s1 = s1 - OLD.id, s2 = s2 - (OLD.id * {mul}) % {mod}
    WHERE tbl = '{t}' AND modality = OLD.modality AND model = OLD.model;
END;
"""
TRIGGERS = "".join(_TRIGGERS.format(t=t, mul=ID_HASH_MUL, mod=ID_HASH_MOD) for t in ("samples", "centroids"))
# Person by vector id without reading the 2 kB rows: a PQ search names a few hundred candidates, of which only the
# best few need their vectors (at 1M rows a full row costs ~85 us here, an entry of this index a few).
TRIGGERS += "".join(f"CREATE INDEX IF NOT EXISTS {t}_id_person ON {t}(id, person);\n" for t in ("samples", "centroids"))


def id_state(ids) -> tuple[int, int, int]:
    """The (count, sum, hash sum) summary of a set of ids, as the registry's triggers keep it."""
    ids = np.asarray(ids, np.int64).astype(object) if len(ids) else []
    return (len(ids), int(sum(ids)), int(sum((i * ID_HASH_MUL) % ID_HASH_MOD for i in ids)))


class VectorRows:
    """Sample and centroid rows of the registry (needs Registry's db, _seal, _unseal, meta and models)."""

    def outdated(self) -> bool:
        """Whether the registry predates the centroid table and id summaries (the store then migrates it)."""
        return int(self.meta("schema") or 1) < SCHEMA_VERSION

    def migrate(self) -> None:
        """Bring a version 1 registry up to date: id summaries and every centroid (inside a transaction)."""
        self.db.execute("DELETE FROM id_state")
        self.db.execute(
            f"INSERT INTO id_state SELECT 'samples', modality, model, COUNT(*), SUM(id), SUM((id * {ID_HASH_MUL}) % "
            f"{ID_HASH_MOD}) FROM samples GROUP BY modality, model")
        for modality, model in self.models():
            self.refresh_centroids(modality, model)
        self.set_meta("schema", str(SCHEMA_VERSION))

    def vectors_of_person(self, pid: str) -> dict[tuple[str, str, str], np.ndarray]:
        """A person's sample and centroid vectors per (table, modality, model)."""
        out = {}
        for table in ("samples", "centroids"):
            for modality, model in self.db.execute(f"SELECT DISTINCT modality, model FROM {table} WHERE person=?",
                                                   (pid,)).fetchall():
                rows = self.db.execute(f"SELECT id, vector, person FROM {table} WHERE person=? AND modality=? AND "
                                       "model=?", (pid, modality, model)).fetchall()
                out[(table, modality, model)] = self._decode(rows, table, modality, model)[1]
        return out

    def person_vectors(self, pid: str, modality: str, model: str) -> np.ndarray:
        """One person's sample vectors of one modality and model."""
        return self._decode(self.db.execute("SELECT id, vector, person FROM samples WHERE person=? AND modality=? AND "
                                            "model=? ORDER BY id", (pid, modality, model)).fetchall(),
                            "samples", modality, model)[1]

    def source_people(self, sha256: str, modality: str) -> list[str]:
        """Who has a sample from this file (by SHA-256) in this modality."""
        return [r[0] for r in self.db.execute("SELECT DISTINCT person FROM samples WHERE source_sha256=? AND "
                                              "modality=? ORDER BY person", (sha256, modality))]

    def rows_by_id(self, table: str, modality: str, model: str, ids) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(ids, vectors, person ids) of the given sample or centroid ids (those that exist), in id order."""
        ids = sorted({int(i) for i in ids if i >= 0})
        rows = []
        for start in range(0, len(ids), 900):  # under SQLite's limit on bound parameters
            chunk = ids[start:start + 900]
            rows += self.db.execute(
                f"SELECT id, vector, person FROM {_table(table)} WHERE id IN ({','.join('?' * len(chunk))})"
                " AND modality=? AND model=? ORDER BY id", (*chunk, modality, model)).fetchall()
        return self._decode(rows, table, modality, model)

    def people_of_ids(self, table: str, ids) -> dict[int, str]:
        """Vector id -> person id for the given sample or centroid ids (those that exist), from the index alone."""
        ids = sorted({int(i) for i in ids if i >= 0})
        out: dict[int, str] = {}
        for start in range(0, len(ids), 900):
            chunk = ids[start:start + 900]
            out.update(self.db.execute(f"SELECT id, person FROM {_table(table)} INDEXED BY {_table(table)}_id_person "
                                       f"WHERE id IN ({','.join('?' * len(chunk))})", chunk).fetchall())
        return out

    def _decode(self, rows, table: str, modality: str, model: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
        kind = "sample" if table == "samples" else "centroid"
        ids = np.array([r[0] for r in rows], np.int64)
        vecs = np.stack([
            np.frombuffer(self._unseal(r[1], f"{kind}|{r[2]}|{modality}|{model}", f"{kind} {r[0]}"), np.float32)
            for r in rows
        ]) if rows else np.zeros((0, 0), np.float32)
        return ids, vecs, [r[2] for r in rows]

    def iter_rows(self, table: str, modality: str, model: str, chunk: int = 50_000):
        """(ids, vectors, person ids) of every sample or centroid of one modality and model, in id order, by chunks."""
        last = -1
        while True:
            rows = self.db.execute(
                f"SELECT id, vector, person FROM {_table(table)} WHERE modality=? AND model=? AND id > ?"
                " ORDER BY id LIMIT ?", (modality, model, last, chunk)).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            yield self._decode(rows, table, modality, model)

    def ids(self, table: str, modality: str, model: str) -> np.ndarray:
        """Every sample or centroid id of one modality and model."""
        return np.array([r[0] for r in self.db.execute(
            f"SELECT id FROM {_table(table)} WHERE modality=? AND model=?", (modality, model))], np.int64)

    def id_state(self, table: str, modality: str, model: str) -> tuple[int, int, int]:
        """The triggers' (count, sum, hash sum) of the ids of one table, modality and model."""
        row = self.db.execute("SELECT n, s1, s2 FROM id_state WHERE tbl=? AND modality=? AND model=?",
                              (_table(table), modality, model)).fetchone()
        return tuple(row) if row else (0, 0, 0)

    # centroids
    def _centroid_of(self, pid: str, modality: str, model: str) -> tuple[np.ndarray, int] | None:
        rows = self.db.execute("SELECT id, vector, person FROM samples WHERE person=? AND modality=? AND model=?",
                               (pid, modality, model)).fetchall()
        if not rows:
            return None
        _, vecs, _ = self._decode(rows, "samples", modality, model)
        return unit_mean(vecs), len(rows)

    def refresh_centroid(self, pid: str, modality: str, model: str) -> tuple[list[int], list[int], np.ndarray]:
        """Recompute one person's centroid from their samples (inside a transaction).

        Returns (centroid ids removed, ids added, vectors added): a changed centroid gets a new id.
        """
        old = [r[0] for r in self.db.execute("SELECT id FROM centroids WHERE person=? AND modality=? AND model=?",
                                             (pid, modality, model))]
        self.db.execute("DELETE FROM centroids WHERE person=? AND modality=? AND model=?", (pid, modality, model))
        got = self._centroid_of(pid, modality, model)
        if got is None:
            return old, [], np.zeros((0, 0), np.float32)
        vec, n = got
        cur = self.db.execute(
            "INSERT INTO centroids (person, modality, model, n, vector) VALUES (?,?,?,?,?)",
            (pid, modality, model, n, self._seal(vec.tobytes(), f"centroid|{pid}|{modality}|{model}")))
        return old, [int(cur.lastrowid)], vec[None, :]

    def stale_centroids(self, modality: str, model: str) -> list[str]:
        """People whose stored centroid differs from the mean of their samples (or is missing or left over)."""
        stored = {}
        for _, vecs, people in self.iter_rows("centroids", modality, model):
            stored.update(zip(people, vecs))
        stale, seen = [], set()
        for pid, (vec, _) in self._all_means(modality, model):
            seen.add(pid)
            if pid not in stored or not np.allclose(stored[pid], vec, atol=1e-5):
                stale.append(pid)
        return sorted(stale + [p for p in stored if p not in seen])

    def _all_means(self, modality: str, model: str):
        """(person, (unit mean, count)) for everyone with samples, one person at a time."""
        for (pid,) in self.db.execute("SELECT DISTINCT person FROM samples WHERE modality=? AND model=?",
                                      (modality, model)).fetchall():
            yield pid, self._centroid_of(pid, modality, model)

    def refresh_centroids(self, modality: str, model: str) -> list[str]:
        """Recompute every stale centroid of one modality and model (inside a transaction); returns the people."""
        stale = self.stale_centroids(modality, model)
        for pid in stale:
            self.refresh_centroid(pid, modality, model)
        return stale

    def centroids_of(self, modality: str, model: str, people) -> dict[str, np.ndarray]:
        """Person id -> centroid for the given people (those enrolled in this modality and model)."""
        people = sorted(set(people))
        rows = []
        for start in range(0, len(people), 900):
            chunk = people[start:start + 900]
            rows += self.db.execute(
                f"SELECT id, vector, person FROM centroids WHERE person IN ({','.join('?' * len(chunk))})"
                " AND modality=? AND model=?", (*chunk, modality, model)).fetchall()
        _, vecs, who = self._decode(rows, "centroids", modality, model)
        return dict(zip(who, vecs))


def unit_mean(vecs: np.ndarray) -> np.ndarray:
    """The mean of some vectors scaled to unit length (float32)."""
    mean = np.asarray(vecs, np.float64).mean(axis=0)
    return (mean / max(np.linalg.norm(mean), 1e-12)).astype(np.float32)


def _table(name: str) -> str:
    if name not in ("samples", "centroids"):
        raise ValueError(f"no vector table {name}")
    return name

"""The archive search's shortlist never misses a row at or above the threshold (synthetic vectors)."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest

import audit
from audit.store import archive_sign
from audit.store.archive import Archive, ArchiveDamaged, PartWriter, embeddings, encode
from audit.store.archive_search import search, shortlist


def _unit(x):
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def test_every_row_at_the_threshold_is_found_including_rows_just_above_it():
    rng = np.random.default_rng(7)
    q = _unit(rng.standard_normal((2, 512)))
    noise = _unit(rng.standard_normal((20_000, 512)))
    # Rows built to score just above and just below 0.35 against the first template, and many at 0.6 (more than
    # the first k asked of FAISS: the shortlist must widen).
    near = []
    for target in [0.3501, 0.3499, 0.36, 0.34] + [0.6] * 200:
        r = _unit(rng.standard_normal(512))
        r = _unit(r - (r @ q[0]) * q[0])  # orthogonal to q0
        near.append(target * q[0] + np.sqrt(1 - target**2) * r)
    x = np.concatenate([noise, np.stack(near).astype(np.float32)])
    code, clipped = encode(x)
    exact = (x.astype(np.float16).astype(np.float32) @ q.T).max(axis=1)
    want = set(np.flatnonzero(exact >= 0.35).tolist())
    assert len(want) >= 201
    assert want <= set(shortlist([code[:10_000], code[10_000:]], q, 0.35).tolist()) | set(np.flatnonzero(clipped))


def test_search_rescoring_and_a_damaged_partition(audit_home):
    audit.open_store(audit_home).close()
    archive = Archive(audit_home)
    rng = np.random.default_rng(3)
    q = _unit(rng.standard_normal((1, 512)))
    w = PartWriter(archive, "face", "m1", "s1", datetime.now(timezone.utc), None)
    for i in range(300):
        w.add({"sha256": f"{i:064x}", "path": f"{i}.jpg", "media": "image", "box": [0, 0, 1, 1]},
              q[0] if i in (17, 217) else _unit(rng.standard_normal(512)))
        if i % 100 == 99:
            w.flush()  # three partitions: searched as one batch, in two FAISS scans
    parts = archive.partitions()
    assert len(parts) == 3
    hits = search([archive.read(p) for p in parts], q, 0.35)
    assert [(h.table, h.row, round(h.score, 2)) for h in hits] == [(0, 17, 1.0), (2, 17, 1.0)]
    part = parts[0]
    stray = (audit_home / part.rel).with_suffix(".parquet.abc.tmp")
    stray.write_bytes(b"half a partition")  # a write killed before its rename
    assert any("no partition" in p for p in archive.problems())
    archive.prune(30)
    assert not stray.exists() and archive.problems() == []
    path = audit_home / part.rel
    path.write_bytes(path.read_bytes()[:-100])  # truncated
    with pytest.raises(ArchiveDamaged, match=part.rel):
        archive.read(part)
    assert archive.problems() and part.rel in archive.problems()[0]


def _near(rng, q, low, high, n):
    """n unit rows whose cosine with unit q lies in [low, high]."""
    r = rng.standard_normal((n, q.shape[0])).astype(np.float32)
    r = _unit(r - (r @ q)[:, None] * q[None, :])
    t = rng.uniform(low, high, n)[:, None]
    return (t * q[None, :] + np.sqrt(1 - t**2) * r).astype(np.float32)


def test_rows_planted_just_above_the_threshold_pass_the_sign_prefilter(audit_home):
    """The sign codes' Hamming prefilter is measured, not guaranteed: rows planted just above the threshold for
    each of a person's templates are all found (one search for all templates), while most noise is sifted out."""
    from audit.scan.rematch import candidates

    audit.open_store(audit_home).close()
    archive = Archive(audit_home)
    rng = np.random.default_rng(11)
    q = _unit(rng.standard_normal((3, 512)))
    noise = _unit(rng.standard_normal((20_000, 512)))
    planted = np.concatenate([_near(rng, t, 0.3505, 0.36, 1000) for t in q])
    w = PartWriter(archive, "face", "m1", "s1", datetime.now(timezone.utc), None)
    for i, v in enumerate(np.concatenate([noise, planted])):
        w.add({"sha256": f"{i:064x}", "path": f"{i}.jpg", "media": "image", "box": [0, 0, 1, 1]}, v)
    w.flush()
    (part,) = archive.partitions()
    table = archive.read(part)
    assert archive_sign.usable(table)
    exact = (embeddings(table) @ q.T).max(axis=1)
    want = set(np.flatnonzero(exact >= 0.35).tolist())
    assert len(want) >= 2990
    assert {h.row for h in search([table], q, 0.35)} == want
    hits, _ = candidates(archive, [part], q, 0.35)  # rematch's reader: sign codes, then the rows' row groups
    assert hits[part.rel] == {f"{i:064x}" for i in want}
    survivors = archive_sign.prefilter(archive_sign.sign_codes(table)[:20_000], q, 0.35)
    assert len(survivors) < 0.02 * 20_000  # the prefilter does sift: most noise never reaches the 8-bit codes


def test_partitions_written_before_sign_codes_are_searched_on_their_8bit_codes(audit_home):
    """A partition without the sign column (written before it existed) reads and searches as before, in the same
    batch as new ones, through rematch's own reader."""
    from audit.scan.rematch import candidates

    audit.open_store(audit_home).close()
    archive = Archive(audit_home)
    rng = np.random.default_rng(5)
    q = _unit(rng.standard_normal((1, 512)))
    rows = np.concatenate([_unit(rng.standard_normal((500, 512))), _near(rng, q[0], 0.3505, 0.4, 50)])
    for name in ("old", "new"):
        w = PartWriter(archive, "face", "m1", name, datetime.now(timezone.utc), None)
        for i, v in enumerate(rows):
            w.add({"sha256": f"{name}{i:061x}", "path": f"{i}.jpg", "media": "image", "box": [0, 0, 1, 1]}, v)
        w.flush()
    old = next(p for p in archive.partitions() if "-old-" in p.rel)
    table = archive.read(old)
    meta = {k: v for k, v in table.schema.metadata.items() if k != b"sign"}
    archive.write(table.drop_columns(["sign"]).replace_schema_metadata(meta), "face", "m1", old.day, "old-0000")
    assert "sign" not in archive.read(old).column_names and not archive_sign.usable(archive.read(old))
    exact = (embeddings(archive.read(old)) @ q.T).max(axis=1)
    want = {f"{i:061x}" for i in np.flatnonzero(exact >= 0.35)}
    assert len(want) >= 45
    hits, searched = candidates(archive, archive.partitions(), q, 0.35)
    assert searched == 2 * len(rows)
    assert {h[3:] for h in hits[old.rel]} == want
    new = next(p for p in archive.partitions() if "-new-" in p.rel)
    assert {h[3:] for h in hits[new.rel]} == want


def test_sign_codes_of_few_rows_equal_the_rotation_matrixs():
    """A one-photo scan's rows are coded by fast Walsh-Hadamard transforms, a large batch by the matrix: the
    same codes (random unit vectors; a sign could only differ within float rounding of zero)."""
    rng = np.random.default_rng(11)
    x = _unit(rng.standard_normal((archive_sign.FWHT_ROWS + 5, 512)))
    few = np.concatenate([archive_sign.encode(x[i:i + 5]) for i in range(0, len(x), 5)])
    assert np.array_equal(few, archive_sign.encode(x))
    assert np.array_equal(few, np.packbits(x @ archive_sign.rotation(512).T > 0, axis=1))

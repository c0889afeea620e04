"""The archive search's shortlist never misses a row at or above the threshold (synthetic vectors)."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest

import audit
from audit.store.archive import Archive, ArchiveDamaged, PartWriter, encode
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

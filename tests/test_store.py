"""Registry and index kept in step; mismatches found by verify and fixed by repair."""


import numpy as np
import pytest

from audit.errors import StoreError, UnknownPerson
from audit.store.registry import Sample
from audit.store import Store, upkeep


def samples(seed, n, dim=16, model="m1"):
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, dim)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return [Sample("face", model, f"sha{seed}-{i}", v[i]) for i in range(n)]


def test_add_search_remove(tmp_path):
    store = Store(tmp_path)
    a, b = samples(1, 3), samples(2, 2)
    store.add_samples("alice", "Alice", a, None)
    store.add_samples("bob", None, b, None)
    hits = store.search("face", "m1", np.stack([a[0].vector, b[1].vector]), top_k=2)
    assert [h[0].person for h in hits] == ["alice", "bob"]
    assert store.verify().problems == []
    assert store.remove("alice") == 3
    hits = store.search("face", "m1", np.stack([a[0].vector]), top_k=2)
    assert [c.person for c in hits[0]] == ["bob"]
    with pytest.raises(UnknownPerson):
        store.person("alice")
    assert store.verify().problems == []


def test_reopened_store_sees_same_vectors(tmp_path):
    s1 = Store(tmp_path)
    s1.add_samples("alice", None, samples(3, 4), None)
    s1.close()
    s2 = Store(tmp_path)
    idx, man = s2.index("face", "m1")
    assert idx.count == 4 and man.count == 4


def test_registry_row_without_vector_is_reported_and_repaired(tmp_path):
    store = Store(tmp_path)
    store.add_samples("alice", None, samples(4, 3), None)
    # Simulate a crash after the SQL commit and before the index write.
    with store.registry.transaction():
        store.registry.add_sample("alice", Sample("face", "m1", "x", np.ones(16, np.float32) / 4))
    store.close()
    fresh = Store(tmp_path)
    problems = fresh.verify().problems
    assert len(problems) == 2 and "out of step" in problems[0]
    assert "centroids of 1 people differ from their samples (alice)" in problems[1]
    with pytest.raises(StoreError, match="verify --repair"):
        fresh.search("face", "m1", np.ones((1, 16), np.float32), 1)
    fresh.verify(repair=True)
    assert Store(tmp_path).verify().ok


def test_missing_index_file_is_reported(tmp_path):
    store = Store(tmp_path)
    store.add_samples("alice", None, samples(5, 2), None)
    upkeep.index_path(store.home, "face", "m1").unlink()
    assert "missing" in Store(tmp_path).verify().problems[0]


def test_models_get_separate_indexes(tmp_path):
    store = Store(tmp_path)
    store.add_samples("alice", None, samples(6, 2, model="m1") + samples(7, 2, dim=8, model="m2"), None)
    assert store.index("face", "m1")[0].count == 2
    assert store.index("face", "m2")[0].dim == 8


def test_consent_status(tmp_path):
    store = Store(tmp_path)
    store.add_samples("alice", None, samples(8, 1), None)
    reg = store.registry
    with reg.transaction():
        reg.set_consent("alice", "research", True, None, None)
        reg.set_consent("alice", "advertising", False, None, None)
        reg.set_consent("alice", "avatar", True, "2020-01-01", None)
    assert reg.consent_status("alice", "research") == "allowed"
    assert reg.consent_status("alice", "advertising") == "denied"
    assert reg.consent_status("alice", "avatar") == "expired"
    assert reg.consent_status("alice", "training") == "unknown"
    assert reg.consent_status("alice", None) is None

"""Index logic on small synthetic vectors: add, remove, search, save, load, manifest checks."""

import numpy as np
import pytest

from audit.errors import StoreError
from audit.store.index import VectorIndex, manifest_path


def unit(rng, n, dim=8):
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_add_search_returns_exact_neighbour():
    rng = np.random.default_rng(0)
    vecs = unit(rng, 50)
    idx = VectorIndex("face", "m", 8)
    idx.add(np.arange(100, 150), vecs)
    sims, ids = idx.search(vecs[[3, 7]], 2)
    assert ids[:, 0].tolist() == [103, 107]
    assert np.allclose(sims[:, 0], 1.0, atol=1e-5)


def test_remove_drops_only_those_ids():
    rng = np.random.default_rng(1)
    vecs = unit(rng, 10)
    idx = VectorIndex("face", "m", 8)
    idx.add(np.arange(10), vecs)
    assert idx.remove(np.array([2, 5])) == 2
    assert sorted(idx.ids().tolist()) == [0, 1, 3, 4, 6, 7, 8, 9]
    _, ids = idx.search(vecs[2:3], 10)
    assert 2 not in ids[0].tolist()


def test_duplicate_id_is_refused():
    idx = VectorIndex("face", "m", 8)
    idx.add(np.array([1]), unit(np.random.default_rng(2), 1))
    with pytest.raises(StoreError):
        idx.add(np.array([1]), unit(np.random.default_rng(3), 1))


def test_empty_index_search():
    sims, ids = VectorIndex("face", "m", 8).search(np.zeros((2, 8), np.float32), 5)
    assert ids.tolist() == [[-1], [-1]]


def test_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(4)
    vecs = unit(rng, 20)
    idx = VectorIndex("voice", "abc", 8)
    idx.add(np.arange(20) * 3, vecs)
    man = idx.save(tmp_path / "v.faiss")
    loaded, man2 = VectorIndex.load(tmp_path / "v.faiss")
    assert man2 == man and loaded.count == 20 and loaded.model == "abc"
    assert np.allclose(loaded.reconstruct(9), vecs[3])
    assert not list(tmp_path.glob("*.tmp"))  # no temp files left behind


def test_tampered_index_is_detected(tmp_path):
    idx = VectorIndex("face", "m", 8)
    idx.add(np.arange(5), unit(np.random.default_rng(5), 5))
    idx.save(tmp_path / "f.faiss")
    data = bytearray((tmp_path / "f.faiss").read_bytes())
    data[-5] ^= 0xFF
    (tmp_path / "f.faiss").write_bytes(bytes(data))
    with pytest.raises(StoreError, match="checksum"):
        VectorIndex.load(tmp_path / "f.faiss")


def test_missing_manifest_is_an_error(tmp_path):
    idx = VectorIndex("face", "m", 8)
    idx.save(tmp_path / "f.faiss")
    manifest_path(tmp_path / "f.faiss").unlink()
    with pytest.raises(StoreError):
        VectorIndex.load(tmp_path / "f.faiss")

"""Tamper evidence and proven deletion: content-checking verify, a log that cannot be swapped or cut
unnoticed, removal that does not claim success while bytes remain, and a log without personal data after it."""

from __future__ import annotations

import json
from dataclasses import replace
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from tests.helpers.cli import run

from audit.store import Store, upkeep
from audit.store.index import contents
from audit.store.log.auditlog import HEAD_KEY, ScanRecord, details_hash, entry_hash
from audit.store.crypto import new_key, parse_key
from audit.store.registry import Sample


def unit(seed: int, n: int, dim: int = 16) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def enroll(store: Store, pid: str, seed: int, n: int = 2) -> None:
    store.add_samples(pid, pid.title(), [Sample("face", "m1", f"{pid}{i}".ljust(64, "0"), v)
                                         for i, v in enumerate(unit(seed, n))], None)


def files_holding(home: Path, needle: bytes) -> list[str]:
    return sorted(p.name for p in home.iterdir() if p.is_file() and needle in p.read_bytes())


@pytest.fixture(params=["plaintext", "encrypted"])
def store(request, tmp_path) -> Store:
    text = new_key() if request.param == "encrypted" else None
    s = Store(tmp_path / "s", key=parse_key(text) if text else None)
    s.key_text = text
    enroll(s, "alice", 1)
    enroll(s, "bob", 2)
    s.consent("alice", allow=["research"], note="contract 7, clause 4")
    assert s.verify().ok
    return s


def test_swapped_vectors_are_found_in_registry_and_index(store):
    db = sqlite3.connect(store.home / "registry.sqlite")
    (a, va), (b, vb) = db.execute("SELECT id, vector FROM samples WHERE person IN ('alice', 'bob') "
                                  "ORDER BY person, id").fetchall()[1:3]
    db.execute("UPDATE samples SET vector=? WHERE id=?", (vb, a))
    db.execute("UPDATE samples SET vector=? WHERE id=?", (va, b))
    db.commit()
    db.close()
    # Plaintext: the ids all agree, only the row MACs tell. Encrypted: the moved ciphertext does not decrypt.
    problems = reopen(store).verify().problems
    assert any("do not match their registry rows" in p for p in problems), problems


def forge(store: Store, table: str, vectors) -> None:
    """Rewrite an index as an attacker with write access could: same ids, other vectors, checksums recomputed."""
    import faiss

    seg = upkeep.load_checked(store.home, store.registry, table, "face", "m1")
    ids, vecs = contents._flat_parts(seg)
    forged = faiss.IndexIDMap2(faiss.IndexFlatIP(seg.dim))
    forged.add_with_ids(np.ascontiguousarray(vectors(vecs)), ids)
    name, sha = seg._write(f"{seg.prefix}.b{seg.man.generation + 1}.faiss", forged)
    seg._commit(replace(seg.man, base=name, base_sha256=sha, base_count=len(ids), delta=None, delta_sha256="",
                        removed=[], generation=seg.man.generation + 1))
    store.forget_loaded()


@pytest.mark.parametrize("table", ["samples", "centroids"])
def test_index_vectors_are_compared_with_the_registry(store, table):
    forge(store, table, lambda v: v[::-1].copy())  # same ids, every vector moved to another id
    problems = store.verify().problems
    assert any("differ from the registry's" in p for p in problems), problems
    report = store.verify(repair=True)
    assert report.repaired and store.verify().ok


def test_ivf_codes_are_compared_with_the_registry(tmp_path, monkeypatch):
    """An IVF base stores 8-bit codes: the registry's vectors are encoded alike and compared code for code."""
    store, seg = approximate_store(tmp_path, monkeypatch, "ivf")
    ivf = faiss_ivf(seg)
    size = ivf.code_size
    first = next(no for no in range(ivf.nlist) if ivf.invlists.list_size(no))
    codes = faiss_codes(ivf, first)
    codes[0, : size // 2] ^= 0x40  # one stored code altered in place (checksum recomputed below)
    ivf.invlists.update_entries(first, 0, 1, ivf.invlists.get_ids(first), faiss_ptr(codes))
    commit_altered(store, seg, "base", seg.base)
    problems = store.verify().problems
    assert any("1 vector(s) differ from the registry's" in p for p in problems), problems
    assert store.verify(repair=True).repaired and store.verify().ok


@pytest.mark.parametrize("part", ["rerank", "base"])
def test_pq_codes_and_their_rerank_vectors_are_compared_with_the_registry(tmp_path, monkeypatch, part):
    """A fast-scan PQ base: its re-rank file's 8-bit codes are compared with the registry's vectors encoded alike, and
    its PQ codes with codes made afresh from that file, byte for byte; an altered byte in either is found, and
    repaired."""
    import faiss

    from audit.store.index import contents, pqbase

    store, seg = approximate_store(tmp_path, monkeypatch, "pqfs")
    if part == "rerank":
        index = faiss.deserialize_index(faiss.serialize_index(seg.rerank))  # writable, not memory-mapped
        pqbase.rerank_codes(index)[5, :2] ^= 0x40  # two 8-bit codes of one vector altered in place
    else:
        index = faiss.deserialize_index(faiss.serialize_index(seg.base))
        pqbase.code_bytes(index)[0] ^= 0x11  # one PQ code of the first block of vectors
    commit_altered(store, seg, part, index)
    problems = store.verify().problems
    assert any("vector(s) differ from the registry's" in p for p in problems), problems
    seg = upkeep.load_checked(store.home, store.registry, "samples", "face", "m1", full=True)
    differ = contents.differing(seg, upkeep.source(store.registry, "samples", "face", "m1"))
    assert int(pqbase.rerank_ids(seg.rerank)[5 if part == "rerank" else 0]) in differ
    assert store.verify(repair=True).repaired and store.verify().ok


def approximate_store(tmp_path, monkeypatch, kind: str):
    """(store, its sample index) of 120 vectors in an approximate base of the given kind, compacted, verified clean."""
    from audit.store.index import segments

    monkeypatch.setattr(segments, "FLAT_MAX", 64)
    monkeypatch.setattr(segments, "PQFS_MAX", 64 if kind == "ivf" else 10**9)
    store = Store(tmp_path / "s", key=None)
    for i in range(40):
        enroll(store, f"p{i}", 100 + i, n=3)
    store.compact()
    seg = upkeep.load_checked(store.home, store.registry, "samples", "face", "m1")
    assert seg.man.kind == kind and store.verify().ok
    return store, seg


def commit_altered(store, seg, part: str, index) -> None:
    """Write an altered base or re-rank file as a new generation and commit it with its checksum recomputed."""
    gen = seg.man.generation + 1
    name, sha = seg._write(f"{seg.prefix}.{part[0]}{gen}.faiss", index)
    seg._commit(replace(seg.man, **{part: name, f"{part}_sha256": sha, "generation": gen}))
    store.forget_loaded()


def faiss_ivf(seg):
    import faiss

    seg.base = faiss.deserialize_index(faiss.serialize_index(seg.base))  # writable, not memory-mapped
    return faiss.extract_index_ivf(seg.base)


def faiss_codes(ivf, no: int) -> np.ndarray:
    import faiss

    m = ivf.invlists.list_size(no)
    return faiss.rev_swig_ptr(ivf.invlists.get_codes(no), m * ivf.code_size).reshape(m, ivf.code_size).copy()


def faiss_ptr(codes: np.ndarray):
    import faiss

    return faiss.swig_ptr(np.ascontiguousarray(codes))


def test_deleting_the_log_and_its_head_is_found(store):
    (store.home / "audit.log").unlink()
    assert any("missing" in p for p in store.verify().problems)
    db = sqlite3.connect(store.home / "registry.sqlite")
    db.execute("DELETE FROM meta WHERE key IN (?, 'audit_head_mac')", (HEAD_KEY,))
    db.commit()
    db.close()
    problems = reopen(store).verify().problems
    assert any("keeps no copy of the log head" in p for p in problems), problems
    result = run("--home", store.home, "verify", code=2, env={"AUDIT_KEY": store.key_text})
    assert "keeps no copy of the log head" in result.stderr


@pytest.mark.parametrize("how", ["rechain", "truncate"])
def test_rechained_or_truncated_log_with_a_matching_head_is_found(store, how):
    path = store.home / "audit.log"
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    if how == "rechain":  # drop the consent entry and recompute every hash after it
        entries = entries[:2]
        entries[1]["details"]["samples"] = 1
        entries[1]["details_sha256"] = details_hash(entries[1]["details"])
        entries[1]["hash"] = entry_hash(entries[1])
    else:
        entries = entries[:2]
    path.write_text("".join(json.dumps(e) + "\n" for e in entries))
    db = sqlite3.connect(store.home / "registry.sqlite")  # and make the registry's head agree
    db.execute("UPDATE meta SET value=? WHERE key=?", (json.dumps(entries[-1], sort_keys=True), HEAD_KEY))
    db.commit()
    db.close()
    problems = reopen(store).verify().problems
    assert any("fails its MAC" in p for p in problems), problems


def test_remove_keeps_no_personal_data_in_the_log_and_the_chain_verifies(store):
    record = ScanRecord(["generated/"], "research")
    row = type("Row", (), {"kind": "match", "person": "alice", "sha256": "f" * 64, "consent": "allowed"})
    record.add("f" * 64, [row, type("Row", (), {**row.__dict__, "person": "bob"})])
    store.log_event("scan", record.details({"files": 1}))
    assert store.remove("alice") == 2
    text = (store.home / "audit.log").read_text()
    pseudonym = store.sealer.pseudonym("alice")
    assert '"alice"' not in text and "contract 7" not in text and "alice0" not in text and pseudonym in text
    assert store.verify().ok and store.log.check().first_broken is None
    about = store.log.about(person="alice")  # findable by the id, which the log no longer holds
    assert [e["event"] for e in about] == ["enroll", "consent", "remove"]
    scan = store.log.about(event="scan")[0]["details"]
    assert scan["people"] == {"bob": 1, pseudonym: 1} and [None, pseudonym, "allowed"] in scan["matched"]
    # The redaction is itself tamper-evident: other details cannot be passed off as redacted.
    lines = text.splitlines()
    first = json.loads(lines[0])
    first["details"]["samples"] = 99
    (store.home / "audit.log").write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    assert store.log.check().first_broken == 1


def test_remove_while_a_reader_holds_a_transaction(photos, audit_home, monkeypatch):
    monkeypatch.setattr(upkeep, "ERASE_WAIT_S", 0.5)
    run("enroll", "face", "yao", photos["yaoming"])
    run("enroll", "face", "gdp", photos["gdp"], "--pick", "largest")
    store = Store(audit_home)
    _, vecs, people = store.vectors(*store.models()[0])
    vec = vecs[people.index("yao")].tobytes()
    store.close()
    reader = sqlite3.connect(audit_home / "registry.sqlite", isolation_level=None)
    reader.execute("BEGIN")
    assert reader.execute("SELECT COUNT(*) FROM samples").fetchone() == (2,)  # a long read, pinning its snapshot
    try:
        result = run("remove", "yao", code=2)
        assert "committed but not yet erased" in result.stderr
        assert files_holding(audit_home, vec), "the bytes really are still there: success would have been a lie"
        assert "not yet erased" in run("verify", code=2).stderr
        assert [line.split("\t")[0] for line in run("people").stdout.splitlines()[1:]] == ["gdp"]
    finally:
        reader.execute("ROLLBACK")
        reader.close()
    assert "removed with 0 vectors" in run("remove", "yao").stdout  # the retry finishes the erasure
    assert files_holding(audit_home, vec) == []
    assert run("verify").stdout.startswith("ok: 1 people")
    run("remove", "yao")  # removed before: still fine
    assert "no person 'nobody'" in run("remove", "nobody", code=2).stderr


def reopen(store: Store) -> Store:
    """The same store opened afresh, with its key."""
    return Store(store.home, key=parse_key(store.key_text) if store.key_text else None)

"""Scans trust nothing they have not checked: an altered store stops a scan (exit 2, naming the problem and
verify) instead of reporting less, or the wrong person."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from audit.store import Store, upkeep
from audit.store.index import contents
from tests.helpers.cli import SHARED, run


def enroll_two(photos) -> None:
    run("enroll", "face", "yao", photos["yaoming"])
    run("enroll", "face", "speaker", photos["gdp"], "--pick", "largest")


def test_an_index_whose_checksums_were_rewritten_stops_the_scan(photos, audit_home):
    import faiss

    enroll_two(photos)
    assert "yao" in run("scan", photos["yaoming"], "--json").stdout
    store = Store(audit_home)
    seg = upkeep.load_checked(audit_home, store.registry, "samples", "face", store.face_model.model_id)
    ids, vecs = contents._flat_parts(seg)
    forged = faiss.IndexIDMap2(faiss.IndexFlatIP(seg.dim))
    noise = np.random.default_rng(0).normal(size=vecs.shape).astype(np.float32)
    forged.add_with_ids(noise / np.linalg.norm(noise, axis=1, keepdims=True), ids)  # nobody is found any more
    name = seg.man.base or seg.man.delta
    (audit_home / name).write_bytes(faiss.serialize_index(forged).tobytes())
    # The attacker recomputes the checksum in the plain manifest, as a tool that ignores seals would.
    manifest = json.loads(seg.manifest_path.read_text())
    key = "base_sha256" if name == seg.man.base else "delta_sha256"
    import hashlib

    manifest[key] = hashlib.sha256((audit_home / name).read_bytes()).hexdigest()
    seg.manifest_path.write_text(json.dumps(manifest))
    result = run("scan", photos["yaoming"], "--json", code=2)
    assert "does not carry the store's seal" in result.stderr and "verify" in result.stderr
    assert '"person"' not in result.stdout
    verify = run("verify", code=2)
    assert "does not carry the store's seal" in verify.stdout + verify.stderr


def test_swapped_registry_rows_stop_the_scan_instead_of_naming_another(photos, audit_home):
    enroll_two(photos)
    db = sqlite3.connect(audit_home / "registry.sqlite")
    db.execute("UPDATE samples SET person = CASE person WHEN 'yao' THEN 'speaker' ELSE 'yao' END")
    db.commit()
    db.close()
    result = run("scan", photos["yaoming"], "--json", code=2)
    assert "fail their integrity check" in result.stderr and "likeness-audit verify" in result.stderr
    assert '"person"' not in result.stdout


def test_a_voice_centroid_moved_to_another_person_stops_the_scan(audit_home):
    voices = SHARED / "voices" / "librispeech-test-other"
    if not voices.exists():
        pytest.skip("../shared/data/voices is not present")
    a, b = sorted(d for d in voices.iterdir() if d.is_dir())[:2]
    run("enroll", "voice", "a", *sorted(a.glob("*.flac"))[:4])
    run("enroll", "voice", "b", *sorted(b.glob("*.flac"))[:4])
    probe = sorted(a.glob("*.flac"))[6]
    assert '"person": "a"' in run("scan", probe, "--json").stdout
    db = sqlite3.connect(audit_home / "registry.sqlite")
    for old, new in (("a", "x"), ("b", "a"), ("x", "b")):  # the two people's centroid rows swapped
        db.execute("UPDATE centroids SET person=? WHERE person=? AND modality='voice'", (new, old))
    db.commit()
    db.close()
    result = run("scan", probe, "--json", code=2)
    assert "fail their integrity check" in result.stderr and "centroid held for" in result.stderr


def test_a_store_without_index_seals_is_sealed_at_its_next_write(photos, audit_home):
    enroll_two(photos)
    store = Store(audit_home)
    for path in Path(audit_home).glob("face-*.json"):
        manifest = json.loads(path.read_text())
        manifest.pop("seal")
        path.write_text(json.dumps(manifest))
    store.registry.db.execute("DELETE FROM meta WHERE key='index_seals'")
    assert "yao" in run("scan", photos["yaoming"], "--json").stdout  # an older store: read as it is
    run("consent", "yao", "--allow", "research")  # its first write seals every manifest
    assert all("seal" in json.loads(p.read_text()) for p in Path(audit_home).glob("face-*.json"))
    assert "yao" in run("scan", photos["yaoming"], "--json").stdout

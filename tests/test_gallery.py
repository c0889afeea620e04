"""Large-gallery machinery at small N: fast-scan PQ and IVF bases + exact re-rank against exact search, incremental
centroids, segments, the choice of base, encrypted segments, and the upgrade of a store from before segments."""

from __future__ import annotations

import base64
import json
import os
import sqlite3

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from audit.cli import cli
from audit.errors import StoreError
from audit.store import upkeep
from audit.store.index import ivfbase, pqbase, segments
from audit.store.crypto import new_key
from audit.store.registry import Sample
from audit.store.vectors import unit_mean
from audit.store.store import Store


@pytest.fixture(params=["pqfs", "ivf"])
def small(request, monkeypatch) -> str:
    """Shrink the index policy so that a few hundred vectors make an approximate base of each kind (returned)."""
    monkeypatch.setattr(segments, "FLAT_MAX", 64)
    monkeypatch.setattr(segments, "PQFS_MAX", 10**9 if request.param == "pqfs" else 64)
    monkeypatch.setattr(segments, "DELTA_MAX", 16)
    monkeypatch.setattr(ivfbase, "TRAIN_PER_LIST", 4)
    monkeypatch.setattr(ivfbase, "SCAN", 60)  # a quarter or less of the lists are probed
    monkeypatch.setattr(pqbase, "FASTSCAN_CANDIDATES", 24)  # a tenth of the vectors re-scored
    return request.param


def holding(home, vec) -> list[str]:
    """Store files holding a vector's bytes."""
    needle = np.asarray(vec, np.float32).tobytes()
    return sorted(p.name for p in home.iterdir() if p.is_file() and needle in p.read_bytes())


def unit(rng, n, dim=16):
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def people_of(rng, n, per=3, dim=16, model="m1", prefix="p"):
    """n people with per samples each, spread around a centre as one person's photos are."""
    out = []
    for i in range(n):
        centre = unit(rng, 1, dim)[0]
        vecs = centre + 0.35 * unit(rng, per, dim)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        out.append((f"{prefix}{i}", None, [Sample("face", model, f"{prefix}{i}-{j}".ljust(64, "0"), v)
                                           for j, v in enumerate(vecs)], None))
    return out


@pytest.mark.slow
def test_ann_and_rerank_give_the_findings_of_exact_search(deepface, face_model, tmp_path, small):
    """The shared photos scanned through the CLI against an exact store and an approximate one give the same rows."""
    folder, people = deepface
    real, probes = [], tmp_path / "probes"
    probes.mkdir()
    for person, files in sorted(people.items()):
        samples = []
        for name in files[:-1]:
            faces = face_model.analyze(cv2.imread(str(folder / name)))
            if faces:
                face = max(faces, key=lambda f: f.size)
                samples.append(Sample("face", face_model.model_id, name.ljust(64, "0"), face.embedding))
        real.append((person, None, samples, None))
        os.symlink(folder / files[-1], probes / files[-1])
    # Padding: people near the real ones' mean (face-like, not uniform), enough for an IVF base of many lists.
    rng = np.random.default_rng(11)
    mean = unit_mean(np.concatenate([[s.vector for s in ss] for _, _, ss, _ in real]))
    pad = []
    for i in range(120):
        vecs = mean + 0.9 * unit(rng, 3, len(mean))
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        pad.append((f"pad{i}", None, [Sample("face", face_model.model_id, f"pad{i}-{j}".ljust(64, "0"), v)
                                      for j, v in enumerate(vecs)], None))
    rows = {}
    for kind in ("exact", small):
        home = tmp_path / kind
        store = Store(home, key=None)
        batches = [real + pad] if kind == "exact" else [pad[:60], real, pad[60:]]
        segments.FLAT_MAX, segments.DELTA_MAX = (10**9, 10**9) if kind == "exact" else (64, 16)
        for batch in batches:
            store.add_people(batch)
        man = store.index("face", face_model.model_id)[1]
        assert man.kind == ("flat" if kind == "exact" else small)
        if kind == "ivf":
            assert man.nprobe < man.nlist  # approximate: not every list is searched
        store.close()
        result = CliRunner().invoke(cli, ["--home", str(home), "scan", str(probes), "--json", "--top-k", "3"])
        assert result.exit_code == 0, result.output
        rows[kind] = sorted((r["path"], r["kind"], r.get("person"), r.get("similarity"))
                            for r in map(json.loads, result.stdout.splitlines()))
        assert ("is approximate" in result.stderr) == (kind != "exact")  # the scan says it can miss a match
    assert rows[small] == rows["exact"]
    assert sum(r[1] == "match" for r in rows["exact"]) >= 10  # the held-out photos are found


def test_incremental_centroids_equal_recomputed_ones(tmp_path, small):
    """Centroids kept at every enrolment and removal equal centroids recomputed from the samples; the centroid
    index finds the same people as brute force."""
    rng = np.random.default_rng(3)
    store = Store(tmp_path / "s", key=None)
    batch = people_of(rng, 40)
    store.add_people(batch[:30])
    for pid, name, samples, ref in batch[30:]:
        store.add_samples(pid, name, samples, ref)
    for pid, name, samples, ref in people_of(rng, 10, per=2, prefix="p"):  # more photos of p0..p9
        samples = [Sample(s.modality, s.model, "more" + s.source_sha256[4:], s.vector) for s in samples]
        store.add_samples(pid, name, samples, ref)
    for pid in ("p3", "p17", "p35"):
        store.remove(pid)
    ids, vecs, people = store.vectors("face", "m1")
    owners = np.array(people)
    want = {p: unit_mean(vecs[owners == p]) for p in sorted(set(people))}
    got_people, got = store.centroids("face", "m1")
    assert got_people == sorted(want)
    np.testing.assert_allclose(got, np.stack([want[p] for p in got_people]), atol=1e-6)
    assert store.centroids_of("face", "m1", ["p1", "p3"]).keys() == {"p1"}
    assert store.gallery_size("face", "m1") == 37
    probes = unit(rng, 20)
    exact = np.stack([want[p] for p in got_people]) @ probes.T
    for j, cands in enumerate(store.search_centroids("face", "m1", probes, 1)):
        assert cands[0].person == got_people[int(np.argmax(exact[:, j]))]
        assert cands[0].similarity == pytest.approx(float(exact[:, j].max()), abs=1e-5)
    assert store.verify().ok


def test_pq_search_names_the_people_of_exact_search(tmp_path, monkeypatch):
    """A fast-scan PQ base re-ranked exactly names the top_k people of brute force, with their exact best scores,
    one probe or several at once, whatever the people looked up per step; a one-probe search leaves faiss's
    OpenMP thread count as it found it."""
    import faiss

    monkeypatch.setattr(segments, "FLAT_MAX", 64)
    monkeypatch.setattr(segments, "DELTA_MAX", 16)
    monkeypatch.setattr(pqbase, "FASTSCAN_CANDIDATES", 440)  # every vector: the shortlist, not the scan, is tested
    rng = np.random.default_rng(21)
    store = Store(tmp_path / "s", key=None)
    many = unit(rng, 1)[0] + 0.05 * unit(rng, 40)  # one person's 40 close samples fill the first steps' ids
    many /= np.linalg.norm(many, axis=1, keepdims=True)
    store.add_people(people_of(rng, 100, per=4) + [("many", None, [
        Sample("face", "m1", f"many-{j}".ljust(64, "0"), v) for j, v in enumerate(many)], None)])
    assert store.index("face", "m1")[1].kind == "pqfs"
    ids, vecs, people = store.vectors("face", "m1")
    owners = np.array(people)
    probes = np.concatenate([unit(rng, 12), many.mean(0, keepdims=True) / np.linalg.norm(many.mean(0))])
    exact = vecs @ probes.T
    faiss.omp_set_num_threads(2)
    for top_k in (1, 3, 8):
        for got in (store.search("face", "m1", probes, top_k),
                    [store.search("face", "m1", q[None], top_k)[0] for q in probes]):
            for j, cands in enumerate(got):
                best = {}
                for i in np.argsort(-exact[:, j], kind="stable"):
                    best.setdefault(owners[i], float(exact[i, j]))
                want = list(best.items())[:top_k]
                assert [c.person for c in cands] == [p for p, _ in want]
                assert [c.similarity for c in cands] == pytest.approx([s for _, s in want], abs=1e-5)
    assert faiss.omp_get_max_threads() == 2


def test_pq_rescoring_equals_the_cosines_of_the_8bit_vectors(tmp_path, monkeypatch):
    """pqbase.search returns, in order, the k best cosines of the 8-bit decoded vectors among the fast-scan
    candidates (here every vector), removed ids dropped: what numpy's stable sort of those cosines gives."""
    monkeypatch.setattr(pqbase, "FASTSCAN_CANDIDATES", 10**6)
    rng = np.random.default_rng(8)
    vecs = unit(rng, 300, 32) * rng.uniform(0.5, 2, (300, 1)).astype(np.float32)  # not unit: cosines, not dots
    ids = np.arange(1000, 1300, dtype=np.int64)
    codes, rerank = pqbase.build(lambda: iter([(ids, vecs)]), len(vecs), 32)
    assert codes.bbs == pqbase.BBS
    dec = pqbase.decoded(rerank, 0, rerank.ntotal)
    probes = unit(rng, 6, 32)
    removed = ids[::7]
    for k in (1, 10, 300):
        sims, got = pqbase.search(codes, rerank, pqbase.rerank_ids(rerank), removed, probes, k)
        for q, s, g in zip(probes, sims, got):
            cos = dec @ q / np.linalg.norm(dec, axis=1)
            cos[np.isin(ids, removed)] = -np.inf
            want = np.argsort(-cos, kind="stable")[:min(k, 300 - len(removed))]
            assert g[:len(want)].tolist() == ids[want].tolist() and (g[len(want):] == -1).all()
            assert s[:len(want)] == pytest.approx(cos[want], abs=1e-6)


def test_best_first_is_a_stable_sort_cut_to_k():
    rng = np.random.default_rng(2)
    for t in range(500):
        n, k = int(rng.integers(1, 80)), int(rng.integers(1, 60))
        s = (rng.integers(0, 9, n) if t % 2 else rng.random(n)).astype(np.float32)  # ties, or none
        if t % 3 == 0:
            s[rng.integers(0, n, int(rng.integers(1, n + 1)))] = np.nan
        assert pqbase.best_first(s, k).tolist() == np.argsort(-s, kind="stable")[:k].tolist()


def test_a_pq_base_packed_in_blocks_of_32_is_searched_verified_and_repacked(tmp_path, monkeypatch):
    """A base whose fast-scan codes were packed 32 vectors a block (before BBS) searches and verifies as it is, and
    its next compaction packs them BBS a block, with the same results."""
    monkeypatch.setattr(segments, "FLAT_MAX", 64)
    monkeypatch.setattr(segments, "DELTA_MAX", 16)
    monkeypatch.setattr(pqbase, "BBS", 32)
    rng = np.random.default_rng(13)
    store = Store(tmp_path / "s", key=None)
    store.add_people(people_of(rng, 60, per=3))
    seg = store.index("face", "m1")[0]
    assert seg.man.kind == "pqfs" and seg.base.bbs == 32
    probes = unit(rng, 8)
    before = store.search("face", "m1", probes, 5)
    monkeypatch.setattr(pqbase, "BBS", 64)
    again = Store(tmp_path / "s", key=None)
    assert again.index("face", "m1")[0].base.bbs == 32 and again.verify().ok
    assert again.search("face", "m1", probes, 5) == before
    again.compact()
    assert again.index("face", "m1")[0].base.bbs == 64 and again.verify().ok
    assert again.search("face", "m1", probes, 5) == before


def test_segments_mask_then_compact_and_leave_no_stale_files(tmp_path, small):
    rng = np.random.default_rng(5)
    store = Store(tmp_path / "s", key=None)
    everyone = people_of(rng, 60)
    store.add_people(everyone[:40])  # 120 vectors: an IVF base
    seg, man = store.index("face", "m1")
    assert man.kind == small and man.delta is None
    store.add_people(everyone[40:43])  # a small delta, no compaction
    seg, man = store.index("face", "m1")
    assert man.delta is not None and seg.count == 129
    gone = everyone[1][2][0].vector
    assert holding(tmp_path / "s", gone)  # positive control
    store.remove("p1")  # removal purges the base: compacted
    seg, man = store.index("face", "m1")
    assert man.removed == [] and seg.count == 126
    assert holding(tmp_path / "s", gone) == []
    names = {p.name for p in (tmp_path / "s").iterdir() if p.suffix in (".faiss", ".json")}
    want = set()
    for table in ("samples", "centroids"):
        s = upkeep.segments(store.home, store.registry, table, "face", "m1")
        s.read_manifest()
        want |= s.files()
    assert names == want
    # Every enrolled sample is its own best match (exact re-rank), whatever segment holds it.
    for pid, _, samples, _ in everyone[:43]:
        if pid == "p1":
            continue
        hit = store.search("face", "m1", np.stack([samples[0].vector]), 1)[0][0]
        assert hit.person == pid and hit.similarity == pytest.approx(1.0, abs=1e-5)
    assert store.verify().ok


def test_encrypted_store_keeps_its_segments_sealed(tmp_path, small):
    key = base64.b64decode(new_key())
    rng = np.random.default_rng(8)
    store = Store(tmp_path / "s", key=key)
    batch = people_of(rng, 40)
    store.add_people(batch)
    assert store.index("face", "m1")[1].kind == small
    store.close()
    assert holding(tmp_path / "s", batch[5][2][0].vector) == []
    for p in (tmp_path / "s").glob("*.faiss"):
        assert p.read_bytes()[:4] == b"LAE1"
    again = Store(tmp_path / "s", key=key)  # loaded into memory: an AES-GCM blob cannot be paged in
    assert again.search("face", "m1", np.stack([batch[5][2][0].vector]), 1)[0][0].person == "p5"
    assert again.verify().ok
    with pytest.raises(StoreError):
        Store(tmp_path / "s", key=None)


def test_the_base_kind_follows_the_gallery_size_and_old_bases_are_rebuilt(tmp_path, monkeypatch):
    """Flat up to FLAT_MAX, fast-scan PQ up to PQFS_MAX, IVF beyond, with hysteresis; a base of a kind that no
    longer fits (an IVF base from before the PQ base) is rebuilt at the next write, and searches the same."""
    monkeypatch.setattr(segments, "FLAT_MAX", 100)
    monkeypatch.setattr(segments, "PQFS_MAX", 1000)
    kinds = [segments.base_kind(n, "flat") for n in (100, 101, 1000, 1001)]
    assert kinds == ["flat", "pqfs", "pqfs", "ivf"]
    assert segments.base_kind(60, "pqfs") == "pqfs" and segments.base_kind(50, "pqfs") == "flat"
    assert segments.base_kind(600, "ivf") == "ivf" and segments.base_kind(500, "ivf") == "pqfs"
    rng = np.random.default_rng(4)
    everyone = people_of(rng, 60)
    store = Store(tmp_path / "s", key=None)
    monkeypatch.setattr(segments, "PQFS_MAX", 100)  # a store that made an IVF base
    monkeypatch.setattr(ivfbase, "TRAIN_PER_LIST", 4)
    store.add_people(everyone[:50])
    assert store.index("face", "m1")[1].kind == "ivf"
    monkeypatch.setattr(segments, "PQFS_MAX", 1000)
    store.add_people(everyone[50:51])
    assert store.index("face", "m1")[1].kind == "pqfs" and store.verify().ok
    for pid, _, samples, _ in everyone[:51]:
        assert store.search("face", "m1", np.stack([samples[1].vector]), 1)[0][0].person == pid


def test_a_store_from_before_segments_is_upgraded(tmp_path):
    """A version 1 registry (no centroids, no id summaries) and its old single-file index are migrated on open."""
    rng = np.random.default_rng(9)
    store = Store(tmp_path / "s", key=None)
    store.add_people(people_of(rng, 5))
    store.close()
    db = sqlite3.connect(tmp_path / "s" / "registry.sqlite")
    db.executescript("DELETE FROM centroids; DELETE FROM id_state; UPDATE meta SET value='1' WHERE key='schema';"
                     "DROP TRIGGER samples_ids_add; DROP TRIGGER samples_ids_del;")
    db.commit()
    db.close()
    (tmp_path / "s" / "face-m1.faiss").write_bytes(b"old single-file index")
    again = Store(tmp_path / "s", key=None)
    assert again.gallery_size("face", "m1") == 5
    assert not (tmp_path / "s" / "face-m1.faiss").exists()
    assert again.verify().ok


def test_export_and_import_templates_through_the_cli(tmp_path, face_model):
    """Templates leave one store and enter another unchanged; bad files are refused with the row, writing nothing."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(12)
    src = Store(tmp_path / "a", key=None)
    src.add_people(people_of(rng, 4, dim=face_model.dim, model=face_model.model_id))
    src.close()
    out = tmp_path / "t.parquet"
    done = CliRunner().invoke(cli, ["--home", str(tmp_path / "a"), "export", str(out)])
    assert done.exit_code == 0 and "12 templates written" in done.output, done.output
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    done = CliRunner().invoke(cli, ["--home", str(tmp_path / "b"), "import", str(out)])
    assert done.exit_code == 0 and "12 templates imported, 0 already enrolled" in done.output, done.output
    again = CliRunner().invoke(cli, ["--home", str(tmp_path / "b"), "import", str(out)])
    assert "0 templates imported, 12 already enrolled" in again.output  # an interrupted import is simply rerun
    a, b = Store(tmp_path / "a", key=None), Store(tmp_path / "b", key=None)
    (_, va, pa_), (_, vb, pb) = a.vectors("face", face_model.model_id), b.vectors("face", face_model.model_id)
    assert sorted(zip(pa_, map(bytes, va))) == sorted(zip(pb, map(bytes, vb)))
    assert b.verify().ok and b.gallery_size("face", face_model.model_id) == 4

    table = pq.read_table(out).to_pylist()
    for i, (field, value, message) in enumerate([
        ("vector", [0.1] * 8, "row 3: vector of dimension 8, the face model's is 512"),
        ("vector", [float("nan")] * face_model.dim, "row 3: vector holds NaN or infinity"),
        ("vector", [0.0] * face_model.dim, "row 3: zero vector"),
        ("model", "0" * 64, "row 3: model '0000000000000000' is not this store's face model"),
        ("modality", "gait", "row 3: modality 'gait' is not one of face, voice"),
        ("person", "a/b", "row 3: 'a/b' is not a valid person id"),
        ("name", "Eve\nforged line", "row 3: a display name cannot hold control characters"),
    ]):
        rows = [dict(r) for r in table]
        rows[2][field] = value
        bad = tmp_path / f"bad{i}.parquet"
        pq.write_table(pa.Table.from_pylist(rows, schema=pq.read_schema(out)), bad)
        home = tmp_path / f"c{i}"
        done = CliRunner().invoke(cli, ["--home", str(home), "import", str(bad)])
        assert done.exit_code == 2 and message in done.output, done.output
        assert Store(home, key=None).people() == []  # nothing written


def test_voice_templates_of_the_default_encoder_move_between_stores(speakers, tmp_path):
    """A fused enrolment writes GE2E and CAM++ templates and their band-limited twins: all of them export and import
    (import accepted only GE2E's), and the new store finds the speaker in another of their recordings."""
    from tests.helpers.cli import run

    who = sorted(speakers)[0]
    a, b, out = tmp_path / "a", tmp_path / "b", tmp_path / "voices.parquet"
    run("--home", a, "enroll", "voice", who, *speakers[who][:4])
    models = {model for _, model in Store(a, key=None).models()}
    assert len(models) == 4 and sum(m.startswith("nb-") for m in models) == 2  # two encoders, two band-limited
    written = int(run("--home", a, "export", out).output.split()[0])
    assert written == 4 * 4
    assert f"{written} templates imported, 0 already enrolled" in run("--home", b, "import", out).output
    assert {model for _, model in Store(b, key=None).models()} == models
    assert "ok" in run("--home", b, "verify").stdout
    found = run("--home", b, "scan", speakers[who][6], "--json").stdout
    assert f'"person": "{who}"' in found


def test_enroll_a_manifest_of_many_people_resumably(photos, tmp_path):
    """`enroll face --manifest` enrolls each person of a CSV, records consent scopes, reports what failed, and a
    second run adds nothing (resumable); a scan then finds the enrolled people."""
    (tmp_path / "m").mkdir()
    for stem in ("yaoming", "gdp"):
        os.symlink(photos[stem], tmp_path / "m" / f"{stem}.jpg")
    manifest = tmp_path / "m" / "people.csv"
    manifest.write_text("person,name,path,allow,deny\n"
                        "yao,Yao Ming,yaoming.jpg,research;film,advertising\n"
                        "gdp,,gdp.jpg,,\n"
                        "ghost,Nobody,missing.jpg,,\n"
                        "yao2,,yaoming.jpg,,\n"  # the same photo under a second id, in the same batch
                        "-rf,,gdp.jpg,,\n")
    home = str(tmp_path / "s")
    done = CliRunner().invoke(cli, ["--home", home, "enroll", "face", "--manifest", str(manifest), "--pick",
                                    "largest", "--quiet"])
    assert done.exit_code == 0, done.output
    assert "2 of 5 people: 2 face samples added, 0 already enrolled" in done.stdout
    assert "not enrolled ghost:" in done.stderr
    assert "already enrolled for yao" in done.stderr and "not a valid person id" in done.stderr
    again = CliRunner().invoke(cli, ["--home", home, "enroll", "face", "--manifest", str(manifest), "--pick",
                                     "largest", "--quiet"])
    assert "0 face samples added, 2 already enrolled" in again.stdout
    store = Store(home, key=None)
    assert {p.id for p in store.people()} == {"yao", "gdp"} and store.person("yao").name == "Yao Ming"
    assert store.consent_status("yao", "film") == "allowed" and store.consent_status("yao", "advertising") == "denied"
    assert store.verify().ok
    scan = CliRunner().invoke(cli, ["--home", home, "scan", str(photos["yaoming"]), "--json"])
    assert [json.loads(r)["person"] for r in scan.stdout.splitlines()] == ["yao"]
    assert "face gallery of 2 people" in scan.stderr and "(FPIR)" in scan.stderr  # 1:N false alarms stated
    assert store.log.about(person="gdp", event="enroll")  # `log --person` finds a batch's entry
    # Removing someone enrolled in a batch leaves their id nowhere in the log, and the chain still verifies.
    store.remove("yao")
    assert store.log.about(person="yao", event="enroll")  # by pseudonym now
    assert b'"yao"' not in (tmp_path / "s" / "audit.log").read_bytes() and store.verify().ok
    bad = CliRunner().invoke(cli, ["--home", home, "enroll", "face", "alice", "--manifest", str(manifest)])
    assert bad.exit_code == 2 and "not both" in bad.output

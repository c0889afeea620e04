"""Erasure that reaches every copy: after `remove`, no byte of any file under the store folder holds the person's
vectors, id, display name or crop, whatever ran before or during the removal; and the store's inventory of
personal data knows every file there."""

from __future__ import annotations

import shutil
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pytest

import audit
from audit import notify
from audit import config
from audit.store import Store, inventory
from audit.store.archive import Archive, codes, embeddings
from tests.helpers.cli import run

PID, NAME = "withdrawn-7", "Withheld Name Q"


def pieces_of(home: Path, pid: str) -> dict[str, bytes]:
    """What must not survive the person's removal: their vector (whole, head, tail), id, name and crop."""
    store = Store(home)
    _, vecs, people = store.vectors(*store.models()[0])
    vec = vecs[people.index(pid)].astype(np.float32).tobytes()
    crop = store.reference(pid)
    store.close()
    return {"vector": vec, "vector head": vec[:64], "vector tail": vec[-64:], "id": pid.encode(),
            "name": NAME.encode(), "crop": crop[len(crop) // 2: len(crop) // 2 + 64]}


def holding(home: Path, needle: bytes) -> list[str]:
    """Every file under the folder whose bytes hold needle."""
    return sorted(p.relative_to(home).as_posix() for p in home.rglob("*") if p.is_file() and needle in p.read_bytes())


def decoded(home: Path) -> dict[str, bytes]:
    """Every Parquet file under the folder read through pyarrow (pages decompressed): each column's buffers,
    children too, so a needle that zstd hides in the raw file is still found."""
    import pyarrow.parquet as pq

    out = {}
    for p in home.rglob("*.parquet"):
        table = pq.read_table(p, use_threads=False)
        out[p.relative_to(home).as_posix()] = b"".join(
            buf.to_pybytes() for col in table.columns for chunk in col.chunks for buf in chunk.buffers() if buf)
    return out


def archived_rows(home: Path, pid: str, others: tuple[str, ...]) -> tuple[dict[str, bytes], dict[str, int]]:
    """Needles from the archive itself, read through its own reader: for each row attributed to pid or matching
    pid's templates at the erasure's threshold, its float16 embedding, 8-bit code, sign code and crop JPEG (whole, and a
    slice from its middle, which a raw zstd block may keep verbatim); and how many rows each of `others` has."""
    store = Store(home)
    templates = {mo: store.person_vectors(pid, "face", mo) for m, mo in store.models() if m == "face"}
    store.close()
    pieces, counts = {}, dict.fromkeys(others, 0)
    archive = Archive(home)
    for part in archive.partitions("face"):
        table = archive.read(part)
        people = [p or [] for p in table.column("people").to_pylist()]
        scores = (embeddings(table) @ np.asarray(templates[part.model], np.float32).T).max(axis=1)
        emb = table.column("embedding").to_pylist()
        crops = table.column("crop").to_pylist()
        signs = table.column("sign").to_pylist()
        for i, code in enumerate(codes(table)):
            for other in others:
                counts[other] += other in people[i]
            if pid not in people[i] and scores[i] < config.DEFAULT_FACE_THRESHOLD:
                continue
            key = f"{part.rel}#{i}{' (attributed)' if pid in people[i] else ' (matching)'}"
            crop = crops[i]
            pieces |= {f"{key} embedding": emb[i], f"{key} code": code.tobytes(), f"{key} sign": signs[i],
                       f"{key} crop": crop,
                       f"{key} crop middle": crop[len(crop) // 2: len(crop) // 2 + 64]}
    return pieces, counts


def test_removal_reaches_every_copy_even_with_a_scan_racing_it(photos, audit_home, tmp_path):
    run("enroll", "face", PID, photos["yaoming"], "--name", NAME)
    run("enroll", "face", "speaker", photos["gdp"], "--pick", "largest")
    run("consent", PID, "--allow", "research", "--note", f"contract of {NAME}")
    # A scan that includes the enrolment photo: the scan cache holds the person's exact vector.
    run("scan", photos["yaoming"], photos["players"], "--out", tmp_path / "before.json")
    pieces = pieces_of(audit_home, PID)
    archived, _ = archived_rows(audit_home, PID, ())  # the scan archived their face: embedding, code, crop
    assert archived
    pieces |= {k: v for k, v in archived.items() if not k.endswith(" crop")}  # whole crops: checked decoded below
    template = np.frombuffer(pieces["vector"], np.float32)
    # Review decisions about a finding naming them, and their own answer: notes with their name, in the log too.
    row = next(r for r in audit.read_findings(tmp_path / "before.json") if r.get("person") == PID)
    pieces["finding id"] = audit.finding_id(row).encode()
    run("review", tmp_path / "before.json", "--finding", audit.finding_id(row), "--state", "confirmed",
        "--note", f"clearly {NAME}", "--reviewer", "kim")
    with audit.open_store(audit_home) as store:
        audit.answer_finding(store, row, PID, "not-me", "web:x", note=f"not me, says {NAME}")
    assert holding(audit_home, pieces["vector"])
    # SQLite may split a cached blob over pages, the vector with it: its head and tail are each whole somewhere
    assert all("scan-cache.sqlite" in holding(audit_home, pieces[k]) for k in ("vector head", "vector tail"))
    # Webhooks: an auditor's log of deliveries naming the person (and the speaker), and the person's own hook.
    hooks = notify.Hooks(audit_home)
    hooks.register("aud", "auditor", "http://127.0.0.1:9/down")
    hooks.register("actor-account", "actor", "http://127.0.0.1:9/mine", person=PID)
    hooks.close()
    found = audit.read_findings(tmp_path / "before.json")
    found.append({"kind": "match", "person": "speaker", "path": "other.jpg", "similarity": 0.5})
    assert notify.findings_found(audit_home, found, source="scan", owner="aud", deliver=False) >= 3
    assert "notify.sqlite" in holding(audit_home, PID.encode())

    # A scan that is running when the person is removed, and finishes (writes its cache and log entry) after.
    media = tmp_path / "media"
    media.mkdir()
    for i in range(4):
        (media / f"{i}.jpg").write_bytes(photos["yaoming"].read_bytes() + bytes([i]))  # distinct files
    with audit.open_store(audit_home) as store:
        racing = audit.scan(store, [media], workers=1)
        assert next(iter(racing)).person == PID
        run("remove", PID)
        rest = list(racing)
    assert racing.summary.complete and all(f.person == PID for f in rest)

    for what, needle in pieces.items():
        assert holding(audit_home, needle) == [], what
    plain = decoded(audit_home)  # the archive's pages decompressed, the racing scan's partition too
    assert not [k for k, needle in archived.items() if any(needle in b for b in plain.values())]
    archive = Archive(audit_home)
    for part in archive.partitions("face"):
        table = archive.read(part)
        assert not any(PID in (p or []) for p in table.column("people").to_pylist())
        assert (embeddings(table) @ template).max(initial=-1) < config.DEFAULT_FACE_THRESHOLD
    hooks = notify.Hooks(audit_home)
    assert {d.payload["person"] for d in hooks.log("aud")} == {"speaker"}  # the others' rows stay
    assert hooks.hook("actor-account") is None
    hooks.close()
    assert "ok" in run("verify").stdout
    with audit.open_store(audit_home) as store:
        assert audit.review_decisions(store) == []


def test_removal_erases_every_archived_face_of_the_person(deepface, audit_home, tmp_path):
    """The embedding archive keeps each scanned face's float16 embedding, 8-bit and sign codes and crop: after `remove`, no
    file under the store holds any of them for a row attributed to the person or matching their templates, raw
    or with the Parquet pages decompressed; the other person's rows stay."""
    folder, people = deepface
    mine, others = sorted(people["person01"]), sorted(people["person02"])
    run("enroll", "face", "other", *[folder / f for f in others[:2]], "--pick", "largest")
    # Before the person enrols: their faces are archived unattributed (matching their templates only).
    run("scan", *[folder / f for f in mine[2:5] + others[2:4]], "--out", tmp_path / "early.json", "--workers", "1")
    run("enroll", "face", PID, *[folder / f for f in mine[:2]], "--name", NAME, "--pick", "largest")
    run("scan", *[folder / f for f in mine[:1] + mine[5:8] + others[4:6]], "--out", tmp_path / "late.json",
        "--workers", "1")
    pieces, before = archived_rows(audit_home, PID, ("other",))
    kinds = {k.split(" (")[1].split(")")[0] for k in pieces}
    assert kinds == {"attributed", "matching"} and before["other"] >= 2, (kinds, before)
    assert (audit_home / "archive").is_dir()
    plain = decoded(audit_home)
    for what, needle in pieces.items():
        assert holding(audit_home, needle) or [r for r, b in plain.items() if needle in b], what
    for what, needle in pieces.items():  # embeddings and codes are stored uncompressed: found raw as well
        if what.endswith(("embedding", "code", "sign")):
            assert any(r.startswith("archive/") for r in holding(audit_home, needle)), what

    run("remove", PID)

    plain = decoded(audit_home)
    leftovers = {what: holding(audit_home, needle) + [r for r, b in plain.items() if needle in b]
                 for what, needle in pieces.items()}
    assert leftovers == {what: [] for what in pieces}, {k: v for k, v in leftovers.items() if v}
    archive = Archive(audit_home)
    rows = [archive.read(p, ["people"]).column("people").to_pylist() for p in archive.partitions("face")]
    after = [p or [] for part in rows for p in part]
    assert not any(PID in p for p in after)
    assert sum("other" in p for p in after) == before["other"]  # erasure removes only the person
    assert "ok" in run("verify").stdout


def band_limited_templates(home: Path, pid: str) -> dict[str, bytes]:
    """The person's band-limited voice templates (enrol/narrowband.py; whole, head and tail): personal data too."""
    from audit.models.channel import is_narrow

    out = {}
    with Store(home) as store:
        for modality, model in store.models():
            if modality == "voice" and is_narrow(model):
                _, vecs, people = store.vectors(modality, model)
                for k, (vec, who) in enumerate(zip(vecs, people)):
                    if who == pid:
                        raw = vec.astype(np.float32).tobytes()
                        out |= {f"{model[:12]}#{k}": raw, f"{model[:12]}#{k} head": raw[:64],
                                f"{model[:12]}#{k} tail": raw[-64:]}
    return out


@pytest.mark.parametrize("model", ["fused", "ge2e"])
def test_removal_erases_every_archived_voice_segment_of_the_person(speakers, audit_home, tmp_path, model):
    """A scan before the person enrolled archived their speech unattributed: after `remove`, no file under the
    store holds any of those segments' embeddings (raw or decompressed); the other speaker's rows stay. Also for a
    store whose voices are enrolled with GE2E only, whose fused scans archive both encoders' halves all the same.
    Their band-limited templates (a telephone-line copy of each recording, embedded) are gone as well."""
    mine, theirs = sorted(speakers)[:2]
    run("enroll", "voice", "other", *speakers[theirs][:5], "--model", model)
    media = tmp_path / "audio"
    media.mkdir()
    for f in speakers[mine][5:7] + speakers[theirs][5:6]:
        shutil.copy(f, media / f.name)
    run("scan", media, "--workers", "1")
    run("enroll", "voice", PID, *speakers[mine][:5], "--name", NAME, "--model", model)
    archive = Archive(audit_home)
    needles, others = band_limited_templates(audit_home, PID), 0
    assert len(needles) == 3 * 5 * (2 if model == "fused" else 1)  # each part's template of each recording
    assert all(holding(audit_home, v) for v in needles.values())  # on disk before (the index files hold them)
    for part in archive.partitions("voice"):
        table = archive.read(part)
        for i, (path, people, emb) in enumerate(zip(*(table.column(c).to_pylist()
                                                      for c in ("path", "people", "embedding")))):
            assert PID not in (people or [])  # scanned before they enrolled: nothing attributed to them
            if Path(path).name.startswith(mine):
                needles[f"{part.rel}#{i}"] = emb
            else:
                others += 1
    assert len(needles) >= 4 + 15 and others >= 2

    run("remove", PID)

    plain = decoded(audit_home)
    left = {k: holding(audit_home, v) + [r for r, b in plain.items() if v in b] for k, v in needles.items()}
    assert left == {k: [] for k in needles}, {k: v for k, v in left.items() if v}
    paths = [p for part in archive.partitions("voice") for p in archive.read(part, ["path"]).column("path").to_pylist()]
    assert len(paths) == others and not any(Path(p).name.startswith(mine) for p in paths)
    assert "ok" in run("verify").stdout


def test_verify_reports_files_the_inventory_does_not_know(photos, audit_home):
    run("enroll", "face", "yao", photos["yaoming"])
    assert inventory.unknown(audit_home) == []
    (audit_home / "notes.txt").write_text("who was where")
    (audit_home / "probes").mkdir()
    shutil.copy(photos["yaoming"], audit_home / "probes" / "copy.jpg")
    result = run("verify", code=2)
    text = result.stdout + result.stderr
    assert "notes.txt is in the store folder but not in its inventory" in text
    assert "probes is in the store folder" in text and "copy.jpg" not in text


def test_every_place_says_how_it_is_erased_exported_and_verified():
    names = [p.name for p in inventory.PLACES]
    assert len(names) == len(set(names))
    for place in inventory.PLACES:
        assert place.patterns and place.holds and place.erased and place.exported and place.verified, place.name


def test_the_demo_leaves_no_media_in_the_store(tmp_path):
    home = tmp_path / "demo"
    run("--home", home, "demo")
    assert inventory.unknown(home) == []


@pytest.mark.slow
@pytest.mark.service
def test_a_whole_workflow_leaves_no_byte_of_the_withdrawn_person(deepface, face_model, photos, tmp_path):
    """CLI and service; enrolment; a scan that includes the enrolment photo; a composite; service jobs; an upload
    interrupted by a crash; a removal racing a running scan: then every byte of every file under the store and the
    service's folders is read, and nothing of the person is left."""
    import cv2
    import httpx

    from audit import media
    from tests.helpers.server import Server, add_account, bearer, wait_scan

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    try:
        from morph import Morpher
    finally:
        sys.path.pop(0)
    folder, people = deepface
    mine = sorted(people["person01"])
    others = sorted(people["person02"])
    home = tmp_path / "store"
    run("--home", home, "enroll", "face", PID, *[folder / f for f in mine[:3]], "--name", NAME, "--pick", "largest")
    run("--home", home, "enroll", "face", "other", *[folder / f for f in others[:3]], "--pick", "largest")
    run("--home", home, "consent", PID, "--deny", "advertising", "--note", f"no ads for {NAME}")
    pieces = pieces_of(home, PID)
    morpher = Morpher(face_model)
    morph = tmp_path / "morph.png"
    cv2.imwrite(str(morph), morpher.morph(morpher.points(media.load_image(folder / mine[3])),
                                          morpher.points(media.load_image(folder / others[3]))))
    run("--home", home, "scan", folder / mine[0], morph, "--out", tmp_path / "cli.json")  # the enrolment photo too
    crashed = home / "tmp" / "upload-crashed" / "001.jpg"  # a web enrolment killed mid-upload: a photo of them
    crashed.parent.mkdir(parents=True)
    crashed.write_bytes((folder / mine[4]).read_bytes())
    _, auditor = add_account(home, "aud", "auditor")
    _, actor = add_account(home, "me", "actor", PID)
    server = Server(home).start()  # its start clears the crashed upload
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            r = client.post("/api/v1/scans", headers=bearer(auditor), files=[
                ("files", ("ad.jpg", (folder / mine[5]).read_bytes(), "image/jpeg")),
                ("files", ("blend.png", morph.read_bytes(), "image/png"))])
            jid = r.json()["id"]
            assert wait_scan(server.url, auditor, jid)["status"] == "done"
            found = client.get(f"/api/v1/scans/{jid}/findings", headers=bearer(auditor)).json()
            assert {r["person"] for r in found if r["kind"] == "match"} == {PID}
            assert any(PID in {c["person"] for c in r["contributors"] or []} for r in found)
            with audit.open_store(home) as store:  # a scan running when the person withdraws
                racing = audit.scan(store, [folder / f for f in mine[6:9]], workers=1)
                assert next(iter(racing)).person == PID
                assert client.delete(f"/api/v1/people/{PID}", headers=bearer(actor)).status_code == 200
                list(racing)
    finally:
        server.stop()
    # The actor's web account outlives the withdrawal (they may enrol again): its link to the id is theirs to keep.
    # Closing the account too must leave nothing.
    with sqlite3.connect(home / "service.sqlite") as db:
        assert db.execute("SELECT person FROM users WHERE id='me'").fetchone() == (PID,)
    run("--home", home, "users", "delete", "me")
    leftovers = {what: holding(home, needle) for what, needle in pieces.items()}
    assert leftovers == {what: [] for what in pieces}, leftovers
    assert "ok" in run("--home", home, "verify").stdout

"""The embedding archive and retro-match: a scan archives every face; someone who enrols later is found in the
earlier files without any media being read again (the files are gone); damage, encryption, erasure, retention."""

from __future__ import annotations

import json
import re
import shutil
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from tests.helpers.cli import run

import audit
from audit.store.archive import Archive, PartWriter, embeddings

KEY = "0" * 64


@pytest.fixture()
def archived(deepface, tmp_path):
    """person01 enrolled; a folder of 12 shared photos (person02's among them) scanned, then deleted; person02's
    enrolment photo kept apart."""
    folder, people = deepface
    media = tmp_path / "media"
    media.mkdir()
    theirs = sorted(people["person02"])
    chosen = sorted(people["person01"])[1:5] + theirs[1:] + sorted(people["person03"])[:3]
    for name in chosen:
        shutil.copy(folder / name, media / name)
    enrol = tmp_path / "enrol"
    enrol.mkdir()
    shutil.copy(folder / theirs[0], enrol / theirs[0])
    run("enroll", "face", "person01", folder / sorted(people["person01"])[0], "--pick", "largest")
    run("scan", media, "--out", tmp_path / "scan.json", "--workers", "1")
    return media, enrol / theirs[0], [n for n in theirs[1:]]


def _rows(path: Path) -> list[dict]:
    return [r for r in json.loads(path.read_text()) if r["kind"] == "match"]


def test_enrolling_finds_the_earlier_files_without_reading_them(archived, audit_home, tmp_path):
    media, photo, theirs = archived
    kept = tmp_path / "kept"
    shutil.move(media, kept)  # no media left where the scan read it: nothing can be decoded again
    enrolled = run("enroll", "face", "person02", photo, "--pick", "largest").stdout
    assert "found before enrolment" in enrolled
    out = tmp_path / "before.json"
    run("rematch", "--person", "person02", "--out", out)
    found = _rows(out)
    assert found and {Path(r["path"]).name for r in found} <= set(theirs)
    assert all(r["person"] == "person02" and r["extra"]["found"] == "before enrolment" for r in found)
    record = audit.read_record(out)
    assert all(p is not None and p.crop.startswith(b"\xff\xd8") for p in record.pictures)  # crops from the archive
    # The same files scanned today give the same findings (boxes and scores from the archived embeddings).
    shutil.move(kept, media)
    run("scan", media, "--out", tmp_path / "now.json", "--no-archive", "--no-cache", "--workers", "1")
    now = [r for r in _rows(tmp_path / "now.json") if r["person"] == "person02"]
    key = lambda r: (Path(r["path"]).name, tuple(r["bbox"]))  # noqa: E731
    assert sorted(map(key, found)) == sorted(map(key, now))
    scores = {key(r): r["similarity"] for r in now}
    assert all(abs(r["similarity"] - scores[key(r)]) < 2e-3 for r in found)  # float16 archive
    # person01 was named by the scan that archived them: "at scan", not before enrolment.
    everyone = run("rematch", "--json").stdout.splitlines()
    assert {json.loads(r)["extra"]["found"] for r in everyone if json.loads(r)["person"] == "person01"} == {"at scan"}


def test_a_damaged_partition_is_named_by_verify_and_refused_by_rematch(archived, audit_home):
    part = next((audit_home / "archive").rglob("part-*.parquet"))
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0xFF
    part.write_bytes(bytes(data))
    from click.testing import CliRunner

    from audit.cli import cli

    result = CliRunner().invoke(cli, ["verify"])  # verify exits non-zero on problems, naming the partition
    assert result.exit_code != 0 and part.name in result.output
    refused = run("rematch", code=2)
    assert part.name in refused.output and "damaged" in refused.output


def test_an_encrypted_store_seals_its_partitions(deepface, tmp_path, monkeypatch, audit_home):
    monkeypatch.setenv("AUDIT_KEY", KEY)
    folder, people = deepface
    run("enroll", "face", "person01", folder / sorted(people["person01"])[0], "--pick", "largest")
    run("scan", folder / sorted(people["person02"])[1], folder / sorted(people["person01"])[1])
    parts = list((audit_home / "archive").rglob("part-*.parquet"))
    assert parts and all(p.read_bytes()[:4] == b"LAE1" for p in parts)
    run("enroll", "face", "person02", folder / sorted(people["person02"])[0], "--pick", "largest")
    found = [json.loads(r) for r in run("rematch", "--person", "person02", "--json").stdout.splitlines()]
    assert [r["extra"]["found"] for r in found] == ["before enrolment"]
    tomorrow = (date.today() + timedelta(days=1)).isoformat()
    later = run("rematch", "--person", "person02", "--json", "--since", tomorrow, code=2)
    assert later.stdout == "" and f"on or after {tomorrow}" in later.output  # an empty search is not "not found"
    assert "no such person" in run("rematch", "--person", "nobody", code=2).output
    monkeypatch.delenv("AUDIT_KEY")
    assert "encrypted" in run("rematch", code=2).output


def test_remove_erases_the_persons_archive_rows(archived, audit_home):
    _, photo, _ = archived
    run("enroll", "face", "person02", photo, "--pick", "largest")
    with audit.open_store(audit_home) as store:
        model = store.face_model.model_id
        mine = {p: store.person_vectors(p, "face", model) for p in ("person01", "person02")}
    archive = Archive(audit_home)
    before = sum(archive.read(p).num_rows for p in archive.partitions())
    attributed = [r for r in archive.about("person01")]
    assert attributed and not archive.about("person02")  # only the scan's own findings attribute
    run("remove", "person01")
    run("remove", "person02")
    left = [archive.read(p) for p in archive.partitions()]
    assert sum(t.num_rows for t in left) < before
    for t in left:
        assert not any("person01" in (x or []) for x in t.column("people").to_pylist())
        emb = embeddings(t)
        for vecs in mine.values():
            assert (emb @ vecs.T).max(initial=-1) < 0.3  # no archived face matches a removed person's templates
    assert "ok" in run("verify").stdout


def test_retention_prunes_old_partitions(audit_home, monkeypatch):
    audit.open_store(audit_home).close()
    archive = Archive(audit_home)
    old = datetime.now(timezone.utc) - timedelta(days=40)
    writer = PartWriter(archive, "face", "m" * 8, "old", old, None)
    vec = np.ones(512, np.float32) / np.sqrt(512)
    writer.add({"sha256": "a" * 64, "path": "x.jpg", "media": "image", "box": [0, 0, 1, 1], "score": 0.9}, vec)
    writer.flush()
    assert len(archive.partitions()) == 1 and archive.partitions(since=date.today()) == []
    assert archive.prune(60) == []
    monkeypatch.setenv("AUDIT_ARCHIVE_DAYS", "30")
    assert run("archive", "prune").stdout.startswith("deleted archive/face-mmmmmmmm/")
    assert archive.partitions() == [] and not (audit_home / "archive").exists()


def test_no_archive_and_retention_zero_archive_nothing(photos, audit_home, monkeypatch):
    run("enroll", "face", "yao", photos["yaoming"])
    run("scan", photos["gdp"], "--no-archive")
    monkeypatch.setenv("AUDIT_ARCHIVE_DAYS", "0")
    run("scan", photos["players"])
    assert not (audit_home / "archive").exists()
    # Nothing archived: a search over nothing is an error, never "0 findings".
    assert "nothing was searched" in run("rematch", code=2).output
    monkeypatch.setenv("AUDIT_ARCHIVE_DAYS", "soon")
    assert "whole number" in run("scan", photos["gdp"], code=2).output


@pytest.mark.service
def test_enrolment_through_the_api_shows_earlier_scans_on_the_actors_page(deepface, tmp_path):
    import re

    import httpx

    from tests.helpers.server import Server, add_account, bearer, wait_scan

    folder, people = deepface
    theirs = sorted(people["person02"])
    home = tmp_path / "store"
    run("--home", home, "enroll", "face", "person01", folder / sorted(people["person01"])[0], "--pick", "largest")
    _, admin = add_account(home, "root", "admin")
    _, auditor = add_account(home, "aud", "auditor")
    server = Server(home).start()
    try:
        with httpx.Client(base_url=server.url, timeout=120) as client:
            files = [("files", (n, (folder / n).read_bytes(), "image/jpeg")) for n in theirs[1:3]]
            jid = client.post("/api/v1/scans", headers=bearer(auditor), files=files).json()["id"]
            assert wait_scan(server.url, auditor, jid)["status"] == "done"
            assert not (home / "jobs" / jid / "input").exists()  # the uploads are gone: nothing can be re-read
            r = client.post("/api/v1/people/person02/faces", headers=bearer(admin),
                            files=[("files", (theirs[0], (folder / theirs[0]).read_bytes(), "image/jpeg"))])
            assert r.status_code == 200, r.text
            assert r.json()["found_before"]["findings"] >= 1
            export = client.get("/api/v1/people/person01/export", headers=bearer(admin)).json()
            assert export["archive"] == []  # the uploads did not show person01: nothing attributed to them
        password, _ = add_account(home, "me", "actor", "person02")
        with httpx.Client(base_url=server.url, timeout=60) as web:
            nonce = re.search(r'name="login_csrf" value="([^"]+)"', web.get("/login").text).group(1)
            assert web.post("/login", data={"user": "me", "password": password, "login_csrf": nonce}).status_code == 303
            page = web.get("/me/found").text
            assert "before you enrolled" in page, page[page.find("<main"):][:3000]
            picture = re.search(r'src="(/me/found/[0-9a-f]+/\d+)"', page).group(1)
            assert web.get(picture).content.startswith(b"\xff\xd8")
            shown = page.count("before you enrolled")
            # The actor adds a photo from the web page: searched again, nothing shown twice.
            csrf = re.search(r'name="csrf" value="([^"]+)"', web.get("/me").text).group(1)
            r = web.post("/me/faces", data={"csrf": csrf},
                         files=[("files", (theirs[-1], (folder / theirs[-1]).read_bytes(), "image/jpeg"))])
            assert r.status_code == 200 and "<strong>1</strong> new face sample" in r.text, r.text
            assert web.get("/me/found").text.count("before you enrolled") == shown
    finally:
        server.stop()


def test_encrypting_a_store_seals_its_archive(photos, audit_home, monkeypatch):
    run("enroll", "face", "yao", photos["yaoming"])
    run("scan", photos["gdp"])
    (part,) = (audit_home / "archive").rglob("part-*.parquet")
    assert part.read_bytes()[:4] == b"PAR1"
    monkeypatch.setenv("AUDIT_KEY", KEY)
    run("encrypt")
    assert part.read_bytes()[:4] == b"LAE1"
    assert "ok" in run("verify").stdout
    run("rematch")


def test_voices_are_archived_and_found_after_enrolment(speakers, tmp_path):
    first, second = sorted(speakers)[:2]
    run("enroll", "voice", first, *speakers[first][:5])
    media = tmp_path / "audio"
    media.mkdir()
    for f in speakers[second][5:7] + speakers[first][5:6]:
        shutil.copy(f, media / f.name)
    run("scan", media, "--workers", "1")
    shutil.rmtree(media)  # nothing left to decode again
    run("enroll", "voice", second, *speakers[second][:5])
    out = tmp_path / "voices.json"
    said = run("rematch", "--person", second, "--out", out).stderr
    segments = int(re.search(r"0 faces, (\d+) voice segments", said).group(1))  # counted, not left out
    assert segments >= 6 and audit.read_record(out).run["archived_segments"] == segments
    rows = [r for r in json.loads(out.read_text()) if r["kind"] == "match"]
    assert rows and {r["person"] for r in rows} == {second} and {r["modality"] for r in rows} == {"voice"}
    assert {Path(r["path"]).name for r in rows} <= {f.name for f in speakers[second][5:7]}
    assert all(r["extra"]["found"] == "before enrolment" for r in rows)
    pics = audit.read_record(out).pictures
    assert all(p is not None and p.waveform.startswith(b"\x89PNG") for p in pics)  # drawn from the archived envelope


def test_an_actors_webhook_hears_of_what_enrolment_found_before(archived, audit_home, monkeypatch):
    from audit import notify
    from audit.notify import deliver
    from tests.helpers.receiver import Receiver

    monkeypatch.setattr(deliver.Dispatcher, "allow_private", True)  # the receiver is on loopback

    _, photo, theirs = archived
    receiver = Receiver()
    try:
        hooks = notify.Hooks(audit_home)
        hook = hooks.register("me", "actor", receiver.url, person="person02")
        hooks.close()
        run("enroll", "face", "person02", photo, "--pick", "largest")  # the CLI queues; a dispatcher sends
        notify.dispatcher(audit_home).wake()
        got = receiver.wait(1)
        headers, body = got[0]
        assert notify.verify(hook.secret, body, headers["x-likeness-signature"])
        sent = json.loads(body)
        assert sent["source"] == "rematch" and sent["found_before_enrolment"] and sent["person"] == "person02"
        assert sent["file"] in theirs
    finally:
        notify.stop_all()
        receiver.close()


def test_a_scan_archives_no_row_after_a_removal_and_none_naming_someone_unknown(audit_home):
    """The archive's row filter, asked once a write: rows naming someone not (or no longer) enrolled are dropped,
    and every row once a removal happened during the scan."""
    from audit.scan.archiving import ScanArchive

    store = audit.open_store(audit_home)
    try:
        started = datetime.now(timezone.utc)
        keep = ScanArchive(store, started, "m1", None, None)
        assert keep._nobody_removed([[], ["ghost"], []]) == [True, False, True]
        moved = ScanArchive(store, started, "m1", None, None, erasures="a removal since")
        assert moved._nobody_removed([[], []]) == [False, False]
    finally:
        store.close()

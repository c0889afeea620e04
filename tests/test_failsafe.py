"""Fail safe: an audit never passes by accident. Exit codes, read-only commands, input checks, output."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
from tests.helpers.cli import run

from audit import open_store
from audit.errors import InputError, MissingPath, NothingEnrolled, NothingToScan
from audit.report import read_findings, write_findings
from audit.report.tables import tsv


@pytest.fixture
def yao(photos, audit_home):
    run("enroll", "face", "yao", photos["yaoming"], "--name", "Yao Ming")
    return photos["yaoming"]


def test_missing_scan_path_with_fail_on_match_exits_2(yao, tmp_path):
    result = run("scan", yao, tmp_path / "typo", "--fail-on", "match", code=2)
    assert "no such file or folder" in result.stderr and "typo" in result.stderr
    with open_store() as store, pytest.raises(MissingPath):
        __import__("audit").scan(store, [tmp_path / "typo"])


def test_nothing_scannable_and_nothing_enrolled_exit_2(yao, photos, tmp_path, audit_home):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not media")
    assert "no scannable media" in run("scan", empty, "--fail-on", "match", code=2).stderr
    with open_store() as store, pytest.raises(NothingToScan):
        list(__import__("audit").scan(store, [empty]))
    run("remove", "yao")
    result = run("scan", photos["players"], "--fail-on", "match", code=2)
    assert "no one is enrolled" in result.stderr
    with open_store() as store, pytest.raises(NothingEnrolled):
        __import__("audit").scan(store, [photos["players"]])


def test_fail_on_error_and_threshold_checks(yao, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 not a jpeg")
    assert "1 of 2 files had errors and were not audited whole" in run("scan", yao, bad, code=0).stderr
    run("scan", yao, bad, "--fail-on", "error", "--quiet", code=1)
    assert "within [-1, 1]" in run("scan", yao, "--threshold", "1.5", code=2).stderr
    assert "below 0.2" in run("scan", yao, "--threshold", "0.1").stderr
    assert "'--threads': 0 is not in the range" in run("--threads", "0", "scan", yao, code=2).stderr


def test_a_scan_that_could_read_no_file_is_never_clean(yao, tmp_path):
    """Every file damaged: the error rows are written (nothing lost) and the exit is 2, whatever --fail-on says."""
    media = tmp_path / "media"
    media.mkdir()
    for name, data in (("cut.jpg", yao.read_bytes()[:3000]), ("empty.png", b""), ("half.png", b"\x89PNG\r\n\x1a\n")):
        (media / name).write_bytes(data)
    out = tmp_path / "findings.json"
    for gate in ([], ["--fail-on", "match"], ["--fail-on", "error"]):
        result = run("scan", media, "--out", out, *gate, code=2)
        assert "none of the 3 file(s) could be read" in result.stderr and "nothing was audited" in result.stderr
        assert [r["kind"] for r in read_findings(out)] == ["error"] * 3
    run("report", out, "--out", tmp_path / "report.html")  # the evidence page does not read as clean either
    assert "Nothing was audited" in (tmp_path / "report.html").read_text()


def test_read_only_commands_never_create_a_store(tmp_path, audit_home, photos):
    saved = tmp_path / "findings.json"
    saved.write_text("[]")
    for args in (["scan", photos["yaoming"]], ["people"], ["log"], ["verify"], ["remove", "x"]):
        result = run(*args, code=2)
        assert f"no store at {audit_home}" in result.stderr and "--home" in result.stderr, args
        assert not audit_home.exists(), args
    # report renders from the saved evidence alone: it needs no store, and makes none
    run("report", saved, "--out", tmp_path / "r.html")
    assert not audit_home.exists()


def test_home_that_is_not_a_folder_is_a_clear_error():
    for args in (["people"], ["enroll", "face", "x", "y.jpg"]):
        result = run("--home", "/dev/null", *args, code=2)
        assert "is not a folder" in result.stderr and "Traceback" not in result.output


def test_ctrl_c_exits_130_not_1(yao, monkeypatch):
    from audit.scan import run as scan_run

    def interrupted(self):
        raise KeyboardInterrupt
        yield

    monkeypatch.setattr(scan_run.ScanRun, "_run", interrupted)
    handler = signal.getsignal(signal.SIGINT)
    try:
        result = run("scan", yao, "--fail-on", "match", code=130)
    finally:  # the scan ignores a second Ctrl-C from then on: not in this test process, whose children inherit it
        signal.signal(signal.SIGINT, handler)
    assert "interrupted" in result.stderr


def test_newline_in_a_file_name_stays_one_escaped_record(yao, tmp_path):
    forged = tmp_path / "a\nmatch\tface\tfake\tnobody\t0.999.jpg"
    shutil.copy(yao, forged)
    out = run("scan", forged).stdout.splitlines()
    assert out[0] == tsv("kind", "modality", "path", "person", "similarity", "span")
    assert len(out) == 2, out
    fields = out[1].split("\t")
    assert fields[0] == "match" and fields[3] == "yao" and "a\\nmatch\\tface\\tfake\\tnobody" in fields[2]
    log = run("log").stdout.splitlines()
    assert all(line.count("\t") == 4 for line in log)


def test_person_ids_and_names_are_checked(photos, audit_home):
    for pid in ("-rf", "a b", "x/y", "", "a" * 65, "é"):
        assert "not a valid person id" in run("enroll", "face", "--", pid, photos["yaoming"], code=2).stderr, pid
    assert "control characters" in run("enroll", "face", "yao", photos["yaoming"], "--name", "Yao\nfake\t1",
                                       code=2).stderr
    assert "control characters" in run("enroll", "face", "yao", photos["yaoming"], "--name", "Yao\u202egnim",
                                       code=2).stderr
    run("enroll", "face", "yao.ming_2", photos["yaoming"], "--name", "Yáo Míng")
    with open_store() as store:  # the library (and so the web service) applies the same rules
        with pytest.raises(InputError):
            store.add_samples("--x", None, [], None)
        assert [p.id for p in store.people()] == ["yao.ming_2"]
    people = run("people").stdout.splitlines()
    assert people == ["id\tname\tsamples", "yao.ming_2\tYáo Míng\t1 face"]


def test_forgetting_an_unrecorded_scope_is_an_error(yao):
    run("consent", "yao", "--allow", "research")
    assert "no consent is recorded" in run("consent", "yao", "--forget", "advertsing", code=2).stderr
    run("consent", "yao", "--forget", "research")


def test_csv_cells_cannot_run_formulas(tmp_path):
    row = {"path": "=HYPERLINK(\"http://x\",\"y\")", "sha256": "0" * 64, "modality": "face", "kind": "match",
           "person": "-p", "name": "@SUM(A1)", "similarity": -0.25, "error": "+1", "extra": {}}
    out = tmp_path / "f.csv"
    write_findings([row], out)
    text = out.read_text()
    assert "'=HYPERLINK" in text and "'@SUM" in text and "'-p" in text and "'+1" in text and "-0.25" in text
    back = read_findings(out)[0]
    assert (back["path"], back["name"], back["person"], back["error"]) == (row["path"], row["name"], "-p", "+1")
    assert json.loads(json.dumps(back["similarity"])) == -0.25


def test_store_files_are_private_whatever_the_umask(photos, audit_home):
    old = os.umask(0)
    try:
        run("enroll", "face", "yao", photos["yaoming"])
    finally:
        os.umask(old)
    assert audit_home.stat().st_mode & 0o777 == 0o700
    for p in audit_home.iterdir():
        assert p.stat().st_mode & 0o077 == 0, (p.name, oct(p.stat().st_mode))


def test_world_writable_store_folder_is_refused(yao, audit_home):
    audit_home.chmod(0o777)
    for args in (["people"], ["scan", yao], ["enroll", "face", "yao2", yao]):
        result = run(*args, code=2)
        assert "writable by group or others" in result.stderr and "chmod 700" in result.stderr
    audit_home.chmod(0o700)
    (audit_home / "audit.log").chmod(0o666)
    assert "writable by group or others" in run("people", code=2).stderr


def test_symlinked_audit_log_is_never_followed(yao, audit_home, tmp_path):
    elsewhere = tmp_path / "elsewhere.log"
    log = audit_home / "audit.log"
    shutil.move(log, elsewhere)
    before = elsewhere.read_bytes()
    log.symlink_to(elsewhere)
    for args in (["log"], ["verify"], ["scan", yao], ["consent", "yao", "--allow", "film"]):
        result = run(*args, code=2)
        assert "symbolic link" in result.stderr, args
    assert elsewhere.read_bytes() == before  # nothing appended through the link
    from audit.store import files

    with pytest.raises(Exception, match="symbolic link"):
        files.open_fd(log, os.O_WRONLY | os.O_CREAT)


def test_key_file_open_to_others_is_refused(photos, tmp_path):
    from audit.store.crypto import new_key

    keyfile = tmp_path / "store.key"
    keyfile.write_text(new_key())
    keyfile.chmod(0o666)
    result = run("--key-file", keyfile, "enroll", "face", "yao", photos["yaoming"], code=2)
    assert "readable or writable by group or others" in result.stderr and "chmod 600" in result.stderr
    keyfile.chmod(0o640)
    run("--key-file", keyfile, "enroll", "face", "yao", photos["yaoming"], code=2)
    keyfile.chmod(0o600)
    run("--key-file", keyfile, "enroll", "face", "yao", photos["yaoming"])


def test_wrong_persons_photo_is_refused_at_enrolment(deepface):
    # A photo is refused when it is more likely someone else's: another enrolled person scores higher against it
    # than the person's own photos (a photo merely below the match threshold is kept: tests/test_enrol_hygiene.py).
    folder, people = deepface
    a, b = people["person01"], people["person02"]
    run("enroll", "face", "p1", *[folder / f for f in a[:2]])
    run("enroll", "face", "p2", folder / b[1])
    result = run("enroll", "face", "p1", folder / b[0], code=2)  # someone else's photo, alone: nothing to add
    assert "looks more like p2 (similarity 0." in result.stderr and "than p1 (" in result.stderr
    mixed = run("enroll", "face", "p2", folder / b[0], folder / b[2], folder / a[2])  # one stray in a batch
    assert "2 face samples added" in mixed.stdout and "looks more like p1" in mixed.stderr
    assert json.loads(run("people", "--json").stdout)[1]["samples"] == {"face": 3}
    run("enroll", "face", "p1", folder / b[0], "--force")  # an operator who knows better
    assert json.loads(run("people", "--json").stdout)[0]["samples"] == {"face": 3}


def test_same_face_under_a_second_id_is_refused(yao, tmp_path):
    import cv2

    assert "already enrolled for yao" in run("enroll", "face", "twin", yao, code=2).stderr
    copy = tmp_path / "yao-again.png"  # the same face in another file
    cv2.imwrite(str(copy), cv2.imread(str(yao)))
    assert "looks more like yao" in run("enroll", "face", "twin", copy, code=2).stderr
    assert "1 face samples added" in run("enroll", "face", "yao", copy).stdout


def test_large_jpeg_is_decoded_reduced_with_boxes_in_file_pixels(yao, tmp_path):
    import cv2

    from audit import config, media

    img = cv2.imread(str(yao))
    factor = int(np.ceil(np.sqrt(config.MAX_DECODE_PIXELS * 1.5 / (img.shape[0] * img.shape[1]))))
    big = tmp_path / "big.jpg"
    cv2.imwrite(str(big), cv2.resize(img, (img.shape[1] * factor, img.shape[0] * factor)))
    decoded, scale = media.decode_image_scaled(big.read_bytes())
    assert scale == 0.5 and decoded.shape[0] * decoded.shape[1] <= config.MAX_DECODE_PIXELS
    rows = {Path(r["path"]).name: r for r in map(json.loads, run("scan", yao, big, "--json").stdout.splitlines())}
    small, large = rows[yao.name]["bbox"], rows["big.jpg"]["bbox"]
    assert rows["big.jpg"]["person"] == "yao"
    assert all(abs(b - s * factor) <= 4 * factor for s, b in zip(small, large)), (small, large)


def test_findings_name_the_enrolled_sample_that_matched(yao, photos):
    with open_store() as store:
        ids, _, people = store.vectors(*store.models()[0])
    row = json.loads(run("scan", photos["players"], "--json").stdout.splitlines()[0])
    assert row["person"] == "yao" and row["extra"]["sample"] == int(ids[people.index("yao")])

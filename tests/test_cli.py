"""End-to-end tests through the command line on real faces."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import click
import pandas as pd
import pytest

from audit.cli import cli
from tests.helpers.cli import run



def lines(result):
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def test_every_command_has_help():
    def walk(group, prefix):
        for name, cmd in group.commands.items():
            assert cmd.help, f"{prefix} {name} has no help"
            if isinstance(cmd, click.Group):
                walk(cmd, f"{prefix} {name}")
    walk(cli, "likeness-audit")


def test_python_m_audit_runs():
    out = subprocess.run([sys.executable, "-m", "audit", "--help"], capture_output=True, text=True, check=True)
    assert "scan" in out.stdout


def test_demo_finds_yao_ming_in_team_photo():
    out = run("demo").stdout
    assert "match: players.jpg" in out and "Yao Ming" in out
    assert "match: yaoming-mirrored-small.jpg" in out


def test_enroll_scan_remove(photos, tmp_path):
    run("enroll", "face", "yao", str(photos["yaoming"]), "--name", "Yao Ming")
    again = run("enroll", "face", "yao", str(photos["yaoming"]))
    assert "0 face samples added, 1 already enrolled" in again.stdout
    people = json.loads(run("people", "--json").stdout)
    assert people[0]["id"] == "yao" and people[0]["samples"] == {"face": 1}

    found = lines(run("scan", str(photos["players"]), "--json", "--use", "advertising"))
    assert len(found) == 1
    f = found[0]
    assert f["person"] == "yao" and f["name"] == "Yao Ming" and f["kind"] == "match" and f["modality"] == "face"
    assert f["similarity"] >= f["threshold"] and f["consent"] == "unknown" and f["fmr"] > 0
    assert len(f["sha256"]) == 64 and len(f["bbox"]) == 4 and f["start"] is None
    assert f["model"].startswith("w600k_mbf:") and f["index"]
    run("scan", str(photos["players"]), "--fail-on", "match", code=1)
    run("scan", str(photos["gdp"]), "--fail-on", "match", code=0)

    run("remove", "yao")
    assert json.loads(run("people", "--json").stdout) == []
    # With no one enrolled a scan could only come back clean: that is an input error, not a pass.
    assert "no one is enrolled" in run("scan", str(photos["yaoming"]), "--json", code=2).stderr
    assert "ok:" in run("verify").stdout


def test_enroll_needs_pick_with_several_faces(photos):
    result = run("enroll", "face", "x", str(photos["gdp"]), code=2)
    assert "5 faces found; use --pick largest" in result.output
    assert "1 face samples added" in run("enroll", "face", "x", str(photos["gdp"]), "--pick", "largest").stdout


def test_enroll_with_no_face_fails_clearly(tmp_path):
    import numpy as np
    import cv2

    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((200, 200, 3), 127, np.uint8))
    result = run("enroll", "face", "x", str(blank), code=2)
    assert "nothing usable to enroll" in result.output and "no face found" in result.output


def test_output_formats(photos, tmp_path):
    run("enroll", "face", "yao", str(photos["yaoming"]))
    for ext in ("csv", "json", "parquet", "jsonl"):
        out = tmp_path / f"f.{ext}"
        run("scan", str(photos["players"]), "--out", str(out), "--quiet")
        if ext == "json":
            rows = json.loads(out.read_text())
        elif ext == "jsonl":
            rows = [json.loads(x) for x in out.read_text().splitlines()]
        else:
            rows = (pd.read_csv(out) if ext == "csv" else pd.read_parquet(out)).to_dict("records")
        assert len(rows) == 1 and rows[0]["person"] == "yao"
        for key in ("path", "sha256", "modality", "kind", "similarity", "threshold", "bbox", "start", "end",
                    "consent", "model", "error"):
            assert key in rows[0]
    run("scan", str(photos["players"]), "--out", str(tmp_path / "f.xlsx"), code=2)


def test_bad_files_become_error_rows(photos, tmp_path):
    run("enroll", "face", "yao", str(photos["yaoming"]))
    d = tmp_path / "mixed"
    d.mkdir()
    good = photos["yaoming"].read_bytes()
    (d / "empty.jpg").write_bytes(b"")
    (d / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (d / "text.png").write_text("not an image")
    (d / "garbage.webp").write_bytes(os.urandom(5000))
    (d / "odd name ü <1>.jpg").write_bytes(good)
    bad_name = os.fsencode(str(d)) + b"/caf\xe9.jpg"
    with open(bad_name, "wb") as f:
        f.write(good)
    (d / "notes.txt").write_text("ignored: not media")
    result = run("scan", str(d), "--json")
    rows = lines(result)
    errors = {os.path.basename(r["path"]): r["error"] for r in rows if r["kind"] == "error"}
    assert set(errors) == {"empty.jpg", "truncated.jpg", "text.png", "garbage.webp"}
    assert "empty" in errors["empty.jpg"] and "truncated" in errors["truncated.jpg"]
    matched = sorted(os.path.basename(r["path"]) for r in rows if r["kind"] == "match")
    assert matched == ["caf\\xe9.jpg", "odd name ü <1>.jpg"]
    assert "4 errors" in result.stderr


def test_unsupported_file_given_explicitly(tmp_path, photos):
    run("enroll", "face", "yao", photos["yaoming"])
    p = tmp_path / "doc.pdf"
    p.write_bytes(b"%PDF-1.4")
    (tmp_path / "unreadable.jpg").write_bytes(b"")
    rows = lines(run("scan", str(p), str(tmp_path / "unreadable.jpg"), "--json", code=2))
    assert [r["kind"] for r in rows] == ["error", "error"]
    assert "unsupported" in rows[0]["error"] and "empty file" in rows[1]["error"]
    # Alone, a file that is no media by content or name is no scan at all (as a folder of them is): exit 2.
    assert "no scannable media" in run("scan", str(p), "--fail-on", "error", "--quiet", code=2).stderr


def test_missing_model_folder_is_clear(tmp_path, photos):
    result = run("--models", str(tmp_path / "nope"), "enroll", "face", "yao", str(photos["yaoming"]), code=2)
    assert "face model folder not found" in result.output


@pytest.mark.slow
def test_shared_people_half_enrolled(deepface, tmp_path):
    """Enroll each of the 13 people from half their photos; scan all 64: right person or nobody."""
    folder, people = deepface
    held_back = {}
    for person, files in sorted(people.items()):
        files = sorted(files)
        half = max(1, len(files) // 2)
        run("enroll", "face", person, *[str(folder / f) for f in files[:half]], "--pick", "largest")
        held_back.update({f: person for f in files[half:]})
    rows = lines(run("scan", str(folder), "--json", "--workers", "2"))
    assert not [r for r in rows if r["kind"] == "error"]
    truth = {f: p for p, files in people.items() for f in files}
    by_file: dict[str, set[str]] = {}
    for r in rows:
        by_file.setdefault(os.path.basename(r["path"]), set()).add(r["person"])
    wrong = {f: ps for f, ps in by_file.items() if f in truth and ps != {truth[f]}}
    assert wrong == {}
    missed = [f for f in held_back if by_file.get(f) != {held_back[f]}]
    assert missed == []


def test_out_given_twice_or_into_a_missing_folder_is_a_usage_error(photos, tmp_path):
    run("enroll", "face", "yao", photos["yaoming"])
    twice = run("scan", photos["yaoming"], "--out", tmp_path / "a.json", "--out", tmp_path / "b.csv", code=2)
    assert "given 2 times" in twice.stderr and not (tmp_path / "a.json").exists()
    missing = run("scan", photos["yaoming"], "--out", tmp_path / "nowhere" / "a.json", code=2)
    assert f"the folder {tmp_path / 'nowhere'} does not exist" in missing.stderr
    assert not (tmp_path / "nowhere").exists()
    run("scan", photos["yaoming"], "--out", tmp_path / "a.json", "--quiet")
    assert "given 2 times" in run("report", tmp_path / "a.json", "--out", tmp_path / "x.html", "--out",
                                  tmp_path / "y.html", code=2).stderr


def test_one_file_that_is_no_media_exits_2_like_a_folder_of_them(photos, tmp_path):
    run("enroll", "face", "yao", photos["yaoming"])
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture")
    assert "no scannable media" in run("scan", notes, code=2).stderr
    broken = tmp_path / "broken.jpg"  # a damaged picture is still media: it gets its error row
    broken.write_bytes(photos["yaoming"].read_bytes()[:200])
    alone = run("scan", broken, "--json", code=2)  # its error row, and no exit 0: nothing was audited
    assert "error" in alone.stdout and "nothing was audited" in alone.stderr


def test_log_for_a_person_lists_the_scans_that_named_them(photos):
    run("enroll", "face", "yao", photos["yaoming"])
    run("scan", photos["players"], "--quiet")
    run("scan", photos["gdp"], "--quiet")  # names no one
    events = [line.split("\t")[2] for line in run("log", "--person", "yao").stdout.splitlines()[1:]]
    assert events.count("scan") == 1 and "enroll" in events

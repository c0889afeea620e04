"""Enrolled samples in evidence: findings and the report name the sample that matched (and which sample the reference
crop shows); score bars scaled by the threshold; a voice recording must sound like the person's other samples."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
from tests.helpers.cli import run

from audit.findings import Finding
from audit.report.html import render_html





@pytest.mark.parametrize("model", ["ge2e", "campplus"])
def test_voice_of_someone_else_is_refused_unless_forced(speakers, model):
    # Speakers and utterances as in benchmarks/voice_enrol_agreement.py: the first two enrolled, later ones new.
    # A recording is refused when it is more likely someone else's: another enrolled speaker scores higher against
    # it than the person's own recordings do (merely scoring below VOICE_AGREEMENT no longer refuses it).
    mine, other = speakers["1688"], speakers["2414"]
    m = ("--model", model)
    run("enroll", "voice", "ann", mine[0], mine[1], *m)
    run("enroll", "voice", "bob", other[0], other[1], other[4], other[5], *m)
    refused = run("enroll", "voice", "ann", other[2], *m, code=2).stderr
    score = re.search(r"sounds more like bob \(similarity (0\.\d+)\) than ann \((0\.\d+)\)", refused)
    assert score, refused
    assert float(score[1]) > float(score[2]) and "--force" in refused
    assert "1 voice samples added" in run("enroll", "voice", "ann", mine[2], *m).stdout  # her own new recording
    mixed = run("enroll", "voice", "ann", mine[3], other[3], *m)  # one stray in a batch: the rest is kept
    assert "1 voice samples added" in mixed.stdout and "sounds more like bob" in mixed.stderr
    assert "1 voice samples added" in run("enroll", "voice", "ann", other[2], "--force", *m).stdout
    assert {p["id"]: p["samples"] for p in json.loads(run("people", "--json").stdout)}["ann"] == {"voice": 5}


def _cards(page: str) -> list[str]:
    """The finding cards of a report page."""
    return re.findall(r'<section class="card[^"]*" id="f\d+">.*?</section>', page, re.S)


def test_evidence_names_the_matched_sample_and_which_sample_the_crop_shows(deepface, tmp_path):
    folder, people = deepface
    a, b, c = (folder / f for f in people["person01"][:3])
    run("enroll", "face", "p1", a, b)  # two photos: two samples, one reference crop (the better face)
    run("scan", a, b, "--out", tmp_path / "found.json")
    rows = {Path(r["path"]).name: r for r in json.loads((tmp_path / "found.json").read_text())}
    assert len(rows) == 2 and all(r["person"] == "p1" for r in rows.values())
    for r in rows.values():  # each photo matched the sample enrolled from itself
        assert r["extra"]["sample_sha256"] == r["sha256"] and r["extra"]["sample_enrolled"].startswith("20")
    ids = {name: r["extra"]["sample"] for name, r in rows.items()}
    assert len(set(ids.values())) == 2

    run("scan", a, "--out", tmp_path / "found.csv")  # CSV carries the same evidence in its extra column
    extra = json.loads(next(csv.DictReader(open(tmp_path / "found.csv")))["extra"])
    assert extra["sample"] == ids[a.name] and extra["sample_sha256"] == rows[a.name]["sha256"]

    run("report", tmp_path / "found.json", "--out", tmp_path / "page.html")
    cards = _cards((tmp_path / "page.html").read_text())
    assert len(cards) == 2
    for name, sid in ids.items():
        card = next(x for x in cards if name in x)
        assert f"Enrolled sample</dt><dd class=\"sample\">#{sid}, enrolled 20" in card
        assert rows[name]["sha256"] in card.split("Enrolled sample", 1)[1]
    captions = [re.search(r"<figcaption>(enrolled reference[^<]*)</figcaption>", x)[1] for x in cards]
    assert captions.count("enrolled reference, cut from the sample that matched") == 1  # the crop is cut from one
    assert sum(x.startswith("enrolled reference, cut from another of their samples (#") for x in captions) == 1
    assert not [x for x in captions if "not the matched" in x]

    # A later enrolment replaces the person's one crop in the store, but a saved scan's evidence is what the scan
    # recorded: its report shows the crop and captions of scan time, not the store of today.
    run("enroll", "face", "p1", c)
    run("report", tmp_path / "found.json", "--out", tmp_path / "later.html")
    later = _cards((tmp_path / "later.html").read_text())
    assert [re.search(r"<figcaption>(enrolled reference[^<]*)</figcaption>", x)[1] for x in later] == captions


def _bar(page: str) -> tuple[float, str]:
    """(fill %, the scale written under it) of the one score bar on a page."""
    fill = float(re.search(r'class="fill[^"]*" style="width:([\d.]+)%"', page)[1])
    scale = re.search(r'<div class="scale"><span>([^<]*)</span><span>([^<]*)</span></div>', page)
    assert '<div class="thr"></div>' in page  # the threshold marked at the bar's left end
    return fill, f"{scale[1]} .. {scale[2]}"


def test_score_bar_runs_from_the_threshold_to_a_perfect_match():
    def page(**kw) -> str:
        return render_html([Finding(path="/gen/x", sha256="ab" * 32, kind="match", person="p", **kw).to_dict()])

    assert _bar(page(modality="face", similarity=0.36, threshold=0.35)) == (1.5, "0.35 threshold .. 1.00")  # just
    assert _bar(page(modality="face", similarity=0.675, threshold=0.35)) == (50.0, "0.35 threshold .. 1.00")
    assert _bar(page(modality="face", similarity=1.0, threshold=0.35))[0] == 100.0
    assert _bar(page(modality="face", similarity=0.2, threshold=0.35))[0] == 0.0  # below: empty, never negative
    # AS-normalised voice scores have no ceiling: the bar runs to twice the threshold
    assert _bar(page(modality="voice", similarity=5.01, threshold=3.34)) == (50.0, "3.34 threshold .. 6.68")
    assert _bar(page(modality="voice", similarity=12.0, threshold=3.34))[0] == 100.0  # capped
    assert "from the threshold 0.35 (left mark) to 1.00 (a perfect match)" in page(
        modality="face", similarity=0.5, threshold=0.35)


def test_store_made_before_crops_named_their_sample(photos, audit_home):
    import sqlite3

    from audit import open_store

    run("enroll", "face", "yao", photos["yaoming"])
    db = sqlite3.connect(audit_home / "registry.sqlite")  # the references_ table as older stores have it
    db.executescript("CREATE TABLE old AS SELECT person, modality, image FROM references_; DROP TABLE references_;"
                     "CREATE TABLE references_ (person TEXT NOT NULL REFERENCES people(id) ON DELETE CASCADE, "
                     "modality TEXT NOT NULL, image BLOB NOT NULL, PRIMARY KEY (person, modality));"
                     "INSERT INTO references_ SELECT * FROM old; DROP TABLE old;")
    db.close()
    with open_store() as store:
        assert store.reference("yao")[:3] == b"\xff\xd8\xff"
        (info,) = store.sample_info(store.vectors(*store.models()[0])[0]).values()
        assert info.person == "yao" and info.reference_sample is None
    run("scan", photos["players"], "--out", audit_home.parent / "p.html")
    text = (audit_home.parent / "p.html").read_text()
    assert "enrolled reference (which sample it was cut from is not recorded)" in text
    run("enroll", "face", "yao", photos["gdp"], "--pick", "largest", "--force")  # a new crop names its sample
    with open_store() as store:
        assert store.sample_info([info.id])[info.id].reference_sample > info.id

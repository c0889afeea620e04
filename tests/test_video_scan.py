"""End-to-end video scanning through the CLI: a video built from real photos (and a real voice track)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.cli import run
from tests.helpers.video import make_video

VOICES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "voices" / "librispeech-test-other"


@pytest.fixture()
def clip(deepface, tmp_path):
    """Enroll person01 and person02 from two photos each; a 12 s video: p01, stranger, p02, p01 again."""
    folder, _ = deepface
    run("enroll", "face", "person01", str(folder / "img1.jpg"), str(folder / "img2.jpg"))
    run("enroll", "face", "person02", str(folder / "img3.jpg"), str(folder / "img12.jpg"))
    video = tmp_path / "avatar clip.mp4"
    make_video(video, [(folder / "img4.jpg", 3), (folder / "img13.jpg", 3), (folder / "img53.jpg", 3),
                       (folder / "img5.jpg", 3)])
    return video


def test_video_appearances(clip, tmp_path):
    rows = [json.loads(x) for x in run("scan", str(clip), "--json").stdout.splitlines()]
    got = [(r["person"], r["start"], r["end"], r["frames"]) for r in rows]
    assert got == [("person01", 0.0, 2.0, 3), ("person02", 6.0, 8.0, 3), ("person01", 9.0, 11.0, 3)]
    for r in rows:
        assert r["kind"] == "match" and r["modality"] == "face" and len(r["sha256"]) == 64
        assert r["similarity"] >= r["threshold"] and r["start"] <= r["extra"]["best_time"] <= r["end"]
    assert run("scan", str(clip), "--json", "--min-frames", "4").stdout.strip() == ""


def test_video_keyframes_mode(clip):
    rows = [json.loads(x) for x in run("scan", str(clip), "--json", "--keyframes").stdout.splitlines()]
    assert {r["person"] for r in rows} == {"person01", "person02"}


def test_truncated_video_keeps_early_findings(clip, tmp_path):
    cut = tmp_path / "cut.mp4"
    data = clip.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.6)])
    rows = [json.loads(x) for x in run("scan", str(cut), "--json").stdout.splitlines()]
    kinds = [r["kind"] for r in rows]
    assert "error" in kinds
    assert any(r["kind"] == "match" and r["person"] == "person01" for r in rows)


def test_video_with_voice_track(deepface, tmp_path):
    """The audio track of a video goes through the voice scan in the same run."""
    if not VOICES.exists():
        pytest.skip("shared voices absent")
    from audit.media.audio import load_audio

    folder, _ = deepface
    files = sorted((VOICES / "1688").glob("*.flac"))
    run("enroll", "voice", "speaker1688", *map(str, files[:5]))
    run("enroll", "face", "person01", str(folder / "img1.jpg"))
    speech = np.concatenate([load_audio(f) for f in files[5:8]])
    video = tmp_path / "talking.mp4"
    make_video(video, [(folder / "img4.jpg", len(speech) / 16000)], fps=5, audio=speech)
    rows = [json.loads(x) for x in run("scan", str(video), "--json").stdout.splitlines()]
    assert {(r["modality"], r["person"]) for r in rows} == {("face", "person01"), ("voice", "speaker1688")}


def test_enroll_face_from_video(deepface, tmp_path):
    """A video of one person gives several distinct frames; one of two people competing fails clearly."""
    folder, _ = deepface
    solo = tmp_path / "solo.mp4"
    make_video(solo, [(folder / f, 2) for f in ("img1.jpg", "img2.jpg", "img4.jpg", "img5.jpg")], fps=5)
    out = run("enroll", "face", "p01", str(solo)).stdout
    added = int(out.split(": ")[1].split()[0])
    assert 3 <= added <= 5
    rows = [json.loads(x) for x in run("scan", str(folder / "img6.jpg"), "--json").stdout.splitlines()]
    assert [r["person"] for r in rows] == ["p01"]

    duo = tmp_path / "duo.mp4"
    make_video(duo, [(folder / "img1.jpg", 3), (folder / "img3.jpg", 3)], fps=5)
    result = run("enroll", "face", "who", str(duo), code=2)
    assert "2 people appear in the video" in result.output


def test_video_html_report(clip, tmp_path):
    out = tmp_path / "video.html"
    run("scan", str(clip), "--out", str(out))
    page = out.read_text()
    assert page.count('class="card') == 3
    # per appearance: the face cut from its best frame, that whole frame with the face boxed, the reference crop
    assert page.count("data:image/jpeg;base64,") == 9 and page.count(", face boxed</figcaption>") == 3
    assert re.search(r"the frame at 0:00:0\d\.\d, face boxed", page)
    assert "0:00:06.0 – 0:00:08.0" in page and "<script" not in page

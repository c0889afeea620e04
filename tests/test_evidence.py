"""The evidence record: made at scan time, carried by every format, rendered by `report` from it alone."""

from __future__ import annotations

import base64
import re
import shutil
from dataclasses import fields
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import audit
from audit.report.record import sidecar
from audit.scan.options import ScanOptions
from tests.helpers.cli import run


def make_clip(photo: Path, out: Path, seconds: int = 3, fps: int = 5) -> None:
    """A short H.264 video of one photo."""
    import av
    import cv2

    img = cv2.imread(str(photo))
    h, w = (img.shape[0] // 2) * 2, (img.shape[1] // 2) * 2
    with av.open(str(out), "w") as c:
        vs = c.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        for n in range(seconds * fps):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img[:h, :w]), format="bgr24")
            frame.pts, frame.time_base = n, Fraction(1, fps)
            c.mux(vs.encode(frame))
        c.mux(vs.encode())


def jpegs(page: str) -> set[bytes]:
    """The JPEG pictures embedded in a page."""
    return {base64.b64decode(m) for m in re.findall(r"data:image/jpeg;base64,([A-Za-z0-9+/=]+)", page)}


def test_report_renders_from_the_saved_record_alone(photos, tmp_path, audit_home, monkeypatch):
    media = tmp_path / "media"
    media.mkdir()
    shutil.copy(photos["players"], media / "team.jpg")
    shutil.copy(photos["gdp"], media / "group.jpg")
    make_clip(photos["yaoming"], media / "yao clip.mp4")
    run("enroll", "face", "yao", photos["yaoming"], "--name", "Yao")
    out = tmp_path / "scan" / "findings.parquet"
    out.parent.mkdir()
    run("scan", media, "--out", out, "--quiet")
    saved = audit.read_record(out)
    faces = [(r, p) for r, p in zip(saved.findings, saved.pictures) if r["modality"] == "face"]
    assert {Path(r["path"]).name for r, _ in faces} == {"team.jpg", "yao clip.mp4"}
    assert all(p is not None and p.crop[:3] == b"\xff\xd8\xff" for _, p in faces)
    import cv2

    for _, p in faces:  # the whole picture or frame with the face boxed, cut at scan time, bounded in size
        scene = cv2.imdecode(np.frombuffer(p.scene, np.uint8), cv2.IMREAD_COLOR)
        assert scene is not None and max(scene.shape[:2]) <= 480 and len(p.scene) < 64 * 1024
    assert saved.references["yao"].crop and saved.complete and saved.run["files_total"] == 3

    # Another folder, no media, no store: the report is made from the record alone.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for f in (out, sidecar(out)):
        shutil.move(f, elsewhere / f.name)
    shutil.rmtree(media)
    shutil.rmtree(audit_home)
    monkeypatch.chdir(elsewhere)
    result = run("report", "findings.parquet", "--out", "page.html")
    assert "complete: 3 of 3 files scanned" in result.stdout
    page = (elsewhere / "page.html").read_text()
    assert jpegs(page) == {p.crop for _, p in faces} | {p.scene for _, p in faces} | {saved.references["yao"].crop}
    assert "the whole picture, face boxed" in page and re.search(r"the frame at 0:00:0\d\.\d, face boxed", page)
    assert "no picture" not in page
    assert saved.run["started"] in page and saved.run["finished"] in page and "3 of 3 files scanned" in page
    assert not audit_home.exists()


def test_an_older_output_says_what_it_lacks(photos, tmp_path):
    run("enroll", "face", "yao", photos["yaoming"])
    out = tmp_path / "f.json"
    run("scan", photos["players"], "--out", out, "--quiet")
    sidecar(out).unlink()  # as written before evidence records: no pictures, and no run metadata either
    (tmp_path / "f.json.meta.json").unlink()
    run("report", out, "--out", tmp_path / "f.html")
    page = (tmp_path / "f.html").read_text()
    assert "Pictures are missing from this report" in page and "no evidence sidecar f.json.evidence" in page
    assert "The run&#x27;s own metadata is missing" in page


def test_an_edited_findings_file_keeps_the_pictures_of_its_unchanged_rows(photos, tmp_path):
    run("enroll", "face", "yao", photos["yaoming"])
    out = tmp_path / "f.csv"
    run("scan", photos["players"], photos["yaoming"], "--out", out, "--quiet")
    df = pd.read_csv(out)
    df[df["path"].str.endswith("players.jpg")].to_csv(out, index=False)  # filtered in a spreadsheet
    record = audit.read_record(out)
    assert len(record.findings) == 1 and record.pictures[0].crop


def test_an_interrupted_scan_says_incomplete_in_every_format(photos, tmp_path):
    store = audit.open_store()
    audit.enroll_faces(store, "yao", [photos["yaoming"]])
    folder = tmp_path / "media"
    folder.mkdir()
    for i in range(6):
        shutil.copy(photos["yaoming"], folder / f"{i}.jpg")
    scan = audit.scan(store, [folder], workers=1)
    next(iter(scan))  # the first finding, then stop, as Ctrl-C does
    scan.close()
    record = scan.record()
    assert not record.complete and record.status() == "incomplete: 1 of 6 files scanned"
    for ext in ("csv", "json", "jsonl", "parquet", "html"):
        out = tmp_path / f"stopped.{ext}"
        audit.write_record(record, out)
        if ext == "parquet":
            text = " ".join(map(str, pd.read_parquet(out)["error"].dropna()))
        else:
            text = out.read_text()
        assert ("Incomplete" if ext == "html" else "incomplete") + ": 1 of 6 files scanned" in text, ext
        if ext != "html":
            back = audit.read_record(out)
            assert not back.complete and back.status() == record.status() and len(back.findings) == 1
            assert all(r["kind"] == "match" for r in back.findings)  # the status row is not a finding
    page = (tmp_path / "stopped.html").read_text()
    assert page.index("Incomplete: 1 of 6 files scanned") < page.index("<h2>Summary")
    assert "files scanned</dt><dd>1 of 6<" in page


def test_voice_findings_carry_their_waveform(tmp_path):
    from audit.media.pictures import envelope, waveform_png

    wav = np.sin(np.linspace(0, 2000, 16000 * 5)).astype(np.float32)
    env = envelope(wav)
    assert env.size == 1440 and env[0::2].min() >= -1 and env[1::2].max() <= 1
    png = waveform_png(env, env.size / 5.0, 1.0, 2.0)
    assert png[:4] == b"\x89PNG"


def test_scan_options_are_declared_once():
    from audit.cli import cli
    from audit.models.voice import VOICE_MODELS

    params = {p.name: p for p in cli.commands["scan"].params}
    for f in fields(ScanOptions):
        if f.metadata["cli"]:
            assert f.name in params and params[f.name].help == f.metadata["help"], f.name
        else:
            assert f.name not in params, f.name
    assert ScanOptions.__dataclass_fields__["voice_model"].metadata["choices"] == tuple(VOICE_MODELS)
    with pytest.raises(audit.AuditError, match="top_k must be within"):
        ScanOptions(top_k=0).check()
    assert ScanOptions(fps=2.0, keyframes=True, voice=False).described() == [
        "video sampled at 2.0 frames/s", "video keyframes only", "audio not scanned"]


def test_the_web_api_takes_only_scan_options_it_declares():
    from fastapi import FastAPI

    from audit.service import api

    app = FastAPI()
    app.include_router(api.router)
    body = next(op for path, ops in app.openapi()["paths"].items() if path.endswith("/scans")
                for method, op in ops.items() if method == "post")["requestBody"]["content"]
    given = {name for kind in body.values() for name in kind["schema"]["properties"]} - {"files", "paths"}
    assert given and given <= {f.name for f in fields(ScanOptions)}


def test_a_voice_finding_keeps_its_waveform_from_the_scan(tmp_path):
    voices = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "voices" / "librispeech-test-other"
    if not voices.exists():
        pytest.skip("../shared/data/voices is not present")
    speaker = sorted(d for d in voices.iterdir() if d.is_dir())[0]
    files = sorted(speaker.glob("*.flac"))
    run("enroll", "voice", speaker.name, *files[:5])
    out = tmp_path / "voice.jsonl"
    run("scan", files[6], "--out", out, "--quiet")
    record = audit.read_record(out)
    voice = [(r, p) for r, p in zip(record.findings, record.pictures) if r["modality"] == "voice"]
    assert voice and all(p is not None and p.waveform[:4] == b"\x89PNG" for _, p in voice)
    page = tmp_path / "voice.html"
    run("report", out, "--out", page)
    assert page.read_text().count("data:image/png;base64,") == len(voice)


def test_the_scan_cache_keeps_each_face_crop_and_whole_picture():
    from audit.scan import cache as caching
    from audit.scan.analyze import AnalyzedFile, DetectedFace

    vec = np.ones(4, np.float32)
    faces = [DetectedFace([1, 2, 30, 40], 0.9, vec, None, None, b"\xff\xd8\xffcrop1", b"\xff\xd8\xffwhole1"),
             DetectedFace([5, 6, 50, 60], 0.8, vec, None, None, None, b"\xff\xd8\xffwhole2"),
             DetectedFace([7, 8, 70, 80], 0.7, vec, None, None, b"\xff\xd8\xffcrop3", None)]
    back = caching.load(caching.dump(AnalyzedFile("a.jpg", "0" * 64, "image", faces=faces)), "a.jpg", "0" * 64)
    assert [(f.crop, f.scene) for f in back.faces] == [(f.crop, f.scene) for f in faces]

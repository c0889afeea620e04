"""The fused voice encoder (GE2E and CAM++ on the same segments, AS-norm scores averaged): enrolment and scan."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from audit.media.audio import load_audio
from audit.models.voice import voice_encoder
from tests.helpers.cli import run


def test_fused_segments_are_both_encoders_end_to_end(speakers):
    wav = load_audio(speakers["1688"][0])
    fused = voice_encoder("fused")
    segs = fused.embed_segments(wav)
    ge2e, camp = voice_encoder("ge2e").embed_segments(wav), voice_encoder("campplus").embed_segments(wav)
    assert [(s.start, s.end) for s in segs] == [(s.start, s.end) for s in ge2e] == [(s.start, s.end) for s in camp]
    a, b = fused.split(np.stack([s.vector for s in segs]))
    np.testing.assert_allclose(a, np.stack([s.vector for s in ge2e]), atol=1e-6)
    np.testing.assert_allclose(b, np.stack([s.vector for s in camp]), atol=1e-6)
    assert fused.dim == 448 and len(set(fused.model_ids)) == 2


def test_enroll_and_scan_fused_through_the_cli(speakers):
    """fused enrols both encoders; a fused scan names a fused speaker with both scores, and a speaker enrolled with
    GE2E only (a store from before fusion) by GE2E alone; nobody else is named."""
    a, b = speakers["1688"], speakers["2033"]
    out = run("enroll", "voice", "a", *a[:5]).stdout  # fused is the default
    assert out.startswith("a: 5 voice samples added")  # 5 recordings, each embedded by both encoders
    people = {p["id"]: p["samples"] for p in json.loads(run("people", "--json").stdout)}
    assert people["a"] == {"voice": 5}  # a recording counts once, though both encoders keep a template of it
    run("enroll", "voice", "b", *b[:5], "--model", "ge2e")  # GE2E only
    rows = [json.loads(x) for x in run("scan", a[6], b[6], "--json").stdout.splitlines()]  # fused by default
    assert {(Path(r["path"]).name, r["person"]) for r in rows} == {(a[6].name, "a"), (b[6].name, "b")}
    for r in rows:
        assert r["model"].startswith("fused:ge2e:") and r["extra"]["score"] == "as-norm, fused"
        assert r["similarity"] >= r["threshold"]
    ra = next(r for r in rows if r["person"] == "a")
    assert {"ge2e_score", "campplus_score"} <= set(ra["extra"])
    assert abs(ra["similarity"] - (ra["extra"]["ge2e_score"] + ra["extra"]["campplus_score"]) / 2) < 0.01
    rb = next(r for r in rows if r["person"] == "b")
    assert "ge2e_score" in rb["extra"] and "campplus_score" not in rb["extra"]
    # The parts stay usable on their own: a CAM++ scan finds a (enrolled with both), not b (GE2E only).
    rows = [json.loads(x) for x in run("scan", a[6], b[6], "--json", "--voice-model", "campplus").stdout.splitlines()]
    assert [r["person"] for r in rows] == ["a"]

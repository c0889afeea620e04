"""End to end through the CLI: several speakers in one file give one span per turn, and voice calibration."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from audit.media.audio import load_audio
from tests.helpers.cli import run

VOICES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "voices"
SR = 16000
EDGE = 3.0  # a 3 s window that straddles a change of speaker may go either way




def write_flac(path: Path, wav: np.ndarray) -> Path:
    pcm = np.round(np.clip(wav, -1, 1) * 32767).astype(np.int16)[None, :]
    with av.open(str(path), "w") as c:
        s = c.add_stream("flac", rate=SR, layout="mono")
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = SR
        for p in s.encode(frame):
            c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return path


def longest(files: list[Path], k: int) -> list[np.ndarray]:
    """The k longest held-out utterances (audio), longest first."""
    return sorted((load_audio(p) for p in files), key=len, reverse=True)[:k]


def findings(path: Path, *options: str) -> list[dict]:
    rows = [json.loads(x) for x in run("scan", str(path), "--json", *options).stdout.splitlines()]
    assert not [r for r in rows if r["kind"] == "error"]
    return rows


def covers(row: dict, a: float, b: float) -> bool:
    """True if the finding's span overlaps [a, b]."""
    return row["start"] < b and row["end"] > a


def test_turns_of_two_speakers_are_separate_spans(speakers, tmp_path):
    """A B A: two spans for A that leave B's turn out, and one span for B inside its turn."""
    a_id, b_id = "1688", "2033"
    run("enroll", "voice", a_id, *map(str, speakers[a_id][:5]))
    run("enroll", "voice", b_id, *map(str, speakers[b_id][:5]))
    a1, a2 = longest(speakers[a_id][5:], 2)
    (b1,) = longest(speakers[b_id][5:], 1)
    t1, t2 = len(a1) / SR, (len(a1) + len(b1)) / SR
    rows = findings(write_flac(tmp_path / "aba.flac", np.concatenate([a1, b1, a2])))
    a_rows = sorted((r for r in rows if r["person"] == a_id), key=lambda r: r["start"])
    b_rows = [r for r in rows if r["person"] == b_id]
    assert len(a_rows) == 2, rows
    assert a_rows[0]["start"] < 1.0 and a_rows[0]["end"] <= t1 + EDGE
    assert a_rows[1]["start"] >= t2 - EDGE and a_rows[1]["end"] >= t2 + len(a2) / SR - 1.5
    assert not any(covers(r, t1 + EDGE, t2 - EDGE) for r in a_rows)  # B's turn is not in A's spans
    assert len(b_rows) == 1 and b_rows[0]["start"] >= t1 - EDGE and b_rows[0]["end"] <= t2 + EDGE
    for r in rows:
        # The default encoder is fused: the mean of GE2E's and CAM++'s AS-norm scores, both reported.
        e = r["extra"]
        assert e["score"] == "as-norm, fused" and r["similarity"] == pytest.approx(
            (e["ge2e_score"] + e["campplus_score"]) / 2, abs=0.01)
        assert r["similarity"] >= r["threshold"]


def test_overlapping_speakers(speakers, tmp_path):
    """A alone, then A and B at once, then B alone: A is never reported over B's solo part, nor B over A's."""
    a_id, b_id = "3005", "367"
    run("enroll", "voice", a_id, *map(str, speakers[a_id][:5]))
    run("enroll", "voice", b_id, *map(str, speakers[b_id][:5]))
    a = np.concatenate(longest(speakers[a_id][5:], 2))
    b = np.concatenate(longest(speakers[b_id][5:], 2))
    overlap = 4 * SR
    mix = np.zeros(len(a) + len(b) - overlap, np.float32)
    mix[: len(a)] += a
    mix[len(a) - overlap :] += b
    t_b, t_a_end = (len(a) - overlap) / SR, len(a) / SR
    rows = findings(write_flac(tmp_path / "overlap.flac", mix))
    people = {r["person"] for r in rows}
    assert people == {a_id, b_id}, rows
    for r in rows:
        if r["person"] == a_id:
            assert r["end"] <= t_a_end + EDGE
        else:
            assert r["start"] >= t_b - EDGE


def test_voice_calibrate(speakers, tmp_path):
    """calibrate --modality voice stores a threshold on normalised scores that scans then state (one encoder: a
    fused scan keeps its documented threshold and uses the parts' calibrations only for one-encoder people)."""
    for spk in list(speakers)[:4]:
        run("enroll", "voice", spk, *map(str, speakers[spk][:5]), "--model", "ge2e")
    # Recordings of people who are not enrolled and not in the shipped cohort (odd positions of train-clean).
    train = sorted((VOICES / "librispeech-train-clean").glob("*.flac"), key=lambda p: int(p.name.split("-")[0]))
    cohort = tmp_path / "cohort"
    cohort.mkdir()
    for p in train[1::2][:30]:
        (cohort / p.name).symlink_to(p)
    out = run("calibrate", "--modality", "voice", "--cohort", str(cohort), "--target-fpir", "0.05", "--json",
              "--voice-model", "ge2e").stdout
    cal = json.loads(out)
    assert cal["modality"] == "voice" and cal["details"]["score"].startswith("asnorm:")
    assert cal["details"]["cohort_files"] == 30 and cal["gallery_size"] == 4 and cal["genuine"] == 20
    assert 0 < cal["fmr"] < 1 and cal["threshold"] > 0
    spk = list(speakers)[0]
    rows = findings(speakers[spk][7], "--voice-model", "ge2e")
    assert rows and all(r["threshold_source"].startswith("calibrated") for r in rows)
    assert all(r["threshold"] == cal["threshold"] and r["fmr"] == cal["fmr"] for r in rows)
    entries = [json.loads(x) for x in run("log", "--json").stdout.splitlines()]
    assert [e["details"]["modality"] for e in entries if e["event"] == "calibrate"] == ["voice"]

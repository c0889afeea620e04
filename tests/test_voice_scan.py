"""End-to-end voice enrolment and scanning through the CLI on the shared LibriSpeech utterances."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from audit.scan.voices import voice_defaults
from tests.helpers.cli import run

VOICES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "voices"





@pytest.mark.slow
def test_enroll_half_scan_rest_and_cohort(speakers, tmp_path):
    for spk, files in speakers.items():
        run("enroll", "voice", spk, *map(str, files[:5]))
    held = [f for files in speakers.values() for f in files[5:]]
    cohort = VOICES / "librispeech-train-clean"
    out = run("scan", *map(str, held), str(cohort), "--json", "--workers", "2").stdout
    rows = [json.loads(x) for x in out.splitlines()]
    assert not [r for r in rows if r["kind"] == "error"]
    found: dict[str, set[str]] = {}
    for r in rows:
        assert r["modality"] == "voice" and r["start"] is not None and r["end"] > r["start"]
        found.setdefault(r["path"], set()).add(r["person"])
    # benchmarks/voice_accuracy.py finds 98 of 100 clean held-out files at the default; none goes to another person.
    missed = [f for f in held if str(f) not in found]
    assert len(missed) <= 2, missed
    for f in held:
        assert found.get(str(f), {f.parent.name}) == {f.parent.name}, f
    cohort_files = sorted(cohort.rglob("*.flac"))
    false = sum(len(found.get(str(f), ())) for f in cohort_files)
    # Each cohort file is compared with 10 enrolled speakers; the documented rate bounds the expected count.
    expected = voice_defaults("ge2e")[1] * len(cohort_files) * len(speakers)
    assert false <= max(3, 3 * expected), (false, expected)


def test_too_little_speech_is_refused(speakers):
    one = min((f for files in speakers.values() for f in files), key=lambda f: f.stat().st_size)
    result = run("enroll", "voice", "x", str(one), code=2)
    assert "of voiced speech" in result.output and "need at least 6" in result.output


def test_bad_audio_files_are_error_rows(speakers, tmp_path):
    spk, files = next(iter(speakers.items()))
    run("enroll", "voice", spk, *map(str, files[:5]))
    (tmp_path / "empty.mp3").write_bytes(b"")
    (tmp_path / "text.flac").write_text("not audio")
    data = files[6].read_bytes()
    (tmp_path / "cut.flac").write_bytes(data[:200])
    rows = [json.loads(x) for x in run("scan", str(tmp_path), "--json", code=2).stdout.splitlines()]  # none read
    assert sorted(Path(r["path"]).name for r in rows if r["kind"] == "error") == ["cut.flac", "empty.mp3", "text.flac"]

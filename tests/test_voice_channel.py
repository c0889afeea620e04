"""Telephone-band speech: the band detector, band-limited templates written at enrolment, and a scan judging
telephone-band segments against them (models/channel.py, enroll/narrowband.py, scan/voices.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from audit.media.audio import load_audio
from audit.models.channel import high_band_db, is_band_limited, is_narrow, narrow_id, telephone
from audit.models.voice import voice_encoder
from audit.store import Store
from tests.helpers.cli import run
from tests.helpers.phone import write_phone

SR = 16000


def windows(wav: np.ndarray) -> list[np.ndarray]:
    """3 s windows every 1.5 s, as a scan cuts segments."""
    return [wav[a:a + 3 * SR] for a in range(0, max(1, len(wav) - 3 * SR + 1), 3 * SR // 2)]


def test_band_detector_tells_telephone_speech_from_real(speakers):
    """Every 3 s window of real recordings of several speakers is wideband, every window of their telephone copies
    band-limited, with a wide gap; a fused encoder's segments carry the detector's answer."""
    real, phone = [], []
    for files in list(speakers.values())[:6]:
        for f in files[:3]:
            wav = load_audio(f)
            real += [high_band_db(w) for w in windows(wav)]
            phone += [high_band_db(w) for w in windows(telephone(wav))]
    assert len(real) > 50
    assert min(real) > -45 and max(phone) < -100  # the limit, -50 dB, lies between
    assert not any(is_band_limited(w) for w in windows(load_audio(speakers["1688"][0])))
    assert not is_band_limited(np.zeros(SR, np.float32))  # silence makes no claim
    wav = load_audio(speakers["1688"][0])
    fused = voice_encoder("fused")
    assert not any(s.narrow for s in fused.embed_segments(wav))
    assert all(s.narrow for s in fused.embed_segments(telephone(wav)))


def test_telephone_copy_of_an_enrolled_speaker_is_found(speakers, audit_home, tmp_path):
    """Enrolled from clean recordings, a speaker is found in a telephone-band copy of another recording of theirs
    (judged against their band-limited templates); a stranger's telephone copy names nobody."""
    names = sorted(speakers)
    a, b, stranger = speakers[names[0]], speakers[names[1]], speakers[names[2]]
    run("enroll", "voice", "a", *a[:5])
    run("enroll", "voice", "b", *b[:5])
    with Store(audit_home) as store:  # each part's band-limited templates, one per recording, beside the wideband
        counts = {model: n for (modality, model), n in store.counts().items() if modality == "voice"}
    narrow = [m for m in counts if is_narrow(m)]
    assert len(narrow) == 2 and all(counts[m] == 10 and counts[m[len(narrow_id("")):]] == 10 for m in narrow)
    mine = write_phone(a[-1], tmp_path / "a-phone.wav")
    theirs = write_phone(stranger[-1], tmp_path / "stranger-phone.wav")
    rows = [json.loads(x) for x in run("scan", mine, theirs, "--json").stdout.splitlines()]
    assert [(Path(r["path"]).name, r["person"]) for r in rows if r["kind"] == "match"] == [("a-phone.wav", "a")]
    assert rows[0]["extra"]["band_limited_segments"] >= 2
    assert "ok" in run("verify").stdout
    import pyarrow.parquet as pq  # the person's templates as exported: the band-limited ones too

    run("export", tmp_path / "t.parquet", "--modality", "voice")
    table = pq.read_table(tmp_path / "t.parquet").to_pydict()
    assert sum(is_narrow(m) and p == "a" for m, p in zip(table["model"], table["person"])) == 10


def test_the_scan_cache_keeps_which_segments_are_band_limited():
    from audit.scan import cache
    from audit.scan.analyze import AnalyzedFile, VoiceSegment

    result = AnalyzedFile("a.wav", "0" * 64, "audio", voices=[
        VoiceSegment(0.0, 3.0, np.ones(4, np.float32), True), VoiceSegment(1.5, 4.5, np.ones(4, np.float32))])
    back = cache.load(cache.dump(result), "a.wav", "0" * 64)
    assert [(v.start, v.narrow) for v in back.voices] == [(0.0, True), (1.5, False)]


def test_a_store_without_band_limited_templates_scans_as_before(speakers, audit_home, tmp_path, monkeypatch):
    """A store enrolled before band-limited templates existed keeps working exactly as before: telephone-band
    segments are scored against the wideband centroids (the telephone copy above is then missed, as it was), clean
    recordings are found, and no finding claims band-limited templates."""
    import audit.enroll.enroll as enroll

    monkeypatch.setattr(enroll, "narrow_sample", lambda *args: None)  # what enrolment wrote before
    names = sorted(speakers)
    a, b = speakers[names[0]], speakers[names[1]]
    run("enroll", "voice", "a", *a[:5])
    run("enroll", "voice", "b", *b[:5])
    with Store(audit_home) as store:
        assert not any(is_narrow(model) for _, model in store.models())
    mine = write_phone(a[-1], tmp_path / "a-phone.wav")
    rows = [json.loads(x) for x in run("scan", mine, a[-1], "--json").stdout.splitlines()]
    assert [(Path(r["path"]).name, r["person"]) for r in rows if r["kind"] == "match"] == [(a[-1].name, "a")]
    assert "band_limited_segments" not in rows[0]["extra"]

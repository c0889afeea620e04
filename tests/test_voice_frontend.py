"""The voice front end shared by both encoders (voice_base.segment_grid): the fused encoder finds voice activity once
and runs GE2E and CAM++ on one grid; its segments must equal each encoder cutting and embedding the file on its own,
written out here the plain way (one VAD pass and one loop per encoder), on real LibriSpeech recordings."""

from __future__ import annotations

import math

import numpy as np
import pytest

from audit.config import SAMPLE_RATE
from audit.media.audio import load_audio
from audit.models.campplus import features
from audit.models.voice import _partial_mels, voice_encoder
from audit.models.voice_base import VAD_WINDOW, _unit, normalize_volume, segment_grid, vad_masks


def reference_segments(enc, wav, segment_s=3.0, hop_s=1.5, min_voiced_s=1.0):
    """(start, end, voiced_s, vector) per segment, cut and embedded one at a time as the encoders did before."""
    voiced, keep = vad_masks(normalize_volume(wav))
    n_win = len(voiced)
    seg_w, hop_w = round(segment_s * SAMPLE_RATE / VAD_WINDOW), round(hop_s * SAMPLE_RATE / VAD_WINDOW)
    n_segments = max(1, math.ceil((n_win - seg_w) / hop_w) + 1) if n_win else 0
    window_s = VAD_WINDOW / SAMPLE_RATE
    out = []
    for k in range(n_segments):
        a, b = k * hop_w, min(k * hop_w + seg_w, n_win)
        voiced_s = round(float(voiced[a:b].sum()) * window_s, 3)
        if voiced_s < min_voiced_s:
            continue
        clip, mask = wav[a * VAD_WINDOW : b * VAD_WINDOW], np.repeat(keep[a:b], VAD_WINDOW)
        if enc.name == "ge2e":
            vector = _unit(enc._embed_partials(_partial_mels(normalize_volume(clip)[mask])).mean(axis=0))
        else:
            vector = enc._embed_features(features(clip[mask]))
        out.append((round(a * window_s, 3), round(b * window_s, 3), voiced_s, vector))
    return out


@pytest.fixture(scope="module")
def fused():
    return voice_encoder("fused")


def test_fused_segments_equal_each_encoder_alone(fused, speakers):
    """Times, voiced seconds and both parts' vectors (cosine >= 0.9999) on three recordings of different speakers."""
    files = [speakers[s][0] for s in sorted(speakers)[:3]]
    for path in files:
        wav = load_audio(path)
        got = fused.embed_segments(wav)
        assert got, path
        for part, vectors in zip(fused.parts, fused.split(np.stack([s.vector for s in got]))):
            want = reference_segments(part, wav)
            assert [(s.start, s.end, s.voiced_s) for s in got] == [w[:3] for w in want]
            cos = np.sum(vectors * np.stack([w[3] for w in want]), axis=1)
            assert cos.min() >= 0.9999, (path.name, part.name, cos.min())


def test_grid_of_silence_and_short_audio_is_empty():
    """No speech, no segments (and no error) from silence or a clip shorter than one VAD window."""
    assert segment_grid(np.zeros(3 * SAMPLE_RATE, np.float32)).cuts == []
    assert segment_grid(np.zeros(100, np.float32)).cuts == []

"""Telephone-band speech: a detector for it, and the line a person's enrolment audio is also sent through.

A speaker encoder scores a person's own telephone-band speech low against the centroid of their wideband
recordings (the band above 3.4 kHz is gone): a fused scan flagged 3 of 20 telephone-line clones in
benchmarks/voice_clones.py. Enrolment therefore also embeds each recording after this telephone line and keeps
those vectors as the person's band-limited templates, under their own model id (narrow_id); a scan scores the
segments this detector calls band-limited against them, AS-normalised with a cohort sent through the same line
(voice_cohort_<encoder>_telephone.npz). benchmarks/voice_channel.py measured it: 18 of 20 telephone clones flagged
instead of 3, strangers no more often.
"""

from __future__ import annotations

import numpy as np

from ..config import SAMPLE_RATE

NARROW_PREFIX = "nb-"  # model id of a band-limited template: this, then the encoder's own model id
CUT_HZ = 4000.0  # a telephone line samples at 8 kHz: nothing is left above 4 kHz
LIMIT_DB = -50.0  # band-limited below this: real LibriSpeech segments lie at -46 dB or above, telephone at -120
LINE_RATE = 8000


def narrow_id(model: str) -> str:
    """The model id of an encoder's band-limited templates."""
    return NARROW_PREFIX + model


def is_narrow(model: str) -> bool:
    """True for the model id of band-limited templates (not an encoder of its own)."""
    return model.startswith(NARROW_PREFIX)


def telephone(wav: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """A narrowband telephone line: 300-3400 Hz, 8 kHz sampling, G.711 mu-law (8 bits), back to `sr`."""
    import soxr
    from scipy import signal

    narrow = soxr.resample(np.asarray(wav, np.float32), sr, LINE_RATE)
    sos = signal.butter(4, [300, 3400], btype="bandpass", fs=LINE_RATE, output="sos")
    narrow = np.clip(signal.sosfilt(sos, narrow), -1, 1)
    mu = 255.0
    companded = np.sign(narrow) * np.log1p(mu * np.abs(narrow)) / np.log1p(mu)
    quantised = np.round(companded * 127) / 127
    narrow = np.sign(quantised) * ((1 + mu) ** np.abs(quantised) - 1) / mu
    return soxr.resample(narrow.astype(np.float32), LINE_RATE, sr).astype(np.float32)


def high_band_db(wav: np.ndarray, sr: int = SAMPLE_RATE) -> float:
    """Energy above CUT_HZ against the energy above 300 Hz, in dB (0 for silence: no claim of a narrow band)."""
    x = np.asarray(wav, np.float64)
    if len(x) < 2:
        return 0.0
    power = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    freq = np.fft.rfftfreq(len(x), 1 / sr)
    total = power[freq >= 300].sum()
    return 0.0 if total <= 0 else float(10 * np.log10(power[freq >= CUT_HZ].sum() / total + 1e-12))


def is_band_limited(wav: np.ndarray, sr: int = SAMPLE_RATE) -> bool:
    """True when a stretch of audio has (next to) nothing above 4 kHz, as after a telephone line."""
    return high_band_db(wav, sr) < LIMIT_DB

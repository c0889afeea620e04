"""Decode the audio of any media file to 16 kHz mono float32 (PyAV for decoding, soxr for resampling)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import soxr

from ..errors import MediaError
from ..config import SAMPLE_RATE
from .container import av_reason, open_container

# Same engine and quality as librosa's default resampler (soxr_hq), so embeddings match resemblyzer's.
SOXR_QUALITY = "HQ"


def has_audio(path: str | Path) -> bool:
    """Return True if the file has at least one audio stream; raise MediaError if it cannot be opened."""
    with open_container(path) as container:
        return bool(container.streams.audio)


class _Mono:
    """Collects decoded frames as mono float32 at the target rate, resampling with soxr as it goes."""

    def __init__(self, sr: int, max_samples: int | None):
        self.sr = sr
        self.max_samples = max_samples
        self.chunks: list[np.ndarray] = []
        self.n = 0
        self._converter: av.AudioResampler | None = None
        self._converter_key: tuple | None = None
        self._stream: soxr.ResampleStream | None = None
        self._rate: int | None = None

    @property
    def full(self) -> bool:
        """True once max_samples have been collected."""
        return self.max_samples is not None and self.n >= self.max_samples

    def _append(self, out: np.ndarray) -> None:
        """Keep a chunk of output samples."""
        if len(out):
            self.chunks.append(out)
            self.n += len(out)

    def _push(self, mono: np.ndarray, rate: int) -> None:
        """Resample mono samples at `rate` to the target rate (a new soxr stream whenever the rate changes)."""
        if rate != self._rate:
            self._flush_stream()
            self._rate = rate
            self._stream = None if rate == self.sr else soxr.ResampleStream(rate, self.sr, 1, "float32", SOXR_QUALITY)
        self._append(mono if self._stream is None else self._stream.resample_chunk(mono))

    def _flush_stream(self) -> None:
        """Drain the samples soxr still holds back."""
        if self._stream is not None:
            self._append(self._stream.resample_chunk(np.zeros(0, np.float32), last=True))
            self._stream = None

    def add(self, frame: av.AudioFrame) -> None:
        """Convert one decoded frame to planar float, average its channels and resample it."""
        key = (frame.format.name, frame.layout.name, frame.rate)
        if key != self._converter_key:
            # PyAV's resampler refuses frames whose format, layout or rate changed; start a new one.
            self._converter = av.AudioResampler(format="fltp", layout=frame.layout.name, rate=frame.rate)
            self._converter_key = key
        frame.pts = None  # damaged streams can carry jumping timestamps; only the samples matter here
        for out in self._converter.resample(frame):
            planes = out.to_ndarray()
            # Average channels like librosa.to_mono; PyAV's own mono downmix is louder by sqrt(2).
            mono = planes[0] if planes.shape[0] == 1 else planes.mean(axis=0, dtype=np.float32)
            self._push(np.ascontiguousarray(mono, dtype=np.float32), out.rate)

    def result(self) -> np.ndarray:
        """Return everything collected so far as one array."""
        self._flush_stream()
        wav = np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.float32)
        return wav[: self.max_samples] if self.max_samples is not None else wav


def load_audio_partial(
    path: str | Path, sr: int = SAMPLE_RATE, max_seconds: float | None = None
) -> tuple[np.ndarray, str | None]:
    """Decode the first audio stream to mono float32 at `sr`; return (samples, error text or None).

    Damage in the middle of a file does not raise: the samples decoded around it are returned together
    with the first error message. MediaError is raised when the file cannot be opened, has no audio
    stream, or yields no samples at all.

    :param path: any file FFmpeg reads: mp3, flac, wav, ogg, m4a, aac, opus, or a video with an audio track.
    :param sr: output sample rate in Hz.
    :param max_seconds: stop after this many seconds of audio (None for the whole stream).
    """
    max_samples = None if max_seconds is None else max(0, round(max_seconds * sr))
    error: str | None = None
    with open_container(path) as container:
        if not container.streams.audio:
            raise MediaError("no audio stream")
        stream = container.streams.audio[0]
        mono = _Mono(sr, max_samples)
        packets = container.demux(stream)
        while not mono.full:
            # Decode packet by packet: the decode() generator of a whole container stops at the first bad packet.
            try:
                packet = next(packets)
            except StopIteration:
                break
            except (av.error.FFmpegError, OSError) as e:
                error = error or f"demuxing stopped: {av_reason(e)}"
                break
            try:
                for frame in packet.decode():  # the empty packet demux yields last flushes the decoder
                    mono.add(frame)
            except (av.error.FFmpegError, ValueError) as e:
                error = error or f"bad packet at {_packet_time(packet)}: {av_reason(e)}"
        wav = mono.result()
    if not len(wav):
        raise MediaError("no audio could be decoded" + (f" ({error})" if error else ""))
    return wav, error


def _packet_time(packet: av.Packet) -> str:
    """Describe where a packet lies, for error messages."""
    t = packet.pts if packet.pts is not None else packet.dts
    if t is None or packet.time_base is None:
        return "unknown time"
    return f"{float(t * packet.time_base):.2f} s"


def load_audio(path: str | Path, sr: int = SAMPLE_RATE, max_seconds: float | None = None) -> np.ndarray:
    """Decode a file's first audio stream to mono float32 at `sr` Hz, keeping what decoded around any damage."""
    wav, _error = load_audio_partial(path, sr, max_seconds)
    return wav

"""Decode the audio of any media file to 16 kHz mono float32 (PyAV for decoding, soxr for resampling).

A scan reads audio as a stream of overlapping chunks (AudioReader), so memory stays bounded whatever a file's
length; at most config.MAX_AUDIO_SECONDS of a file are scanned, and the reader says what was left unscanned.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import soxr

from ..config import SAMPLE_RATE
from ..errors import MediaError
from .container import av_reason, open_container

# Same engine and quality as librosa's default resampler (soxr_hq), so embeddings match resemblyzer's.
SOXR_QUALITY = "HQ"
# Audio handed to the voice analysis at a time: 10 min of 16 kHz float32 is 38 MB, and the voice front end
# needs a few times that, so a scan stays far below 600 MB whatever the file's length. Files up to this long
# are analysed in one piece, exactly as before streaming.
CHUNK_SECONDS = 600.0
# Consecutive chunks share this much audio: the voice encoders' 3 s segments advance by 1.5 s, so with chunk
# bodies a multiple of 1.5 s the segment that crosses a chunk's end is whole in the chunk, and the next chunk's
# segments continue the same grid.
OVERLAP_SECONDS = 1.5


def has_audio(path: str | Path) -> bool:
    """Return True if the file has at least one audio stream; raise MediaError if it cannot be opened."""
    with open_container(path) as container:
        return bool(container.streams.audio)


@dataclass
class AudioChunk:
    """A stretch of decoded audio: its start in seconds from the start of the stream, and mono float32 samples."""

    start: float
    samples: np.ndarray


class _Mono:
    """Turns decoded frames into mono float32 at the target rate, resampling with soxr as it goes."""

    def __init__(self, sr: int):
        self.sr = sr
        self.chunks: list[np.ndarray] = []
        self._converter: av.AudioResampler | None = None
        self._converter_key: tuple | None = None
        self._stream: soxr.ResampleStream | None = None
        self._rate: int | None = None

    def _append(self, out: np.ndarray) -> None:
        """Keep a chunk of output samples."""
        if len(out):
            self.chunks.append(out)

    def _push(self, mono: np.ndarray, rate: int) -> None:
        """Resample mono samples at `rate` to the target rate (a new soxr stream whenever the rate changes)."""
        if rate != self._rate:
            self.flush()
            self._rate = rate
            self._stream = None if rate == self.sr else soxr.ResampleStream(rate, self.sr, 1, "float32", SOXR_QUALITY)
        self._append(mono if self._stream is None else self._stream.resample_chunk(mono))

    def flush(self) -> None:
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

    def take(self) -> list[np.ndarray]:
        """The samples converted since the last call."""
        out, self.chunks = self.chunks, []
        return out


class AudioReader:
    """A file's first audio stream as overlapping chunks of mono float32 at `sr`, decoded as they are asked for.

    Iterate it for AudioChunk objects; afterwards `error` holds the first damage met (the samples around it are
    still given) and `unscanned` says what lay beyond `max_seconds`, both None when there was nothing to say.
    MediaError is raised when the file cannot be opened, has no audio stream, or yields no samples at all.

    :param max_seconds: decode at most this much audio (None: the whole stream).
    :param chunk_seconds: length of a chunk before its overlap (None: the whole stream in one chunk); rounded
        to a multiple of `overlap_seconds` so that segment grids continue across chunks.
    :param overlap_seconds: audio repeated at the start of the next chunk.
    """

    def __init__(self, path: str | Path, sr: int = SAMPLE_RATE, max_seconds: float | None = None,
                 chunk_seconds: float | None = CHUNK_SECONDS, overlap_seconds: float = OVERLAP_SECONDS):
        self.path, self.sr, self.max_seconds = path, sr, max_seconds
        self.overlap = max(0, round(overlap_seconds * sr))
        if chunk_seconds is None:
            self.body = None
        else:
            step = overlap_seconds if overlap_seconds > 0 else chunk_seconds
            self.body = max(1, round(max(1, round(chunk_seconds / step)) * step * sr))
        self.error: str | None = None
        self.unscanned: str | None = None
        self.samples = 0  # decoded so far, overlaps counted once

    def __iter__(self) -> Iterator[AudioChunk]:
        limit = None if self.max_seconds is None else max(0, round(self.max_seconds * self.sr))
        pieces: list[np.ndarray] = []
        have = start = 0  # samples held in pieces; first sample of the next chunk
        cut = False
        with open_container(self.path) as container:
            if not container.streams.audio:
                raise MediaError("no audio stream")
            for piece in self._decoded(container, container.streams.audio[0]):
                if limit is not None and self.samples + len(piece) > limit:
                    piece, cut = piece[: limit - self.samples], True
                self.samples += len(piece)
                pieces.append(piece)
                have += len(piece)
                while self.body is not None and have >= self.body + self.overlap:
                    data = np.concatenate(pieces)
                    yield AudioChunk(start / self.sr, data[: self.body + self.overlap])
                    pieces, start = [data[self.body :].copy()], start + self.body
                    have = len(pieces[0])
                if cut:
                    break
        if not self.samples:
            raise MediaError("no audio could be decoded" + (f" ({self.error})" if self.error else ""))
        # A tail no longer than the overlap was already the end of the last chunk.
        if have and (start == 0 or have > self.overlap):
            yield AudioChunk(start / self.sr, np.concatenate(pieces))
        if cut:
            self.unscanned = (f"only the first {_span(limit / self.sr)} of audio were scanned (the limit per file); "
                              "the rest of the file was not")

    def _decoded(self, container, stream) -> Iterator[np.ndarray]:
        """Mono samples at the target rate as packets are decoded; damage is noted in `error`, not raised."""
        mono = _Mono(self.sr)
        packets = container.demux(stream)
        while True:
            # Decode packet by packet: the decode() generator of a whole container stops at the first bad packet.
            try:
                packet = next(packets)
            except StopIteration:
                break
            except (av.error.FFmpegError, OSError) as e:
                self.error = self.error or f"demuxing stopped: {av_reason(e)}"
                break
            try:
                for frame in packet.decode():  # the empty packet demux yields last flushes the decoder
                    mono.add(frame)
            except (av.error.FFmpegError, ValueError) as e:
                self.error = self.error or f"bad packet at {_packet_time(packet)}: {av_reason(e)}"
            yield from mono.take()
        mono.flush()
        yield from mono.take()


def _span(seconds: float) -> str:
    """A duration in words: '30 s', '2 min 5 s', '4 h', '1 h 30 min'."""
    s = round(seconds)
    h, m, sec = s // 3600, s % 3600 // 60, s % 60
    parts = [f"{h} h"] * bool(h) + [f"{m} min"] * bool(m) + [f"{sec} s"] * bool(sec and not h)
    return " ".join(parts) or f"{seconds:g} s"


def load_audio_partial(
    path: str | Path, sr: int = SAMPLE_RATE, max_seconds: float | None = None
) -> tuple[np.ndarray, str | None]:
    """Decode the first audio stream whole to mono float32 at `sr`; return (samples, error text or None).

    Damage in the middle of a file does not raise: the samples decoded around it are returned together
    with the first error message. MediaError is raised when the file cannot be opened, has no audio
    stream, or yields no samples at all. For files of any length, iterate an AudioReader instead.

    :param path: any file FFmpeg reads: mp3, flac, wav, ogg, m4a, aac, opus, or a video with an audio track.
    :param sr: output sample rate in Hz.
    :param max_seconds: stop after this many seconds of audio (None for the whole stream).
    """
    reader = AudioReader(path, sr, max_seconds, chunk_seconds=None)
    chunks = [chunk.samples for chunk in reader]
    return (chunks[0] if len(chunks) == 1 else np.concatenate(chunks)), reader.error


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

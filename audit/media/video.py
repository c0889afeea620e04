"""Video decoding: sample frames (BGR arrays with timestamps) from video files, animated GIF and WebP."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageSequence, UnidentifiedImageError

from ..errors import MediaError
from ..config import VIDEO_EXTS
from .container import open_container

__all__ = [
    "VIDEO_EXTS",
    "VideoFrame",
    "VideoInfo",
    "is_animated",
    "is_video",
    "iter_frames",
    "probe",
]

# Extensions treated as video; ".webp" is added at run time only when the file is animated.
# Read with Pillow: PyAV/OpenCV fail on animated WebP, and Pillow gives GIF frame durations directly.
_PILLOW_EXTS = frozenset({".gif", ".webp"})
# What Pillow raises on damaged GIF/WebP: besides the usual, IndexError (truncated GIF) and its bomb guard.
_PILLOW_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, Image.DecompressionBombError)
# Above this sampling rate NONREF would drop too many candidate frames, so decode everything.
NONREF_MAX_FPS = 5.0
# Containers whose per-stream duration is exact, so ending early means the file was cut.
_EXACT_DURATION_FORMATS = ("mov", "mp4")
# Give up on a container after this many demuxer errors in a row (e.g. reading past a cut).
_MAX_DEMUX_ERRORS = 32


@dataclass(eq=False, slots=True)
class VideoFrame:
    """One sampled frame: time in seconds from the stream start, BGR image, ordinal and downscale factor."""

    time: float
    image: np.ndarray
    index: int  # 0-based count of frames yielded by this call, not the frame number in the file
    scale: float = 1.0  # image size / decoded size; divide box coordinates by it to map them back


@dataclass(frozen=True, slots=True)
class VideoInfo:
    """What probe() learns about a video without decoding it all."""

    duration: float  # seconds, 0.0 when unknown
    width: int  # as displayed, i.e. after rotation (the shape iter_frames yields)
    height: int
    rotation: int  # counter-clockwise degrees already applied by iter_frames (0, 90, -90, 180)
    fps: float  # average frame rate, 0.0 when unknown
    codec: str
    has_audio: bool
    start_time: float = 0.0  # stream start offset in seconds (PyAV frame.time minus this = our time)
    frames: int | None = None  # frame count when the container states it


def is_animated(path: str | os.PathLike) -> bool:
    """Whether an image file (GIF, WebP, ...) has more than one frame, per Pillow."""
    try:
        with Image.open(path) as im:
            return bool(getattr(im, "is_animated", False))
    except _PILLOW_ERRORS:
        return False


def is_video(path: str | os.PathLike) -> bool:
    """Whether the path is a video by extension; .webp only when animated."""
    ext = Path(path).suffix.lower()
    if ext == ".webp":
        return is_animated(path)
    return ext in VIDEO_EXTS


def iter_frames(
    path: str | os.PathLike,
    fps: float | None = 1.0,
    keyframes: bool = False,
    max_side: int | None = None,
    threads: int = 0,
) -> Iterator[VideoFrame]:
    """Yield one frame per 1/fps s (fps=None: every frame; keyframes=True: every keyframe); raise MediaError on damage."""
    if fps is not None and not fps > 0:
        raise ValueError(f"fps must be positive or None, got {fps!r}")
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side must be positive, got {max_side!r}")
    path = os.fspath(path)
    if Path(path).suffix.lower() in _PILLOW_EXTS:
        # GIF/WebP have no keyframes worth the name, so keyframes=True samples by fps there too.
        return _iter_pillow(path, fps, max_side)
    return _iter_av(path, fps, keyframes, max_side, threads)


def probe(path: str | os.PathLike) -> VideoInfo:
    """Read duration, size, rotation, frame rate, codec and audio presence of a video."""
    path = os.fspath(path)
    if Path(path).suffix.lower() in _PILLOW_EXTS:
        return _probe_pillow(path)
    with open_container(path) as container:
        stream = _video_stream(container)
        tb = stream.time_base or Fraction(0)
        start = float(stream.start_time * tb) if stream.start_time is not None else 0.0
        if stream.duration is not None and tb:
            duration = float(stream.duration * tb)
        elif container.duration is not None:
            duration = container.duration / av.time_base
            if "matroska" in container.format.name:
                duration = max(0.0, duration - start)  # Matroska's duration is the end time, offset included
        else:
            duration = 0.0
        rate = stream.average_rate or stream.guessed_rate
        cc = stream.codec_context
        # The display matrix is only exposed on decoded frames, so decode the first keyframe.
        rotation = 0
        cc.skip_frame = "NONKEY"
        try:
            for frame in container.decode(stream):
                rotation = _norm_rotation(frame.rotation)
                break
        except av.FFmpegError:
            pass
        width, height = cc.width, cc.height
        if rotation in (90, -90):
            width, height = height, width
        return VideoInfo(
            duration=duration,
            width=width,
            height=height,
            rotation=rotation,
            fps=float(rate) if rate else 0.0,
            codec=cc.name,
            has_audio=bool(container.streams.audio),
            start_time=start,
            frames=stream.frames or None,
        )


# --- PyAV path -------------------------------------------------------------------------------


def _video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream:
    """First real video stream, skipping cover art (attached pictures)."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            if stream.codec_context is None:  # a stream FFmpeg has no decoder for (seen in fuzzed MP4)
                raise MediaError("video stream has no decoder")
            return stream
    raise MediaError("no video stream")


def _iter_av(
    path: str, fps: float | None, keyframes: bool, max_side: int | None, threads: int
) -> Iterator[VideoFrame]:
    """Decode with PyAV packet by packet so one bad packet does not end the file."""
    with open_container(path) as container:
        stream = _video_stream(container)
        cc = stream.codec_context
        cc.thread_type = "AUTO"  # frame threading: ~1.6x over FFmpeg's default slice threading for H.264
        cc.thread_count = max(0, int(threads))
        if keyframes:
            cc.skip_frame = "NONKEY"
        elif fps is not None and fps <= NONREF_MAX_FPS:
            cc.skip_frame = "NONREF"  # bit-identical output, ~30 % faster; BIDIR would corrupt frames
        tb = stream.time_base
        start = stream.start_time * tb if stream.start_time is not None and tb else None
        rate = stream.average_rate or stream.guessed_rate
        frame_s = 1.0 / float(rate) if rate else 0.04
        sampler = _Sampler(None if keyframes else fps)

        index = 0
        last_good: float | None = None  # time of the last frame decoded before the first error
        last_time: float | None = None
        first_error: str | None = None
        n_errors = 0
        packet_end = None  # latest packet end time, to notice files cut at a packet boundary
        flushed = False

        def stamp(frame: av.VideoFrame) -> float:
            """Seconds from the stream start, from the frame's own timestamp (variable frame rates)."""
            nonlocal start, last_time
            if frame.pts is not None and frame.time_base:
                if start is None:
                    start = frame.pts * frame.time_base
                t = float(frame.pts * frame.time_base - start)
            elif last_time is not None:
                t = last_time + frame_s  # no timestamp: assume the nominal rate
            else:
                t = 0.0
            last_time = t
            return t

        def convert(t: float, frame: av.VideoFrame) -> VideoFrame:
            """BGR conversion happens only for frames that are kept: it costs more than decoding."""
            nonlocal index
            out = _to_frame(frame.to_ndarray(format="bgr24"), frame.rotation, t, index, max_side)
            index += 1
            return out

        def note_error(e: Exception) -> None:
            nonlocal first_error, n_errors, last_good
            n_errors += 1
            if first_error is None:
                first_error = _msg(e)
                last_good = last_time

        demux_errors = 0
        demux = container.demux(stream)
        while True:
            try:
                packet = next(demux)
                demux_errors = 0
            except StopIteration:
                break
            except av.FFmpegError as e:
                note_error(e)
                demux_errors += 1
                if demux_errors >= _MAX_DEMUX_ERRORS:
                    break
                demux = container.demux(stream)  # a fresh generator resumes reading after the bad spot
                continue
            if packet.size == 0 and packet.pts is None:
                flushed = True  # PyAV's end-of-stream flush packet
            elif packet.pts is not None and tb:
                end = (packet.pts + (packet.duration or 0)) * tb
                packet_end = end if packet_end is None else max(packet_end, end)
            try:
                frames = cc.decode(packet)
            except av.FFmpegError as e:
                note_error(e)
                continue
            for frame in frames:
                for t, kept in sampler.feed(stamp(frame), frame):
                    yield convert(t, kept)
        if not flushed:
            try:
                for frame in cc.decode(None):
                    for t, kept in sampler.feed(stamp(frame), frame):
                        yield convert(t, kept)
            except av.FFmpegError as e:
                if not isinstance(e, av.EOFError):
                    note_error(e)
        if last_time is not None:
            # The last decoded frame stays on screen until the stream ends (NONREF may have skipped later ones).
            end = last_time + frame_s
            if packet_end is not None and start is not None:
                end = max(end, float(packet_end - start))
            for t, kept in sampler.finish(end):
                yield convert(t, kept)

        if first_error is None and packet_end is not None and stream.duration and tb:
            # mp4/mov state each stream's duration exactly; packets stopping well short means a cut file.
            declared = float(stream.duration * tb)
            got = float(packet_end - (stream.start_time or 0) * tb)
            fmt = container.format.name.split(",")
            # Absolute end in the test: durations may or may not count a start offset, so take the lenient one.
            if any(name in fmt for name in _EXACT_DURATION_FORMATS) and float(packet_end) < declared - 1.0:
                first_error = f"file ends at {got:.1f} s of its declared {declared:.1f} s (truncated?)"
                last_good = last_time
        if first_error is not None:
            if last_good is None and last_time is None:
                raise MediaError(f"no decodable frames in {path}: {first_error}")
            where = f"after {last_good:.1f} s" if last_good is not None else "at the start"
            more = f" ({n_errors} bad packets)" if n_errors > 1 else ""
            raise MediaError(f"damaged {where}: {first_error}{more}")
        if last_time is None:
            raise MediaError(f"no decodable frames in {path}")


# --- Pillow path (animated GIF / WebP) -----------------------------------------------------------


def _open_pillow(path: str) -> Image.Image:
    """Open an image with Pillow, turning failures into MediaError."""
    try:
        return Image.open(path)
    except (UnidentifiedImageError, *_PILLOW_ERRORS) as e:
        raise MediaError(f"cannot open {path}: {e}") from e


def _frame_ms(im: Image.Image) -> float:
    """Display time of the current frame in ms; GIF delays <= 10 ms play as 100 ms in browsers."""
    ms = float(im.info.get("duration") or 0)
    if im.format == "GIF" and ms <= 10:
        ms = 100.0
    return ms


def _iter_pillow(path: str, fps: float | None, max_side: int | None) -> Iterator[VideoFrame]:
    """Decode animated GIF/WebP with Pillow, timing frames by their own durations."""
    with _open_pillow(path) as im:
        sampler = _Sampler(fps)
        t_ms = 0.0
        index = 0
        good = 0

        def convert(t: float, rgb: np.ndarray) -> VideoFrame:
            nonlocal index
            out = _to_frame(rgb[:, :, ::-1], 0, t, index, max_side)
            index += 1
            return out

        try:
            for fr in ImageSequence.Iterator(im):
                fr.load()  # WebP fills info["duration"] only after load
                t = t_ms / 1000.0
                t_ms += _frame_ms(fr)
                good += 1
                # Pillow reuses one image object across frames, so copy the pixels now (frames are small).
                for ts, rgb in sampler.feed(t, np.asarray(fr.convert("RGB"))):
                    yield convert(ts, rgb)
        except _PILLOW_ERRORS as e:
            for ts, rgb in sampler.finish(t_ms / 1000.0):
                yield convert(ts, rgb)
            if good == 0:
                raise MediaError(f"no decodable frames in {path}: {e}") from e
            raise MediaError(f"damaged after {t_ms / 1000.0:.1f} s: {e}") from e
        for ts, rgb in sampler.finish(t_ms / 1000.0):
            yield convert(ts, rgb)


def _probe_pillow(path: str) -> VideoInfo:
    """probe() for GIF/WebP: walk the frames for their durations."""
    with _open_pillow(path) as im:
        n = 0
        total_ms = 0.0
        try:
            for fr in ImageSequence.Iterator(im):
                fr.load()
                total_ms += _frame_ms(fr)
                n += 1
        except _PILLOW_ERRORS as e:
            if n == 0:
                raise MediaError(f"cannot decode {path}: {e}") from e
        duration = total_ms / 1000.0
        return VideoInfo(
            duration=duration,
            width=im.width,
            height=im.height,
            rotation=0,
            fps=n / duration if duration > 0 else 0.0,
            codec=(im.format or "").lower(),
            has_audio=False,
            frames=n,
        )


# --- shared helpers --------------------------------------------------------------------------


class _Sampler:
    """For each target time k/fps, pick the frame on screen then: the last one starting at or before it."""

    _EPS = 1e-6  # timestamps are exact rationals turned into floats; this only absorbs rounding

    def __init__(self, fps: float | None) -> None:
        self.step = None if fps is None else 1.0 / fps
        self.next_t = 0.0  # earliest target not yet served
        self.pending: tuple[float, object] | None = None  # latest frame starting before next_t

    def feed(self, t: float, item: object) -> list[tuple[float, object]]:
        """Offer the next frame (start time t); return the frames now known to be due, in order."""
        if self.step is None:
            return [(t, item)]
        out = []
        if t > self.next_t + self._EPS:
            # This frame starts after the target, so the pending one was on screen at it (and at any
            # later targets before t): emit it once and move to the first target at or after t.
            if self.pending is not None:
                out.append(self.pending)
                self.pending = None
            self.next_t = math.ceil((t - self._EPS) / self.step) * self.step
        if t >= self.next_t - self._EPS:  # exactly on a target: no need to wait for the next frame
            out.append((t, item))
            self.pending = None
            self.next_t = (math.floor(t / self.step + self._EPS) + 1) * self.step
        else:
            self.pending = (t, item)
        return out

    def finish(self, end: float) -> list[tuple[float, object]]:
        """End of stream at time end: the pending frame is due if a target falls before end."""
        pending, self.pending = self.pending, None
        if pending is not None and self.next_t < end - self._EPS:
            return [pending]
        return []


def _norm_rotation(rotation: float | None) -> int:
    """Round a display rotation to a multiple of 90 in (-180, 180]."""
    if not rotation:
        return 0
    k = round(rotation / 90) % 4
    return (0, 90, 180, -90)[k]


def _to_frame(bgr: np.ndarray, rotation: float | None, t: float, index: int, max_side: int | None) -> VideoFrame:
    """Downscale (before rotating: same result, less work), rotate, and wrap one image."""
    scale = 1.0
    h, w = bgr.shape[:2]
    if max_side is not None and max(h, w) > max_side:
        import cv2  # only needed for huge frames

        scale = max_side / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        bgr = cv2.resize(np.ascontiguousarray(bgr), size, interpolation=cv2.INTER_AREA)
    k = _norm_rotation(rotation) // 90
    if k:
        # PyAV leaves frames unrotated; rotation is counter-clockwise and np.rot90 turns counter-clockwise too
        # (checked against OpenCV's auto-rotated output on files written with set_display_rotation).
        bgr = np.rot90(bgr, k)
    return VideoFrame(time=t, image=np.ascontiguousarray(bgr), index=index, scale=scale)


def _msg(e: Exception) -> str:
    """FFmpeg's own text for an error, without PyAV's errno prefix."""
    strerror = getattr(e, "strerror", None)
    if strerror:
        fn = getattr(e, "filename", None)
        return f"{strerror} ({fn})" if fn else str(strerror)
    return str(e)

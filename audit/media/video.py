"""Video decoding: sample frames (BGR arrays with timestamps) from video files, animated GIF and WebP."""

from __future__ import annotations

import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av

from ..config import VIDEO_EXTS
from ..errors import MediaError
from .animated import is_animated, iter_pillow, probe_pillow
from .budget import Budget, PartlyScanned
from .container import open_container
from .files import content_kind
from .frames import Sampler, VideoFrame, VideoInfo, norm_rotation, to_frame

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
# Above this sampling rate NONREF would drop too many candidate frames, so decode everything.
NONREF_MAX_FPS = 5.0
# Containers whose per-stream duration is exact, so ending early means the file was cut.
_EXACT_DURATION_FORMATS = ("mov", "mp4")
# Give up on a container after this many demuxer errors in a row (e.g. reading past a cut).
_MAX_DEMUX_ERRORS = 32


def is_video(path: str | os.PathLike) -> bool:
    """Whether the path is a video by extension; .webp only when animated."""
    ext = Path(path).suffix.lower()
    if ext == ".webp":
        return is_animated(path)
    return ext in VIDEO_EXTS


def _pillow(path: str) -> bool:
    """GIF and WebP (by content, else by extension) are read with Pillow."""
    fmt = content_kind(path)[1]
    return fmt in ("gif", "webp") if fmt else Path(path).suffix.lower() in _PILLOW_EXTS


def iter_frames(
    path: str | os.PathLike,
    fps: float | None = 1.0,
    keyframes: bool = False,
    max_side: int | None = None,
    threads: int = 0,
    max_frames: int | None = None,
    max_seconds: float | None = None,
) -> Iterator[VideoFrame]:
    """Yield one frame per 1/fps s (fps=None: every frame; keyframes=True: every keyframe); raise MediaError on damage.

    After max_frames frames read or max_seconds spent on the file (None: config.MAX_VIDEO_FRAMES and
    config.MAX_VIDEO_SECONDS), the frames decoded so far are yielded and PartlyScanned (a MediaError) is raised.
    """
    if fps is not None and not fps > 0:
        raise ValueError(f"fps must be positive or None, got {fps!r}")
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side must be positive, got {max_side!r}")
    path = os.fspath(path)
    if _pillow(path):
        # GIF/WebP have no keyframes worth the name, so keyframes=True samples by fps there too.
        return iter_pillow(path, fps, max_side, (max_frames, max_seconds))
    return _iter_av(path, fps, keyframes, max_side, threads, (max_frames, max_seconds))


def probe(path: str | os.PathLike) -> VideoInfo:
    """Read duration, size, rotation, frame rate, codec and audio presence of a video."""
    path = os.fspath(path)
    if _pillow(path):
        return probe_pillow(path)
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
                rotation = norm_rotation(frame.rotation)
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
    path: str, fps: float | None, keyframes: bool, max_side: int | None, threads: int, limits: tuple
) -> Iterator[VideoFrame]:
    """Decode with PyAV packet by packet so one bad packet does not end the file."""
    budget = Budget(*limits)  # started at the first frame asked for
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
        sampler = Sampler(None if keyframes else fps)

        index = 0
        last_good: float | None = None  # time of the last frame decoded before the first error
        last_time: float | None = None
        first_error: str | None = None
        n_errors = 0
        packet_end = None  # latest packet end time, to notice files cut at a packet boundary
        flushed = False
        stopped: str | None = None  # why the budget ended the file early

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
            out = to_frame(frame.to_ndarray(format="bgr24"), frame.rotation, t, index, max_side)
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
            else:
                stopped = budget.spend(last_time)
                if stopped:
                    break  # the frames of the packets already read are still flushed and yielded below
                if packet.pts is not None and tb:
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

        if stopped:
            raise PartlyScanned(stopped + (f"; before that, damaged: {first_error}" if first_error else ""),
                                code="partly-scanned")
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


def _msg(e: Exception) -> str:
    """FFmpeg's own text for an error, without PyAV's errno prefix."""
    strerror = getattr(e, "strerror", None)
    if strerror:
        fn = getattr(e, "filename", None)
        return f"{strerror} ({fn})" if fn else str(strerror)
    return str(e)

"""Frames as the decoders give them: the frame and probe records, fps sampling, rotation and downscaling."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


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


class Sampler:
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


def norm_rotation(rotation: float | None) -> int:
    """Round a display rotation to a multiple of 90 in (-180, 180]."""
    if not rotation:
        return 0
    k = round(rotation / 90) % 4
    return (0, 90, 180, -90)[k]


def to_frame(bgr: np.ndarray, rotation: float | None, t: float, index: int, max_side: int | None) -> VideoFrame:
    """Downscale (before rotating: same result, less work), rotate, and wrap one image."""
    scale = 1.0
    h, w = bgr.shape[:2]
    if max_side is not None and max(h, w) > max_side:
        import cv2  # only needed for huge frames

        scale = max_side / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        bgr = cv2.resize(np.ascontiguousarray(bgr), size, interpolation=cv2.INTER_AREA)
    k = norm_rotation(rotation) // 90
    if k:
        # PyAV leaves frames unrotated; rotation is counter-clockwise and np.rot90 turns counter-clockwise too
        # (checked against OpenCV's auto-rotated output on files written with set_display_rotation).
        bgr = np.rot90(bgr, k)
    return VideoFrame(time=t, image=np.ascontiguousarray(bgr), index=index, scale=scale)

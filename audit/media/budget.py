"""Work allowed on one file: a video stops after config.MAX_VIDEO_FRAMES frames or config.MAX_VIDEO_SECONDS
seconds, keeping what was scanned, and the file's error row says that it was only partly scanned."""

from __future__ import annotations

import time

from .. import config
from ..errors import MediaError


class PartlyScanned(MediaError):
    """A budget of work per file ran out: what was decoded before was scanned, the rest of the file was not."""


class Budget:
    """Counts one file's frames and wall-clock time (decoding and whatever the caller does between frames)."""

    def __init__(self, max_frames: int | None = None, max_seconds: float | None = None):
        """None takes the documented default from config (read now, so tests and callers can change it)."""
        self.max_frames = config.MAX_VIDEO_FRAMES if max_frames is None else max_frames
        self.max_seconds = config.MAX_VIDEO_SECONDS if max_seconds is None else max_seconds
        self.frames = 0
        self.started = time.monotonic()

    def spend(self, at: float | None) -> str | None:
        """Count one frame (a video packet, read at `at` seconds of the media: packets are counted rather than
        decoded frames, so frames a decoder skips cost budget too); the reason to stop once a limit is passed."""
        self.frames += 1
        where = f" at {at:.1f} s" if at is not None else ""
        if self.frames > self.max_frames:
            return (f"only partly scanned: stopped{where} after {self.max_frames:,} frames (the limit per file); "
                    "the rest of the file was not scanned")
        if time.monotonic() - self.started > self.max_seconds:
            return (f"only partly scanned: stopped{where} after {self.max_seconds:g} seconds on this file (the limit "
                    "per file); the rest of the file was not scanned")
        return None

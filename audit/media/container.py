"""Open audio and video containers with PyAV; one error wording for every failure."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import MediaError


def open_container(path: str | os.PathLike):
    """Open an audio/video file with PyAV for reading, turning every failure into MediaError."""
    import av

    p = Path(path)
    if not p.exists():
        raise MediaError("no such file")
    if not p.is_file():
        raise MediaError("not a regular file")
    if p.stat().st_size == 0:
        raise MediaError("empty file (0 bytes)")
    try:
        return av.open(str(p), mode="r")
    except (av.error.FFmpegError, OSError, UnicodeError) as e:
        raise MediaError(f"cannot open as media: {av_reason(e)}") from e


def av_reason(e: Exception) -> str:
    """FFmpeg's own reason without errno and file name (PyAV puts both in str(e))."""
    return getattr(e, "strerror", None) or str(e)

"""Animated GIF and WebP, decoded with Pillow (PyAV and OpenCV fail on animated WebP; Pillow gives GIF delays)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator

import numpy as np
from PIL import Image, ImageSequence, UnidentifiedImageError

from .. import config
from ..errors import MediaError
from .budget import Budget, PartlyScanned
from .frames import Sampler, VideoFrame, VideoInfo, to_frame

# What Pillow raises on damaged GIF/WebP: besides the usual, IndexError (truncated GIF) and its bomb guard.
_PILLOW_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, Image.DecompressionBombError)


class _TooManyFrames(EOFError):
    """More frames than config.MAX_ANIMATED_FRAMES."""


def is_animated(path: str | os.PathLike) -> bool:
    """Whether an image file (GIF, WebP, ...) has more than one frame, per Pillow."""
    try:
        with Image.open(path) as im:
            return bool(getattr(im, "is_animated", False))
    except _PILLOW_ERRORS:
        return False


def _open_pillow(path: str) -> Image.Image:
    """Open an image with Pillow, turning failures (its bomb warning included) into MediaError; refuse a canvas
    larger than config.MAX_ANIMATED_PIXELS before any frame is decoded at that size."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(path)
    except (UnidentifiedImageError, Image.DecompressionBombWarning, *_PILLOW_ERRORS) as e:
        raise MediaError(f"cannot open {path}: {e}") from e
    w, h = im.size
    if w * h > config.MAX_ANIMATED_PIXELS:
        im.close()
        raise MediaError(f"animated image canvas too large ({w}x{h} = {w * h} pixels; limit "
                         f"{config.MAX_ANIMATED_PIXELS})")
    return im


def _frame_ms(im: Image.Image) -> float:
    """Display time of the current frame in ms; GIF delays <= 10 ms play as 100 ms in browsers."""
    ms = float(im.info.get("duration") or 0)
    if im.format == "GIF" and ms <= 10:
        ms = 100.0
    return ms


def iter_pillow(path: str, fps: float | None, max_side: int | None,
                limits: tuple = (None, None)) -> Iterator[VideoFrame]:
    """Decode animated GIF/WebP with Pillow, timing frames by their own durations; limits: Budget's arguments."""
    budget = Budget(*limits)
    with _open_pillow(path) as im:
        sampler = Sampler(fps)
        t_ms = 0.0
        index = 0
        good = 0

        def convert(t: float, rgb: np.ndarray) -> VideoFrame:
            nonlocal index
            out = to_frame(rgb[:, :, ::-1], 0, t, index, max_side)
            index += 1
            return out

        try:
            for fr in ImageSequence.Iterator(im):
                if good >= config.MAX_ANIMATED_FRAMES:
                    raise _TooManyFrames(f"more than {config.MAX_ANIMATED_FRAMES} frames; the rest was not scanned")
                fr.load()  # WebP fills info["duration"] only after load
                t = t_ms / 1000.0
                stopped = budget.spend(t)
                if stopped:
                    for ts, rgb in sampler.finish(t):
                        yield convert(ts, rgb)
                    raise PartlyScanned(stopped, code="partly-scanned")
                t_ms += _frame_ms(fr)
                good += 1
                # Pillow reuses one image object across frames, so copy the pixels now (frames are small).
                for ts, rgb in sampler.feed(t, np.asarray(fr.convert("RGB"))):
                    yield convert(ts, rgb)
        except _PILLOW_ERRORS as e:
            for ts, rgb in sampler.finish(t_ms / 1000.0):
                yield convert(ts, rgb)
            if isinstance(e, _TooManyFrames):
                raise MediaError(str(e)) from e
            if good == 0:
                raise MediaError(f"no decodable frames in {path}: {e}") from e
            raise MediaError(f"damaged after {t_ms / 1000.0:.1f} s: {e}") from e
        for ts, rgb in sampler.finish(t_ms / 1000.0):
            yield convert(ts, rgb)


def probe_pillow(path: str) -> VideoInfo:
    """probe() for GIF/WebP: walk the frames for their durations."""
    with _open_pillow(path) as im:
        n = 0
        total_ms = 0.0
        try:
            for fr in ImageSequence.Iterator(im):
                if n >= config.MAX_ANIMATED_FRAMES:
                    break
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

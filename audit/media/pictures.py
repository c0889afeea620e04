"""Evidence pictures cut while the media is decoded: face crops, and waveforms of recordings (from an envelope)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import cv2
import numpy as np

ENVELOPE_COLUMNS = 720  # min/max pairs kept per recording: twice the waveform picture's width
SCENE_SIDE = 480  # the whole picture beside a crop: enough to see where the face is, a few tens of KiB a finding


def crop_jpeg(image_bgr: np.ndarray, bbox: Iterable[float], margin: float = 0.25, size: int = 160) -> bytes:
    """Square crop around bbox [x1,y1,x2,y2] widened by margin per side, kept inside the image, as size x size JPEG."""
    img = np.asarray(image_bgr)
    if img.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {img.dtype}")
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    elif img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected a BGR image, got shape {img.shape}")
    h, w = img.shape[:2]
    if h == 0 or w == 0:
        raise ValueError("empty image")
    x1, y1, x2, y2 = (float(v) for v in bbox)
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)) or x2 <= x1 or y2 <= y1:
        raise ValueError(f"invalid bbox {[x1, y1, x2, y2]}")
    if x2 <= 0 or y2 <= 0 or x1 >= w or y1 >= h:
        raise ValueError(f"bbox {[x1, y1, x2, y2]} lies outside the {w}x{h} image")
    side = max(x2 - x1, y2 - y1) * (1.0 + 2.0 * max(margin, 0.0))
    side = round(min(max(side, 1.0), w, h))
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    # Shift the square back inside the image rather than padding it with pixels that were never there.
    left = round(min(max(cx - side / 2.0, 0.0), w - side))
    top = round(min(max(cy - side / 2.0, 0.0), h - side))
    crop = img[top : top + side, left : left + side]
    interp = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
    crop = cv2.resize(crop, (size, size), interpolation=interp)
    ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def _bgr(image: np.ndarray) -> np.ndarray:
    """A uint8 BGR image from grey, BGRA or BGR; ValueError for anything else."""
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {img.dtype}")
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.ndim == 3 and img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    if img.ndim != 3 or img.shape[2] != 3 or 0 in img.shape[:2]:
        raise ValueError(f"expected a BGR image, got shape {img.shape}")
    return img


class Scene:
    """The whole image or frame, reduced once to at most SCENE_SIDE px, from which each face's picture with its box
    drawn is cut: one reduction per image however many faces it holds."""

    def __init__(self, image_bgr: np.ndarray, side: int = SCENE_SIDE) -> None:
        img = _bgr(image_bgr)
        h, w = img.shape[:2]
        self.factor = min(1.0, side / max(h, w))
        if self.factor < 1.0:
            size = (max(1, round(w * self.factor)), max(1, round(h * self.factor)))
            if self.factor < 0.5:  # area averaging from a large image is slow; from twice the size it is cheap
                img = cv2.resize(img, (2 * size[0], 2 * size[1]), interpolation=cv2.INTER_LINEAR)
            img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        self.image = img

    def jpeg(self, bbox: Iterable[float]) -> bytes:
        """The reduced picture with bbox [x1,y1,x2,y2] (in the full image's pixels) boxed in red, as JPEG."""
        x1, y1, x2, y2 = (float(v) * self.factor for v in bbox)
        if not all(math.isfinite(v) for v in (x1, y1, x2, y2)) or x2 <= x1 or y2 <= y1:
            raise ValueError(f"invalid bbox {list(bbox)}")
        img = self.image.copy()
        h, w = img.shape[:2]
        thick = max(2, round(max(h, w) / 200))
        p1 = (min(max(round(x1), 0), w - 1), min(max(round(y1), 0), h - 1))
        p2 = (min(max(round(x2), 0), w - 1), min(max(round(y2), 0), h - 1))
        cv2.rectangle(img, p1, p2, (255, 255, 255), thick + 2)  # a light edge keeps the box visible on dark red
        cv2.rectangle(img, p1, p2, (0, 0, 220), thick)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 75])
        if not ok:
            raise ValueError("JPEG encoding failed")
        return buf.tobytes()


def waveform_png(
    samples: np.ndarray, sr: int, start: float, end: float, width: int = 360, height: int = 80
) -> bytes:
    """PNG of the waveform (min/max envelope per column) with [start, end] seconds from the first sample shaded."""
    if sr <= 0:
        raise ValueError("sample rate must be positive")
    if width < 2 or height < 8:
        raise ValueError("picture too small")
    x = np.asarray(samples)
    if x.ndim == 2:  # (n, channels) -> mono
        x = x.mean(axis=1) if x.shape[1] <= x.shape[0] else x.mean(axis=0)
    x = np.nan_to_num(x.astype(np.float64).ravel(), nan=0.0, posinf=0.0, neginf=0.0)
    n = x.size
    img = np.full((height, width, 3), 255, np.uint8)
    ink = np.tile(np.array([110, 80, 50], np.uint8), (width, 1))  # slate blue (BGR) outside the span
    a = b = 0
    duration = n / sr if n else max(float(end), 0.0)
    if duration > 0:
        a = round(min(max(float(start) / duration, 0.0), 1.0) * width)
        b = round(min(max(float(end) / duration, 0.0), 1.0) * width)
        if b > a:
            img[:, a:b] = (210, 218, 255)  # light red background
            ink[a:b] = (30, 30, 170)  # dark red waveform inside the span
    mid = (height - 1) / 2.0
    img[int(mid), :] = (190, 190, 190)
    if n:
        if n >= width:
            idx = np.linspace(0, n, width + 1).astype(np.int64)[:-1]
            lo, hi = np.minimum.reduceat(x, idx), np.maximum.reduceat(x, idx)
        else:
            idx = np.arange(width) * n // width
            lo = hi = x[idx]
        peak = float(max(np.abs(lo).max(), np.abs(hi).max()))
        scale = (mid - 3) / peak if peak > 0 else 0.0
        top = np.clip(np.round(mid - hi * scale), 0, height - 1).astype(np.int64)
        bot = np.clip(np.round(mid - lo * scale), 0, height - 1).astype(np.int64)
        for col in range(width):
            img[min(top[col], bot[col]) : max(top[col], bot[col]) + 1, col] = ink[col]
    if b > a:  # span edges drawn last so they stay visible over a loud waveform
        img[:, a] = (40, 40, 200)
        img[:, b - 1] = (40, 40, 200)
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


def envelope(samples: np.ndarray, columns: int = ENVELOPE_COLUMNS) -> np.ndarray:
    """A recording reduced to `columns` (min, max) pairs, interleaved, as float32: enough to draw its waveform
    later (waveform_png with sr = len(envelope) / duration) without keeping the audio."""
    x = np.nan_to_num(np.asarray(samples, dtype=np.float32).ravel(), nan=0.0, posinf=0.0, neginf=0.0)
    if x.size == 0:
        return np.zeros(0, np.float32)
    if x.size <= columns:
        return np.repeat(x, 2).astype(np.float32)
    idx = np.linspace(0, x.size, columns + 1).astype(np.int64)[:-1]
    out = np.empty(2 * columns, np.float32)
    out[0::2], out[1::2] = np.minimum.reduceat(x, idx), np.maximum.reduceat(x, idx)
    return out


class Envelope:
    """A recording's envelope gathered chunk by chunk (overlapping chunks counted once), in blocks of 0.1 s at
    16 kHz, so that a long file's waveform can be drawn without keeping its audio."""

    BLOCK = 1600

    def __init__(self) -> None:
        self.done = 0  # samples covered so far
        self.parts: list[np.ndarray] = []

    def add(self, samples: np.ndarray, first: int) -> None:
        """A chunk whose first sample is sample number `first` of the recording."""
        new = np.asarray(samples, np.float32)[max(0, self.done - first):]
        if new.size:
            self.parts.append(envelope(new, -(-new.size // self.BLOCK)))
            self.done = max(self.done, first) + new.size

    def envelope(self, columns: int = ENVELOPE_COLUMNS) -> np.ndarray:
        """The whole recording as `columns` (min, max) pairs, interleaved (see envelope())."""
        if not self.parts:
            return np.zeros(0, np.float32)
        pairs = np.concatenate(self.parts)
        lo, hi = pairs[0::2], pairs[1::2]
        if lo.size <= columns:
            return pairs
        idx = np.linspace(0, lo.size, columns + 1).astype(np.int64)[:-1]
        out = np.empty(2 * columns, np.float32)
        out[0::2], out[1::2] = np.minimum.reduceat(lo, idx), np.maximum.reduceat(hi, idx)
        return out

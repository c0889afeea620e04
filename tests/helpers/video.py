"""Test videos made from real photos: each photo held on screen for some seconds, with an optional voice track."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np


def letterbox(path: Path, w: int = 640, h: int = 480) -> np.ndarray:
    """A photo scaled to fit w x h, centred on black (BGR)."""
    import cv2

    img = cv2.imread(str(path))
    s = min(w / img.shape[1], h / img.shape[0])
    img = cv2.resize(img, (int(img.shape[1] * s), int(img.shape[0] * s)), interpolation=cv2.INTER_AREA)
    out = np.zeros((h, w, 3), np.uint8)
    y, x = (h - img.shape[0]) // 2, (w - img.shape[1]) // 2
    out[y:y + img.shape[0], x:x + img.shape[1]] = img
    return out


def make_video(out: Path, shots: list[tuple[Path, float]], fps: int = 10, audio: np.ndarray | None = None) -> None:
    """H.264 video showing each photo for its seconds; optional 16 kHz mono audio as AAC."""
    import av

    # faststart puts the index first, as streamed files have it, so a truncated copy still opens.
    with av.open(str(out), "w", options={"movflags": "faststart"}) as c:
        vs = c.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=fps)
        vs.width, vs.height, vs.pix_fmt = 640, 480, "yuv420p"
        as_ = c.add_stream("aac", rate=16000) if audio is not None else None
        if as_ is not None:
            as_.layout = "mono"
        n = 0
        for path, secs in shots:
            img = letterbox(path)
            for _ in range(int(secs * fps)):
                frame = av.VideoFrame.from_ndarray(img, format="bgr24")
                frame.pts, frame.time_base = n, Fraction(1, fps)
                c.mux(vs.encode(frame))
                n += 1
        c.mux(vs.encode())
        if as_ is not None:
            frame = av.AudioFrame.from_ndarray(audio.astype(np.float32)[None, :], format="fltp", layout="mono")
            frame.sample_rate = 16000
            c.mux(as_.encode(frame))
            c.mux(as_.encode())
